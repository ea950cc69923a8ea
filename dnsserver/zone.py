"""An immutable zone: origin, SOA, and RRsets indexed by (name, type).

Built by `Zone.from_records` (the reconciler hands its records over directly, no file
parsing) or by `zonefile.load_zone_file`. Both go through `ZoneBuilder`, which enforces what
`named-checkzone` enforces for us: an SOA at the apex, no data outside the origin, no CNAME
beside other data.

`Zone.patched(changes)` makes a new zone from an old one and a few changed RRsets (copy on
write: a shallow copy of the name table plus work proportional to the changes), with the
same rules; `rrset_from_text` builds the RRsets of such a patch from master-file text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from dnsserver.errors import ZoneError
from dnsserver.name import ROOT, is_subdomain, parent, parse_name, split_labels
from dnsserver.rdata import (
    ADDRESS_CNAME,
    CNAME,
    NS,
    SOA,
    rdata_from_text,
    rdtype_from_text,
    rdtype_to_text,
    soa_minimum,
)

if TYPE_CHECKING:
    from dnsserver.nsec import Chain

RRSIG = 46
NSEC = 47


def rrsig_key(covered: int) -> int:
    """The key under which a node keeps the RRSIGs covering `covered`: RRSIGs are stored
    per covered type, each group with its own TTL (the TTL of the RRset it signs), so the
    server finds the signatures of an answer in one lookup."""
    return (RRSIG << 16) | covered


_RRSIG_CNAME = rrsig_key(CNAME)


def type_key(rdtype: int, rdata: bytes) -> int:
    """The node key of a record: its type, or `rrsig_key` of the covered type for an RRSIG."""
    if rdtype == RRSIG:
        if len(rdata) < 2:
            raise ValueError("RRSIG rdata too short")
        return rrsig_key((rdata[0] << 8) | rdata[1])
    return rdtype


def key_type(key: int) -> int:
    """The record type of a node key (`type_key`'s inverse)."""
    return RRSIG if key > 0xFFFF else key


def is_private(node: Mapping[int, RRset], key: int) -> bool:
    """Whether a node's RRset is dockzone's own, kept for answers but never sent in a
    transfer nor written to a file: an ADDRESS_CNAME, and the RRSIG made for it (covering
    CNAME at a name that has no CNAME)."""
    return key == ADDRESS_CNAME or (key == _RRSIG_CNAME and CNAME not in node)


def _cname_companion(key: int) -> bool:
    """DNSSEC types may sit beside a CNAME (RFC 4035 §2.5)."""
    return key in (RRSIG, NSEC) or key > 0xFFFF


WILDCARD_LABELS = frozenset({"*", "any"})
_SPECIAL = frozenset({CNAME, SOA})  # types `add` checks before adding
_NOT_INLINE = frozenset({CNAME, SOA, NS, RRSIG})  # types `add_many` leaves to `add`

PatchKey = tuple[str, int | str]
"""Key of a zone patch: (owner name, type as a number or a mnemonic such as "A")."""


class RRset(NamedTuple):
    """Records of one name and type: rdata in uncompressed wire form, one TTL.

    A named tuple, not a frozen dataclass: as immutable, and built three times faster (a
    40,000-record zone file holds ~30,000 RRsets).
    """

    name: str
    rdtype: int
    ttl: int
    rdatas: tuple[bytes, ...]


_tuple_new = tuple.__new__


def rrset_from_text(
    origin: str,
    name: str,
    rdtype: int | str,
    ttl: int,
    rdatas: Iterable[str],
    *,
    known: Mapping[str, bytes] | None = None,
) -> RRset:
    """One RRset of zone `origin` from master-file text, for `Zone.patched`.

    `name` is absolute (or relative to `origin`); each of `rdatas` is the rdata part of a
    zone file line (`10 100 80 web.docker.`, `"some text"`). Duplicate rdata is dropped.
    `known` maps texts already converted (for this zone, name and type) to their wire form:
    an RRset of thousands of records that gained one converts one. Raises ZoneError for bad
    text, a name outside `origin`, an empty RRset, or more than one CNAME or SOA record.
    """
    try:
        origin = parse_name(origin)
        owner = parse_name(name, origin)
        number = rdtype if isinstance(rdtype, int) else rdtype_from_text(rdtype)
        if not 0 <= ttl <= 0xFFFFFFFF:
            raise ValueError(f"TTL out of range: {ttl}")
        if known:
            wire = tuple(
                dict.fromkeys(
                    known[text] if text in known else rdata_from_text(number, text, origin)
                    for text in rdatas
                )
            )
        else:
            wire = tuple(dict.fromkeys(rdata_from_text(number, text, origin) for text in rdatas))
    except ValueError as exc:
        raise ZoneError(origin, str(exc)) from None
    if not is_subdomain(owner, origin):
        raise ZoneError(origin, f"{owner} is outside the origin {origin}")
    if not wire:
        raise ZoneError(origin, f"no {rdtype_to_text(number)} record at {owner}")
    if number in (CNAME, SOA) and len(wire) > 1:
        raise ZoneError(origin, f"more than one {rdtype_to_text(number)} record at {owner}")
    return RRset(owner, number, ttl, wire)


class ZoneBuilder:
    """Collects records of one zone and validates them as they arrive.

    `line` passed to `add` is reported in the `ZoneError` of a bad record. `build` hands
    the collected tables over to the zone: add nothing after it.
    """

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self._nodes: dict[str, dict[int, RRset]] = {}
        # RRsets with more than one record so far: their rdata in order, without duplicates
        # (most RRsets hold one record: those are built once, in `add`).
        self._more: dict[tuple[str, int], dict[bytes, None]] = {}
        self._inside = origin  # the last name found inside the origin (most come in runs)
        self._built = False
        self._cuts: set[str] = set()  # NS below the apex
        self._wildcards: set[str] = set()  # names starting with "*."

    def add(self, name: str, rdtype: int, ttl: int, rdata: bytes, line: int | None = None) -> None:
        """Add one record; raises ZoneError when it breaks a zone rule."""
        key = rdtype
        if rdtype == RRSIG:
            try:
                key = type_key(rdtype, rdata)
            except ValueError as exc:
                raise ZoneError(self.origin, str(exc), line) from None
        if name != self._inside:
            if not is_subdomain(name, self.origin):
                raise ZoneError(self.origin, f"{name} is outside the origin {self.origin}", line)
            if self._built:
                raise RuntimeError("ZoneBuilder.add after build")
            self._inside = name
        node = self._nodes.get(name)
        if node is None:
            node = self._nodes[name] = {}
            if name.startswith("*."):
                self._wildcards.add(name)
        rrset = node.get(key)
        if rrset is None:
            if rdtype in _SPECIAL or CNAME in node:
                self._check_new(node, name, key, line)
            elif rdtype == NS and name != self.origin:
                self._cuts.add(name)
            node[key] = _tuple_new(RRset, (name, rdtype, ttl, (rdata,)))
            return
        # Like BIND, the first TTL seen wins for the whole RRset.
        more = self._more.get((name, key))
        if more is None:
            first = rrset.rdatas[0]
            if rdata == first:
                return
            if rdtype in (CNAME, SOA):
                what = "CNAME" if rdtype == CNAME else "SOA"
                raise ZoneError(self.origin, f"more than one {what} record at {name}", line)
            self._more[(name, key)] = {first: None, rdata: None}
        else:
            more[rdata] = None

    def add_many(self, records: Iterable[tuple[str, int, int, bytes, int | None]]) -> None:
        """`add` each (name, type, ttl, rdata, line), in order; the bulk of a zone file."""
        if self._built:
            raise RuntimeError("ZoneBuilder.add after build")
        nodes = self._nodes
        more = self._more
        origin = self.origin
        below = "." + origin
        add = self.add
        inside = self._inside
        not_inline = _NOT_INLINE
        for name, rdtype, ttl, rdata, line in records:
            if rdtype not in not_inline:
                # The common case inline: a new RRset at a name without a CNAME.
                if name != inside and (
                    (name.endswith(below) and "\\" not in name) or is_subdomain(name, origin)
                ):
                    inside = self._inside = name
                if name == inside:
                    node = nodes.get(name)
                    if node is None:
                        if name[0] != "*":
                            rrset = _tuple_new(RRset, (name, rdtype, ttl, (rdata,)))
                            nodes[name] = {rdtype: rrset}
                            continue
                    elif CNAME not in node:
                        if rdtype not in node:
                            node[rdtype] = _tuple_new(RRset, (name, rdtype, ttl, (rdata,)))
                            continue
                        rdatas = more.get((name, rdtype))
                        if rdatas is not None:  # a third record or more of one RRset
                            rdatas[rdata] = None
                            continue
            add(name, rdtype, ttl, rdata, line)
            inside = self._inside

    def _check_new(
        self, node: Mapping[int, RRset], name: str, rdtype: int, line: int | None
    ) -> None:
        if rdtype == CNAME:
            if not all(_cname_companion(t) for t in node):
                raise ZoneError(self.origin, f"CNAME beside other data at {name}", line)
        elif CNAME in node and not _cname_companion(rdtype):
            raise ZoneError(self.origin, f"CNAME beside other data at {name}", line)
        if rdtype == SOA and name != self.origin:
            raise ZoneError(self.origin, f"SOA at {name}, not at the zone apex", line)

    def build(self) -> Zone:
        """The finished zone; raises ZoneError when the apex has no SOA."""
        nodes = self._nodes
        apex = nodes.get(self.origin)
        if apex is None or SOA not in apex:
            raise ZoneError(self.origin, f"no SOA record at the zone apex {self.origin}")
        for (name, key), rdatas in self._more.items():
            node = nodes[name]
            first = node[key]
            node[key] = RRset(name, first.rdtype, first.ttl, tuple(rdatas))
        self._more = {}
        self._built = True
        self._inside = ""
        return Zone(self.origin, nodes, cuts=self._cuts, wildcards=self._wildcards)


def _count_children(origin: str, nodes: Mapping[str, object]) -> dict[str, int]:
    """For every name that exists (owns data, or is an empty non-terminal), how many of its
    children exist; names without existing children are left out."""
    # The parents of the names with data, counted in C; then the empty non-terminals among
    # them, counted at their own parents, level by level.
    children: dict[str, int] = Counter(
        (name[name.index(".") + 1 :] or ROOT) if "\\" not in name else str(parent(name))
        for name in nodes
        if name != origin
    )
    level = [name for name in children if name not in nodes and name != origin]
    while level:
        above = []
        for name in level:
            up = (name[name.index(".") + 1 :] or ROOT) if "\\" not in name else parent(name)
            if up is None:
                continue
            if up in children:
                children[up] += 1
            else:
                children[up] = 1
                if up not in nodes and up != origin:
                    above.append(up)
        level = above
    return dict(children)


class Zone:
    """One zone's data; never changes after construction (share it between threads freely).

    A name exists when it owns data or has an existing child (an empty non-terminal);
    `_children` holds, per name with existing children, how many, so that a patch can tell
    when a name's ancestors stop (or start) being empty non-terminals.
    """

    __slots__ = (
        "_by_depth",
        "_children",
        "_nodes",
        "_nonterminals",
        "_wildcards",
        "chain",
        "cuts",
        "has_wildcards",
        "origin",
        "soa",
    )

    def __init__(
        self,
        origin: str,
        nodes: dict[str, dict[int, RRset]],
        *,
        cuts: Iterable[str] | None = None,
        wildcards: Iterable[str] | None = None,
    ) -> None:
        """A zone of `nodes` (name -> type -> RRset, taken over, not copied); `cuts` and
        `wildcards` when the caller knows them (ZoneBuilder does)."""
        self.origin = origin
        self._nodes = nodes
        self.soa = nodes[origin][SOA]
        self._children: dict[str, int] | None = None  # counted on first use (see `_counts`)
        # Delegation points (NS below the apex, RFC 1034 §4.2.1) and RFC 4592 wildcards.
        if cuts is None:
            cuts = (name for name, node in nodes.items() if NS in node and name != origin)
        if wildcards is None:
            wildcards = (name for name in nodes if name.startswith("*."))
        self.cuts = frozenset(cuts)
        self._wildcards = frozenset(wildcards)
        self.has_wildcards = bool(self._wildcards)
        self._by_depth: dict[int, dict[str, list[str]]] | None = None
        self._nonterminals: frozenset[str] | None = None
        self.chain: Chain | None = None  # a signed zone's NSEC chain (`dnsserver.signer`)

    @classmethod
    def from_records(cls, origin: str, records: Iterable[tuple[str, str, int, str]]) -> Zone:
        """Build a zone from (name, type, ttl, rdata text) tuples.

        Names are absolute (or relative to `origin`); rdata is master-file text exactly as a
        zone file would hold it (`10 100 80 web.docker.`, `"some text"`). Raises ZoneError,
        whose `line` is the index of the offending record.
        """
        origin = parse_name(origin)
        builder = ZoneBuilder(origin)
        rows: list[tuple[str, int, int, bytes, int | None]] = []
        last_name: str | None = None
        owner = origin
        for index, (name, rdtype_text, ttl, text) in enumerate(records):
            try:
                rdtype = rdtype_from_text(rdtype_text)
                rdata = rdata_from_text(rdtype, text, origin)
                if name != last_name:
                    owner = parse_name(name, origin)
                    last_name = name
                if not 0 <= ttl <= 0xFFFFFFFF:
                    raise ValueError(f"TTL out of range: {ttl}")
            except ValueError as exc:
                builder.add_many(rows)  # a rule broken earlier is the first error
                raise ZoneError(origin, str(exc), index) from None
            rows.append((owner, rdtype, ttl, rdata, index))
        builder.add_many(rows)
        return builder.build()

    # -- patches ---------------------------------------------------------------------------

    def patched(self, changes: Mapping[PatchKey, RRset | None]) -> Zone:
        """A new zone: this one with the RRsets in `changes` replaced, added or (None, or an
        RRset without rdata) removed; this zone is left untouched.

        Keys are (owner name, type); owner names are absolute. The SOA is one of the RRsets
        (`(origin, "SOA")`): include it when its serial changes. Raises ZoneError, naming the
        zone and the name, when the result would break a zone rule (data outside the origin,
        CNAME beside other data, no SOA at the apex, SOA elsewhere).

        Costs a shallow copy of the name table plus work proportional to the changes.
        """
        return self.patched_with_names(changes)[0]

    def patched_with_names(
        self, changes: Mapping[PatchKey, RRset | None]
    ) -> tuple[Zone, frozenset[str] | None]:
        """`patched`, and the names whose answers may differ between the two zones.

        Those are the changed owner names, the names that became or stopped being empty
        non-terminals, and the apex when the SOA changed, when a name came into or went out
        of existence (the answers to query wildcards and negative answers depend on which
        names exist), or when the NS of a delegation or an RFC 4592 wildcard changed. None
        when a delegation point came or went: every answer below it may differ.
        """
        origin = self.origin
        by_name: dict[str, list[tuple[int, RRset | None]]] = {}
        for (name_text, type_key), given in changes.items():
            rrset = given
            try:
                name = parse_name(name_text)
                rdtype = type_key if isinstance(type_key, int) else rdtype_from_text(type_key)
            except ValueError as exc:
                raise ZoneError(origin, str(exc)) from None
            if not is_subdomain(name, origin):
                raise ZoneError(origin, f"{name} is outside the origin {origin}")
            if rrset is not None:
                if rrset.name != name or rrset.rdtype != key_type(rdtype):
                    raise ZoneError(
                        origin,
                        f"RRset {rrset.name} {rdtype_to_text(rrset.rdtype)} given for "
                        f"{name} {rdtype_to_text(rdtype)}",
                    )
                if not rrset.rdatas:
                    rrset = None
                elif rdtype in (CNAME, SOA) and len(rrset.rdatas) > 1:
                    what = rdtype_to_text(rdtype)
                    raise ZoneError(origin, f"more than one {what} record at {name}")
            by_name.setdefault(name, []).append((rdtype, rrset))

        nodes = dict(self._nodes)
        children = self._counts()
        children_copied = False
        cuts: set[str] | None = None
        wildcards: set[str] | None = None
        changed: set[str] = set(by_name)
        added: list[str] = []  # names that own data now and did not before
        removed: list[str] = []  # names that owned data before and do not now
        apex_changed = False

        for name, items in by_name.items():
            old = nodes.get(name)
            node = dict(old) if old is not None else {}
            for rdtype, rrset in items:
                if rrset is None:
                    node.pop(rdtype, None)
                else:
                    node[rdtype] = rrset
            if CNAME in node and not all(t == CNAME or _cname_companion(t) for t in node):
                raise ZoneError(origin, f"CNAME beside other data at {name}")
            if name == origin:
                if SOA not in node:
                    raise ZoneError(origin, f"no SOA record at the zone apex {origin}")
                apex_changed = True
            elif SOA in node:
                raise ZoneError(origin, f"SOA at {name}, not at the zone apex")
            if node:
                nodes[name] = node
            elif old is not None:
                del nodes[name]
            if name != origin and (NS in node) != (old is not None and NS in old):
                cuts = set(self.cuts) if cuts is None else cuts
                if NS in node:
                    cuts.add(name)
                else:
                    cuts.discard(name)
            elif name in self.cuts and node.get(NS) is not (old or {}).get(NS):
                apex_changed = True  # the NS of a delegation changed: referrals differ
            if name.startswith("*."):
                apex_changed = True
                wildcards = set(self._wildcards) if wildcards is None else wildcards
                if node:
                    wildcards.add(name)
                else:
                    wildcards.discard(name)
            had, has = old is not None, bool(node)
            if had == has:
                continue
            (added if has else removed).append(name)
            if name == origin or children.get(name):
                continue  # still exists: it has names below it (an empty non-terminal now)
            if not children_copied:
                children = dict(children)
                children_copied = True
            up = parent(name)
            if has:
                while up is not None:
                    count = children.get(up, 0)
                    children[up] = count + 1
                    if count or up in nodes or up == origin:
                        break
                    changed.add(up)  # a new empty non-terminal
                    up = parent(up)
            else:
                while up is not None:
                    count = children[up] - 1
                    if count:
                        children[up] = count
                        break
                    del children[up]
                    if up in nodes or up == origin:
                        break
                    changed.add(up)  # no longer an empty non-terminal
                    up = parent(up)

        if added or removed:
            apex_changed = True  # which names exist, and match query wildcards, changed
        if apex_changed:
            changed.add(origin)

        zone = Zone.__new__(Zone)
        zone.origin = origin
        zone._nodes = nodes
        zone.soa = nodes[origin][SOA]
        zone._children = children
        zone.cuts = self.cuts if cuts is None else frozenset(cuts)
        zone._wildcards = self._wildcards if wildcards is None else frozenset(wildcards)
        zone.has_wildcards = bool(zone._wildcards)
        zone._nonterminals = None
        zone.chain = None
        zone._by_depth = self._patched_by_depth(added, removed)
        # A cut that came or went changes the answer of every name at and below it.
        return zone, None if cuts is not None else frozenset(changed)

    def _patched_by_depth(
        self, added: list[str], removed: list[str]
    ) -> dict[int, dict[str, list[str]]] | None:
        """The query wildcard index of a patched zone: copied per depth where names with data
        came or went, or None (built on first use) when this zone has none yet."""
        by_depth = self._by_depth
        if by_depth is None or not (added or removed):
            return by_depth
        by_depth = dict(by_depth)
        copied: set[int] = set()
        for name, present in [(n, True) for n in added] + [(n, False) for n in removed]:
            labels = split_labels(name)
            depth = len(labels)
            if depth not in copied:
                by_depth[depth] = dict(by_depth.get(depth, {}))
                copied.add(depth)
            if present:
                by_depth[depth][name] = labels
            else:
                by_depth[depth].pop(name, None)
        return by_depth

    def _counts(self) -> dict[str, int]:
        """Existing children per name, counted when first needed (a negative answer, a
        patch): loading a big zone file is faster without, and a benign race (two threads
        count the same) costs nothing but time."""
        children = self._children
        if children is None:
            children = self._children = _count_children(self.origin, self._nodes)
        return children

    # -- reading ---------------------------------------------------------------------------

    @property
    def serial(self) -> int:
        """The SOA serial."""
        return int.from_bytes(self.soa.rdatas[0][-20:-16], "big")

    @property
    def ns(self) -> RRset | None:
        """The apex NS RRset, if the zone has one."""
        return self._nodes[self.origin].get(NS)

    @property
    def negative_ttl(self) -> int:
        """TTL of the SOA in negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §5)."""
        return min(self.soa.ttl, soa_minimum(self.soa.rdatas[0]))

    @property
    def names(self) -> frozenset[str]:
        """Names that own data (empty non-terminals excluded)."""
        return frozenset(self._nodes)

    @property
    def nonterminals(self) -> frozenset[str]:
        """Empty non-terminals: names without data that have names with data below them."""
        found = self._nonterminals
        if found is None:
            nodes = self._nodes
            found = self._nonterminals = frozenset(n for n in self._counts() if n not in nodes)
        return found

    def node(self, name: str) -> Mapping[int, RRset] | None:
        """The RRsets at `name` by type, or None when the name owns no data."""
        node = self._nodes.get(name)
        return None if node is None else MappingProxyType(node)

    def get(self, name: str, rdtype: int) -> RRset | None:
        """The RRset of `name` and `rdtype`, or None."""
        node = self._nodes.get(name)
        return None if node is None else node.get(rdtype)

    def exists(self, name: str) -> bool:
        """True when `name` owns data or is an empty non-terminal (so: no NXDOMAIN)."""
        if name in self._nodes:
            return True
        children = self._children
        if children is None:
            children = self._counts()
        return name in children

    def differing_names(self, other: Zone) -> Iterator[str]:
        """Names whose RRsets may differ from `other`'s: every name of either zone but those
        whose node the two share (a patch shares every node it did not touch)."""
        mine, theirs = self._nodes, other._nodes
        for name, node in mine.items():
            if theirs.get(name) is not node:
                yield name
        for name in theirs:
            if name not in mine:
                yield name

    def rrsets(self) -> Iterator[RRset]:
        """Every RRset of the zone."""
        for node in self._nodes.values():
            yield from node.values()

    def public_rrsets(self) -> Iterator[RRset]:
        """Every RRset a transfer sends or a file holds (not the `is_private` ones)."""
        for node in self._nodes.values():
            for key, rrset in node.items():
                if not is_private(node, key):
                    yield rrset

    def match(self, pattern: list[str]) -> list[str]:
        """Names owning data that match `pattern` label by label; `*`/`any` match any label."""
        by_depth = self._by_depth
        if by_depth is None:
            by_depth = {}
            for name in self._nodes:
                labels = split_labels(name)
                by_depth.setdefault(len(labels), {})[name] = labels
            self._by_depth = by_depth  # benign race: every thread builds the same index
        fixed = [(i, label) for i, label in enumerate(pattern) if label not in WILDCARD_LABELS]
        return [
            name
            for name, labels in by_depth.get(len(pattern), {}).items()
            if all(labels[i] == label for i, label in fixed)
        ]

    def __len__(self) -> int:
        return sum(len(rrset.rdatas) for rrset in self.rrsets())

    def __repr__(self) -> str:
        return f"<Zone {self.origin} serial={self.serial} names={len(self._nodes)}>"
