"""An immutable zone: origin, SOA, and RRsets indexed by (name, type).

Built by `Zone.from_records` (the reconciler hands its records over directly, no file
parsing) or by `zonefile.load_zone_file`. Both go through `ZoneBuilder`, which enforces what
`named-checkzone` enforces for us: an SOA at the apex, no data outside the origin, no CNAME
beside other data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dnsserver.errors import ZoneError
from dnsserver.name import is_subdomain, parent, parse_name, split_labels
from dnsserver.rdata import CNAME, NS, SOA, rdata_from_text, rdtype_from_text, soa_minimum

# DNSSEC types may sit beside a CNAME (RFC 4035 §2.5).
_CNAME_COMPANIONS = frozenset({46, 47})

WILDCARD_LABELS = frozenset({"*", "any"})


@dataclass(frozen=True, slots=True)
class RRset:
    """Records of one name and type: rdata in uncompressed wire form, one TTL."""

    name: str
    rdtype: int
    ttl: int
    rdatas: tuple[bytes, ...]


class ZoneBuilder:
    """Collects records of one zone and validates them as they arrive.

    `line` passed to `add` is reported in the `ZoneError` of a bad record.
    """

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self._nodes: dict[str, dict[int, tuple[int, dict[bytes, None]]]] = {}

    def add(self, name: str, rdtype: int, ttl: int, rdata: bytes, line: int | None = None) -> None:
        """Add one record; raises ZoneError when it breaks a zone rule."""
        if not is_subdomain(name, self.origin):
            raise ZoneError(self.origin, f"{name} is outside the origin {self.origin}", line)
        node = self._nodes.get(name)
        if node is None:
            node = self._nodes[name] = {}
        entry = node.get(rdtype)
        if entry is None:
            if rdtype == CNAME:
                if any(t not in _CNAME_COMPANIONS for t in node):
                    raise ZoneError(self.origin, f"CNAME beside other data at {name}", line)
            elif CNAME in node and rdtype not in _CNAME_COMPANIONS:
                raise ZoneError(self.origin, f"CNAME beside other data at {name}", line)
            if rdtype == SOA and name != self.origin:
                raise ZoneError(self.origin, f"SOA at {name}, not at the zone apex", line)
            node[rdtype] = (ttl, {rdata: None})
            return
        rdatas = entry[1]
        if rdata in rdatas:
            return
        if rdtype in (CNAME, SOA):
            what = "CNAME" if rdtype == CNAME else "SOA"
            raise ZoneError(self.origin, f"more than one {what} record at {name}", line)
        # Like BIND, the first TTL seen wins for the whole RRset.
        rdatas[rdata] = None

    def build(self) -> Zone:
        """The finished zone; raises ZoneError when the apex has no SOA."""
        apex = self._nodes.get(self.origin)
        if apex is None or SOA not in apex:
            raise ZoneError(self.origin, f"no SOA record at the zone apex {self.origin}")
        nodes: dict[str, dict[int, RRset]] = {
            name: {
                rdtype: RRset(name, rdtype, ttl, tuple(rdatas))
                for rdtype, (ttl, rdatas) in node.items()
            }
            for name, node in self._nodes.items()
        }
        nonterminals: set[str] = set()
        origin = self.origin
        for name in nodes:
            up = parent(name) if name != origin else None
            while up is not None and up != origin and up not in nodes and up not in nonterminals:
                nonterminals.add(up)
                up = parent(up)
        return Zone(origin, nodes, frozenset(nonterminals))


class Zone:
    """One zone's data; never changes after construction (share it between threads freely)."""

    __slots__ = ("_by_depth", "_nodes", "cuts", "has_wildcards", "nonterminals", "origin", "soa")

    def __init__(
        self, origin: str, nodes: dict[str, dict[int, RRset]], nonterminals: frozenset[str]
    ) -> None:
        self.origin = origin
        self._nodes = nodes
        self.nonterminals = nonterminals
        self.soa = nodes[origin][SOA]
        # Delegation points (NS below the apex, RFC 1034 §4.2.1) and RFC 4592 wildcards.
        self.cuts = frozenset(name for name, node in nodes.items() if NS in node and name != origin)
        self.has_wildcards = any(name.startswith("*.") for name in nodes)
        self._by_depth: dict[int, list[tuple[list[str], str]]] | None = None

    @classmethod
    def from_records(cls, origin: str, records: Iterable[tuple[str, str, int, str]]) -> Zone:
        """Build a zone from (name, type, ttl, rdata text) tuples.

        Names are absolute (or relative to `origin`); rdata is master-file text exactly as a
        zone file would hold it (`10 100 80 web.docker.`, `"some text"`). Raises ZoneError,
        whose `line` is the index of the offending record.
        """
        origin = parse_name(origin)
        builder = ZoneBuilder(origin)
        for index, (name, rdtype_text, ttl, text) in enumerate(records):
            try:
                rdtype = rdtype_from_text(rdtype_text)
                rdata = rdata_from_text(rdtype, text, origin)
                owner = parse_name(name, origin)
                if not 0 <= ttl <= 0xFFFFFFFF:
                    raise ValueError(f"TTL out of range: {ttl}")
            except ValueError as exc:
                raise ZoneError(origin, str(exc), index) from None
            builder.add(owner, rdtype, ttl, rdata, index)
        return builder.build()

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
        return name in self._nodes or name in self.nonterminals

    def rrsets(self) -> Iterator[RRset]:
        """Every RRset of the zone."""
        for node in self._nodes.values():
            yield from node.values()

    def match(self, pattern: list[str]) -> list[str]:
        """Names owning data that match `pattern` label by label; `*`/`any` match any label."""
        by_depth = self._by_depth
        if by_depth is None:
            by_depth = {}
            for name in self._nodes:
                labels = split_labels(name)
                by_depth.setdefault(len(labels), []).append((labels, name))
            self._by_depth = by_depth  # benign race: every thread builds the same index
        fixed = [(i, label) for i, label in enumerate(pattern) if label not in WILDCARD_LABELS]
        return [
            name
            for labels, name in by_depth.get(len(pattern), ())
            if all(labels[i] == label for i, label in fixed)
        ]

    def __len__(self) -> int:
        return sum(len(rrset.rdatas) for rrset in self.rrsets())

    def __repr__(self) -> str:
        return f"<Zone {self.origin} serial={self.serial} names={len(self._nodes)}>"
