"""The reconcile loop: one pass recomputes everything, each sink gets only the difference.

``Reconciler.run_once()`` reads the source, builds the zones, and for each sink computes the
plan against what that sink holds and applies it; an empty plan writes nothing.
``run()`` waits on a ``Wakeup`` (definition changes, a timer, SIGHUP, later Docker events)
and runs one pass per burst of triggers until told to stop. Called by the CLI's ``run``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reconciler.core import plan
from reconciler.core.model import ZoneSet, ZoneSettings
from reconciler.core.triggers import Wakeup, next_wakeup
from reconciler.core.zonebuild import build
from reconciler.errors import DockzoneError, ZoneWriteError
from reconciler.sinks import Sink
from reconciler.sources import Snapshot, Source

log = logging.getLogger(__name__)

MAX_LOGGED_CHANGES = 50
"""RR changes logged one per line in a pass; beyond that, a count."""


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
        self.settings = settings
        self.sinks = list(sinks)
        self.passes = 0
        """Passes completed."""
        self.started = 0
        """Passes started: a pass numbered above this value reads the sources afresh."""
        self.last_report: PassReport | None = None
        self.zones: ZoneSet = {}
        """The zones the last pass built (what every sink was converged on)."""
        self.on_report: list[Callable[[PassReport], None]] = []
        """Called after every pass (metrics)."""
        self._done: asyncio.Condition | None = None
        self._reported: set[str] = set()

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

    async def run_once(self) -> PassReport:
        """One full pass; errors of one sink do not stop the others."""
        self.started += 1
        started = time.monotonic()
        report = PassReport()
        snapshot = await asyncio.to_thread(self.source.load)
        if self.on_snapshot is not None:
            self.on_snapshot(snapshot)
        result = build(snapshot.records, self.settings)
        self.zones = result.zones
        report.problems = len(snapshot.problems)
        report.stale = snapshot.stale
        report.conflicts = len(result.conflicts)
        self._report_new(list(snapshot.problems) + [f"conflict: {c}" for c in result.conflicts])
        for sink in self.sinks:
            try:
                changes = plan.calculate(await sink.current(), result.zones)
                report.changes[sink.name] = changes
                if changes.is_empty:
                    continue
                outcome = await sink.apply(changes)
            except (DockzoneError, OSError) as exc:
                report.errors.append(f"{sink.name}: {exc}")
                log.error("%s: %s", sink.name, exc)
                continue
            for error in getattr(outcome, "errors", ()):
                if isinstance(error, ZoneWriteError):
                    report.errors.append(str(error))
                    log.error("%s", error)
        report.seconds = time.monotonic() - started
        report.finished = time.time()
        self.passes += 1
        self.last_report = report
        self._log(report)
        for listener in self.on_report:
            listener(report)
        done = self._condition()
        async with done:
            done.notify_all()
        return report

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
        lines = [
            line for zone in changes.zones for change in zone.rrsets for line in change.lines()
        ]
        counts = {
            a: sum(z.count(a) for z in changes.zones) for a in ("added", "removed", "changed")
        }
        log.info(
            "pass %d: %d zones changed, RRsets %d added, %d removed, %d changed (%.3fs)",
            self.passes,
            len(changes.zones),
            counts["added"],
            counts["removed"],
            counts["changed"],
            report.seconds,
        )
        for line in lines[:MAX_LOGGED_CHANGES]:
            log.info("%s", line)
        if len(lines) > MAX_LOGGED_CHANGES:
            log.info("... and %d more record changes", len(lines) - MAX_LOGGED_CHANGES)

    async def run(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        """Pass, then one pass per burst of wakeups, until ``stop`` is set."""
        await self.run_once()
        while (reasons := await next_wakeup(wakeup, stop)) is not None:
            log.debug("woken by %s", ", ".join(sorted(reasons)))
            await self.run_once()


async def resync_timer(wakeup: Wakeup, interval: float, stop: asyncio.Event) -> None:
    """Wake the loop every ``interval`` seconds: a periodic full pass repairs anything a
    missed trigger (or a hand-edited zone file) left behind."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            wakeup.set("resync")
