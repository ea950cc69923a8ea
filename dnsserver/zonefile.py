"""RFC 1035 §5 master files: `load_zone_file` (disk) and `parse_zone_text` (a string).

Handles $ORIGIN, $TTL, $INCLUDE, `@`, relative names, omitted owner/TTL/class, parentheses
across lines, comments, and quoted strings with escapes. The result is validated like
`named-checkzone` does (SOA at the apex, nothing outside the origin, no CNAME beside other
data); every error names the file and line. Called by `zonedir.ZoneDirectory`.

Files as dockzone writes them (one record per line, `name ttl IN TYPE rdata`, printable
ASCII) take a fast path: one regular expression splits every such line into its fields
(`re.findall`, in C), and A, SRV and TXT rdata are encoded inline (a 40,000-record zone
loads in ~0.1 s instead of ~0.7 s). Any other line (a directive, an omitted owner or TTL,
a comment after data, tabs, escapes, non-ASCII text) goes through the general tokenizer,
alone; a file whose records run across lines (parentheses, quoted strings or escaped
newlines) is parsed whole by it.
"""

from __future__ import annotations

import gc
import os
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dnsserver.errors import ZoneError, ZoneLoadError
from dnsserver.name import SIMPLE_NAME, name_to_wire, parse_name, simple_name
from dnsserver.rdata import (
    ADDRESS_CNAME,
    CNAME,
    NS,
    PTR,
    SOA,
    SRV,
    TXT,
    TYPES,
    A,
    is_rdtype,
    parse_ttl,
    rdata_from_tokens,
    rdtype_from_text,
    split_rdata,
)
from dnsserver.zone import NSEC, RRset, Zone, ZoneBuilder, is_private

_CLASSES = frozenset({"IN", "CH", "HS", "CS", "ANY"})
_MAX_INCLUDE_DEPTH = 8
_TYPE_NUMBERS = dict(TYPES)
_SRV_HEAD = struct.Struct("!HHH")
_NAME_RDATA = frozenset({CNAME, NS, PTR})

# One physical line: either `owner ttl IN TYPE rdata` in printable ASCII, with no comment,
# parentheses, escapes or `$` directive (groups 1-4), or anything else (group 5).
# (The owner is a name without escapes: `SIMPLE_NAME`.)
_RDATA = r"\x20-\x27\x2a-\x3a\x3c-\x5b\x5d-\x7e"  # printable, not ( ) ; \
_LINE = re.compile(
    rf"^(?:({SIMPLE_NAME}) +([0-9]+) +IN +([A-Z][A-Z0-9]*) +([{_RDATA}]+)|(.*))$",
    re.MULTILINE,
)


def text_line(owner: str, ttl: str, rdtype: str, rdata: str) -> str:
    """A record line the fast path matched, for the general tokenizer."""
    return f"{owner} {ttl} IN {rdtype} {rdata}"


def _character_strings(texts: list[str]) -> bytes:
    """TXT rdata from the contents of quoted strings without escapes."""
    out = []
    for text in texts:
        raw = text.encode()
        if len(raw) > 255:
            raise ValueError("character-string longer than 255 bytes")
        out.append(len(raw).to_bytes(1, "big") + raw)
    return b"".join(out)


