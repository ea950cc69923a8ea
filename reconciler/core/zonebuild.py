"""Compile records into zones: the SkyDNS and dnsdock rules, made into zone data.

``build(records, settings)`` is called by the CLI (and later the loop) once per pass. It is
pure: the same records and settings always give the same zones and conflicts.

What one ServiceRecord at name N (zone Z) contributes:

====================  =================================================================
host is an IP         A/AAAA at N; PTR at the reverse name -> N; A/AAAA at every name
                      between N and Z's apex (subtree aggregation, SkyDNS)
host is a host name   CNAME at N, but only when the record has no port, text or mail
                      (a CNAME cannot stand beside other data)
port                  SRV at N and at every name up to the apex; the target is the host
                      name, or for an IP host a synthesised name: N with ``targetStrip``
                      labels stripped from the left (its address is already there)
text                  TXT at N
mail                  MX at N, preference ``priority``, exchange as for SRV targets
aliases               the address (A/AAAA) or CNAME again at each alias, exactly: an alias
                      does not aggregate and holds only its owner's data
====================  =================================================================

Rules at one name, applied in this order:

1. Groups (SkyDNS): among the services seen at a name, the shallowest one with a group sets
   the group; services of other groups are left out, services without a group stay. When
   two services at that shallowest depth disagree, the group rule is ignored for the name.
2. Exclusive claims (CNAMEs, aliases) against everything else: the claim whose owner sorts
   first wins (owners sort by source, object, location); identical claims merge. When an
   exclusive claim wins, records aggregated from below are left out at that name. A CNAME at
   the apex and any claim on the zone's own nameserver name always lose. Every claim left
   out is reported as a ``Conflict``.
3. SRV weights are normalised per name and priority (SkyDNS): weight 0 counts as 100 and
   each SRV gets ``floor(100 * weight / sum)``; 120/100/130 give 34/28/37.
4. An RRset's TTL is the lowest TTL among its records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.core import names, rdata
from reconciler.core.model import (
    Conflict,
    Endpoint,
    Owner,
    Provenance,
    Record,
    RRKey,
    RRset,
    ServiceRecord,
    Soa,
    ZoneContent,
    ZoneSettings,
)

CONFIG_OWNER = Owner("config", "settings")
"""Owner of the SOA, the NS records and the nameserver's address."""

_SHARED, _EXCLUSIVE, _AGGREGATED = "shared", "exclusive", "aggregated"


@dataclass(frozen=True, slots=True)
class BuildResult:
    """The zones built from a set of records, and the claims that had to be left out."""

    zones: dict[str, ZoneContent]
    conflicts: tuple[Conflict, ...]


@dataclass(frozen=True, slots=True)
class _Claim:
    """One RR someone wants at a name. For SRV, ``srv`` holds (priority, weight, port,
    target) and ``text`` is filled in once weights are normalised."""

    rdtype: str
    text: str
    ttl: int
    provenance: Provenance
    kind: str
    depth: int = 0
    group: str = ""
    srv: tuple[int, int, int, str] | None = None


def nameserver_name(zone: str, settings: ZoneSettings) -> str:
    """The NS (and SOA MNAME) of ``zone``: ``ns.dns.<zone>`` (SkyDNS's convention) for
    forward zones; reverse zones point at the first domain's nameserver."""
    if zone.endswith(".arpa.") and settings.domains:
        return f"ns.dns.{settings.domains[0]}"
    return f"ns.dns.{zone}"


def build(records: Iterable[Record], settings: ZoneSettings) -> BuildResult:
    """Build every zone ``records`` and ``settings`` call for. See the module docstring."""
    ordered = sorted(records, key=lambda record: record.owner)
    zones = set(settings.domains) | {record.zone for record in ordered}
    if settings.reverse:
        for record in ordered:
            address = _address(record)
            if address is not None and isinstance(record, ServiceRecord) and record.reverse:
                zones.add(
                    names.reverse_zone(
                        address, settings.reverse_prefix_v4, settings.reverse_prefix_v6
                    )
                )
    builder = _Builder(tuple(sorted(zones, key=rdata.name_key)), settings)
    for record in ordered:
        if isinstance(record, Endpoint):
            builder.add_endpoint(record)
        else:
            builder.add_service(record)
    return builder.finish()


def _address(record: Record) -> names.IPAddress | None:
    if isinstance(record, ServiceRecord) and record.host:
        return names.parse_ip(record.host)
    return None


