"""Online signing: zones made signed when they change, never per query.

A signed zone is an ordinary `Zone` that also holds DNSSEC records: the DNSKEY RRset at the
apex, an RRSIG group per signed RRset (under `zone.rrsig_key` of the covered type, with the
RRset's TTL), and an NSEC record at every name that owns data, chained in canonical order
(RFC 4034 §4, §6.1). Transfers, the journal, the served snapshot and zone files then carry
the signatures like any other data, and the server answers a DO query by picking the
groups it needs (`dnsserver.proof`).

`Signer` is the `ZoneStore`'s hook (`ZoneStore(signer=...)`):

- `sign_zone(zone, previous)` signs a whole zone. Signatures in `zone` itself (a signed
  zone loaded from a file or the served snapshot) or in `previous` (the version served
  before) are kept for every RRset that did not change, while they are made by a key that
  still signs and are not due for refresh; everything else is signed anew.
- `sign_patch(zone, changes)` turns a patch of data RRsets into the patch of the signed
  zone: the changed RRsets' signatures, and the NSEC records (with their signatures) of the
  changed names and of the names before the ones that came or went. One changed name
  costs a few signatures, whatever the zone's size.
- `refresh(zone)` re-signs what is due: signatures that expire within the refresh
  interval, or the whole zone when its keys changed (a rollover step).

Names below a delegation (glue) are neither signed nor in the NSEC chain; the NS RRset of
a delegation is not signed (RFC 4035 §2.2). dockzone's `ADDRESS_CNAME` (answered as a
CNAME to A/AAAA questions) is signed as that CNAME and left out of the NSEC type bitmap.
"""

from __future__ import annotations

import bisect
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from dnsserver.dnssec import (
    DNSKEY,
    DS,
    NSEC,
    RRSIG,
    SigningKey,
    rrsig_expiration,
    rrsig_key_tag,
    rrsig_rdata,
)
from dnsserver.errors import ZoneError
from dnsserver.name import is_subdomain, parent, parse_name
from dnsserver.nsec import Chain, canonical_key, chain_of, nsec_rdata
from dnsserver.rdata import ADDRESS_CNAME, CNAME, NS, SOA, rdtype_from_text
from dnsserver.zone import PatchKey, RRset, Zone, rrsig_key

DAY = 86400


class KeySet(Protocol):
    """The keys of one zone as the signer needs them (`dnsserver.keys.ZoneKeys`)."""

    @property
    def published(self) -> tuple[SigningKey, ...]: ...
    @property
    def ksk(self) -> tuple[SigningKey, ...]: ...
    @property
    def zsk(self) -> tuple[SigningKey, ...]: ...


@dataclass(frozen=True, slots=True)
class SigningPolicy:
    """Signature timing (BIND's `dnssec-policy` defaults: valid 14 days, refreshed when
    fewer than 5 remain) and the DNSKEY RRset's TTL."""

    validity: int = 14 * DAY
    refresh: int = 5 * DAY
    backdate: int = 3600  # inception this far in the past (clocks of validators drift)
    dnskey_ttl: int = 3600

    def __post_init__(self) -> None:
        if not 0 < self.refresh < self.validity:
            raise ValueError("the signature refresh must be shorter than the validity")


def is_dnssec_key(key: int) -> bool:
    """Node keys of the records the signer makes (never given by a source)."""
    return key > 0xFFFF or key in (NSEC, DNSKEY, RRSIG)


def _data(node: Mapping[int, RRset] | None) -> dict[int, RRset]:
    """The RRsets of a node but the signer's RRSIGs and NSEC (the DNSKEY RRset stays)."""
    if not node:
        return {}
    return {key: rrset for key, rrset in node.items() if key <= 0xFFFF and key not in (NSEC, RRSIG)}


def _below_cut(name: str, origin: str, cuts: frozenset[str] | set[str]) -> bool:
    """True when a delegation point lies strictly above `name` (its data is glue)."""
    if not cuts:
        return False
    current = parent(name)
    while current is not None and current != origin and is_subdomain(current, origin):
        if current in cuts:
            return True
        current = parent(current)
    return False


def _signed_types(name: str, origin: str, data: Mapping[int, RRset]) -> list[int]:
    """The data types at `name` that get signatures (RFC 4035 §2.2: not a delegation's NS)."""
    cut = name != origin and NS in data
    return [key for key in data if not (cut and key not in (DS,))]


def _bitmap_types(data: Mapping[int, RRset]) -> list[int]:
    return [key for key in data if key != ADDRESS_CNAME] + [RRSIG, NSEC]


