"""etcd in the SkyDNS / CoreDNS-etcd layout, under one lease per dockzone instance.

The sink publishes this instance's records, not the aggregated zones: CoreDNS and SkyDNS
aggregate by key prefix themselves. It recovers the records from the desired zones'
provenance (``skydns.entries_at``: RRs at each record's own name, never records learned
from etcd), so it needs nothing besides the plan's zones.

Every key it writes ends in ``<instance>-<digest>`` (``ownership.key_id``) and is attached
to the instance's lease; other hosts' keys are never touched. ``current()`` reads the
prefix (one range request) and keeps this instance's keys, indexed by the DNS name each
serves; the loop calls it on the first pass, after a failure and on full passes (resync,
SIGHUP), which is where keys changed or removed by someone else are repaired. Between
those, ``apply()`` looks only at the names the plan changed: it computes their entries,
puts the keys whose value or lease differ and deletes the instance's keys there that
nobody wants any more, in one transaction (etcd's ``/v3/kv/txn``, up to 128 operations
each), keeping what it holds up to date as it goes. So a one-record change costs one
request, not a range over the prefix and a recompute of every zone.

The lease (``--etcd-lease-ttl``) is kept alive by a task while the daemon runs; a crashed
host's keys expire with it. When etcd says the lease is gone (etcd was unreachable for
longer than the TTL), that task grants a new one and puts every key again at once, without
waiting for a pass. Built by ``daemon.make_sinks`` for ``--etcd``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from reconciler.core import names
from reconciler.core.model import RRset, ZoneContent, ZoneSet
from reconciler.core.ownership import is_own_key
from reconciler.core.plan import Changes
from reconciler.etcdclient import EtcdClient, EtcdError, KeyValue
from reconciler.skydns import (
    DISCOVER_REALM,
    Entry,
    discover_entries,
    discover_id,
    entries_at,
    entries_from_zones,
    is_discover_key,
    name_from_key,
)

log = logging.getLogger(__name__)

MAX_TXN_OPS = 128
"""Operations per etcd transaction (etcd's default ``--max-txn-ops``)."""

STALE = '"dockzone: etcd keys nothing publishes"'
"""The TXT ``current()`` shows at a name where etcd holds keys of this instance that no
record wants (so the plan names it and ``apply`` deletes them)."""


@dataclass(frozen=True, slots=True)
class EtcdSinkConfig:
    """The key prefix, the instance id in every key, the lease TTL and the optional
    totem/discover prefix and realm."""

    prefix: str
    instance: str
    lease_ttl: int = 30
    discover_prefix: str = ""
    discover_realm: str = DISCOVER_REALM


class EtcdSink:
    """This instance's records as SkyDNS entries in etcd."""

    name = "etcd"

    def __init__(self, client: EtcdClient, config: EtcdSinkConfig) -> None:
        self.client = client
        self.config = config
        self.lease = 0
        self._desired: dict[str, ZoneContent] = {}
        self._held: dict[str, KeyValue] = {}
        self._keys: dict[str, set[str]] = {}
        """Held keys by the DNS name they serve ("" for a key that names none)."""
        self._names: dict[str, str] = {}
        """DNS names by entry id: a totem/discover key names its DNS name only through the
        SkyDNS entry with the same id (its path holds a realm, not the name). Made afresh
        by every read, so it does not grow with the records that came and went."""
        self._pending: set[str] = set()
        """Names the last read found different from the desired records."""
        self._keepalive: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def entries(self, zones: ZoneSet) -> dict[str, Entry]:
        """Every key this instance should hold for ``zones``."""
        config = self.config
        entries = entries_from_zones(zones, config.prefix, config.instance)
        return self._with_discover(entries)

    def _entries_for(self, wanted: Iterable[str]) -> dict[str, Entry]:
        """The keys this instance should hold for the ``wanted`` names of the desired
        zones."""
        config = self.config
        origins = frozenset(self._desired)
        by_origin: dict[str, list[str]] = {}
        for name in wanted:
            origin = names.zone_for(name, origins) if name else None
            if origin is not None:
                by_origin.setdefault(origin, []).append(name)
        entries: dict[str, Entry] = {}
        for origin, members in by_origin.items():
            content = self._desired[origin]
            entries.update(entries_at(content, members, config.prefix, config.instance))
        return self._with_discover(entries)

    def _with_discover(self, entries: dict[str, Entry]) -> dict[str, Entry]:
        config = self.config
        for entry in entries.values():
            self._names[discover_id(entry.key)] = entry.name
        if config.discover_prefix:
            entries.update(
                discover_entries(
                    list(entries.values()),
                    config.discover_prefix,
                    config.instance,
                    config.discover_realm,
                )
            )
        return entries

    # --- reading -------------------------------------------------------------------------

    async def current(self) -> ZoneSet:
        """The desired zones last applied, as etcd holds them: at each name whose keys
        differ, the RRsets are left out (or, where nothing should be, a TXT saying so), so
        the plan names exactly the names ``apply`` repairs."""
        async with self._lock:
            if not self.lease:
                await self._grant()
            self._start_keepalive()
            wanted = self.entries(self._desired)
            await self._read(wanted)
            drift: set[str] = set()
            for key in wanted.keys() | self._held.keys():
                entry, kv = wanted.get(key), self._held.get(key)
                if entry is not None and kv is not None and self._same(entry, kv):
                    continue
                drift.add(entry.name if entry is not None else self._name_of(key))
            self._pending = drift
            if drift and self._desired:
                log.info(
                    "etcd %s: keys of %d names differ from what dockzone published (%s); repairing",
                    self.client.where,
                    len(drift),
                    ", ".join(sorted(drift)[:5]),
                )
            return self._as_held(drift)

    def _as_held(self, drift: Collection[str]) -> ZoneSet:
        if not drift:
            return self._desired
        origins = frozenset(self._desired)
        by_origin: dict[str, list[str]] = {}
        for name in drift:
            origin = names.zone_for(name, origins) if name else None
            if origin is None:
                return {}  # a key outside every zone: the plan covers everything
            by_origin.setdefault(origin, []).append(name)
        result = dict(self._desired)
        for origin, members in by_origin.items():
            content = self._desired[origin]
            found = content.rrsets_at(members)
            changes: dict[tuple[str, str], RRset | None] = {}
            for name in members:
                for rrset in found.get(name, ()):
                    changes[(name, rrset.rdtype)] = None
                if name not in found:
                    changes[(name, "TXT")] = RRset(name, "TXT", 0, (STALE,))
            result[origin] = content.updated(changes, content.provenance)
        return result

    async def _read(self, wanted: dict[str, Entry]) -> None:
        """Read this instance's keys under both prefixes and index them by name (the ids of
        ``wanted`` and of the SkyDNS keys name the totem/discover keys)."""
        held: dict[str, KeyValue] = {}
        for prefix in filter(None, (self.config.prefix, self.config.discover_prefix)):
            _, kvs = await asyncio.to_thread(self.client.range_prefix, prefix + "/")
            held.update((kv.key, kv) for kv in kvs if is_own_key(kv.key, self.config.instance))
        self._held = held
        self._keys = {}
        self._names = {discover_id(entry.key): entry.name for entry in wanted.values()}
        for key in held:  # SkyDNS keys first: they name the discover keys with their id
            if not self._is_discover(key):
                self._keys.setdefault(self._name_of(key), set()).add(key)
        for key in held:
            if self._is_discover(key):
                self._keys.setdefault(self._name_of(key), set()).add(key)

    def _is_discover(self, key: str) -> bool:
        prefix = self.config.discover_prefix
        return bool(prefix) and is_discover_key(prefix, key)

    def _name_of(self, key: str) -> str:
        """The DNS name a key serves, "" when it names none."""
        if self._is_discover(key):
            return self._names.get(discover_id(key), "")
        name = name_from_key(self.config.prefix, key.rpartition("/")[0]) or ""
        if name:
            self._names[discover_id(key)] = name
        return name

    def _same(self, entry: Entry, kv: KeyValue) -> bool:
        return entry.value == kv.value and kv.lease == self.lease

    # --- writing -------------------------------------------------------------------------

    async def apply(self, changes: Changes) -> None:
        """Put and delete the keys of the names the plan changed (and of those the last
        read found different)."""
        async with self._lock:
            if changes.is_empty and not self._pending:
                return
            self._desired = changes.applied_to(self._desired)
            if not self.lease:  # the lease is gone, and every key with it
                await self._renew()
                return
            started = time.monotonic()
            dirty = {change.name for zone in changes.zones for change in zone.rrsets}
            dirty |= self._pending
            self._pending = set()
            await self._sync(self._entries_for(dirty), dirty, started)

    async def _sync(
        self, wanted: dict[str, Entry], at: Iterable[str], started: float | None = None
    ) -> None:
        """Make the held keys of the names ``at`` equal ``wanted`` (their entries)."""
        held = {key for name in at for key in self._keys.get(name, ())}
        puts = [
            entry
            for key, entry in sorted(wanted.items())
            if (kv := self._held.get(key)) is None or not self._same(entry, kv)
        ]
        deletes = sorted(held - wanted.keys())
        if not puts and not deletes:
            return
        begun = time.monotonic()
        done: list[tuple[str, Entry | None]] = []
        try:
            await asyncio.to_thread(self._write, puts, deletes, self.lease, done)
        except EtcdError as exc:
            if "lease not found" in str(exc):
                self.lease = 0  # revoked or expired: the next pass grants a new one
            raise
        finally:
            for key, entry in done:
                if entry is not None:
                    self._held[key] = KeyValue(key, entry.value, self.lease, 0)
                    self._keys.setdefault(entry.name, set()).add(key)
                else:
                    self._held.pop(key, None)
                    name = self._name_of(key)
                    keys = self._keys.get(name)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del self._keys[name]
            if done:
                put = sum(1 for _, entry in done if entry is not None)
                log.info(
                    "etcd %s: %d keys put, %d deleted (%.3fs)",
                    self.client.where,
                    put,
                    len(done) - put,
                    time.monotonic() - (started or begun),
                )

    def _write(
        self,
        puts: list[Entry],
        deletes: list[str],
        lease: int,
        done: list[tuple[str, Entry | None]],
    ) -> None:
        """Put and delete (in a thread) in transactions of up to ``MAX_TXN_OPS``: one
        request for a pass that changed a record (its new key put, its old one deleted),
        few for the first pass. Appends to ``done`` what succeeded."""
        ops: list[tuple[str, Entry | None]] = [(e.key, e) for e in puts]
        ops += [(key, None) for key in deletes]
        for start in range(0, len(ops), MAX_TXN_OPS):
            batch = ops[start : start + MAX_TXN_OPS]
            requests = [
                {"request_put": {"key": _b64(key), "value": _b64(entry.value), "lease": str(lease)}}
                if entry is not None
                else {"request_delete_range": {"key": _b64(key)}}
                for key, entry in batch
            ]
            self.client.call("/v3/kv/txn", {"success": requests})
            done.extend(batch)

    # --- the lease -----------------------------------------------------------------------

    async def _grant(self) -> None:
        self.lease = await asyncio.to_thread(self.client.lease_grant, self.config.lease_ttl)
        log.info("etcd lease %x granted (TTL %ds)", self.lease, self.config.lease_ttl)

    async def _renew(self) -> None:
        """A new lease, and every key put again under it (the old lease's keys are gone)."""
        await self._grant()
        wanted = self.entries(self._desired)
        await self._read(wanted)
        self._pending = set()
        await self._sync(wanted, set(self._keys) | {entry.name for entry in wanted.values()})

    def _start_keepalive(self) -> None:
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        """Refresh the lease every third of its TTL; when etcd says it is gone, grant a new
        one and put the keys again (retried every interval until etcd answers)."""
        interval = max(0.5, self.config.lease_ttl / 3)
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(interval)
                lease = self.lease
                if lease:
                    try:
                        ttl = await asyncio.to_thread(self.client.lease_keepalive, lease)
                    except EtcdError as exc:
                        log.warning("etcd lease %x keepalive failed: %s", lease, exc)
                        continue
                    if ttl > 0:
                        continue
                async with self._lock:
                    if self.lease != lease:
                        continue  # renewed meanwhile (by apply or current)
                    if lease:
                        log.warning("etcd lease %x expired; granting a new one", lease)
                        self.lease = 0
                    try:
                        await self._renew()
                    except EtcdError as exc:
                        self.lease = 0
                        log.warning("etcd %s: cannot publish again yet: %s", self.client.where, exc)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")