class _Builder:
    def __init__(self, zones: tuple[str, ...], settings: ZoneSettings) -> None:
        self.zones = zones
        self.settings = settings
        self.claims: dict[str, list[_Claim]] = defaultdict(list)
        self.conflicts: list[Conflict] = []
        self.reserved = {
            nameserver_name(zone, settings): zone for zone in zones if not zone.endswith(".arpa.")
        }

    def zone_of(self, name: str) -> str | None:
        return names.zone_for(name, self.zones)

    def add_endpoint(self, endpoint: Endpoint) -> None:
        kind = _EXCLUSIVE if endpoint.rdtype == "CNAME" else _SHARED
        ttl = self.settings.default_ttl if endpoint.ttl is None else endpoint.ttl
        for text in endpoint.rdatas:
            self.claims[endpoint.name].append(
                _Claim(endpoint.rdtype, text, ttl, Provenance(endpoint.owner, endpoint.field), kind)
            )

    def add_service(self, record: ServiceRecord) -> None:
        owner = record.owner
        ttl = self.settings.default_ttl if record.ttl is None else record.ttl
        zone = self.zone_of(record.name) or record.zone
        depth = record.name.count(".")
        address = names.parse_ip(record.host) if record.host else None
        below = names.ancestors(record.name, zone)

        def claim(
            name: str, rdtype: str, text: str, field: str, kind: str, *, via: str = ""
        ) -> None:
            provenance = Provenance(owner, field, via)
            self.claims[name].append(
                _Claim(rdtype, text, ttl, provenance, kind, depth, record.group)
            )

        target = names.strip_labels(record.name, record.target_strip, zone)
        if address is not None:
            rdtype = rdata.address_rdtype(address)
            claim(record.name, rdtype, str(address), "spec.host", _SHARED)
            for name in below:
                claim(name, rdtype, str(address), "spec.host", _AGGREGATED, via=record.name)
            if self.settings.reverse and record.reverse:
                claim(names.reverse_name(address), "PTR", record.name, "spec.host", _SHARED)
        elif record.host:
            target = record.host
            if record.port is None and not record.text and not record.mail:
                claim(record.name, "CNAME", record.host, "spec.host", _EXCLUSIVE)

        if record.port is not None:
            srv = (record.priority, record.weight, record.port, target)
            for name, via, kind in [(record.name, "", _SHARED)] + [
                (name, record.name, _AGGREGATED) for name in below
            ]:
                self.claims[name].append(
                    _Claim(
                        "SRV",
                        "",
                        ttl,
                        Provenance(owner, "spec.port", via),
                        kind,
                        depth,
                        record.group,
                        srv,
                    )
                )
        if record.text:
            claim(record.name, "TXT", rdata.txt_to_text(record.text), "spec.text", _SHARED)
        if record.mail and record.host:
            claim(
                record.name, "MX", rdata.mx_to_text(record.priority, target), "spec.mail", _SHARED
            )

        for alias in record.aliases:
            if self.zone_of(alias) is None:
                self.conflicts.append(
                    Conflict(alias, owner, None, "alias is outside every zone dockzone serves")
                )
                continue
            if address is not None:
                claim(
                    alias, rdata.address_rdtype(address), str(address), "spec.aliases", _EXCLUSIVE
                )
            elif record.host:
                claim(alias, "CNAME", record.host, "spec.aliases", _EXCLUSIVE)

    def finish(self) -> BuildResult:
        per_zone: dict[str, dict[str, list[_Claim]]] = {zone: {} for zone in self.zones}
        for name in sorted(self.claims, key=rdata.name_key):
            zone = self.zone_of(name)
            if zone is None:
                for claim in self.claims[name]:
                    self._drop(name, claim.provenance.owner, None, "is outside every zone")
                continue
            kept = self._resolve(name, zone, self.claims[name])
            if kept:
                per_zone[zone][name] = kept
        zones = {zone: self._zone(zone, per_zone[zone]) for zone in self.zones}
        unique = sorted(set(self.conflicts), key=lambda c: (rdata.name_key(c.name), c.dropped))
        return BuildResult(zones, tuple(unique))

    def _drop(self, name: str, dropped: Owner, kept: Owner | None, reason: str) -> None:
        self.conflicts.append(Conflict(name, dropped, kept, reason))

    def _resolve(self, name: str, zone: str, claims: list[_Claim]) -> list[_Claim]:
        if name in self.reserved:
            for claim in claims:
                self._drop(name, claim.provenance.owner, CONFIG_OWNER, "is the zone's nameserver")
            return []
        claims = _filter_groups(claims)
        if name == zone:
            for claim in [c for c in claims if c.rdtype == "CNAME"]:
                self._drop(name, claim.provenance.owner, None, "CNAME is not allowed at the apex")
            claims = [c for c in claims if c.rdtype != "CNAME"]
        exclusive = [c for c in claims if c.kind == _EXCLUSIVE]
        if not exclusive:
            return claims
        return self._settle(name, claims, exclusive)

    def _settle(self, name: str, claims: list[_Claim], exclusive: list[_Claim]) -> list[_Claim]:
        """Rule 2: one exclusive claim, or all the shared data, keeps the name."""
        # One owner's exclusive claims (an A and an AAAA alias) form one candidate; owners
        # claiming exactly the same data merge into one.
        by_owner: dict[Owner, set[tuple[str, str]]] = defaultdict(set)
        for claim in exclusive:
            by_owner[claim.provenance.owner].add((claim.rdtype, claim.text))
        candidates: dict[frozenset[tuple[str, str]], list[_Claim]] = defaultdict(list)
        for claim in exclusive:
            candidates[frozenset(by_owner[claim.provenance.owner])].append(claim)
        shared = [c for c in claims if c.kind == _SHARED]
        aggregated = [c for c in claims if c.kind == _AGGREGATED]
        options: list[tuple[Owner, int, list[_Claim]]] = [
            (min(c.provenance.owner for c in group), 1, group) for group in candidates.values()
        ]
        if shared:
            options.append((min(c.provenance.owner for c in shared), 0, shared))
        options.sort(key=lambda option: (option[0], option[1]))
        winner, winner_rank, kept = options[0]
        for _, rank, group in options[1:]:
            what = "CNAME or alias" if rank else "records"
            for owner in sorted({c.provenance.owner for c in group}):
                self._drop(name, owner, winner, f"{what} claimed by another owner with other data")
        if winner_rank == 0:
            return kept + aggregated
        for owner in sorted({c.provenance.owner for c in aggregated}):
            self._drop(name, owner, winner, "aggregated records hidden by an exact name")
        return kept

    def _zone(self, zone: str, by_name: dict[str, list[_Claim]]) -> ZoneContent:
        settings = self.settings
        ns = nameserver_name(zone, settings)
        ttl = settings.default_ttl
        soa = Soa(
            mname=ns,
            rname=names.mailbox_name(settings.hostmaster, zone),
            refresh=settings.refresh,
            retry=settings.retry,
            expire=settings.expire,
            minimum=settings.negative_ttl,
            ttl=ttl,
        )
        config = Provenance(CONFIG_OWNER, "domain")
        rrsets = [RRset(zone, "NS", ttl, (ns,))]
        provenance: dict[RRKey, tuple[Provenance, ...]] = {(zone, "NS", ns): (config,)}
        if names.is_subdomain(ns, zone):
            glue = names.parse_ip(settings.ns_address)
            if glue is not None:
                rdtype = rdata.address_rdtype(glue)
                rrsets.append(RRset(ns, rdtype, ttl, (str(glue),)))
                provenance[(ns, rdtype, str(glue))] = (Provenance(CONFIG_OWNER, "ns_address"),)
        for name, claims in by_name.items():
            for rrset, sources in _rrsets(name, claims):
                rrsets.append(rrset)
                provenance.update(sources)
        rrsets.sort(key=lambda r: (rdata.name_key(r.name), rdata.type_key(r.rdtype)))
        return ZoneContent(zone, soa, tuple(rrsets), provenance)


