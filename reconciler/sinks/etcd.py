"""etcd in the SkyDNS / CoreDNS-etcd layout, under one lease per dockzone instance.

The sink publishes this instance's records, not the aggregated zones: CoreDNS and SkyDNS
aggregate by key prefix themselves. It recovers the records from the desired zones'
provenance (``skydns.entries_from_zones``: RRs at each record's own name, never records
learned from etcd), so it needs nothing besides the plan's zones.

Every key it writes ends in ``<instance>-<digest>`` (``ownership.key_id``) and is attached
to the instance's lease; ``current()`` reads the prefix and keeps only those keys, so other
hosts' keys are never touched. ``apply()`` puts the keys whose value or lease differ and
deletes the instance's keys nobody wants any more: the diff, not a rewrite. The lease
(``--etcd-lease-ttl``) is kept alive by a task while the daemon runs; a crashed host's keys
expire with it. When the lease is found gone, a new one is granted and the keys re-put on
the next pass. Built by ``daemon.make_sinks`` for ``--etcd``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from reconciler.core import names
from reconciler.core.model import ZoneContent, ZoneSet
from reconciler.core.ownership import is_own_key
from reconciler.core.plan import Changes
from reconciler.etcdclient import EtcdClient, EtcdError, KeyValue
from reconciler.skydns import Entry, discover_entries, entries_from_zones, name_from_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EtcdSinkConfig:
    """The key prefix, the instance id in every key, the lease TTL and the optional
    totem/discover prefix."""

    prefix: str
    instance: str
    lease_ttl: int = 30
    discover_prefix: str = ""


class EtcdSink:
    """This instance's records as SkyDNS entries in etcd."""

    name = "etcd"

    def __init__(self, client: EtcdClient, config: EtcdSinkConfig) -> None:
        self.client = client
        self.config = config
        self.lease = 0
        self._desired: dict[str, ZoneContent] = {}
        self._held: dict[str, KeyValue] = {}
        self._keepalive: asyncio.Task[None] | None = None

    def entries(self, zones: ZoneSet) -> dict[str, Entry]:
        """Every key this instance should hold for ``zones``."""
        config = self.config
        entries = entries_from_zones(zones, config.prefix, config.instance)
        if config.discover_prefix:
            entries.update(
                discover_entries(list(entries.values()), config.discover_prefix, config.instance)
            )
        return entries

    async def current(self) -> ZoneSet:
        """The desired zones last applied, minus every zone whose keys in etcd differ."""
        if not self.lease:
            self.lease = await asyncio.to_thread(self.client.lease_grant, self.config.lease_ttl)
            log.info("etcd lease %x granted (TTL %ds)", self.lease, self.config.lease_ttl)
        self._start_keepalive()
        held: dict[str, KeyValue] = {}
        for prefix in filter(None, (self.config.prefix, self.config.discover_prefix)):
            _, kvs = await asyncio.to_thread(self.client.range_prefix, prefix + "/")
            held.update((kv.key, kv) for kv in kvs if is_own_key(kv.key, self.config.instance))
        self._held = held
        wanted = self.entries(self._desired)
        dirty: set[str] = set()
        for key in set(wanted) | set(held):
            entry, kv = wanted.get(key), held.get(key)
            if entry is not None and kv is not None and self._same(entry, kv):
                continue
            name = entry.name if entry is not None else _name_of(key, self.config.prefix)
            origin = names.zone_for(name, list(self._desired)) if name else None
            if origin is None:
                return {}  # a stale key outside every zone: let apply see everything
            dirty.add(origin)
        return {o: z for o, z in self._desired.items() if o not in dirty}

    def _same(self, entry: Entry, kv: KeyValue) -> bool:
        return entry.value == kv.value and kv.lease == self.lease

    async def apply(self, changes: Changes) -> None:
        if changes.is_empty:
            return
        self._desired = changes.applied_to(self._desired)
        wanted = self.entries(self._desired)
        put = delete = 0
        for key, entry in sorted(wanted.items()):
            kv = self._held.get(key)
            if kv is None or not self._same(entry, kv):
                await asyncio.to_thread(self.client.put, key, entry.value, self.lease)
                put += 1
        for key in sorted(set(self._held) - set(wanted)):
            await asyncio.to_thread(self.client.delete, key)
            delete += 1
        if put or delete:
            log.info("etcd %s: %d keys put, %d deleted", self.client.where, put, delete)

    def _start_keepalive(self) -> None:
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        """Refresh the lease every third of its TTL; forget it when etcd says it is gone
        (the next pass grants a new one and re-puts the keys)."""
        interval = max(0.5, self.config.lease_ttl / 3)
        with contextlib.suppress(asyncio.CancelledError):
            while self.lease:
                await asyncio.sleep(interval)
                lease = self.lease
                try:
                    ttl = await asyncio.to_thread(self.client.lease_keepalive, lease)
                except EtcdError as exc:
                    log.warning("etcd lease %x keepalive failed: %s", lease, exc)
                    continue
                if ttl <= 0 and self.lease == lease:
                    log.warning("etcd lease %x expired; granting a new one next pass", lease)
                    self.lease = 0


def _name_of(key: str, prefix: str) -> str | None:
    return name_from_key(prefix, key.rpartition("/")[0])
