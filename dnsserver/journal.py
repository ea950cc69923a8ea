"""Per-zone journals of served differences, for incremental transfers (IXFR, RFC 1995).

`Journal.record(old, new)` is called by `ZoneStore` at every swap, under its writer lock, so
versions arrive in order. For each zone whose serial went forward it keeps a `Delta`: the
old SOA, the records deleted, the new SOA, the records added (RFC 1995 section 4's unit).
The diff costs what changed: a patch (`ZoneIndex.changed`) compares only the names it
touched; any other swap (a reload, a whole zone rebuilt) compares the nodes the two zones
do not share. When no diff can be trusted the zone's journal is dropped and starts afresh
at the new serial:

| old zone -> new zone                          | journal of that zone                   |
| --------------------------------------------- | -------------------------------------- |
| same object                                   | unchanged                              |
| serial forward (RFC 1982)                     | one `Delta` appended, oldest trimmed   |
| same serial, same transferable data           | unchanged (dockzone's private records) |
| same serial, other data; serial went backwards | dropped (secondaries fall back to AXFR) |
| zone appears                                  | empty, at its serial                   |
| zone gone                                     | dropped                                |

Each zone's journal is bounded by `limit` records (each delta counts its two SOAs, the
deleted and the added records); the oldest deltas go first. `since(origin, serial, to)`
gives the deltas a transfer needs, `condense` folds consecutive ones into one difference.
dockzone's private records (`zone.is_private`: `ADDRESS_CNAME` and its signature) never
enter a journal (transfers leave them out).
Persistence is `dnsserver.journalfile`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dnsserver.rdata import SOA
from dnsserver.zone import RRset, Zone, is_private
from dnsserver.zonestore import ZoneIndex

log = logging.getLogger(__name__)

DEFAULT_SIZE = 100_000
"""Records kept per zone by default: a day of a busy Docker host's churn (a container that
starts or stops changes 5-10 records: its A, PTR, TXT, SRV, the aggregated names, two SOAs;
one such change every 10 seconds for 24 hours is ~86,000)."""


def older(client: int, ours: int) -> bool:
    """Whether serial `client` is older than `ours` (RFC 1982 arithmetic)."""
    return 0 < (ours - client) % 2**32 < 2**31


def soa_serial(soa: RRset) -> int:
    """The serial of an SOA RRset."""
    return int.from_bytes(soa.rdatas[0][-20:-16], "big")


@dataclass(frozen=True, slots=True)
class Delta:
    """One version step of one zone: `deleted` from the version of `old_soa` and `added`
    make the version of `new_soa`. Deleted RRsets hold only the records that went."""

    old_soa: RRset
    deleted: tuple[RRset, ...]
    new_soa: RRset
    added: tuple[RRset, ...]

    @property
    def old_serial(self) -> int:
        return soa_serial(self.old_soa)

    @property
    def new_serial(self) -> int:
        return soa_serial(self.new_soa)

    @property
    def size(self) -> int:
        """Records in the delta, both SOAs included."""
        return 2 + sum(len(r.rdatas) for r in self.deleted) + sum(len(r.rdatas) for r in self.added)

    def rrsets(self) -> Iterable[RRset]:
        """The delta as RFC 1995 section 4 sends it: old SOA, deletions, new SOA, additions."""
        yield self.old_soa
        yield from self.deleted
        yield self.new_soa
        yield from self.added


def diff_zones(
    old: Zone, new: Zone, names: Iterable[str] | None = None
) -> tuple[list[RRset], list[RRset]]:
    """The RRsets (records) deleted from `old` and added in `new`, SOA and dockzone's private
    records left out. `names` limits the comparison to those names (a patch's changed
    names); None compares every name whose node the two zones do not share.

    A TTL change deletes the whole old RRset and adds the whole new one (a secondary then
    holds one TTL per RRset, as RFC 2181 5.2 wants)."""
    deleted: list[RRset] = []
    added: list[RRset] = []
    for name in new.differing_names(old) if names is None else names:
        before = old.node(name) or {}
        after = new.node(name) or {}
        for rdtype in before.keys() | after.keys():
            if rdtype == SOA:
                continue
            was = None if is_private(before, rdtype) else before.get(rdtype)
            now = None if is_private(after, rdtype) else after.get(rdtype)
            if was is now:
                continue
            if was is None:
                assert now is not None
                added.append(now)
            elif now is None:
                deleted.append(was)
            elif was.ttl != now.ttl:
                deleted.append(was)
                added.append(now)
            elif was.rdatas != now.rdatas:
                kept = set(now.rdatas)
                gone = tuple(r for r in was.rdatas if r not in kept)
                had = set(was.rdatas)
                came = tuple(r for r in now.rdatas if r not in had)
                if gone:
                    deleted.append(RRset(name, was.rdtype, was.ttl, gone))
                if came:
                    added.append(RRset(name, now.rdtype, now.ttl, came))
    return deleted, added


def condense(deltas: list[Delta]) -> Delta:
    """Consecutive deltas as one: what the first one's version lacks of the last one's, and
    what it has that the last one does not. A record added and deleted again in between
    cancels out; one deleted and added again with another TTL stays in both sections."""
    if len(deltas) == 1:
        return deltas[0]
    Key = tuple[str, int, bytes]
    deleted: dict[Key, int] = {}  # in the first version, gone in the last: key -> TTL
    added: dict[Key, int] = {}  # not in the first version, there in the last
    for delta in deltas:
        for rrset in delta.deleted:
            for rdata in rrset.rdatas:
                key = (rrset.name, rrset.rdtype, rdata)
                if key in added:
                    del added[key]  # came after the first version: never sent
                else:
                    deleted[key] = rrset.ttl
        for rrset in delta.added:
            for rdata in rrset.rdatas:
                key = (rrset.name, rrset.rdtype, rdata)
                if deleted.get(key) == rrset.ttl:
                    del deleted[key]  # back as the first version had it
                else:
                    added[key] = rrset.ttl
    return Delta(deltas[0].old_soa, _group(deleted), deltas[-1].new_soa, _group(added))


def _group(records: Mapping[tuple[str, int, bytes], int]) -> tuple[RRset, ...]:
    """Records as RRsets: one per name, type and TTL, in first-seen order."""
    grouped: dict[tuple[str, int, int], list[bytes]] = {}
    for (name, rdtype, rdata), ttl in records.items():
        grouped.setdefault((name, rdtype, ttl), []).append(rdata)
    return tuple(
        RRset(name, rdtype, ttl, tuple(rdatas)) for (name, rdtype, ttl), rdatas in grouped.items()
    )


@dataclass(slots=True)
class ZoneJournal:
    """The deltas of one zone, oldest first, ending at `serial`."""

    serial: int
    deltas: deque[Delta] = field(default_factory=deque)
    size: int = 0

    @property
    def first_serial(self) -> int:
        """The oldest serial a transfer can start from (`serial` when there are no deltas)."""
        return self.deltas[0].old_serial if self.deltas else self.serial


class Journal:
    """Deltas of every served zone, `limit` records per zone at most (0 keeps none: every
    IXFR for an older serial then gets the whole zone). Thread-safe: the store's writer
    records, transfer threads read, `on_change` (the file writer) is told which zones
    changed."""

    def __init__(self, limit: int = DEFAULT_SIZE) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._zones: dict[str, ZoneJournal] = {}
        self.on_change: Callable[[str], None] | None = None

    # -- writing (the store's writer thread) -------------------------------------------------

    def record(self, old: ZoneIndex, new: ZoneIndex) -> None:
        """Journal what changed between two consecutive indexes (`ZoneStore.track`). Raises
        nothing: a failure drops every journal (secondaries fall back to AXFR)."""
        try:
            self._record(old, new)
        except Exception:
            log.exception("journal dropped: failed to record a zone change")
            with self._lock:
                origins = list(self._zones)
                self._zones.clear()
            for origin in origins:
                self._changed(origin)

    def _record(self, old: ZoneIndex, new: ZoneIndex) -> None:
        patched = new.changed if new.base == old.generation else None
        before = old.zones
        for origin, zone in new.zones.items():
            was = before.get(origin)
            if was is zone:
                continue
            if was is None:
                self._reset(origin, zone.serial, None)
                continue
            names = patched.get(origin) if patched is not None else None
            deleted, added = diff_zones(was, zone, names)
            if zone.serial == was.serial:
                if deleted or added:
                    self._reset(origin, zone.serial, "its data changed without a serial change")
                continue
            if not older(was.serial, zone.serial):
                self._reset(
                    origin, zone.serial, f"its serial went back from {was.serial} to {zone.serial}"
                )
                continue
            self.add(origin, Delta(was.soa, tuple(deleted), zone.soa, tuple(added)))
        for origin in before.keys() - new.zones.keys():
            with self._lock:
                self._zones.pop(origin, None)
            self._changed(origin)

    def add(self, origin: str, delta: Delta) -> None:
        """Append `delta` to `origin`'s journal (started afresh when it does not end at the
        delta's old serial), then trim the oldest beyond `limit`."""
        size = delta.size
        with self._lock:
            journal = self._zones.get(origin)
            if journal is None or journal.serial != delta.old_serial:
                journal = self._zones[origin] = ZoneJournal(delta.old_serial)
            journal.deltas.append(delta)
            journal.size += size
            journal.serial = delta.new_serial
            while journal.deltas and journal.size > self.limit:
                journal.size -= journal.deltas.popleft().size
        self._changed(origin)

    def load(self, origin: str, journal: ZoneJournal) -> None:
        """Take over `journal` for `origin` (read from a file), trimmed to `limit`."""
        with self._lock:
            while journal.deltas and journal.size > self.limit:
                journal.size -= journal.deltas.popleft().size
            self._zones[origin] = journal

    def _reset(self, origin: str, serial: int, why: str | None) -> None:
        with self._lock:
            journal = self._zones.get(origin)
            had = journal is not None and bool(journal.deltas)
            self._zones[origin] = ZoneJournal(serial)
        if why is not None and had:
            log.warning(
                "journal of %s dropped: %s (secondaries get the whole zone next)", origin, why
            )
        self._changed(origin)

    def _changed(self, origin: str) -> None:
        listener = self.on_change
        if listener is not None:
            listener(origin)

    # -- reading ---------------------------------------------------------------------------

    def since(self, origin: str, serial: int, to: int) -> list[Delta] | None:
        """The deltas from version `serial` to version `to` of `origin`, or None when the
        journal does not hold that whole way (too old, dropped, or not there yet)."""
        with self._lock:
            journal = self._zones.get(origin)
            if journal is None:
                return None
            found: list[Delta] = []
            for delta in journal.deltas:
                if found or delta.old_serial == serial:
                    found.append(delta)
                    if delta.new_serial == to:
                        return found
            return None

    def get(self, origin: str) -> ZoneJournal | None:
        """A copy of `origin`'s journal, or None."""
        with self._lock:
            journal = self._zones.get(origin)
            if journal is None:
                return None
            return ZoneJournal(journal.serial, deque(journal.deltas), journal.size)

    def origins(self) -> list[str]:
        with self._lock:
            return list(self._zones)
