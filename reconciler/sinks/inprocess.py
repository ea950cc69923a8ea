"""The in-process DNS server as a sink: RRset changes go straight into ``dnsserver``'s
``ZoneStore``, no zone file parsing in between.

A zone the server already holds is patched (``ZoneStore.patch``): only the changed RRsets
are converted to wire form, the store swaps one reference (a query sees the old zones or
the new ones, never a mix), and the server keeps its cached answers for every name the
patch did not touch. A zone the server does not hold yet is built whole. The SOA serial
comes from ``serial_of`` (the zone file sink's, assigned before any sink applies, so the
server and the files agree); without one the sink keeps its own.

Warm start: when the daemon has loaded the last written zone files into the store before
the first pass, ``adopt(source)`` tells the sink how to read what those files hold, so the
first pass patches the served zones instead of rebuilding them. Used by ``run``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from dnsserver import PatchKey, Zone, ZoneStore, rrset_from_text
from dnsserver import RRset as WireRRset
from reconciler.core.model import ZoneContent, ZoneSet
from reconciler.core.plan import Changes, ZoneChanges
from reconciler.core.serials import next_serial

BIG_RRSET = 64
"""RRsets of at least this many records keep their wire form per text (``_big``)."""


def zone_records(zone: ZoneContent, serial: int) -> list[tuple[str, str, int, str]]:
    """The zone as (name, type, TTL, rdata text) tuples, SOA first."""
    records = [(zone.origin, "SOA", zone.soa.ttl, zone.soa.to_text(serial))]
    records.extend(
        (rrset.name, rrset.rdtype, rrset.ttl, text)
        for rrset in zone.rrsets
        for text in rrset.rdatas
    )
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
                if zone is not None and serial is not None and zone.serial == serial:
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
                patches[origin] = self._patch(zone, serial)
            self._serials[origin] = serial
        self.store.patch(patches, zones=whole, removed=removed)  # one swap for the pass
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

    def _patch(self, zone: ZoneChanges, serial: int) -> dict[PatchKey, WireRRset | None]:
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
        if self._serials.get(origin) != serial or zone.soa_changed:
            soa = desired.soa
            patch[(origin, "SOA")] = rrset_from_text(
                origin, origin, "SOA", soa.ttl, [soa.to_text(serial)]
            )
        return patch
