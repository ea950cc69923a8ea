"""The in-process DNS server as a sink: RRset changes go straight into ``dnsserver``'s
``ZoneStore``, no zone file parsing in between.

A zone the server already holds is patched (``ZoneStore.patch``): only the changed RRsets
are converted to wire form, the store swaps one reference (a query sees the old zones or
the new ones, never a mix), and the server keeps its cached answers for every name the
patch did not touch. A zone the server does not hold yet is built whole. The SOA serial
comes from ``serial_of`` (the zone file sink's, assigned before any sink applies, so the
server and the files agree); without one the sink keeps its own.

SkyDNS's CNAME for host names: a service whose host is a name but which also has a port
(or ``mail``) holds an SRV (MX) at its name, so zone files cannot give it the CNAME to its
host. The server can: at such a name, without A, AAAA or CNAME of its own, the sink adds
an ``ADDRESS_CNAME`` to the host (``address_alias``), which the server answers A and AAAA
questions with, as SkyDNS does. It is derived from the RRsets at the name and their
provenance (an SRV from ``spec.port`` or an MX from ``spec.mail`` at the record's own name),
so every change to a name re-derives it.

Warm start: when the daemon has loaded the last written zone files into the store before
the first pass, ``adopt(source)`` tells the sink how to read what those files hold, so the
first pass patches the served zones instead of rebuilding them (except zones that may need
an ``ADDRESS_CNAME``: files do not hold them, so those are rebuilt). Used by ``run``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from itertools import groupby

from dnsserver import ADDRESS_CNAME, PatchKey, Zone, ZoneStore, rrset_from_text
from dnsserver import RRset as WireRRset
from dnsserver.errors import KeyStoreError
from reconciler.core.model import Owner, RRset, ZoneContent, ZoneSet
from reconciler.core.plan import Changes, ZoneChanges
from reconciler.core.serials import next_serial
from reconciler.errors import TransientError

_ALIAS_SOURCES = (("SRV", "spec.port", 3), ("MX", "spec.mail", 1))
"""RRsets that carry a service's host name: type, the field that makes them at the
record's own name, the host's position in the rdata."""


def address_alias(zone: ZoneContent, name: str, rrsets: Iterable[RRset]) -> tuple[int, str] | None:
    """SkyDNS's CNAME for A/AAAA questions at ``name`` (whose RRsets are ``rrsets``):
    (TTL, host) of the service there whose host is a name, or None when the name has
    addresses or a CNAME of its own, or no such service. Several such services: the one
    whose owner sorts first (the conflict rule)."""
    by_type = {rrset.rdtype: rrset for rrset in rrsets}
    if "A" in by_type or "AAAA" in by_type or "CNAME" in by_type:
        return None
    best: tuple[Owner, str, int] | None = None
    for rdtype, field, position in _ALIAS_SOURCES:
        rrset = by_type.get(rdtype)
        if rrset is None:
            continue
        for text in rrset.rdatas:
            target = text.split()[position]
            if target == name:
                continue
            for provenance in zone.provenance.get((name, rdtype, text), ()):
                if provenance.via or provenance.field != field:
                    continue
                candidate = (provenance.owner, target, rrset.ttl)
                if best is None or candidate < best:
                    best = candidate
    return None if best is None else (best[2], best[1])


def may_need_alias(zone: ZoneContent) -> bool:
    """Whether some name holds an SRV or MX and no A, AAAA or CNAME (a zone file, without
    provenance, cannot say whether it needs an ``ADDRESS_CNAME``)."""
    for _, group in groupby(zone.rrsets, key=lambda rrset: rrset.name):
        types = {rrset.rdtype for rrset in group}
        if types & {"SRV", "MX"} and not types & {"A", "AAAA", "CNAME"}:
            return True
    return False


BIG_RRSET = 64
"""RRsets of at least this many records keep their wire form per text (``_big``)."""


def zone_records(zone: ZoneContent, serial: int) -> list[tuple[str, str, int, str]]:
    """The zone as (name, type, TTL, rdata text) tuples, SOA first, with the
    ``ADDRESS_CNAME`` records the server answers address questions with."""
    records = [(zone.origin, "SOA", zone.soa.ttl, zone.soa.to_text(serial))]
    records.extend(
        (rrset.name, rrset.rdtype, rrset.ttl, text)
        for rrset in zone.rrsets
        for text in rrset.rdatas
    )
    for name, group in groupby(zone.rrsets, key=lambda rrset: rrset.name):
        alias = address_alias(zone, name, group)
        if alias is not None:
            records.append((name, f"TYPE{ADDRESS_CNAME}", alias[0], alias[1]))
    return records


class InProcessSink:
    """Zones served by a ``dnsserver.DNSService`` through ``store``."""

    name = "dns"

    def __init__(
        self,
        store: ZoneStore,
        serial_of: Callable[[str], int | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.serial_of = serial_of
        self.clock = clock
        self._held: dict[str, ZoneContent] = {}
        self._serials: dict[str, int] = {}
        self._adopt: Callable[[], Awaitable[ZoneSet]] | None = None
        self._big: dict[tuple[str, str, str], tuple[tuple[str, ...], tuple[bytes, ...]]] = {}
        """The texts and wire form of the big RRsets this sink made (aggregated names),
        by (zone, name, type): a change converts only the texts that are new."""

    def adopt(self, read: Callable[[], Awaitable[ZoneSet]]) -> None:
        """The store serves zones loaded from files; ``read()`` returns what those files
        hold. The first ``current()`` takes from it the zones the store serves with the same
        serial, so the first pass patches them."""
        self._adopt = read

    async def current(self) -> ZoneSet:
        if self._adopt is not None:
            read, self._adopt = self._adopt, None
            served = self.store.snapshot().zones
            for origin, content in (await read()).items():
                zone = served.get(origin)
                serial = self.serial_of(origin) if self.serial_of else None
                if (
                    zone is not None
                    and serial is not None
                    and zone.serial == serial
                    and not may_need_alias(content)
                ):
                    self._held[origin] = content
                    self._serials[origin] = serial
        return dict(self._held)

    async def apply(self, changes: Changes) -> None:
        if changes.is_empty:
            return
        served = self.store.snapshot().zones
        whole: dict[str, Zone] = {}
        patches: dict[str, dict[PatchKey, WireRRset | None]] = {}
        removed: set[str] = set()
        for zone in changes.zones:
            origin = zone.origin
            if zone.desired is None:
                if origin in served:
                    removed.add(origin)
                continue
            serial = self._serial(origin)
            if zone.current is None or origin not in served or origin not in self._held:
                whole[origin] = Zone.from_records(origin, zone_records(zone.desired, serial))
            else:
                patches[origin] = self._patch(zone, serial, served[origin])
            self._serials[origin] = serial
        try:
            self.store.patch(patches, zones=whole, removed=removed)  # one swap for the pass
        except KeyStoreError as exc:  # a zone's DNSSEC keys cannot be read: retried
            raise TransientError(f"DNSSEC keys: {exc}") from None
        if removed:
            self._big = {key: big for key, big in self._big.items() if key[0] not in removed}
        for origin in removed:
            self._held.pop(origin, None)
            self._serials.pop(origin, None)
        for zone in changes.zones:
            if zone.desired is not None:
                self._held[zone.origin] = zone.desired

    def _serial(self, origin: str) -> int:
        serial = self.serial_of(origin) if self.serial_of else None
        if serial is None:
            serial = next_serial(self._serials.get(origin), int(self.clock()))
        return serial

    def _patch(
        self, zone: ZoneChanges, serial: int, served: Zone
    ) -> dict[PatchKey, WireRRset | None]:
        origin = zone.origin
        patch: dict[PatchKey, WireRRset | None] = {}
        for change in zone.rrsets:
            new = change.new
            key = (origin, change.name, change.rdtype)
            if new is None:
                patch[(change.name, change.rdtype)] = None
                self._big.pop(key, None)
                continue
            texts = new.rdatas
            if len(texts) < BIG_RRSET:
                self._big.pop(key, None)
                patch[(change.name, change.rdtype)] = rrset_from_text(
                    origin, new.name, new.rdtype, new.ttl, texts
                )
                continue
            known = self._big.get(key)
            made = rrset_from_text(
                origin,
                new.name,
                new.rdtype,
                new.ttl,
                texts,
                known=dict(zip(*known, strict=True)) if known else None,
            )
            if len(made.rdatas) == len(texts):  # one wire form per text: they line up
                self._big[key] = (texts, made.rdatas)
            patch[(change.name, change.rdtype)] = made
        desired = zone.desired
        assert desired is not None
        changed = {change.name for change in zone.rrsets}
        found = desired.rrsets_at(changed)
        for name in changed:
            alias = address_alias(desired, name, found.get(name, ()))
            if alias is not None:
                ttl, target = alias
                patch[(name, ADDRESS_CNAME)] = rrset_from_text(
                    origin, name, ADDRESS_CNAME, ttl, [target]
                )
            elif served.get(name, ADDRESS_CNAME) is not None:
                patch[(name, ADDRESS_CNAME)] = None
        if self._serials.get(origin) != serial or zone.soa_changed:
            soa = desired.soa
            patch[(origin, "SOA")] = rrset_from_text(
                origin, origin, "SOA", soa.ttl, [soa.to_text(serial)]
            )
        return patch
