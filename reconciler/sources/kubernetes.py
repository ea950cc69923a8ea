"""ServiceRecord custom resources as a source: an in-memory set filled by the operator.

The kopf handlers in ``reconciler.operator`` translate each CR into records and ``put`` them
here (keyed by ``namespace/name``), ``remove`` them when the CR is deleted, and wake the loop
themselves; ``load()`` only hands out what is held. An invalid CR keeps its last valid
records in force (the reload promise the files source keeps too) and adds a problem.
Nothing here talks to the Kubernetes API: kopf does, in ``operator``.
"""

from __future__ import annotations

import asyncio
import threading

from reconciler.core.model import Record
from reconciler.core.triggers import Wakeup
from reconciler.sources import Snapshot


class KubernetesSource:
    """Records of ServiceRecord CRs, by ``namespace/name``, and of annotated Services, by
    ``service/namespace/name``; safe to use from any thread."""

    name = "kubernetes"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, tuple[Record, ...]] = {}
        self._problems: dict[str, str] = {}

    def put(self, key: str, records: tuple[Record, ...]) -> bool:
        """Hold ``records`` for the CR ``key`` and forget its problem; True when the
        desired records changed (so the loop needs a pass)."""
        with self._lock:
            self._problems.pop(key, None)
            changed = self._records.get(key) != records
            self._records[key] = records
            return changed

    def invalid(self, key: str, problem: str) -> None:
        """Note that the CR ``key`` is invalid now; its last valid records stay."""
        with self._lock:
            self._problems[key] = problem

    def remove(self, key: str) -> bool:
        """Forget the CR ``key``; True when it held records."""
        with self._lock:
            self._problems.pop(key, None)
            return self._records.pop(key, None) is not None

    def records_of(self, key: str) -> tuple[Record, ...]:
        """The records held for the CR ``key`` (empty when none)."""
        with self._lock:
            return self._records.get(key, ())

    def load(self, full: bool = False) -> Snapshot:
        """Every held record, a group per CR (the loop diffs them: unchanged CRs cost
        nothing downstream)."""
        with self._lock:
            groups = dict(self._records)
            problems = tuple(
                f"{key if key.startswith('service/') else 'servicerecord ' + key}: {problem}"
                for key, problem in sorted(self._problems.items())
            )
        return Snapshot(groups, True, problems)

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        """Nothing to watch: the kopf handlers wake the loop. Returns when ``stop`` is set."""
        await stop.wait()