class _Bail(Exception):
    """The fast path cannot parse this text (parentheses, escapes, multi-line strings)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """One logical line: its first physical line, whether the owner is omitted, its tokens."""

    path: str
    line: int
    blank_owner: bool
    tokens: list[str]


def _entries(text: str, path: str, first_line: int = 1) -> Iterator[_Entry]:
    """Split master-file text into logical lines; quoted tokens keep their quotes."""
    tokens: list[str] = []
    depth = 0
    start_line = first_line
    blank_owner = False
    line = first_line
    at_line_start = True
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            if depth == 0:
                if tokens:
                    yield _Entry(path, start_line, blank_owner, tokens)
                tokens = []
                at_line_start = True
            continue
        if at_line_start and depth == 0:
            start_line = line
            blank_owner = c in " \t"
            at_line_start = False
        if c in " \t\r":
            i += 1
        elif c == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "(":
            depth += 1
            i += 1
        elif c == ")":
            if depth == 0:
                raise ZoneLoadError(path, line, "unbalanced ')'")
            depth -= 1
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                if text[j] == "\n":
                    line += 1
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise ZoneLoadError(path, start_line, "unterminated quoted string")
            tokens.append(text[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n;()"':
                j += 2 if text[j] == "\\" else 1
            tokens.append(text[i:j])
            i = j
    if depth:
        raise ZoneLoadError(path, start_line, "unbalanced '(' at end of file")
    if tokens:
        yield _Entry(path, start_line, blank_owner, tokens)


class _Parser:
    """Parses master files into `builder` (when the zone's origin is known) or `records`.

    With `fast`, `parse` takes the line by line path and raises _Bail when it cannot;
    the caller then starts over with a new parser without it.
    """

    def __init__(
        self, origin: str | None, builder: ZoneBuilder | None = None, fast: bool = False
    ) -> None:
        self.origin = origin
        self.builder = builder
        self.fast = fast
        self.default_ttl: int | None = None
        self.last_ttl: int | None = None
        self.last_owner: str | None = None
        self.records: list[tuple[str, int, int, bytes, str, int]] = []

    def parse(self, text: str, path: str, depth: int = 0) -> None:
        if self.fast:
            self._parse_lines(text, path, depth)
        else:
            self._parse_entries(_entries(text, path), depth)

    def _add(self, owner: str, rdtype: int, ttl: int, rdata: bytes, entry: _Entry) -> None:
        if self.builder is None:
            self.records.append((owner, rdtype, ttl, rdata, entry.path, entry.line))
            return
        try:
            self.builder.add(owner, rdtype, ttl, rdata, entry.line)
        except ZoneError as exc:
            raise ZoneLoadError(entry.path, entry.line, exc.reason, self.builder.origin) from None

    def _parse_entries(self, entries: Iterator[_Entry], depth: int) -> None:
        for entry in entries:
            try:
                self._entry(entry, depth)
            except ValueError as exc:
                raise ZoneLoadError(entry.path, entry.line, str(exc)) from None

    def _parse_lines(self, text: str, path: str, depth: int) -> None:
        """The fast path: records one per line, as dockzone writes them (see the module).

        Raises _Bail when a line may continue on the next one.
        """
        types = _TYPE_NUMBERS
        builder = self.builder
        records = self.records
        pending: list[tuple[str, int, int, bytes, int | None]] = []  # for builder.add_many
        names: dict[str, str] = {}  # name text -> canonical name (under this $ORIGIN)
        inet_pton = socket.inet_pton
        af_inet = socket.AF_INET
        pack_srv = _SRV_HEAD.pack
        owner_text: str | None = None  # None: parse the next owner afresh
        owner = ""
        ttl_text = ""
        ttl = line_ttl = 0
        for number, (owner_field, ttl_field, type_field, rdata_text, other) in enumerate(
            _LINE.findall(text), 1
        ):
            if owner_field:
                rdtype = types.get(type_field)
                if ttl_field != ttl_text:
                    line_ttl = int(ttl_field)
                    ttl_text = ttl_field if line_ttl <= 0xFFFFFFFF else ""
                if rdtype is not None and ttl_text:
                    try:
                        if owner_field != owner_text:
                            found = names.get(owner_field)
                            if found is None:
                                found = simple_name(owner_field, self.origin)
                                names[owner_field] = found
                            owner = found
                            owner_text = owner_field
                        if rdtype == A and rdata_text.count(".") == 3:
                            rdata = inet_pton(af_inet, rdata_text)
                        elif rdtype == SRV:
                            priority, weight, port, host = rdata_text.split()
                            target = names.get(host)
                            if target is None:
                                target = names[host] = parse_name(host, self.origin)
                            rdata = pack_srv(int(priority), int(weight), int(port))
                            rdata += name_to_wire(target)
                        elif rdtype in _NAME_RDATA and " " not in rdata_text:  # one name
                            target = names.get(rdata_text)
                            if target is None:
                                target = names[rdata_text] = parse_name(rdata_text, self.origin)
                            rdata = name_to_wire(target)
                        elif rdtype == TXT and rdata_text[0] == '"':
                            parts = rdata_text.split('"')
                            if not len(parts) & 1 or "".join(parts[::2]).strip():
                                raise ValueError  # not just quoted strings: the slow way
                            rdata = _character_strings(parts[1::2])
                        else:
                            rdata = rdata_from_tokens(rdtype, split_rdata(rdata_text), self.origin)
                    except (ValueError, OSError, struct.error):
                        pass  # the general path below parses it, or says what is wrong
                    else:
                        if builder is None:
                            records.append((owner, rdtype, line_ttl, rdata, path, number))
                        else:
                            pending.append((owner, rdtype, line_ttl, rdata, number))
                        ttl = line_ttl
                        continue
                line = text_line(owner_field, ttl_field, type_field, rdata_text)
            else:
                line = other
                if not line or line[0] == ";" or line.isspace():
                    continue
                if "(" in line or ")" in line or line.endswith("\\") or line.count('"') & 1:
                    raise _Bail  # a record that may run on across lines
            if owner_text is not None:
                self.last_ttl = ttl
                self.last_owner = owner
            owner_text = None
            names.clear()  # a directive may change $ORIGIN
            self._flush(pending, path)
            self._parse_entries(_entries(line, path, number), depth)
        if owner_text is not None:
            self.last_ttl = ttl
            self.last_owner = owner
        self._flush(pending, path)

    def _flush(self, pending: list[tuple[str, int, int, bytes, int | None]], path: str) -> None:
        """Hand the records the fast path collected to the builder (before any other)."""
        if not pending or self.builder is None:
            return
        try:
            self.builder.add_many(pending)
        except ZoneError as exc:
            raise ZoneLoadError(path, exc.line or 0, exc.reason, self.builder.origin) from None
        pending.clear()

    def _entry(self, entry: _Entry, depth: int) -> None:
        tokens = entry.tokens
        head = tokens[0]
        if head.startswith("$") and not entry.blank_owner:
            self._directive(entry, depth)
            return
        pos = 0
        if entry.blank_owner:
            if self.last_owner is None:
                raise ValueError("record without an owner name")
            owner = self.last_owner
        else:
            owner = parse_name(head, self.origin)
            pos = 1
        ttl: int | None = None
        while pos < len(tokens):
            token = tokens[pos]
            upper = token.upper()
            if upper in _CLASSES or (upper.startswith("CLASS") and upper[5:].isdigit()):
                if upper != "IN":
                    raise ValueError(f"class {token} is not supported (only IN)")
                pos += 1
            elif ttl is None and token[:1].isdigit():
                ttl = parse_ttl(token)
                pos += 1
            else:
                break
        if pos >= len(tokens) or not is_rdtype(tokens[pos]):
            found = tokens[pos] if pos < len(tokens) else "end of line"
            raise ValueError(f"expected a record type, found {found!r}")
        rdtype = rdtype_from_text(tokens[pos])
        rdata = rdata_from_tokens(rdtype, tokens[pos + 1 :], self.origin)
        if ttl is None:
            ttl = self.default_ttl if self.default_ttl is not None else self.last_ttl
            if ttl is None:
                if rdtype != SOA:
                    raise ValueError("no TTL given and no $TTL before this record")
                # RFC 1035 files without $TTL: the SOA MINIMUM is the default (as BIND does).
                ttl = self.last_ttl = int.from_bytes(rdata[-4:], "big")
        else:
            self.last_ttl = ttl
        self.last_owner = owner
        self._add(owner, rdtype, ttl, rdata, entry)

    def _directive(self, entry: _Entry, depth: int) -> None:
        name, args = entry.tokens[0].upper(), entry.tokens[1:]
        if name == "$ORIGIN" and len(args) == 1:
            self.origin = parse_name(args[0], self.origin)
        elif name == "$TTL" and len(args) == 1:
            self.default_ttl = parse_ttl(args[0])
        elif name == "$INCLUDE" and len(args) in (1, 2):
            if depth >= _MAX_INCLUDE_DEPTH:
                raise ValueError("$INCLUDE nested too deeply")
            target = os.path.join(os.path.dirname(entry.path), args[0])
            try:
                with open(target, encoding="utf-8") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"$INCLUDE {args[0]}: {exc}") from None
            saved = self.origin
            if len(args) == 2:
                self.origin = parse_name(args[1], self.origin)
            self.parse(text, target, depth + 1)
            self.origin = saved
        else:
            raise ValueError(f"unsupported or malformed directive {entry.tokens[0]}")


def parse_zone_text(text: str, origin: str | None = None, path: str = "<string>") -> Zone:
    """Parse master-file text into a Zone; raises ZoneLoadError naming `path` and line.

    The zone's origin is `origin` when given, else the first $ORIGIN, else the SOA's owner.
    """
    collecting = gc.isenabled()
    gc.disable()  # the records are no garbage: collecting while they pile up costs ~10%
    try:
        return _parse_zone_text(text, origin, path)
    finally:
        if collecting:
            gc.enable()


def _parse_zone_text(text: str, origin: str | None, path: str) -> Zone:
    zone_origin = parse_name(origin) if origin is not None else None
    if zone_origin is not None:
        builder = ZoneBuilder(zone_origin)
        try:
            _Parser(zone_origin, builder, fast=True).parse(text, path)
        except _Bail:
            builder = ZoneBuilder(zone_origin)
            _Parser(zone_origin, builder).parse(text, path)
        try:
            return builder.build()
        except ZoneError as exc:
            raise ZoneLoadError(path, 1, exc.reason, zone_origin) from None
    try:
        parser = _Parser(zone_origin, fast=True)
        parser.parse(text, path)
    except _Bail:
        parser = _Parser(zone_origin)
        parser.parse(text, path)
    if zone_origin is None:
        zone_origin = parser.origin
        if zone_origin is None:
            soa = next((r for r in parser.records if r[1] == SOA), None)
            if soa is None:
                raise ZoneLoadError(path, 1, "no SOA record and no origin")
            zone_origin = soa[0]
    builder = ZoneBuilder(zone_origin)
    for owner, rdtype, ttl, rdata, where, line in parser.records:
        try:
            builder.add(owner, rdtype, ttl, rdata, line)
        except ZoneError as exc:
            raise ZoneLoadError(where, line, exc.reason, zone_origin) from None
    try:
        return builder.build()
    except ZoneError as exc:
        raise ZoneLoadError(path, 1, exc.reason, zone_origin) from None


def load_zone_file(path: str | os.PathLike[str], origin: str | None = None) -> Zone:
    """Read and parse a zone file; raises ZoneLoadError (also for unreadable files)."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ZoneLoadError(name, 0, f"cannot read: {exc}") from None
    return parse_zone_text(text, origin, name)


def rrset_lines(rrset: RRset) -> list[str]:
    """Master-file lines of one RRset (any type, through dnspython's rdata texts); a
    dockzone-only type (`ADDRESS_CNAME`) gives none."""
    if rrset.rdtype == ADDRESS_CNAME:
        return []
    lines = []
    rdtype = dns.rdatatype.RdataType.make(rrset.rdtype)
    mnemonic = dns.rdatatype.to_text(rdtype)
    for wire in rrset.rdatas:
        rdata = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, wire, 0, len(wire))
        lines.append(f"{rrset.name} {rrset.ttl} IN {mnemonic} {rdata.to_text()}")
    return lines


_DNSKEY = 48


def dnssec_text(zone: Zone) -> str:
    """The DNSKEY, NSEC and RRSIG records of a signed zone in master-file form (the
    signatures of dockzone's own `ADDRESS_CNAME`, which a file cannot hold, left out)."""
    lines: list[str] = []
    for name in sorted(zone.names):
        node = zone.node(name)
        assert node is not None
        for key, rrset in node.items():
            if (key > 0xFFFF or key in (_DNSKEY, NSEC)) and not is_private(node, key):
                lines.extend(rrset_lines(rrset))
    return "\n".join(lines) + "\n" if lines else ""


def zone_to_text(zone: Zone) -> str:
    """The whole zone in master-file form, SOA first (for tests and tools such as
    `dnssec-verify`; dockzone's own zone files are rendered by the reconciler)."""
    lines = rrset_lines(zone.soa)
    for rrset in zone.public_rrsets():
        if rrset is not zone.soa:
            lines.extend(rrset_lines(rrset))
    return "\n".join(lines) + "\n"
