"""The reconcile loop: a pass costs what changed, and a full pass checks that it did.

``Reconciler.run_once()`` asks the source what changed, hands the changed groups to the
incremental index (``core.index``), and gives each sink the index's plan: the RRsets that
changed. A sink that has not been converged yet (the first pass), that failed, or any sink
on a full pass gets a plan against what it says it holds (``sink.current()``), which is
where drift by other writers is repaired. An empty plan writes nothing.

A full pass (the first, the periodic resync, SIGHUP) also re-reads every source and
recomputes every zone from scratch, the oracle the incremental state must equal: whatever
differs (a group a source missed, a name the index got wrong) is repaired, logged and
counted in ``repairs`` (``dockzone_resync_repairs_total``; zero unless there is a bug).

Sinks may have ``prepare(changes)``: called with their plan before any sink applies (the
zone file sink assigns SOA serials there, which the in-process server then serves), so the
in-process server, first in the list, swaps in the new answers before files are written.

``run()`` waits on a ``Wakeup`` and starts a pass at once; triggers during a pass coalesce
into the next one. Called by the CLI's ``run``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from reconciler import heap
from reconciler.core import plan
from reconciler.core.index import RecordIndex
from reconciler.core.model import Conflict, ZoneSet, ZoneSettings
from reconciler.core.triggers import Wakeup, next_wakeup
from reconciler.errors import DockzoneError, ZoneWriteError
from reconciler.sinks import Sink
from reconciler.sources import Snapshot, Source

log = logging.getLogger(__name__)

MAX_LOGGED_CHANGES = 50
"""RR changes logged one per line in a pass; beyond that, a count of RRset changes."""

RETRY_DELAY = 1.0
"""Seconds between retry passes while a sink keeps failing."""

FULL_REASONS = frozenset({"resync", "SIGHUP", "confirm"})
"""Wakeup reasons that make the next pass a full one."""

SIGNING_SINKS = ("dns", "zonefiles")
"""Sinks whose zones change when their signatures are refreshed (the served zones, and the
zone files, whose serials the server's follow)."""

RECENT_PASSES = 20
"""Pass reports kept for the status page and ``dockzone status`` (``Reconciler.recent``)."""


@dataclass(slots=True)
class PassReport:
    """What one pass did."""

    seconds: float = 0.0
    finished: float = 0.0
    """When the pass ended (seconds since the epoch)."""
    changes: dict[str, plan.Changes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    problems: int = 0
    conflicts: int = 0
    stale: bool = False
    resigned: int = 0  # zones given a new serial for their DNSSEC signatures
    full: bool = False
    reasons: tuple[str, ...] = ()
    repairs: dict[str, int] = field(default_factory=dict)
    """Full passes: differences the oracle found, by layer (``source``, ``index``)."""
    served: float | None = None
    """Seconds from the start of the pass until the DNS server answered with its changes
    (None when the pass changed nothing there); the zone files are written after."""
    number: int = 0
    """The pass's number, counted from 1."""

    @property
    def changed(self) -> bool:
        return any(not changes.is_empty for changes in self.changes.values())


class Reconciler:
    """Converges ``sinks`` on what ``source`` defines."""

    def __init__(
        self,
        source: Source,
        settings: ZoneSettings,
        sinks: Sequence[Sink],
        on_snapshot: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.on_snapshot = on_snapshot
        self.source = source
        self.sinks = list(sinks)
        self._settings = settings
        self.index = RecordIndex(settings)
        self.passes = 0
        """Passes completed."""
        self.started = 0
        """Passes started: a pass numbered above this value reads the sources afresh."""
        self.last_report: PassReport | None = None
        self.recent: collections.deque[PassReport] = collections.deque(maxlen=RECENT_PASSES)
        """The last ``RECENT_PASSES`` reports, oldest first."""
        self.repairs: dict[str, int] = {"source": 0, "index": 0}
        """Differences full passes found between the incremental state and a recompute."""
        self.on_report: list[Callable[[PassReport], None]] = []
        """Called after every pass (metrics)."""
        self._synced: set[str] = set()
        self._failing: dict[str, str] = {}
        """The last error of each sink that is failing now."""
        self._done: asyncio.Condition | None = None
        self._reported: set[str] = set()
        self.signatures_due: Callable[[], Collection[str]] | None = None
        """The zones whose DNSSEC signatures are due (or whose keys changed): each pass
        gives them a new SOA serial in the plans of the sinks in ``SIGNING_SINKS``, so the
        in-process server re-signs them and the zone files follow (``daemon.run``)."""

    @property
    def settings(self) -> ZoneSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: ZoneSettings) -> None:
        """New zone settings (``PUT /set/ttl``): every zone is derived again next pass, and
        every sink is planned against what it holds."""
        if settings == self._settings:
            return
        self._settings = settings
        groups = self.index.groups()
        self.index = RecordIndex(settings)
        self.index.update(groups, complete=True)
        self._synced.clear()

    @property
    def zones(self) -> ZoneSet:
        """The zones the last pass built (what every sink was converged on)."""
        return self.index.zones

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        return self.index.conflicts

    @property
    def failing(self) -> dict[str, str]:
        """The last error of each sink that is failing now, by sink name."""
        return dict(self._failing)

    def _condition(self) -> asyncio.Condition:
        if self._done is None:
            self._done = asyncio.Condition()
        return self._done

    async def wait_for_pass(self, number: int) -> PassReport | None:
        """Wait until pass ``number`` (counted from 1) has completed; the last report."""
        done = self._condition()
        async with done:
            await done.wait_for(lambda: self.passes >= number)
        return self.last_report

    async def run_once(self, full: bool = False, reasons: tuple[str, ...] = ()) -> PassReport:
        """One pass (a full one when ``full`` or the first); errors of one sink do not
        stop the others. The cyclic collector pauses during a pass, and what a full pass
        leaves is frozen out of later collections (``heap``)."""
        full = full or self.passes == 0
        with heap.building(freeze=full):
            return await self._pass(full, reasons)

    async def _pass(self, full: bool, reasons: tuple[str, ...]) -> PassReport:
        self.started += 1
        started = time.monotonic()
        report = PassReport(full=full, reasons=reasons)
        before = dict(self.index.zones)
        snapshot, changes = await asyncio.to_thread(self._compute, full, report, before)
        if self.on_snapshot is not None:
            self.on_snapshot(snapshot)
        report.problems = len(snapshot.problems)
        report.stale = snapshot.stale
        conflicts = self.index.conflicts
        report.conflicts = len(conflicts)
        self._report_new(list(snapshot.problems) + [f"conflict: {c}" for c in conflicts])
        plans: dict[str, plan.Changes] = {}
        for sink in self.sinks:
            try:
                if full or sink.name not in self._synced:
                    current = await sink.current()
                    if current == before:  # what the index held: its plan is this one
                        plans[sink.name] = changes
                    else:
                        plans[sink.name] = plan.calculate(current, self.index.zones)
                else:
                    plans[sink.name] = changes
            except (DockzoneError, OSError) as exc:
                self._failed(report, sink, exc)
        due = self.signatures_due() if self.signatures_due is not None else ()
        if due:
            report.resigned = len(due)
            for name in SIGNING_SINKS:
                if name in plans:
                    plans[name] = plan.with_new_serial(plans[name], due, self.index.zones)
        for sink in self.sinks:
            prepare = getattr(sink, "prepare", None)
            if prepare is not None and sink.name in plans:
                prepare(plans[sink.name])
        for sink in self.sinks:
            if sink.name not in plans:
                continue
            changes = plans[sink.name]
            report.changes[sink.name] = changes
            if changes.is_empty:
                self._synced.add(sink.name)
                continue
            try:
                outcome = await sink.apply(changes)
            except (DockzoneError, OSError) as exc:
                self._failed(report, sink, exc)
                continue
            if sink.name == "dns":
                report.served = time.monotonic() - started
            written = [e for e in getattr(outcome, "errors", ()) if isinstance(e, ZoneWriteError)]
            if written:
                self._failed(report, sink, "; ".join(str(error) for error in written))
                continue
            self._synced.add(sink.name)
            if self._failing.pop(sink.name, None) is not None:
                log.warning("%s: converged again", sink.name)
        report.seconds = time.monotonic() - started
        report.finished = time.time()
        self.passes += 1
        report.number = self.passes
        self.last_report = report
        self.recent.append(report)
        self._log(report)
        for listener in self.on_report:
            listener(report)
        done = self._condition()
        async with done:
            done.notify_all()
        return report

    def _failed(self, report: PassReport, sink: Sink, exc: Exception | str) -> None:
        """A sink failed: an error in the log the first time (and when the error changes),
        at DEBUG while the retry passes keep meeting the same one."""
        message = f"{sink.name}: {exc}"
        report.errors.append(message)
        if self._failing.get(sink.name) != message:
            log.error("%s", message)
        else:
            log.debug("%s (still)", message)
        self._failing[sink.name] = message
        self._synced.discard(sink.name)

    def _compute(
        self, full: bool, report: PassReport, before: ZoneSet
    ) -> tuple[Snapshot, plan.Changes]:
        """Read the sources and update the index (in a thread): the snapshot and the plan
        from ``before`` (the zones of the last pass) to the zones now."""
        first = self.passes == 0
        snapshot = self.source.load(full)
        if full and not first:
            self._check_sources(snapshot, report)
        index = self.index
        index.update(snapshot.groups, snapshot.complete)
        changes = index.commit()
        if full and not first:
            self._check_index(report)
            if self.index is not index:  # repaired: the recompute's zones are the target
                changes = plan.calculate(before, self.index.zones)
        return snapshot, changes

    def _check_sources(self, snapshot: Snapshot, report: PassReport) -> None:
        """The oracle, first half: groups a complete re-read found different from what the
        sources had reported (a missed trigger)."""
        held = self.index.groups()
        missed = sorted(
            key
            for key in set(held) | set(snapshot.groups)
            if held.get(key, ()) != snapshot.groups.get(key, ())
        )
        if missed:
            self._repaired(report, "source", len(missed), ", ".join(missed[:10]))

    def _check_index(self, report: PassReport) -> None:
        """The oracle, second half: a recompute from scratch must equal the incremental
        zones; when it does not, the recompute wins (on a full pass every sink is planned
        against what it holds, so the sinks follow)."""
        fresh = RecordIndex(self.settings)
        fresh.update(self.index.groups(), complete=True)
        fresh.commit()
        if fresh.zones == self.index.zones and fresh.conflicts == self.index.conflicts:
            return
        wrong = plan.calculate(self.index.zones, fresh.zones)
        count = sum(len(zone.rrsets) for zone in wrong.zones) or 1
        names = sorted({change.name for zone in wrong.zones for change in zone.rrsets})
        self._repaired(report, "index", count, ", ".join(names[:10]) or "conflicts")
        self.index = fresh

    def _repaired(self, report: PassReport, layer: str, count: int, what: str) -> None:
        report.repairs[layer] = report.repairs.get(layer, 0) + count
        self.repairs[layer] = self.repairs.get(layer, 0) + count
        log.error(
            "resync: the incremental %s state differed from a full recompute in %d places "
            "(%s); repaired. This is a bug: please report it.",
            layer,
            count,
            what,
        )

    def _report_new(self, problems: list[str]) -> None:
        """Warn once per problem, not on every pass it persists."""
        current = set(problems)
        for problem in problems:
            if problem not in self._reported:
                log.warning("%s", problem)
        self._reported = current

    def _log(self, report: PassReport) -> None:
        changes = next((c for c in report.changes.values() if not c.is_empty), None)
        if changes is None:
            log.debug("pass %d: no changes (%.3fs)", self.passes, report.seconds)
            return
        counts = {
            a: sum(z.count(a) for z in changes.zones) for a in ("added", "removed", "changed")
        }
        served = "" if report.served is None else f"; DNS after {report.served:.3f}s"
        log.info(
            "pass %d: %d zones changed, RRsets %d added, %d removed, %d changed%s (%.3fs)",
            self.passes,
            len(changes.zones),
            counts["added"],
            counts["removed"],
            counts["changed"],
            served,
            report.seconds,
        )
        logged = 0
        for zone in changes.zones:
            for change in zone.rrsets:
                for line in change.lines():
                    if logged == MAX_LOGGED_CHANGES:
                        total = sum(len(z.rrsets) for z in changes.zones)
                        log.info("... and more (%d RRset changes in all)", total)
                        return
                    log.info("%s", line)
                    logged += 1

    async def run(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        """Pass, then a pass as soon as a trigger arrives, until ``stop`` is set; triggers
        that arrive during a pass coalesce into the next one. After a pass that left a sink
        behind (etcd down, the RFC 2136 primary refusing, a zone file not written), a
        ``retry`` pass follows every ``RETRY_DELAY`` seconds while it keeps failing (the same
        error is logged once): the sink converges within about a second of coming back,
        without waiting for the next change or resync."""
        loop = asyncio.get_running_loop()
        retry: asyncio.TimerHandle | None = None
        await self.run_once()
        while True:
            if retry is not None:
                retry.cancel()
                retry = None
            if not self._synced >= {sink.name for sink in self.sinks}:
                retry = loop.call_later(RETRY_DELAY, wakeup.set, "retry")
            reasons = await next_wakeup(wakeup, stop)
            if reasons is None:
                break
            log.debug("woken by %s", ", ".join(sorted(reasons)))
            await self.run_once(full=bool(reasons & FULL_REASONS), reasons=tuple(sorted(reasons)))
        if retry is not None:
            retry.cancel()


async def resync_timer(wakeup: Wakeup, interval: float, stop: asyncio.Event) -> None:
    """Wake the loop every ``interval`` seconds: a periodic full pass repairs anything a
    missed trigger (or a hand-edited zone file) left behind."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            wakeup.set("resync")
