"""The set of zones being served, swapped atomically.

`ZoneStore` holds one reference to an immutable `ZoneIndex`. Readers (the server's threads)
take `snapshot()` once per query; `replace()`, `update()` and `patch()` build the new index
completely, then swap the reference, so a query sees the old zone set or the new one, never
a mix (CoreDNS's parse-aside-then-swap).

Every index has a `generation`. One made by `patch()` from its predecessor also records the
generation it was patched from (`base`) and the names whose answers may differ (`changed`),
so that a reader holding answers derived from the predecessor drops only those; any other
kind of index (`base` None) may differ anywhere.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from dnsserver.errors import KeyStoreError, ZoneError
from dnsserver.name import ROOT, parent, parse_name
from dnsserver.nsec import Chain, chain_of
from dnsserver.zone import PatchKey, RRset, Zone

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from dnsserver.signer import Signer


class ZoneIndex:
    """An immutable set of zones with longest-suffix lookup.

    `base` is the generation this index was patched from, and `changed` maps the origin of
    each patched zone to the names whose answers may differ from that generation's
    (`changed_names`: all of them in one set); both None when this index is not a patch of
    its predecessor (built whole, or zones added or removed).
    """

    __slots__ = ("_signed", "_zones", "base", "changed", "changed_names", "generation")

    def __init__(
        self,
        zones: Mapping[str, Zone],
        generation: int = 0,
        *,
        base: int | None = None,
        changed: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        built: dict[str, Zone] = {}
        for origin, zone in zones.items():
            key = parse_name(origin)
            if key != zone.origin:
                raise ValueError(f"zone {zone.origin} stored under the origin {origin}")
            built[key] = zone
        self._zones = built
        self._signed: bool | None = None
        self.generation = generation
        if base is None or changed is None:
            self.base: int | None = None
            self.changed: Mapping[str, frozenset[str]] | None = None
            self.changed_names: frozenset[str] | None = None
        else:
            self.base = base
            self.changed = MappingProxyType(dict(changed))
            self.changed_names = frozenset().union(*changed.values())

    @property
    def signed(self) -> bool:
        """Whether a zone of the index is signed (has an NSEC chain); known after the first
        question (a benign race: two threads find the same)."""
        signed = self._signed
        if signed is None:
            signed = self._signed = any(chain_of(zone) is not None for zone in self._zones.values())
        return signed

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
    """Holds the current `ZoneIndex`; one writer at a time, any number of readers.

    With a `signer` (`dnsserver.signer.Signer`), the zones it signs are stored signed:
    whole zones are signed as they come in (keeping the signatures of the version they
    replace where the data did not change), patches are extended with the signatures and
    NSEC records they make stale, and `resign()` refreshes what is due.
    """

    def __init__(
        self, zones: Mapping[str, Zone] | None = None, signer: Signer | None = None
    ) -> None:
        self._writer = threading.Lock()
        self.signer = signer
        self._current = ZoneIndex(self._signed(zones or {}, {}))
        self._listeners: tuple[Callable[[ZoneIndex], None], ...] = ()
        self._trackers: tuple[Callable[[ZoneIndex, ZoneIndex], None], ...] = ()

    def track(self, tracker: Callable[[ZoneIndex, ZoneIndex], None]) -> None:
        """Call `tracker` with (old, new) at each swap, on the writer's thread and under its
        lock, so swaps arrive in order (`journal.Journal.record`): it must cost what the
        swap changed, not what the zones hold, and must not raise."""
        self._trackers = (*self._trackers, tracker)

    def untrack(self, tracker: Callable[[ZoneIndex, ZoneIndex], None]) -> None:
        self._trackers = tuple(known for known in self._trackers if known != tracker)

    def _track(self, old: ZoneIndex, new: ZoneIndex) -> None:
        for tracker in self._trackers:
            tracker(old, new)

    def subscribe(self, listener: Callable[[ZoneIndex], None]) -> None:
        """Call `listener` with each new index after it is swapped in, on the writer's
        thread: it must return at once (set an event)."""
        self._listeners = (*self._listeners, listener)

    def unsubscribe(self, listener: Callable[[ZoneIndex], None]) -> None:
        self._listeners = tuple(known for known in self._listeners if known != listener)

    def _swapped(self, new: ZoneIndex) -> ZoneIndex:
        for listener in self._listeners:
            listener(new)
        return new

    def snapshot(self) -> ZoneIndex:
        """The current index; keep using it for the whole query."""
        return self._current

    def _signed(
        self,
        zones: Mapping[str, Zone],
        served: Mapping[str, Zone],
        failed: list[KeyStoreError] | None = None,
    ) -> dict[str, Zone]:
        """`zones`, each signed when the signer signs it. A zone whose keys cannot be read
        keeps the version `served` holds (or is left out when there is none): the error is
        logged and added to `failed`, and the other zones go on."""
        signer = self.signer
        if signer is None:
            return dict(zones)
        result = {}
        for origin, zone in zones.items():
            if not signer.signs(zone.origin):
                result[origin] = zone
                continue
            try:
                result[origin] = signer.sign_zone(zone, served.get(zone.origin))
            except KeyStoreError as exc:
                self._key_failure(zone.origin, exc, failed)
                if zone.origin in served:
                    result[origin] = served[zone.origin]
        return result

    def _key_failure(
        self, origin: str, exc: KeyStoreError, failed: list[KeyStoreError] | None
    ) -> None:
        log.error("zone %s not updated: its DNSSEC keys: %s", origin, exc)
        if failed is not None:
            failed.append(exc)

    def replace(self, zones: Mapping[str, Zone]) -> ZoneIndex:
        """Serve exactly `zones` from now on; returns the new index."""
        with self._writer:
            old = self._current
            zones = self._signed(zones, old.zones)
            new = ZoneIndex(zones, old.generation + 1)  # fully built first
            self._current = new  # readers see old or new, never a mix
            self._track(old, new)
        return self._swapped(new)

    def update(
        self, changed: Mapping[str, Zone], removed: frozenset[str] | set[str] = frozenset()
    ) -> ZoneIndex:
        """Replace some zones and drop others, keeping the rest; returns the new index."""
        with self._writer:
            zones = dict(self._current.zones)
            for origin in removed:
                zones.pop(parse_name(origin), None)
            signed = self._signed(changed, zones)
            zones.update({parse_name(origin): zone for origin, zone in signed.items()})
            old = self._current
            new = ZoneIndex(zones, old.generation + 1)
            self._current = new
            self._track(old, new)
        return self._swapped(new)

    def patch(
        self,
        changes: Mapping[str, Mapping[PatchKey, RRset | None]],
        *,
        zones: Mapping[str, Zone] | None = None,
        removed: Iterable[str] = (),
    ) -> ZoneIndex:
        """Apply RRset changes to served zones, and set or drop whole zones, in one swap.

        `changes` maps a served zone's origin to its changes as `Zone.patched` takes them
        ({(owner, type): RRset or None}); `zones` adds zones or replaces served ones whole;
        `removed` names origins to stop serving. Raises ZoneError (and swaps nothing) when
        a patched zone is not served or a patch breaks a zone rule, ValueError when an
        origin is in more than one of the three. Returns the new index (the current one,
        unchanged, when there is nothing to do).

        When only `changes` are given, the new index records which names changed, so the
        server keeps its cached answers for every other name; adding, replacing or dropping
        a zone, or adding or removing a delegation (NS below an apex), makes it start afresh.

        A signed zone whose DNSSEC keys cannot be read stays as it is served (a new one is
        not served) while the others are swapped in; then KeyStoreError is raised.
        """
        whole = {parse_name(origin): zone for origin, zone in (zones or {}).items()}
        dropped = {parse_name(origin) for origin in removed}
        failed: list[KeyStoreError] = []
        with self._writer:
            current = self._current
            served = dict(current.zones)
            changed: dict[str, frozenset[str]] = {}
            anywhere = False  # a patch changed answers anywhere in its zone
            for origin_text, zone_changes in changes.items():
                origin = parse_name(origin_text)
                if origin in whole or origin in dropped:
                    raise ValueError(f"zone {origin} is patched and also set or removed")
                zone = served.get(origin)
                if zone is None:
                    raise ZoneError(origin, "cannot patch a zone that is not served")
                if zone_changes:
                    try:
                        served[origin], names = self._patched(zone, zone_changes)
                    except KeyStoreError as exc:  # this zone stays as it is served
                        self._key_failure(origin, exc, failed)
                        continue
                    if names is None:
                        anywhere = True
                    else:
                        changed[origin] = names
            if whole.keys() & dropped:
                raise ValueError(f"zones both set and removed: {sorted(whole.keys() & dropped)}")
            dropped &= served.keys()
            if not changed and not anywhere and not whole and not dropped:
                if failed:
                    raise failed[0]
                return current
            for origin in dropped:
                del served[origin]
            served.update(self._signed(whole, served, failed))
            new = self._swap(current, served, None if whole or dropped or anywhere else changed)
        self._swapped(new)
        if failed:
            raise failed[0]  # the caller retries; the other zones are served already
        return new

    def _swap(
        self,
        current: ZoneIndex,
        served: dict[str, Zone],
        changed: Mapping[str, frozenset[str]] | None,
    ) -> ZoneIndex:
        """Swap in the index of `served` (a patch of `current` changing `changed`, or a
        new start when None); under the writer lock."""
        if changed is None:
            new = ZoneIndex(served, current.generation + 1)
        else:
            new = ZoneIndex(
                served, current.generation + 1, base=current.generation, changed=changed
            )
        self._current = new
        self._track(current, new)
        return new

    def _patched(
        self, zone: Zone, changes: Mapping[PatchKey, RRset | None]
    ) -> tuple[Zone, frozenset[str] | None]:
        """`zone.patched_with_names(changes)`, kept signed when the signer signs it."""
        signer = self.signer
        if signer is None or not signer.signs(zone.origin):
            return zone.patched_with_names(changes)
        from dnsserver.signer import unsigned_changes  # noqa: PLC0415 (signing is optional)

        refreshed: frozenset[str] | None = frozenset()
        if signer.due(zone):  # signatures due, or new keys: refreshed in the same swap
            zone, refreshed = self._resigned(zone)
        signed = signer.sign_patch(zone, changes)
        if signed is None:  # signed whole: every answer of the zone may differ
            return signer.sign_zone(zone.patched(unsigned_changes(changes)), zone), None
        new, names = _patched_signed(zone, signed)
        if names is None or refreshed is None:
            return new, None
        return new, names | refreshed

    def _resigned(
        self, zone: Zone, serial: int | None = None
    ) -> tuple[Zone, frozenset[str] | None]:
        """`zone` refreshed by the signer (and given SOA `serial`, re-signed, when not
        None): the new zone and the names whose answers changed (None: any)."""
        signer = self.signer
        assert signer is not None
        refreshed = signer.refresh(zone)
        if isinstance(refreshed, Zone):
            zone, names = refreshed, None
        elif refreshed is not None:
            zone, names = _patched_signed(zone, refreshed)
        else:
            names = frozenset()
        if serial is not None:
            soa = zone.soa
            rdata = soa.rdatas[0]
            rdata = rdata[:-20] + serial.to_bytes(4, "big") + rdata[-16:]
            new_soa = RRset(soa.name, soa.rdtype, soa.ttl, (rdata,))
            signed = signer.sign_patch(zone, {(zone.origin, soa.rdtype): new_soa})
            assert signed is not None  # the keys were just followed
            zone, more = _patched_signed(zone, signed)
            names = None if names is None or more is None else names | more
        return zone, names

    def resign(self, bump: bool = True) -> ZoneIndex:
        """Refresh the signatures that are due and follow key changes (a rollover step),
        each refreshed zone with its SOA serial one higher when `bump` (secondaries then
        transfer the new signatures; ``dockzone run`` refreshes through its passes instead,
        where the zone files' serials are assigned). Returns the new index (the current one
        when nothing was due)."""
        signer = self.signer
        if signer is None:
            return self._current
        with self._writer:
            current = self._current
            served = dict(current.zones)
            changed: dict[str, frozenset[str]] = {}
            anywhere = False
            for origin, zone in current.zones.items():
                try:
                    if not signer.signs(origin) or not signer.due(zone):
                        continue
                    serial = (zone.serial + 1) & 0xFFFFFFFF if bump else None
                    served[origin], names = self._resigned(zone, serial)
                except KeyStoreError as exc:
                    self._key_failure(origin, exc, None)
                    continue
                if names is None:
                    anywhere = True
                else:
                    changed[origin] = names
            if not changed and not anywhere:
                return current
            new = self._swap(current, served, None if anywhere else changed)
        return self._swapped(new)


def _patched_signed(
    zone: Zone, signed: tuple[Mapping[PatchKey, RRset | None], Chain]
) -> tuple[Zone, frozenset[str] | None]:
    """`zone` with a patch the signer made, carrying the NSEC chain that goes with it."""
    patch, chain = signed
    new, names = zone.patched_with_names(patch)
    new.chain = chain
    return new, names
