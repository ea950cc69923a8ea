"""DNSSEC in answers: the signatures and denials a DO query gets from signed zones.

`add_proofs(index, result)` extends a `Resolution` made with `resolve(..., dnssec=True)`:
after every RRset of a signed zone its RRSIGs (from the node, with the RRset's TTL as
answered), and for answers that deny something the NSEC records that prove it (RFC 4035
§3.1.3), with their RRSIGs:

| answer                          | NSEC records added                                |
| ------------------------------- | ------------------------------------------------- |
| NXDOMAIN                        | the one covering the name, and the one covering   |
|                                 | `*.<closest encloser>` (no wildcard either)       |
| NODATA at a name with data      | the name's own                                    |
| NODATA at an empty non-terminal | the one covering the name (next name below it)    |
| from an RFC 4592 wildcard       | the one covering the name (no closer match);      |
|                                 | for NODATA the wildcard's own too                 |
| referral without DS             | the delegation point's (an insecure delegation)   |
| referral with DS                | none: the DS RRset and its RRSIG                  |

Everything here is a lookup: signatures and NSEC records are made when the zone changes
(`dnsserver.signer`), never per query. Zones without an NSEC chain (unsigned) are left as
they are.
"""

from __future__ import annotations

from dnsserver.answer import Resolution, closest_encloser, wildcard_name
from dnsserver.message import NXDOMAIN
from dnsserver.nsec import chain_of
from dnsserver.rdata import NS, SOA
from dnsserver.zone import NSEC, RRSIG, RRset, Zone, rrsig_key
from dnsserver.zonestore import ZoneIndex

_DS = 43


def add_proofs(index: ZoneIndex, result: Resolution) -> None:
    """Add RRSIGs and NSEC proofs to `result` (see the module table)."""
    final = result.final
    zone = index.find(final) if final else None
    if zone is not None and chain_of(zone) is not None:
        denial = _denial(zone, result)
        if denial:
            result.authority.extend(denial)
    result.answer = _with_signatures(index, result.answer, result.wildcard, result.final)
    result.authority = _with_signatures(index, result.authority, None, "")
    result.additional = _with_signatures(index, result.additional, None, "")


def _denial(zone: Zone, result: Resolution) -> list[RRset]:
    chain = zone.chain
    assert chain is not None
    name = result.final
    names: list[str] = []
    negative = any(rrset.rdtype == SOA for rrset in result.authority)  # NXDOMAIN or NODATA
    if not result.aa:  # a referral: the delegation's DS, or the NSEC proving there is none
        for rrset in result.authority:
            if rrset.rdtype == NS:
                ds = zone.get(rrset.name, _DS)
                if ds is not None:
                    return [ds]
                names.append(rrset.name)
    elif result.rcode == NXDOMAIN:
        names.append(chain.before(name))
        encloser = closest_encloser(zone, name)
        if encloser is not None:
            names.append(chain.before(wildcard_name(encloser)))
    elif result.wildcard is not None:
        names.append(chain.before(name))
        if negative:
            names.append(result.wildcard)
    elif negative:
        names.append(name if name in chain else chain.before(name))
    found = []
    for owner in dict.fromkeys(names):
        nsec = zone.get(owner, NSEC)
        if nsec is not None:
            found.append(nsec)
    return found


def _with_signatures(
    index: ZoneIndex, rrsets: list[RRset], wildcard: str | None, final: str
) -> list[RRset]:
    """`rrsets`, each followed by its RRSIGs when its zone is signed."""
    if not rrsets:
        return rrsets
    out: list[RRset] = []
    for rrset in rrsets:
        out.append(rrset)
        if rrset.rdtype == RRSIG:
            continue
        zone = index.find(rrset.name)
        if zone is None or chain_of(zone) is None:
            continue
        # An answer made from an RFC 4592 wildcard carries the wildcard's signatures.
        source = wildcard if wildcard is not None and rrset.name == final else rrset.name
        # (an ADDRESS_CNAME is answered as a CNAME, and signed as one)
        group = zone.get(source, rrsig_key(rrset.rdtype))
        if group is not None:
            out.append(RRset(rrset.name, RRSIG, rrset.ttl, group.rdatas))
    return out
