"""Sources: where desired records come from. Each pass asks every source what changed;
sources also wake the loop when they change.

A source is two methods (like a sink): ``load(full)`` is blocking and runs in a thread;
``watch()`` runs for the daemon's lifetime and calls ``wakeup.set(reason)`` on changes.

A source hands its records over in *groups*: the records of one object (a definitions
document, a container, an etcd key), under a key unique within the source. ``load(full=True)``
returns every group (``Snapshot.complete``); ``load()`` may return only the groups that
changed since the previous load, an empty tuple for a group that is gone. That is what makes
a pass cost what changed: the index re-derives only the names those groups touch.
The first load of a source is always complete.

``MergedSource`` concatenates sources, like ExternalDNS's multiSource, and keeps what each
source holds now (``views``) for the API, /status and the metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from reconciler.core.model import Record
from reconciler.core.triggers import Wakeup

Groups = Mapping[str, tuple[Record, ...]]
"""Records by group key; an empty tuple: the group is gone (or holds nothing)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a source reports to one pass.

    ``groups``: with ``complete``, every group the source holds now (a group not listed is
    gone); otherwise only the groups that changed since the previous load. ``problems`` are
    always all the current ones (a bad definition, a container without an address), reported
    once each by the loop; ``stale`` says the source could not be read and its records are
    the last good ones (then ``groups`` is empty and not complete: nothing changes).
    """

    groups: Groups = field(default_factory=dict)
    complete: bool = True
    problems: tuple[str, ...] = ()
    stale: bool = False
    networks: tuple[str, ...] | None = None
    """Subnets (CIDR) the records' addresses live in, for network-aware answers; None:
    unchanged since the previous load."""

    @classmethod
    def of(
        cls,
        records: Sequence[Record],
        problems: Sequence[str] = (),
        *,
        stale: bool = False,
        networks: Sequence[str] | None = None,
    ) -> Snapshot:
        """A complete snapshot of ``records``, grouped by owner object (for sources that
        cannot tell what changed: the index still re-derives only what differs)."""
        groups: dict[str, list[Record]] = {}
        for record in records:
            groups.setdefault(f"{record.owner.object}@{record.owner.location}", []).append(record)
        return cls(
            {key: tuple(value) for key, value in groups.items()},
            True,
            tuple(problems),
            stale,
            None if networks is None else tuple(networks),
        )

    @property
    def records(self) -> tuple[Record, ...]:
        """Every record in ``groups``, in key order."""
        return tuple(r for key in sorted(self.groups) for r in self.groups[key])


class Source(Protocol):
    name: str

    def load(self, full: bool = False) -> Snapshot: ...

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None: ...


class SourceView:
    """What one source holds now, kept up to date from its snapshots."""

    __slots__ = ("groups", "networks", "problems", "stale")

    def __init__(self) -> None:
        self.groups: dict[str, tuple[Record, ...]] = {}
        self.problems: tuple[str, ...] = ()
        self.stale = False
        self.networks: tuple[str, ...] = ()

    @property
    def records(self) -> tuple[Record, ...]:
        """Every record the source holds, in group key order."""
        groups = self.groups
        return tuple(r for key in sorted(groups) for r in groups[key])

    def count(self) -> int:
        return sum(len(records) for records in self.groups.values())

    def take(self, snapshot: Snapshot) -> dict[str, tuple[Record, ...]]:
        """Apply ``snapshot``; returns the groups that differ from what was held (an empty
        tuple for a group that is gone)."""
        self.problems = snapshot.problems
        self.stale = snapshot.stale
        if snapshot.networks is not None:
            self.networks = snapshot.networks
        changed: dict[str, tuple[Record, ...]] = {}
        held = self.groups
        if snapshot.complete:
            for key in [key for key in held if key not in snapshot.groups]:
                changed[key] = ()
                del held[key]
        for key, records in snapshot.groups.items():
            before = held.get(key, ())
            if before is records or before == records:
                continue
            changed[key] = records
            if records:
                held[key] = records
            else:
                held.pop(key, None)
        return changed


class MergedSource:
    """Every group of every child, keys prefixed with the child's name."""

    name = "merged"

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)
        self.views: dict[str, SourceView] = {source.name: SourceView() for source in sources}

    @property
    def snapshots(self) -> Mapping[str, SourceView]:
        """What each source holds now, by source name."""
        return MappingProxyType(self.views)

    def load(self, full: bool = False) -> Snapshot:
        """The groups that changed in any child since the previous load (every group with
        ``full``), problems and networks of all children."""
        changed: dict[str, tuple[Record, ...]] = {}
        problems: list[str] = []
        stale = False
        for source in self.sources:
            view = self.views[source.name]
            snapshot = source.load(full)
            for key, records in view.take(snapshot).items():
                changed[f"{source.name}:{key}"] = records
            problems.extend(view.problems)
            stale = stale or view.stale
        if full:
            changed = {
                f"{name}:{key}": records
                for name, view in self.views.items()
                for key, records in view.groups.items()
            }
        return Snapshot(changed, full, tuple(problems), stale, self.networks())

    def networks(self) -> tuple[str, ...]:
        found: dict[str, None] = {}
        for view in self.views.values():
            found.update(dict.fromkeys(view.networks))
        return tuple(found)

    def records(self) -> Iterator[Record]:
        """Every record every source holds now."""
        for view in self.views.values():
            for records in view.groups.values():
                yield from records

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        await asyncio.gather(*(source.watch(wakeup, stop) for source in self.sources))
