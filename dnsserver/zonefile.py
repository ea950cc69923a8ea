"""RFC 1035 §5 master files: `load_zone_file` (disk) and `parse_zone_text` (a string).

Handles $ORIGIN, $TTL, $INCLUDE, `@`, relative names, omitted owner/TTL/class, parentheses
across lines, comments, and quoted strings with escapes. The result is validated like
`named-checkzone` does (SOA at the apex, nothing outside the origin, no CNAME beside other
data); every error names the file and line. Called by `zonedir.ZoneDirectory`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from dnsserver.errors import ZoneError, ZoneLoadError
from dnsserver.name import parse_name
from dnsserver.rdata import SOA, is_rdtype, parse_ttl, rdata_from_tokens, rdtype_from_text
from dnsserver.zone import Zone, ZoneBuilder

_CLASSES = frozenset({"IN", "CH", "HS", "CS", "ANY"})
_MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True, slots=True)
class _Entry:
    """One logical line: its first physical line, whether the owner is omitted, its tokens."""

    path: str
    line: int
    blank_owner: bool
    tokens: list[str]


def _entries(text: str, path: str) -> Iterator[_Entry]:
    """Split master-file text into logical lines; quoted tokens keep their quotes."""
    tokens: list[str] = []
    depth = 0
    start_line = 1
    blank_owner = False
    line = 1
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
    def __init__(self, origin: str | None) -> None:
        self.origin = origin
        self.default_ttl: int | None = None
        self.last_ttl: int | None = None
        self.last_owner: str | None = None
        self.records: list[tuple[str, int, int, bytes, str, int]] = []

    def parse(self, text: str, path: str, depth: int = 0) -> None:
        for entry in _entries(text, path):
            try:
                self._entry(entry, depth)
            except ValueError as exc:
                raise ZoneLoadError(entry.path, entry.line, str(exc)) from None

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
        self.records.append((owner, rdtype, ttl, rdata, entry.path, entry.line))

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
    zone_origin = parse_name(origin) if origin is not None else None
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
