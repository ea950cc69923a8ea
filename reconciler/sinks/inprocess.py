"""The in-process DNS server as a sink: built zones go straight into ``dnsserver``'s
``ZoneStore``, no zone file parsing in between.

Only the zones in the plan are rebuilt; the store swaps one reference, so a query sees the
old zone set or the new one. The SOA serial comes from ``serial_of`` (the zone file sink's,
so the server and the files agree); without one the sink keeps its own. Used by ``run``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dnsserver import Zone, ZoneStore
from reconciler.core.model import ZoneContent, ZoneSet
from reconciler.core.plan import Changes
from reconciler.core.serials import next_serial


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

    async def current(self) -> ZoneSet:
        return dict(self._held)

    async def apply(self, changes: Changes) -> None:
        if changes.is_empty:
            return
        built: dict[str, Zone] = {}
        removed: set[str] = set()
        for zone in changes.zones:
            if zone.desired is None:
                removed.add(zone.origin)
                continue
            serial = self.serial_of(zone.origin) if self.serial_of else None
            if serial is None:
                serial = next_serial(self._serials.get(zone.origin), int(self.clock()))
            built[zone.origin] = Zone.from_records(zone.origin, zone_records(zone.desired, serial))
            self._serials[zone.origin] = serial
        self.store.update(built, removed)  # one swap for the whole pass
        for origin in removed:
            self._held.pop(origin, None)
        for zone in changes.zones:
            if zone.desired is not None:
                self._held[zone.origin] = zone.desired