def _filter_groups(claims: list[_Claim]) -> list[_Claim]:
    """Rule 1, SkyDNS's group selection, over the services seen at one name."""
    group, shallowest = "", None
    for claim in claims:
        if claim.group and (shallowest is None or claim.depth < shallowest):
            group, shallowest = claim.group, claim.depth
    if not group:
        return claims
    kept = []
    for claim in claims:
        if not claim.group:
            kept.append(claim)
        elif claim.depth == shallowest and claim.group != group:
            return claims
        elif claim.group == group:
            kept.append(claim)
    return kept


def _rrsets(
    name: str, claims: list[_Claim]
) -> Iterable[tuple[RRset, dict[RRKey, tuple[Provenance, ...]]]]:
    by_type: dict[str, list[_Claim]] = defaultdict(list)
    for claim in claims:
        by_type[claim.rdtype].append(claim)
    for rdtype, claimed in by_type.items():
        group = _normalise_weights(claimed) if rdtype == "SRV" else claimed
        sources: dict[str, set[Provenance]] = defaultdict(set)
        for claim in group:
            sources[claim.text].add(claim.provenance)
        texts = tuple(sorted(sources, key=lambda text: rdata.rdata_key(rdtype, text)))
        ttl = min(claim.ttl for claim in group)
        yield (
            RRset(name, rdtype, ttl, texts),
            {(name, rdtype, text): _sorted(sources[text]) for text in texts},
        )


def _sorted(provenances: set[Provenance]) -> tuple[Provenance, ...]:
    return tuple(sorted(provenances, key=lambda p: (p.owner, p.field, p.via)))


def _normalise_weights(claims: list[_Claim]) -> list[_Claim]:
    """Rule 3. Identical SRV data from several owners counts once, as it is served once.
    SRV records given explicitly (DNSEndpoint) keep their weights and do not count."""
    distinct: dict[tuple[int, int, int, str], list[_Claim]] = defaultdict(list)
    result = []
    for claim in claims:
        if claim.srv is None:
            result.append(claim)
        else:
            distinct[claim.srv].append(claim)
    totals: dict[int, int] = defaultdict(int)
    for priority, weight, _, _ in distinct:
        totals[priority] += weight or 100
    for (priority, weight, port, target), group in distinct.items():
        share = (weight or 100) * 100 // totals[priority]
        text = rdata.srv_to_text(priority, share, port, target)
        result.extend(
            _Claim("SRV", text, c.ttl, c.provenance, c.kind, c.depth, c.group, c.srv) for c in group
        )
    return result
