"""Compile records into zones: the SkyDNS and dnsdock rules, made into zone data.

The rules, in two halves that the incremental index (``core.index``) calls: what one record
claims at which names (``contributions``), and what the claims at one name resolve to
(``resolve_name``). Pure: the same claims always give the same RRsets and conflicts.
``index.build(records, settings)`` runs them over a whole set of records.

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
from collections.abc import Collection, Iterable
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
    ZoneSettings,
)

CONFIG_OWNER = Owner("config", "settings")
"""Owner of the SOA, the NS records and the nameserver's address."""

_SHARED, _EXCLUSIVE, _AGGREGATED = "shared", "exclusive", "aggregated"
EXCLUSIVE = _EXCLUSIVE


@dataclass(slots=True, eq=False)
class Claim:
    """One RR someone wants at a name. For SRV, ``srv`` holds (priority, weight, port,
    target) and ``text`` is filled in once weights are normalised. Claims compare and hash
    by identity: the index removes exactly the claim objects a record added. Never changed
    once made (not frozen only because frozen dataclasses are slow to create)."""

    rdtype: str
    text: str
    ttl: int
    provenance: Provenance
    kind: str
    depth: int = 0
    group: str = ""
    srv: tuple[int, int, int, str] | None = None


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one record adds: claims by name, and conflicts that need no other record (an
    alias outside every zone)."""

    claims: tuple[tuple[str, Claim], ...]
    conflicts: tuple[Conflict, ...] = ()


@dataclass(frozen=True, slots=True)
class Resolved:
    """What the claims at one name resolve to: RRsets (by type, canonical order), the
    provenance of each RR, and the claims left out."""

    rrsets: tuple[RRset, ...]
    provenance: dict[RRKey, tuple[Provenance, ...]]
    conflicts: tuple[Conflict, ...]


def nameserver_name(zone: str, settings: ZoneSettings) -> str:
    """The NS (and SOA MNAME) of ``zone``: ``ns.dns.<zone>`` (SkyDNS's convention) for
    forward zones; reverse zones point at the first domain's nameserver."""
    if zone.endswith(".arpa.") and settings.domains:
        return f"ns.dns.{settings.domains[0]}"
    return f"ns.dns.{zone}"


def record_zones(record: Record, settings: ZoneSettings) -> tuple[str, ...]:
    """The zones ``record`` asks to be served: its own, and its address's reverse zone."""
    address = _address(record)
    if (
        settings.reverse
        and address is not None
        and isinstance(record, ServiceRecord)
        and record.reverse
    ):
        reverse = names.zone_for(names.reverse_name(address), settings.reverse_zones)
        if reverse is None:
            reverse = names.reverse_zone(
                address, settings.reverse_prefix_v4, settings.reverse_prefix_v6
            )
        return (record.zone, reverse)
    return (record.zone,)


def _address(record: Record) -> names.IPAddress | None:
    if isinstance(record, ServiceRecord) and record.host:
        return names.parse_ip(record.host)
    return None


def contributions(record: Record, zones: frozenset[str], settings: ZoneSettings) -> Contribution:
    """The claims ``record`` makes when ``zones`` are served (see the module docstring)."""
    if isinstance(record, Endpoint):
        kind = _EXCLUSIVE if record.rdtype == "CNAME" else _SHARED
        ttl = settings.default_ttl if record.ttl is None else record.ttl
        provenance = Provenance(record.owner, record.field)
        return Contribution(
            tuple(
                (record.name, Claim(record.rdtype, text, ttl, provenance, kind))
                for text in record.rdatas
            )
        )
    return _service(record, zones, settings)


def _service(record: ServiceRecord, zones: frozenset[str], settings: ZoneSettings) -> Contribution:
    owner = record.owner
    ttl = settings.default_ttl if record.ttl is None else record.ttl
    zone = names.zone_for(record.name, zones) or record.zone
    depth = record.name.count(".")
    address = names.parse_ip(record.host) if record.host else None
    below = names.ancestors(record.name, zone)
    claims: list[tuple[str, Claim]] = []
    conflicts: list[Conflict] = []

    def claim(name: str, rdtype: str, text: str, field: str, kind: str, *, via: str = "") -> None:
        provenance = Provenance(owner, field, via)
        claims.append((name, Claim(rdtype, text, ttl, provenance, kind, depth, record.group)))

    target = names.strip_labels(record.name, record.target_strip, zone)
    address_text = str(address) if address is not None else ""
    rdtype = "AAAA" if ":" in address_text else "A"
    if address is not None:
        claim(record.name, rdtype, address_text, "spec.host", _SHARED)
        for name in below:
            claim(name, rdtype, address_text, "spec.host", _AGGREGATED, via=record.name)
        if settings.reverse and record.reverse:
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
            provenance = Provenance(owner, "spec.port", via, record.protocol)
            claims.append((name, Claim("SRV", "", ttl, provenance, kind, depth, record.group, srv)))
    if record.text:
        claim(record.name, "TXT", rdata.txt_to_text(record.text), "spec.text", _SHARED)
    if record.mail and record.host:
        claim(record.name, "MX", rdata.mx_to_text(record.priority, target), "spec.mail", _SHARED)

    for alias in record.aliases:
        if names.zone_for(alias, zones) is None:
            conflicts.append(
                Conflict(alias, owner, None, "alias is outside every zone dockzone serves")
            )
            continue
        if address is not None:
            claim(alias, rdtype, address_text, "spec.aliases", _EXCLUSIVE)
        elif record.host:
            claim(alias, "CNAME", record.host, "spec.aliases", _EXCLUSIVE)
    return Contribution(tuple(claims), tuple(conflicts))


def zone_frame(zone: str, settings: ZoneSettings) -> tuple[Soa, dict[str, Resolved]]:
    """A zone's SOA fields, and what the configuration puts at names of its own: the NS
    RRset at the apex and the nameserver's address (glue) when it lies inside the zone."""
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
    frame = {zone: Resolved((RRset(zone, "NS", ttl, (ns,)),), {(zone, "NS", ns): (config,)}, ())}
    if names.is_subdomain(ns, zone):
        glue = names.parse_ip(settings.ns_address)
        if glue is not None:
            rdtype = rdata.address_rdtype(glue)
            provenance: dict[RRKey, tuple[Provenance, ...]] = {
                (ns, rdtype, str(glue)): (Provenance(CONFIG_OWNER, "ns_address"),)
            }
            frame[ns] = Resolved((RRset(ns, rdtype, ttl, (str(glue),)),), provenance, ())
    return soa, frame


def resolve_name(
    name: str, zone: str | None, claims: Collection[Claim], reserved: bool, frame: Resolved | None
) -> Resolved:
    """What the ``claims`` at ``name`` (in ``zone``; None: outside every zone) resolve to.
    ``reserved``: the name is a zone's nameserver; ``frame``: what the configuration puts
    there (SOA and NS aside)."""
    if frame is None and zone is not None and not reserved:
        single = _single(name, claims)
        if single is not None:
            return single
    dropped: list[Conflict] = []
    ordered = list(claims)  # every rule below gives the same result in any order
    if zone is None:
        for claim in ordered:
            dropped.append(Conflict(name, claim.provenance.owner, None, "is outside every zone"))
        return Resolved((), {}, _unique(dropped))
    kept = _resolve(name, zone, ordered, reserved, dropped)
    rrsets: list[RRset] = list(frame.rrsets) if frame else []
    provenance: dict[RRKey, tuple[Provenance, ...]] = dict(frame.provenance) if frame else {}
    for rrset, sources in rrsets_of(name, kept):
        rrsets.append(rrset)
        provenance.update(sources)
    rrsets.sort(key=lambda r: rdata.type_key(r.rdtype))
    return Resolved(tuple(rrsets), provenance, _unique(dropped))


def _single(name: str, claims: Collection[Claim]) -> Resolved | None:
    """The common case: no claim is exclusive and none has a group (a service's own name,
    its PTR, most aggregated names), so rules 1 and 2 do not apply; None otherwise."""
    for claim in claims:
        if claim.kind == _EXCLUSIVE or claim.group:
            return None
    provenance: dict[RRKey, tuple[Provenance, ...]] = {}
    rrsets = []
    for rrset, sources in rrsets_of(name, list(claims)):
        rrsets.append(rrset)
        provenance.update(sources)
    if len(rrsets) > 1:
        rrsets.sort(key=lambda r: rdata.type_key(r.rdtype))
    return Resolved(tuple(rrsets), provenance, ())


def _unique(conflicts: list[Conflict]) -> tuple[Conflict, ...]:
    return tuple(sorted(set(conflicts), key=lambda c: (c.dropped, c.reason, str(c.kept))))


def _resolve(
    name: str, zone: str, claims: list[Claim], reserved: bool, dropped: list[Conflict]
) -> list[Claim]:
    if reserved:
        for claim in claims:
            dropped.append(
                Conflict(name, claim.provenance.owner, CONFIG_OWNER, "is the zone's nameserver")
            )
        return []
    claims = _filter_groups(claims)
    if name == zone:
        for claim in [c for c in claims if c.rdtype == "CNAME"]:
            dropped.append(
                Conflict(name, claim.provenance.owner, None, "CNAME is not allowed at the apex")
            )
        claims = [c for c in claims if c.rdtype != "CNAME"]
    exclusive = [c for c in claims if c.kind == _EXCLUSIVE]
    if not exclusive:
        return claims
    return _settle(name, claims, exclusive, dropped)


def _settle(
    name: str, claims: list[Claim], exclusive: list[Claim], dropped: list[Conflict]
) -> list[Claim]:
    """Rule 2: one exclusive claim, or all the shared data, keeps the name."""
    # One owner's exclusive claims (an A and an AAAA alias) form one candidate; owners
    # claiming exactly the same data merge into one.
    by_owner: dict[Owner, set[tuple[str, str]]] = defaultdict(set)
    for claim in exclusive:
        by_owner[claim.provenance.owner].add((claim.rdtype, claim.text))
    candidates: dict[frozenset[tuple[str, str]], list[Claim]] = defaultdict(list)
    for claim in exclusive:
        candidates[frozenset(by_owner[claim.provenance.owner])].append(claim)
    shared = [c for c in claims if c.kind == _SHARED]
    aggregated = [c for c in claims if c.kind == _AGGREGATED]
    options: list[tuple[Owner, int, list[Claim]]] = [
        (min(c.provenance.owner for c in group), 1, group) for group in candidates.values()
    ]
    if shared:
        options.append((min(c.provenance.owner for c in shared), 0, shared))
    options.sort(key=lambda option: (option[0], option[1]))
    winner, winner_rank, kept = options[0]
    for _, rank, group in options[1:]:
        what = "CNAME or alias" if rank else "records"
        for owner in sorted({c.provenance.owner for c in group}):
            dropped.append(
                Conflict(name, owner, winner, f"{what} claimed by another owner with other data")
            )
    if winner_rank == 0:
        return kept + aggregated
    for owner in sorted({c.provenance.owner for c in aggregated}):
        dropped.append(Conflict(name, owner, winner, "aggregated records hidden by an exact name"))
    return kept


def _filter_groups(claims: list[Claim]) -> list[Claim]:
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


def rrsets_of(
    name: str, claims: list[Claim]
) -> Iterable[tuple[RRset, dict[RRKey, tuple[Provenance, ...]]]]:
    """Rules 3 and 4 over the claims kept at ``name``: one RRset per type, with the
    provenance of each RR."""
    by_type: dict[str, list[Claim]] = {}
    for claim in claims:
        at = by_type.get(claim.rdtype)
        if at is None:
            by_type[claim.rdtype] = [claim]
        else:
            at.append(claim)
    for rdtype, claimed in by_type.items():
        group = _normalise_weights(claimed) if rdtype == "SRV" else claimed
        if len(group) == 1:  # the common case: one claim, nothing to merge or sort
            claim = group[0]
            yield (
                RRset(name, rdtype, claim.ttl, (claim.text,)),
                {(name, rdtype, claim.text): (claim.provenance,)},
            )
            continue
        sources: dict[str, set[Provenance]] = defaultdict(set)
        for claim in group:
            sources[claim.text].add(claim.provenance)
        texts = tuple(sorted(sources, key=lambda text: rdata.rdata_key(rdtype, text)))
        ttl = min(claim.ttl for claim in group)
        yield (
            RRset(name, rdtype, ttl, texts),
            {(name, rdtype, text): sorted_provenance(sources[text]) for text in texts},
        )


def sorted_provenance(provenances: Iterable[Provenance]) -> tuple[Provenance, ...]:
    """Provenances in their stable order (owner, field, via)."""
    found = tuple(provenances)
    if len(found) == 1:
        return found
    return tuple(sorted(found, key=_provenance_key))


def _provenance_key(p: Provenance) -> tuple[str, str, str, str, str]:
    return (p.owner.source, p.owner.object, p.owner.location, p.field, p.via)


def _normalise_weights(claims: list[Claim]) -> list[Claim]:
    """Rule 3. Identical SRV data from several owners counts once, as it is served once.
    SRV records given explicitly (DNSEndpoint) keep their weights and do not count."""
    distinct: dict[tuple[int, int, int, str], list[Claim]] = defaultdict(list)
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
            Claim("SRV", text, c.ttl, c.provenance, c.kind, c.depth, c.group, c.srv) for c in group
        )
    return result