class Signer:
    """Signs the zones `signs(origin)` names with the keys `keys(origin)` returns."""

    def __init__(
        self,
        keys: Callable[[str], KeySet],
        signs: Callable[[str], bool] = lambda _: True,
        policy: SigningPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.signs = signs
        self.policy = policy or SigningPolicy()
        self.clock = clock
        self._used: dict[str, _Tags] = {}  # the keys each zone was last signed with
        self._earliest: dict[str, int] = {}  # the earliest expiration of a zone's signatures
        self.signatures = 0  # RRSIGs made since start (for /metrics and the benchmark)

    # -- signatures ------------------------------------------------------------------------

    def _expiration(self, now: int, name: str, rdtype: int) -> int:
        """Expiration spread over the last tenth of the validity (per name and type, so a
        zone's signatures do not all come due in the same second)."""
        validity = self.policy.validity
        spread = zlib.crc32(f"{name}/{rdtype}".encode()) % max(validity // 10, 1)
        return now + validity - spread

    def _sign(
        self, origin: str, rrset: RRset, keys: Sequence[SigningKey], now: int
    ) -> RRset | None:
        """The RRSIG group of `rrset` (owner and TTL of the RRset), one signature per key."""
        if not keys:
            return None
        if rrset.rdtype == ADDRESS_CNAME:
            rrset = RRset(rrset.name, CNAME, rrset.ttl, rrset.rdatas)
        inception = now - self.policy.backdate
        expiration = self._expiration(now, rrset.name, rrset.rdtype)
        signatures = tuple(
            rrsig_rdata(key, origin, rrset, inception=inception, expiration=expiration)
            for key in keys
        )
        self.signatures += len(signatures)
        return RRset(rrset.name, RRSIG, rrset.ttl, signatures)

    def _fresh(self, group: RRset | None, tags: frozenset[int], ttl: int, now: int) -> bool:
        """Whether an RRSIG group can be kept: made by exactly the signing keys, for the
        RRset's TTL, and not due for refresh."""
        if group is None or group.ttl != ttl:
            return False
        if {rrsig_key_tag(rdata) for rdata in group.rdatas} != tags:
            return False
        due = now + self.policy.refresh
        return all(rrsig_expiration(rdata) > due for rdata in group.rdatas)

    def _keys_for(self, rdtype: int, keys: KeySet) -> tuple[SigningKey, ...]:
        return keys.ksk if rdtype == DNSKEY else keys.zsk

    # -- whole zones -----------------------------------------------------------------------

    def sign_zone(self, zone: Zone, previous: Zone | None = None) -> Zone:
        """`zone` signed: its data, a DNSKEY RRset, RRSIGs and the NSEC chain."""
        origin = zone.origin
        keys = self.keys(origin)
        now = int(self.clock())
        if self._complete(zone, keys, now):
            chain_of(zone)
            self._used[origin] = _tags(keys)
            self._earliest[origin] = _earliest(zone)
            return zone  # loaded as this signer left it (the served snapshot, a signed file)
        sources = [zone] if previous is None else [zone, previous]
        datas: dict[str, dict[int, RRset]] = {}
        for name in zone.names:
            data = _data(zone.node(name))
            if data:
                datas[name] = data
        if origin not in datas:
            raise ZoneError(origin, "no data at the zone apex to sign")
        datas[origin][DNSKEY] = RRset(
            origin, DNSKEY, self.policy.dnskey_ttl, tuple(key.dnskey for key in keys.published)
        )
        cuts = {name for name, data in datas.items() if name != origin and NS in data}
        chain = Chain.of([name for name in datas if not _below_cut(name, origin, cuts)])
        negative_ttl = _negative_ttl(datas[origin][SOA])
        nodes: dict[str, dict[int, RRset]] = {}
        earliest = 0xFFFFFFFF
        for name, data in datas.items():
            node = dict(data)
            nodes[name] = node
            if name not in chain:
                continue
            node[NSEC] = _nsec(name, chain.after(name), data, negative_ttl)
            for rdtype in [*_signed_types(name, origin, data), NSEC]:
                rrset = node[rdtype]
                group = self._kept(sources, rrset, keys, now)
                if group is None:
                    group = self._sign(origin, rrset, self._keys_for(rdtype, keys), now)
                if group is not None:
                    node[_sig_key(rdtype)] = group
                    earliest = min(earliest, *map(rrsig_expiration, group.rdatas))
        signed = Zone(origin, nodes)
        signed.chain = chain
        self._used[origin] = _tags(keys)
        self._earliest[origin] = earliest
        return signed

    def _complete(self, zone: Zone, keys: KeySet, now: int) -> bool:
        """Whether `zone` is already signed with `keys` and nothing is due: its DNSKEY
        RRset is theirs, and every name that owns data has its NSEC and every RRset its
        signatures by the signing keys, fresh. One pass over the zone, no signing."""
        origin = zone.origin
        dnskey = zone.get(origin, DNSKEY)
        if (
            dnskey is None
            or dnskey.ttl != self.policy.dnskey_ttl
            or dnskey.rdatas != tuple(key.dnskey for key in keys.published)
            or zone.get(origin, NSEC) is None
            or zone.cuts
        ):
            return False
        zsk = frozenset(key.tag for key in keys.zsk)
        ksk = frozenset(key.tag for key in keys.ksk)
        for name in zone.names:
            node = zone.node(name)
            assert node is not None
            if NSEC not in node:
                return False
            for key, rrset in node.items():
                if key > 0xFFFF:
                    continue
                tags = ksk if key == DNSKEY else zsk
                if not self._fresh(node.get(_sig_key(key)), tags, rrset.ttl, now):
                    return False
        return True

    def _kept(self, sources: Sequence[Zone], rrset: RRset, keys: KeySet, now: int) -> RRset | None:
        name, rdtype = rrset.name, rrset.rdtype
        tags = frozenset(key.tag for key in self._keys_for(rdtype, keys))
        for source in sources:
            node = source.node(name)
            if node is None:
                continue
            old = node.get(rdtype)
            if old is None or old.ttl != rrset.ttl or old.rdatas != rrset.rdatas:
                continue
            group = node.get(_sig_key(rdtype))
            if self._fresh(group, tags, rrset.ttl, now):
                return group
        return None

    # -- patches ---------------------------------------------------------------------------

    def sign_patch(
        self, zone: Zone, changes: Mapping[PatchKey, RRset | None]
    ) -> tuple[dict[PatchKey, RRset | None], Chain] | None:
        """The patch of signed `zone` that applies `changes` (data RRsets) and keeps it
        signed, and the NSEC chain after it; None when the zone must be signed whole (it
        has no chain yet, its keys or its negative TTL changed, a delegation came or went)."""
        origin = zone.origin
        chain = zone.chain
        keys = self.keys(origin)
        if chain is None or self._used.get(origin) != _tags(keys):
            return None
        now = int(self.clock())
        by_name: dict[str, list[tuple[int, RRset | None]]] = {}
        for (name_text, type_key), rrset in changes.items():
            try:
                name = parse_name(name_text)
                rdtype = type_key if isinstance(type_key, int) else rdtype_from_text(type_key)
            except ValueError as exc:
                raise ZoneError(origin, str(exc)) from None
            if is_dnssec_key(rdtype):
                raise ZoneError(origin, f"{name}: DNSSEC records are made by the signer")
            if rdtype == NS and name != origin:
                return None  # a delegation: the chain and what is signed change below it
            if rdtype == SOA and rrset is not None:
                soa = zone.soa
                if _negative_ttl(rrset) != _negative_ttl(soa):
                    return None  # every NSEC's TTL changes
            by_name.setdefault(name, []).append((rdtype, rrset))
        patch: dict[PatchKey, RRset | None] = {}
        names = list(chain.names)
        keys_list = list(chain.keys)
        remake: set[str] = set()
        datas: dict[str, dict[int, RRset]] = {}
        for name, items in by_name.items():
            if zone.cuts and _below_cut(name, origin, zone.cuts):
                for rdtype, rrset in items:
                    patch[(name, rdtype)] = rrset
                continue
            data = _data(zone.node(name))
            for rdtype, rrset in items:
                patch[(name, rdtype)] = rrset
                if rrset is None or not rrset.rdatas:
                    data.pop(rdtype, None)
                    patch[(name, _sig_key(rdtype))] = None
                else:
                    data[rdtype] = rrset
                    patch[(name, _sig_key(rdtype))] = self._sign(origin, rrset, keys.zsk, now)
            datas[name] = data
            key = canonical_key(name)
            index = bisect.bisect_left(keys_list, key)
            present = index < len(keys_list) and keys_list[index] == key
            if data and not present:
                keys_list.insert(index, key)
                names.insert(index, name)
                remake.add(names[index - 1])
            elif not data and present:
                del keys_list[index]
                del names[index]
                remake.add(names[index - 1])
                patch[(name, NSEC)] = None
                patch[(name, _sig_key(NSEC))] = None
            if data:
                remake.add(name)  # its types may differ: made again, kept when it is the same
        new_chain = Chain(names, keys_list)
        negative_ttl = _negative_ttl((datas.get(origin) or {}).get(SOA) or zone.soa)
        for name in remake:
            if name not in new_chain:
                continue
            data = datas[name] if name in datas else _data(zone.node(name))
            nsec = _nsec(name, new_chain.after(name), data, negative_ttl)
            if zone.get(name, NSEC) == nsec:
                continue
            patch[(name, NSEC)] = nsec
            patch[(name, _sig_key(NSEC))] = self._sign(origin, nsec, keys.zsk, now)
        return patch, new_chain

    # -- refresh ---------------------------------------------------------------------------

    def due(self, zone: Zone) -> bool:
        """Whether `zone` needs `refresh`: its keys changed, or a signature may be due.
        Cheap (no pass over the zone): the signer remembers the earliest expiration of the
        signatures it made or kept for each zone."""
        origin = zone.origin
        if self._used.get(origin) != _tags(self.keys(origin)):
            return True
        earliest = self._earliest.get(origin)
        if earliest is None:
            earliest = self._earliest[origin] = _earliest(zone)
        return earliest <= int(self.clock()) + self.policy.refresh

    def refresh(self, zone: Zone) -> tuple[dict[PatchKey, RRset | None], Chain] | Zone | None:
        """What keeps `zone` signed now: a patch re-signing the RRsets whose signatures are
        due (with the zone's chain), the zone signed whole when its keys changed, or None."""
        origin = zone.origin
        if self._used.get(origin) != _tags(self.keys(origin)):
            return self.sign_zone(zone, previous=zone)
        chain = chain_of(zone)
        if chain is None:
            return None
        keys = self.keys(origin)
        now = int(self.clock())
        due = now + self.policy.refresh
        patch: dict[PatchKey, RRset | None] = {}
        remaining = [now + self.policy.validity]
        for rrset in zone.rrsets():
            if rrset.rdtype != RRSIG:
                continue
            expires = min(rrsig_expiration(r) for r in rrset.rdatas)
            if expires > due:
                remaining.append(expires)
                continue
            name = rrset.name
            covered = (rrset.rdatas[0][0] << 8) | rrset.rdatas[0][1]
            signed = zone.get(name, covered)
            if signed is None and covered == CNAME:
                signed = zone.get(name, ADDRESS_CNAME)
            group = None
            if signed is not None:
                group = self._sign(origin, signed, self._keys_for(covered, keys), now)
                if group is not None:
                    remaining.append(min(rrsig_expiration(r) for r in group.rdatas))
            patch[(name, _sig_key(covered))] = group
        self._earliest[origin] = min(remaining)
        return (patch, chain) if patch else None


def _earliest(zone: Zone) -> int:
    """The earliest expiration of the zone's signatures (far ahead when it has none)."""
    return min(
        (
            rrsig_expiration(rdata)
            for rrset in zone.rrsets()
            if rrset.rdtype == RRSIG
            for rdata in rrset.rdatas
        ),
        default=0xFFFFFFFF,
    )


def _nsec(name: str, next_name: str, data: Mapping[int, RRset], ttl: int) -> RRset:
    return RRset(name, NSEC, ttl, (nsec_rdata(next_name, _bitmap_types(data)),))


def unsigned_changes(changes: Mapping[PatchKey, RRset | None]) -> dict[PatchKey, RRset | None]:
    """`changes` and the removal of the signatures of every RRset they change: applied to
    a signed zone, it leaves no signature over data it no longer holds (for `sign_zone`,
    which keeps the signatures it finds)."""
    out = dict(changes)
    for name, type_key in changes:
        rdtype = type_key if isinstance(type_key, int) else rdtype_from_text(type_key)
        out[(name, _sig_key(rdtype))] = None
    return out


_Tags = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def _tags(keys: KeySet) -> _Tags:
    """What a zone's signatures depend on: the tags of the published, KSK and ZSK keys
    (a key store may hand out a new object holding the same keys)."""
    return (
        tuple(key.tag for key in keys.published),
        tuple(key.tag for key in keys.ksk),
        tuple(key.tag for key in keys.zsk),
    )


def _sig_key(rdtype: int) -> int:
    return rrsig_key(CNAME if rdtype == ADDRESS_CNAME else rdtype)


def _negative_ttl(soa: RRset) -> int:
    """NSEC TTL: the negative TTL, min(SOA TTL, SOA MINIMUM) (RFC 9077)."""
    minimum = int.from_bytes(soa.rdatas[0][-4:], "big")
    return min(soa.ttl, minimum)
