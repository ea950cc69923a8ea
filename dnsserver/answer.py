"""Query semantics: what an authoritative answer holds, independent of the wire.

`resolve(index, qname, qtype)` returns a `Resolution`; `server` renders it.

| question                                   | rcode    | AA | answer               | authority |
| ------------------------------------------ | -------- | -- | -------------------- | --------- |
| name and type exist                        | NOERROR  | 1  | the RRset            |           |
| name exists with other types, or is an ENT | NOERROR  | 1  |                      | SOA       |
| name does not exist in its zone            | NXDOMAIN | 1  |                      | SOA       |
| name owns a CNAME (qtype not CNAME)        | of chain | 1  | CNAMEs, then data    | if neg.   |
| A/AAAA, no such RRset, an ADDRESS_CNAME    | of chain | 1  | as a CNAME (SkyDNS)  | if neg.   |
| a label is `*`/`any`, name not literal     | either   | 1  | union, owner = qname | if neg.   |
| name at or below a delegation (NS cut)     | NOERROR  | 0  |                      | NS (+glue)|
| name outside every zone                    | forwarded, or REFUSED without a forwarder      |

The negative SOA TTL is min(SOA TTL, SOA MINIMUM) (RFC 2308 §5), and 0 for an NXDOMAIN to
an SOA query (as BIND does). CNAME chains are followed through every served zone for at
most 8 links (DESIGN.md), stopping at a loop; a chain that leaves the zones ends in
`external`, which the server resolves through its forwarder (SkyDNS does the same). A name
without A/AAAA that holds an `ADDRESS_CNAME` (a SkyDNS service whose host is a name, beside
its SRV) answers A and AAAA questions as if that were its CNAME, chain and all; no other
question sees it. ANY
returns every RRset at the name (as BIND does with `minimal-any no`), not the RFC 8482
minimal answer. SRV, MX and NS targets' A/AAAA records from the served zones go in the
additional section.

Two kinds of wildcard, never confused: dnsdock/SkyDNS *query* wildcards (a label `*` or
`any` in the question matches any one label of the existing names; dockzone's own
semantics) and RFC 4592 wildcard *records* (`*.example. A ...` in a hand-written zone
file, answered for names that do not exist, as BIND does). A query wildcard that matches
nothing falls back to the RFC 4592 rules, then NXDOMAIN.

`Resolution.depends` lists the names whose data the answer was made from: the question's
name, every CNAME link, every SRV/MX/NS target looked up for the additional section (found
or not), the names a query wildcard matched, and the zone's apex for answers that carry the
SOA (negative answers) or depend on which names exist (query wildcards, RFC 4592
wildcards, referrals). The server keeps a cached answer until one of those names changes
(`ZoneIndex.changed_names`; a patch marks the apex changed whenever its SOA changes or a
name comes into or goes out of existence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dnsserver.message import NOERROR, NXDOMAIN
from dnsserver.name import ROOT, parent, split_labels
from dnsserver.nsec import chain_of
from dnsserver.rdata import (
    AAAA,
    ADDITIONAL_TYPES,
    ADDRESS_CNAME,
    ANY,
    CNAME,
    NS,
    SOA,
    A,
    rdata_target,
)
from dnsserver.zone import WILDCARD_LABELS, RRset, Zone
from dnsserver.zonestore import ZoneIndex

MAX_CNAME_LINKS = 8
_DS = 43
RRSIG = 46


@dataclass(slots=True)
class Resolution:
    """The outcome of one question against a zone index."""

    rcode: int = NOERROR
    in_zone: bool = True  # False: the name is outside every zone (forward or refuse)
    aa: bool = True  # False for referrals
    answer: list[RRset] = field(default_factory=list)
    authority: list[RRset] = field(default_factory=list)
    additional: list[RRset] = field(default_factory=list)
    owner: str | None = None  # owner name replacing the answer's (query wildcards)
    external: str | None = None  # CNAME target outside the zones, to resolve upstream
    depends: set[str] = field(default_factory=set)  # names the answer was made from
    final: str = ""  # the last name looked up (the question's, or the last CNAME target's)
    wildcard: str | None = None  # the RFC 4592 wildcard the final answer came from


def _negative(zone: Zone, nxdomain: bool = False, qtype: int = 0) -> RRset:
    soa = zone.soa
    # Like BIND: TTL 0 on an NXDOMAIN to an SOA query, so resolvers probing for zone cuts
    # do not cache the non-existence.
    ttl = 0 if nxdomain and qtype == SOA else zone.negative_ttl
    return RRset(soa.name, soa.rdtype, ttl, soa.rdatas)


def resolve(index: ZoneIndex, qname: str, qtype: int, dnssec: bool = False) -> Resolution:
    """Answer `qname`/`qtype` from `index` (see the module table).

    `dnssec`: the question asked for DNSSEC records (DO): ANY answers include the RRSIGs,
    and in a signed zone a query wildcard label is an ordinary label (what it would match
    cannot be proved; `dnsserver.proof` adds the signatures and denials)."""
    zone = index.find(qname)
    if zone is None:
        return Resolution(in_zone=False)
    result = Resolution()
    depends = result.depends
    name = qname
    seen = {name}
    links = 0
    while True:
        depends.add(name)
        result.final = name
        if zone.cuts:
            cut = _closest_cut(zone, name)
            if cut is not None and not (cut == name and qtype == _DS):
                depends.add(zone.origin)
                if links == 0:
                    return _referral(index, zone, cut, depends, name)
                break  # a chain into delegated space: the CNAMEs so far are the answer
        node: Mapping[int, RRset] | None = zone.node(name)
        synthesized = False
        if node is None:
            if (
                name == qname
                and _has_query_wildcard(qname)
                and not (dnssec and chain_of(zone) is not None)
            ):
                matched = _query_wildcard(zone, qname, qtype)
                if matched is not None:
                    _add_additional(index, matched)
                    return matched
            if not zone.exists(name) and zone.has_wildcards:
                depends.add(zone.origin)
                source = _wildcard_source(zone, name)
                node = None if source is None else zone.node(source)
                synthesized = node is not None
                if synthesized:
                    result.wildcard = source
            if node is None:
                nxdomain = not zone.exists(name)
                if nxdomain:
                    result.rcode = NXDOMAIN
                result.authority.append(_negative(zone, nxdomain, qtype))
                depends.add(zone.origin)
                break
        if qtype == ANY:
            result.answer.extend(
                _owned(rrset, name, synthesized)
                for key, rrset in node.items()
                if rrset.rdtype != ADDRESS_CNAME and (dnssec or key <= 0xFFFF)
            )
            break
        if qtype == RRSIG:
            result.answer.extend(
                _owned(rrset, name, synthesized) for key, rrset in node.items() if key > 0xFFFF
            )
            if result.answer:
                break
        rrset = node.get(qtype) if qtype not in (ADDRESS_CNAME, RRSIG) else None
        if rrset is not None:
            result.answer.append(_owned(rrset, name, synthesized))
            break
        cname = node.get(CNAME)
        if cname is None and qtype in (A, AAAA):
            alias = node.get(ADDRESS_CNAME)
            if alias is not None:
                cname = RRset(alias.name, CNAME, alias.ttl, alias.rdatas)
        if cname is None:
            result.authority.append(_negative(zone))
            depends.add(zone.origin)
            break
        result.answer.append(_owned(cname, name, synthesized))
        links += 1
        target = rdata_target(CNAME, cname.rdatas[0])
        if target is None or target in seen or links >= MAX_CNAME_LINKS:
            break
        seen.add(target)
        next_zone = index.find(target)
        if next_zone is None:
            result.external = target
            break
        zone = next_zone
        name = target
    _add_additional(index, result)
    return result


def _owned(rrset: RRset, name: str, synthesized: bool) -> RRset:
    return RRset(name, rrset.rdtype, rrset.ttl, rrset.rdatas) if synthesized else rrset


def _closest_cut(zone: Zone, name: str) -> str | None:
    """The delegation point at or above `name` (below the apex), if any."""
    current: str | None = name
    while current is not None and current not in (zone.origin, ROOT):
        if current in zone.cuts:
            return current
        current = parent(current)
    return None


def _referral(index: ZoneIndex, zone: Zone, cut: str, depends: set[str], name: str) -> Resolution:
    """RFC 1034 §4.3.2: no AA, the child's NS in authority, in-zone glue in additional."""
    ns = zone.get(cut, NS)
    assert ns is not None
    depends.add(cut)
    result = Resolution(aa=False, authority=[ns], depends=depends, final=name)
    for rdata in ns.rdatas:
        target = rdata_target(NS, rdata)
        if target is None:
            continue
        target_zone = index.find(target)
        if target_zone is None:
            continue
        depends.add(target)
        for rdtype in (A, AAAA):
            glue = target_zone.get(target, rdtype)
            if glue is not None:
                result.additional.append(glue)
    return result


