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

It also keeps the deletion budget (``--max-delete-fraction``): a complete read of a source
that errored since its last good read, or that came back empty, and that would remove more
than that fraction of the source's records, is held back (the records stay served) and
reported, until a later full pass (the periodic resync, SIGHUP) reads the source again or an
operator confirms (``dockzone confirm``, ``POST /confirm``). A source that hiccups (a Docker
daemon restarted without its containers yet, an etcd prefix read empty) then does not wipe
its zones. Removals a source reports one by one (a container's ``die`` event, a deleted
file) are not held: they are what the user did.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from reconciler.core.model import Record
from reconciler.core.triggers import Wakeup

log = logging.getLogger(__name__)

Groups = Mapping[str, tuple[Record, ...]]
"""Records by group key; an empty tuple: the group is gone (or holds nothing)."""

MAX_DELETE_FRACTION = 0.5
"""Default of ``--max-delete-fraction``."""


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
    gone: frozenset[str] = frozenset()
    """Keys of groups a complete read drops that the source saw go one by one since its
    previous load (a container's ``destroy`` event): the deletion budget never holds them."""

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


def details(source: Source) -> dict[str, str]:
    """What a source says about its connection for /status and the status page (the
    Docker endpoint and API version, etcd revisions): its ``details()`` when it has one
    (an optional method: most sources have nothing to add)."""
    describe = getattr(source, "details", None)
    return dict(describe()) if callable(describe) else {}


@dataclass(frozen=True, slots=True)
class HeldDeletion:
    """A read of one source held back by the deletion budget."""

    source: str
    removed: int
    """Records the read would remove."""
    records: int
    """Records the source held before it."""
    reason: str
    """``errored`` (the source failed since its last good read) or ``came back empty``."""
    since: float
    """When the first read was held (seconds since the epoch)."""

    def __str__(self) -> str:
        return (
            f"{self.source}: held back a read that would remove {self.removed} of its "
            f"{self.records} records ({100 * self.removed // self.records}%, over "
            f"--max-delete-fraction) after the source {self.reason}; they stay served until "
            f"a resync pass reads it again or `dockzone confirm {self.source}` (POST /confirm)"
        )


class SourceView:
    """What one source holds now, kept up to date from its snapshots."""

    __slots__ = ("confirmed", "errored", "groups", "held", "networks", "problems", "stale")

    def __init__(self) -> None:
        self.groups: dict[str, tuple[Record, ...]] = {}
        self.problems: tuple[str, ...] = ()
        self.stale = False
        self.networks: tuple[str, ...] = ()
        self.errored = False
        """The source failed (a stale read) since its last complete good read."""
        self.held: HeldDeletion | None = None
        """A read the deletion budget holds back."""
        self.confirmed = False
        """An operator confirmed ``held``: the next read is taken as it is."""

    @property
    def records(self) -> tuple[Record, ...]:
        """Every record the source holds, in group key order."""
        groups = self.groups
        return tuple(r for key in sorted(groups) for r in groups[key])

    def count(self) -> int:
        return sum(len(records) for records in self.groups.values())

    def removals(self, snapshot: Snapshot) -> int:
        """How many held records a complete ``snapshot`` drops (groups gone or shrunk),
        leaving out the groups the source saw go (``snapshot.gone``)."""
        groups, gone = snapshot.groups, snapshot.gone
        return sum(
            max(0, len(records) - len(groups.get(key, ())))
            for key, records in self.groups.items()
            if key not in gone
        )

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

    def __init__(
        self, sources: Sequence[Source], max_delete_fraction: float = MAX_DELETE_FRACTION
    ) -> None:
        self.sources = list(sources)
        self.views: dict[str, SourceView] = {source.name: SourceView() for source in sources}
        self.max_delete_fraction = max_delete_fraction

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
            held = self._budget(source.name, view, snapshot, full)
            if held is not None:
                view.problems = (*snapshot.problems, str(held))
                problems.extend(view.problems)
                continue
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

    def _budget(
        self, name: str, view: SourceView, snapshot: Snapshot, full: bool
    ) -> HeldDeletion | None:
        """The deletion budget: the hold when ``snapshot`` must be held back, else None
        (and the view's error and hold state follows the snapshot it will take)."""
        if snapshot.stale:
            view.errored = True
            return None
        if not snapshot.complete:  # changes one by one: taken; a hold stays until a read
            return None
        before = view.count()
        removed = view.removals(snapshot) if before else 0
        empty = not any(snapshot.groups.values())
        reason = "errored" if view.errored else "came back empty" if empty else ""
        if reason and removed > self.max_delete_fraction * before:
            held = view.held
            if held is not None and (full or view.confirmed):
                log.warning(
                    "%s: removing %d of %d records, held back since %s, confirmed by %s",
                    name,
                    removed,
                    before,
                    time.strftime("%H:%M:%S", time.localtime(held.since)),
                    "an operator" if view.confirmed else "a full pass",
                )
            else:
                since = held.since if held is not None else time.time()
                view.held = HeldDeletion(name, removed, before, reason, since)
                return view.held
        view.errored = False
        view.held = None
        view.confirmed = False
        return None

    def confirm(self, name: str = "") -> tuple[str, ...]:
        """Let the next read of the sources holding a read back (``name``: that one only)
        through; the names of those sources. The caller wakes a full pass."""
        confirmed = []
        for source, view in self.views.items():
            if view.held is not None and name in ("", source):
                view.confirmed = True
                confirmed.append(source)
        return tuple(confirmed)

    def held(self) -> dict[str, HeldDeletion]:
        """The reads held back now, by source name."""
        return {name: view.held for name, view in self.views.items() if view.held is not None}

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
