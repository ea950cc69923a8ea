"""Sources: where desired records come from. Each pass asks every source for a
``Snapshot``; sources also wake the loop when they change.

A source is two methods (like a sink): ``load()`` is blocking and runs in a thread;
``watch()`` runs for the daemon's lifetime and calls ``wakeup.set(reason)`` on changes.
``MergedSource`` concatenates sources, like ExternalDNS's multiSource.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from reconciler.core.model import Record
from reconciler.core.triggers import Wakeup


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a source holds now. ``problems`` are reported once each (a bad definition, a
    container without an address); ``stale`` says the source could not be read and its
    records are the last good ones."""

    records: tuple[Record, ...] = ()
    problems: tuple[str, ...] = ()
    stale: bool = False
    networks: tuple[str, ...] = ()
    """Subnets (CIDR) the records' addresses live in, for network-aware answers."""


class Source(Protocol):
    name: str

    def load(self) -> Snapshot: ...

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None: ...


class MergedSource:
    """Every record of every child; identical records from two children count once."""

    name = "merged"

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)
        self.snapshots: dict[str, Snapshot] = {}

    def load(self) -> Snapshot:
        records: dict[Record, None] = {}
        problems: list[str] = []
        networks: dict[str, None] = {}
        stale = False
        for source in self.sources:
            snapshot = source.load()
            self.snapshots[source.name] = snapshot
            records.update(dict.fromkeys(snapshot.records))
            problems.extend(snapshot.problems)
            networks.update(dict.fromkeys(snapshot.networks))
            stale = stale or snapshot.stale
        return Snapshot(tuple(records), tuple(problems), stale, tuple(networks))

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        await asyncio.gather(*(source.watch(wakeup, stop) for source in self.sources))
