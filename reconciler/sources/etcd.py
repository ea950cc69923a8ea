"""Records other hosts published in etcd's SkyDNS layout, served by this instance too.

``load()`` reads every key under the prefix, skips this instance's own keys (its sink wrote
those from its own sources) and turns each other value into a ``ServiceRecord`` owned by
``etcd <key>``; entries outside this instance's zones or with bad values are reported as
problems. When etcd cannot be read, the last good records stay in force (``stale``).
``watch()`` polls the prefix and wakes the loop when any key changes (another host's
records, or this instance's keys expiring). Built by ``daemon.make_sources`` for ``--etcd``.
"""

from __future__ import annotations

import asyncio
import logging

from reconciler.core.model import ServiceRecord
from reconciler.core.ownership import is_own_key
from reconciler.core.triggers import Wakeup
from reconciler.etcdclient import EtcdClient, EtcdError, KeyValue
from reconciler.skydns import record_from_entry
from reconciler.sources import Snapshot

log = logging.getLogger(__name__)


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
        self._parsed: dict[str, tuple[int, ServiceRecord | None, str]] = {}
        """Per key: (mod_revision, record or None, problem); a key is parsed once per
        revision."""
        self._changed = True
        """The poller saw another writer's key change since the last read (or none yet)."""
        self._problems: tuple[str, ...] = ()

    def load(self, full: bool = False) -> Snapshot:
        """Every entry as a group of its own (key -> one record); only keys whose revision
        changed are parsed again. Between full passes the prefix is read only after the
        poller saw another writer's key change: otherwise nothing changed here (a pass
        woken by a definitions edit does not read 10,000 keys of this instance's own)."""
        if not full and not self._changed:
            return Snapshot({}, False, self._problems)
        self._changed = False
        try:
            _, kvs = self.client.range_prefix(self.prefix + "/")
        except EtcdError as exc:
            self._changed = True
            problem = f"etcd source: {exc} (keeping the last records)"
            return Snapshot({}, False, (problem,), True)
        parsed: dict[str, tuple[int, ServiceRecord | None, str]] = {}
        for kv in kvs:
            if is_own_key(kv.key, self.instance):
                continue
            known = self._parsed.get(kv.key)
            if known is not None and known[0] == kv.mod_revision and not full:
                parsed[kv.key] = known
                continue
            try:
                record = record_from_entry(kv.key, kv.value, self.prefix, self.zones)
                parsed[kv.key] = (kv.mod_revision, record, "")
            except ValueError as exc:
                parsed[kv.key] = (kv.mod_revision, None, f"etcd {kv.key}: {exc} (entry skipped)")
        self._parsed = parsed
        groups = {key: (record,) if record else () for key, (_, record, _) in parsed.items()}
        problems = tuple(problem for _, _, problem in parsed.values() if problem)
        self._problems = problems
        return Snapshot(groups, True, problems)

    def _fingerprint(self) -> frozenset[tuple[str, int]] | None:
        try:
            _, kvs = self.client.range_prefix(self.prefix + "/", keys_only=True)
        except EtcdError as exc:
            log.debug("etcd poll: %s", exc)
            return None
        # this instance's own keys are the sink's writes: they must not wake the loop
        return frozenset(_version(kv) for kv in kvs if not is_own_key(kv.key, self.instance))

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        """Every ``poll_interval`` seconds, compare the other writers' keys and revisions
        (keys only) with what the last read took; wake the loop when they differ."""
        while True:
            current = await asyncio.to_thread(self._fingerprint)
            if current is not None and current != self._taken():
                self._changed = True
                wakeup.set("etcd")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.poll_interval)
            except TimeoutError:
                continue
            return

    def _taken(self) -> frozenset[tuple[str, int]]:
        return frozenset((key, known[0]) for key, known in self._parsed.items())


def _version(kv: KeyValue) -> tuple[str, int]:
    return kv.key, kv.mod_revision
