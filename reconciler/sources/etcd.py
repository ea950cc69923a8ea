"""Records other hosts published in etcd's SkyDNS layout, served by this instance too.

The first ``load()`` (and every full one) reads every key under the prefix, skips this
instance's own keys (its sink wrote those from its own sources) and turns each other value
into a ``ServiceRecord`` owned by ``etcd <key>``; entries outside this instance's zones or
with bad values are reported as problems. When etcd cannot be read, the last good records
stay in force (``stale``).

``watch()`` follows the prefix with etcd's ``/v3/watch`` from the revision that read saw:
another writer's change is queued and wakes the loop at once, and the next ``load()``
applies just the queued keys (one parse per changed key, no read of the prefix). This
instance's own keys never wake it. When the watched revisions were compacted away, the
next load reads the prefix afresh; while etcd is unreachable the watch retries every
``poll_interval`` seconds and resumes where it stopped. Built by ``daemon.make_sources``
for ``--etcd``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from reconciler.core.model import ServiceRecord
from reconciler.core.ownership import is_own_key
from reconciler.core.triggers import Wakeup
from reconciler.etcdclient import EtcdClient, EtcdCompacted, EtcdError, KeyValue
from reconciler.skydns import record_from_entry
from reconciler.sources import Snapshot

log = logging.getLogger(__name__)

Parsed = tuple[int, ServiceRecord | None, str]
"""Per key: (mod_revision, record or None, problem)."""


class EtcdSource:
    """Other instances' (and other writers') SkyDNS entries under ``prefix``."""

    name = "etcd"

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        instance: str,
        zones: tuple[str, ...],
        poll_interval: float = 1.0,
    ) -> None:
        self.client = client
        self.prefix = prefix.rstrip("/")
        self.instance = instance
        self.zones = zones
        self.poll_interval = poll_interval
        self._parsed: dict[str, Parsed] = {}
        """Per key: what its value gave; a key is parsed once per revision."""
        self._problems: tuple[str, ...] = ()
        self._revision: int | None = None
        """The store revision of the last read of the whole prefix (None: none yet)."""
        self._fresh = True
        """The next load must read the whole prefix (first load, compacted watch)."""
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[KeyValue, bool]] = {}
        """Other writers' keys the watch saw change since the last load: (value, deleted)."""
        self._seen = 0
        """The highest store revision etcd reported (reads and watch messages)."""

    def details(self) -> dict[str, str]:
        """The store revision etcd last reported, and the changes the watch saw that the
        next pass takes (the source's lag behind etcd)."""
        with self._lock:
            waiting = len(self._pending)
        return {"revision": str(self._seen), "changes waiting": str(waiting)}

    def load(self, full: bool = False) -> Snapshot:
        """Every entry as a group of its own (key -> one record). A full load (and the
        first) reads the prefix; any other applies the keys the watch saw change."""
        if full or self._fresh:
            return self._read(full)
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return Snapshot({}, False, self._problems)
        groups: dict[str, tuple[ServiceRecord, ...]] = {}
        for key, (kv, deleted) in pending.items():
            if deleted:
                if self._parsed.pop(key, None) is not None:
                    groups[key] = ()
                continue
            parsed = self._parse(kv)
            self._parsed[key] = parsed
            groups[key] = (parsed[1],) if parsed[1] else ()
        self._problems = tuple(problem for _, _, problem in self._parsed.values() if problem)
        if not any(groups.values()) and not any(record for _, record, _ in self._parsed.values()):
            # Everything the source held went at once: say so as a whole read that came
            # back empty, which the deletion budget judges (a prefix wiped by mistake).
            return Snapshot(dict.fromkeys(self._parsed, ()), True, self._problems)
        return Snapshot(groups, False, self._problems)

    def _read(self, full: bool) -> Snapshot:
        try:
            revision, kvs = self.client.range_prefix(self.prefix + "/")
        except EtcdError as exc:
            problem = f"etcd source: {exc} (keeping the last records)"
            return Snapshot({}, False, (problem,), True)
        parsed: dict[str, Parsed] = {}
        for kv in kvs:
            if is_own_key(kv.key, self.instance):
                continue
            known = self._parsed.get(kv.key)
            if known is not None and known[0] == kv.mod_revision and not full:
                parsed[kv.key] = known
            else:
                parsed[kv.key] = self._parse(kv)
        with self._lock:
            # what the watch queued after this read stays for the next load
            self._pending = {
                key: change
                for key, change in self._pending.items()
                if change[0].mod_revision > revision
            }
        self._parsed = parsed
        self._revision = revision
        self._seen = max(self._seen, revision)
        self._fresh = False
        log.debug(
            "etcd source: read %d keys under %s/ at revision %d", len(kvs), self.prefix, revision
        )
        groups = {key: (record,) if record else () for key, (_, record, _) in parsed.items()}
        self._problems = tuple(problem for _, _, problem in parsed.values() if problem)
        return Snapshot(groups, True, self._problems)

    def _parse(self, kv: KeyValue) -> Parsed:
        try:
            return (
                kv.mod_revision,
                record_from_entry(kv.key, kv.value, self.prefix, self.zones),
                "",
            )
        except ValueError as exc:
            return (kv.mod_revision, None, f"etcd {kv.key}: {exc} (entry skipped)")

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        """Follow the prefix from the last read's revision; wake the loop for every change
        of another writer's key (see the module docstring)."""
        loop = asyncio.get_running_loop()
        cursor: int | None = None
        read: int | None = None
        while not stop.is_set():
            if self._revision is None or self._fresh:  # wait for a read to start from
                await _pause(stop, 0.05)
                continue
            if cursor is None or (read != self._revision and cursor <= self._revision):
                cursor = read = self._revision
                cursor += 1
            try:
                cursor = await asyncio.to_thread(self._follow, cursor, wakeup, loop)
            except EtcdCompacted as exc:
                log.info("%s; reading the prefix afresh", exc)
                self._fresh, cursor = True, None
                wakeup.set("etcd")
            except EtcdError as exc:
                log.debug("etcd watch: %s", exc)
                await _pause(stop, self.poll_interval)

    def _follow(self, cursor: int, wakeup: Wakeup, loop: asyncio.AbstractEventLoop) -> int:
        """One watch request (it ends after a second without news): queue other writers'
        changes and wake the loop; the revision to continue from."""
        for revision, changes in self.client.watch_prefix(self.prefix + "/", cursor):
            self._seen = max(self._seen, revision)
            theirs = {}
            for kv, deleted in changes:
                cursor = max(cursor, kv.mod_revision + 1)
                if not is_own_key(kv.key, self.instance):
                    theirs[kv.key] = (kv, deleted)
            if theirs:
                with self._lock:
                    self._pending.update(theirs)
                wakeup.set_threadsafe(loop, "etcd")
        return cursor


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
