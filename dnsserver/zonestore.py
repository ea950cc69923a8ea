"""The set of zones being served, swapped atomically.

`ZoneStore` holds one reference to an immutable `ZoneIndex`. Readers (the server's threads)
take `snapshot()` once per query; `replace()` builds the new index completely, then swaps
the reference, so a query sees the old zone set or the new one, never a mix (CoreDNS's
parse-aside-then-swap).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from dnsserver.name import ROOT, parent, parse_name
from dnsserver.zone import Zone


class ZoneIndex:
    """An immutable set of zones with longest-suffix lookup."""

    __slots__ = ("_zones", "generation")

    def __init__(self, zones: Mapping[str, Zone], generation: int = 0) -> None:
        built: dict[str, Zone] = {}
        for origin, zone in zones.items():
            key = parse_name(origin)
            if key != zone.origin:
                raise ValueError(f"zone {zone.origin} stored under the origin {origin}")
            built[key] = zone
        self._zones = built
        self.generation = generation

    @property
    def zones(self) -> Mapping[str, Zone]:
        """The zones by origin."""
        return MappingProxyType(self._zones)

    def find(self, name: str) -> Zone | None:
        """The zone with the longest origin that `name` is at or below, or None."""
        zones = self._zones
        if not zones:
            return None
        current: str | None = name
        while current is not None:
            zone = zones.get(current)
            if zone is not None:
                return zone
            if current == ROOT:
                return None
            current = parent(current)
        return None

    def __iter__(self) -> Iterator[Zone]:
        return iter(self._zones.values())

    def __len__(self) -> int:
        return len(self._zones)


class ZoneStore:
    """Holds the current `ZoneIndex`; one writer at a time, any number of readers."""

    def __init__(self, zones: Mapping[str, Zone] | None = None) -> None:
        self._writer = threading.Lock()
        self._current = ZoneIndex(zones or {})

    def snapshot(self) -> ZoneIndex:
        """The current index; keep using it for the whole query."""
        return self._current

    def replace(self, zones: Mapping[str, Zone]) -> ZoneIndex:
        """Serve exactly `zones` from now on; returns the new index."""
        with self._writer:
            new = ZoneIndex(zones, self._current.generation + 1)  # fully built first
            self._current = new  # readers see old or new, never a mix
        return new

    def update(
        self, changed: Mapping[str, Zone], removed: frozenset[str] | set[str] = frozenset()
    ) -> ZoneIndex:
        """Replace some zones and drop others, keeping the rest; returns the new index."""
        with self._writer:
            zones = dict(self._current.zones)
            for origin in removed:
                zones.pop(parse_name(origin), None)
            zones.update({parse_name(origin): zone for origin, zone in changed.items()})
            new = ZoneIndex(zones, self._current.generation + 1)
            self._current = new
        return new
