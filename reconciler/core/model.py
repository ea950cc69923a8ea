"""Frozen value types shared by every part of the reconciler.

Sources produce ``ServiceRecord`` and ``Endpoint`` values; ``zonebuild`` turns them into a
``ZoneSet`` (origin -> ``ZoneContent``); ``plan`` diffs two zone sets; sinks apply the diff.
Nothing here does I/O.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field

from reconciler.core.rdata import name_key, type_key


@dataclass(frozen=True, slots=True, order=True)
class Owner:
    """Who claimed a record: a source and one object in it.

    ``source`` is ``file`` (later ``docker``, ``api``, ``kubernetes``); ``object`` is
    ``kind/name`` (``servicerecord/web``); ``location`` says where the object was read
    (``defs/web.yaml#2``). Owners sort by (source, object, location): that order is the
    stable rule that settles conflicts (the owner that sorts first keeps the name).
    """

    source: str
    object: str
    location: str = ""

    def __str__(self) -> str:
        if self.location:
            return f"{self.location} ({self.object})"
        return f"{self.source} {self.object}"


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One service, as the ServiceRecord schema describes it, with names made absolute.

    ``name``, ``zone`` and ``aliases`` are lowercase absolute names with a trailing dot;
    ``host`` is an IP address in its canonical text form, an absolute host name, or empty
    when the record only carries ``text``.
    """

    name: str
    zone: str
    owner: Owner
    host: str = ""
    port: int | None = None
    protocol: str = "tcp"
    priority: int = 10
    weight: int = 0
    ttl: int | None = None
    text: tuple[str, ...] = ()
    mail: bool = False
    target_strip: int = 0
    group: str = ""
    aliases: tuple[str, ...] = ()
    reverse: bool = True
    """Publish a PTR for the address (off for host addresses shared by many services)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An explicit RRset, as ExternalDNS's DNSEndpoint gives it: no aggregation, no PTR.

    ``rdatas`` are in master-file text form, canonical as ``zonebuild`` renders them.
    """

    name: str
    zone: str
    rdtype: str
    rdatas: tuple[str, ...]
    owner: Owner
    field: str
    ttl: int | None = None


Record = ServiceRecord | Endpoint


@dataclass(frozen=True, slots=True)
class Provenance:
    """Why one RR exists: the owner, the field that produced it, and the name it was
    aggregated from (empty when the RR sits at the record's own name)."""

    owner: Owner
    field: str
    via: str = ""
    protocol: str = ""
    """For an SRV made from ``spec.port``: the record's ``protocol`` (``tcp``, ``udp``),
    which the SRV name does not say (SkyDNS) but totem/discover's values do."""

    def __str__(self) -> str:
        via = f", aggregated from {self.via}" if self.via else ""
        return f"{self.owner} {self.field}{via}"


@dataclass(frozen=True, slots=True)
class RRset:
    """All RRs of one name and type. ``rdatas`` are sorted, unique, in master-file text."""

    name: str
    rdtype: str
    ttl: int
    rdatas: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Soa:
    """A zone's SOA fields except the serial, which the zone file sink assigns."""

    mname: str
    rname: str
    refresh: int
    retry: int
    expire: int
    minimum: int
    ttl: int

    def to_text(self, serial: int) -> str:
        return (
            f"{self.mname} {self.rname} {serial} "
            f"{self.refresh} {self.retry} {self.expire} {self.minimum}"
        )


RRKey = tuple[str, str, str]
"""(name, rdtype, rdata): one RR, the key of a zone's provenance map."""


@dataclass(frozen=True, slots=True)
class ZoneContent:
    """One zone's data: SOA fields and every other RRset (NS included), in canonical order.

    ``provenance`` is not part of equality: two zones with the same data are equal whatever
    produced them, so moving a definition between files rewrites nothing.
    """

    origin: str
    soa: Soa
    rrsets: tuple[RRset, ...]
    provenance: Mapping[RRKey, tuple[Provenance, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def record_count(self) -> int:
        """RRs in the zone, the SOA included."""
        return 1 + sum(len(rrset.rdatas) for rrset in self.rrsets)

    def rrset(self, name: str, rdtype: str) -> RRset | None:
        rrsets = self.rrsets
        at = bisect_left(rrsets, _rrset_key(name, rdtype), key=_key)
        if at < len(rrsets) and rrsets[at].name == name and rrsets[at].rdtype == rdtype:
            return rrsets[at]
        return None

    def rrsets_at(self, wanted: Collection[str]) -> dict[str, list[RRset]]:
        """The RRsets at each of the ``wanted`` names (absent when none): a binary search
        per name, or one walk over the zone when the names are many."""
        rrsets = self.rrsets
        result: dict[str, list[RRset]] = {}
        if len(wanted) * 32 > len(rrsets):
            lookup = set(wanted)
            for rrset in rrsets:
                if rrset.name in lookup:
                    result.setdefault(rrset.name, []).append(rrset)
            return result
        for name in wanted:
            at = bisect_left(rrsets, (name_key(name),), key=lambda r: (name_key(r.name),))
            while at < len(rrsets) and rrsets[at].name == name:
                result.setdefault(name, []).append(rrsets[at])
                at += 1
        return result

    def updated(
        self,
        changes: Mapping[tuple[str, str], RRset | None],
        provenance: Mapping[RRKey, tuple[Provenance, ...]],
    ) -> ZoneContent:
        """This zone with the RRsets in ``changes`` (by name and type) replaced, added or
        (None) removed, and ``provenance`` as the new provenance map. Costs a copy of the
        RRset list and a binary search per change: a pass that changes a few names of a
        big zone does not sort it again."""
        rrsets = list(self.rrsets)
        for (name, rdtype), new in sorted(changes.items(), key=lambda item: _rrset_key(*item[0])):
            key = _rrset_key(name, rdtype)
            at = bisect_left(rrsets, key, key=_key)
            present = at < len(rrsets) and rrsets[at].name == name and rrsets[at].rdtype == rdtype
            if new is None:
                if present:
                    del rrsets[at]
            elif present:
                rrsets[at] = new
            else:
                rrsets.insert(at, new)
        return ZoneContent(self.origin, self.soa, tuple(rrsets), provenance)


def _rrset_key(name: str, rdtype: str) -> tuple[tuple[str, ...], tuple[int, str]]:
    """Canonical RRset order: names in DNSSEC order, types in ``rdata.TYPE_ORDER``."""
    return (name_key(name), type_key(rdtype))


def _key(rrset: RRset) -> tuple[tuple[str, ...], tuple[int, str]]:
    return _rrset_key(rrset.name, rrset.rdtype)


class ProvenanceMap(Mapping[RRKey, tuple[Provenance, ...]]):
    """A zone's provenance as one mapping over per-name maps: a new version of a big zone
    shares every name's map but the changed ones (the incremental index makes these)."""

    __slots__ = ("_by_name",)

    def __init__(self, by_name: Mapping[str, Mapping[RRKey, tuple[Provenance, ...]]]) -> None:
        self._by_name = by_name

    def __getitem__(self, key: RRKey) -> tuple[Provenance, ...]:
        at = self._by_name.get(key[0])
        if at is None:
            raise KeyError(key)
        return at[key]

    def __iter__(self) -> Iterator[RRKey]:
        for at in self._by_name.values():
            yield from at

    def __len__(self) -> int:
        return sum(len(at) for at in self._by_name.values())


ZoneSet = Mapping[str, ZoneContent]
"""Zones by origin (absolute, lowercase, trailing dot)."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """A claim that was set aside while building zones, and why.

    ``kept`` is the owner whose data stayed at ``name`` (None when nothing of that claim
    could be placed at all, e.g. an alias outside every zone).
    """

    name: str
    dropped: Owner
    kept: Owner | None
    reason: str

    def __str__(self) -> str:
        kept = f"; kept {self.kept}" if self.kept else ""
        return f"{self.name} {self.reason}: dropped {self.dropped}{kept}"


@dataclass(frozen=True, slots=True)
class ZoneSettings:
    """What zonebuild needs besides the records: domains, TTLs, SOA and NS data."""

    domains: tuple[str, ...] = ("docker.",)
    default_ttl: int = 30
    negative_ttl: int = 30
    hostmaster: str = ""
    ns_address: str = "127.0.0.1"
    refresh: int = 3600
    retry: int = 600
    expire: int = 86400
    reverse: bool = True
    reverse_prefix_v4: int = 24
    reverse_prefix_v6: int = 64
    reverse_zones: tuple[str, ...] = ()
    """Reverse zones the user configured (``--reverse-zone``): always written, and an
    address inside one has its PTR there rather than in its /24 (/64) zone."""

    @property
    def fixed_zones(self) -> tuple[str, ...]:
        """The zones served whatever the records: the domains and configured reverse zones."""
        return self.domains + self.reverse_zones