def closest_encloser(zone: Zone, name: str) -> str | None:
    """The longest existing ancestor of a name that does not exist (RFC 4592 §3.3.1)."""
    encloser = parent(name)
    while encloser is not None and not zone.exists(encloser):
        encloser = parent(encloser)
    return encloser


def wildcard_name(encloser: str) -> str:
    """The RFC 4592 wildcard name at `encloser`: `*.<encloser>`."""
    return "*." + encloser if encloser != ROOT else "*."


def _wildcard_source(zone: Zone, name: str) -> str | None:
    """RFC 4592: the `*` name below the closest encloser of a name that does not exist,
    when it owns data."""
    encloser = closest_encloser(zone, name)
    if encloser is None:
        return None
    source = wildcard_name(encloser)
    return source if zone.node(source) is not None else None


def _has_query_wildcard(qname: str) -> bool:
    return any(label in WILDCARD_LABELS for label in split_labels(qname))


def _query_wildcard(zone: Zone, qname: str, qtype: int) -> Resolution | None:
    """dnsdock/SkyDNS query wildcards: the union of the matching names' RRsets.

    None when no name matches (the caller goes on with RFC 4592 rules, then NXDOMAIN).
    """
    matches = zone.match(split_labels(qname))
    if not matches:
        return None
    depends = {qname, zone.origin, *matches}
    merged: dict[int, tuple[int, dict[bytes, None]]] = {}
    for name in matches:
        node = zone.node(name)
        if node is None:
            continue
        for rdtype, rrset in node.items():
            if (
                qtype not in (ANY, rdtype)
                or (qtype == ANY and rdtype == CNAME)
                or rdtype == ADDRESS_CNAME
            ):
                continue
            ttl, rdatas = merged.get(rdtype, (rrset.ttl, {}))
            rdatas.update(dict.fromkeys(rrset.rdatas))
            merged[rdtype] = (min(ttl, rrset.ttl), rdatas)
    if not merged:
        return Resolution(authority=[_negative(zone)], depends=depends)
    return Resolution(
        answer=[
            RRset(qname, rdtype, ttl, tuple(rdatas)) for rdtype, (ttl, rdatas) in merged.items()
        ],
        owner=qname,
        depends=depends,
    )


def _add_additional(index: ZoneIndex, result: Resolution) -> None:
    """A/AAAA of in-zone SRV, MX and NS targets (RFC 2782, RFC 1035 §3.3.9)."""
    seen: set[str] = set()
    depends = result.depends
    present = {(rrset.name, rrset.rdtype) for rrset in result.answer}
    for rrset in result.answer:
        if rrset.rdtype not in ADDITIONAL_TYPES:
            continue
        for rdata in rrset.rdatas:
            target = rdata_target(rrset.rdtype, rdata)
            if target is None or target in seen:
                continue
            seen.add(target)
            zone = index.find(target)
            if zone is None:
                continue
            depends.add(target)
            for rdtype in (A, AAAA):
                extra = zone.get(target, rdtype)
                if extra is not None and (target, rdtype) not in present:
                    result.additional.append(extra)
