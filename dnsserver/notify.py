"""NOTIFY (RFC 1996): tell secondaries when a served zone's serial changes.

`Notifier` watches a `ZoneStore` (`ZoneStore.subscribe`: a swap only sets an event) and,
on its own thread, compares each zone's serial with the last one it announced. For each
change it sends a NOTIFY to every target from a few worker threads of that target's (a
secondary that is down, whose NOTIFYs wait out every retry, holds up no other; the
workers are daemon threads, so a retry waiting on a stopped secondary never holds up the
process's exit), signed
with the key when there is one, and retries with a doubling timeout (1, 2, 4, 8, 16 s,
as BIND retries five times) until the target acknowledges; a retry stops early when the
zone's serial has changed again (the newer NOTIFY takes over). At start every served zone
is announced, so secondaries catch up after a restart. Used by `DNSService` when given
targets.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnsserver.transfer import TransferKey
from dnsserver.zone import Zone
from dnsserver.zonestore import ZoneIndex, ZoneStore

log = logging.getLogger(__name__)

ATTEMPTS = 5
FIRST_TIMEOUT = 1.0
WORKERS = 4  # per target


@dataclass(slots=True)
class NotifyCounts:
    """NOTIFY messages since start: sent (each attempt), acknowledged, given up."""

    sent: int = 0
    acknowledged: int = 0
    failed: int = 0


class Notifier:
    """Sends NOTIFY for `store`'s zones to `targets` ((address, port) pairs)."""

    def __init__(
        self,
        store: ZoneStore,
        targets: Sequence[tuple[str, int]],
        key: TransferKey | None = None,
        *,
        attempts: int = ATTEMPTS,
        first_timeout: float = FIRST_TIMEOUT,
    ) -> None:
        self.store = store
        self.targets = tuple(targets)
        self.key = key
        self.attempts = attempts
        self.first_timeout = first_timeout
        self.counts = NotifyCounts()
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._announced: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._queues: dict[tuple[str, int], queue.SimpleQueue[Zone | None]] = {}

    def start(self) -> None:
        self._stopping.clear()
        self._queues = {}
        for target in self.targets:
            work: queue.SimpleQueue[Zone | None] = queue.SimpleQueue()
            self._queues[target] = work
            for _ in range(WORKERS):
                threading.Thread(
                    target=self._work, args=(target, work), name="dns-notify", daemon=True
                ).start()
        self.store.subscribe(self._on_swap)
        self._changed.set()  # announce every zone now
        self._thread = threading.Thread(target=self._run, name="dns-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()
        self.store.unsubscribe(self._on_swap)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for work in self._queues.values():
            for _ in range(WORKERS):
                work.put(None)
        self._queues = {}

    def _on_swap(self, _: ZoneIndex) -> None:
        self._changed.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._changed.wait()
            self._changed.clear()
            if self._stopping.is_set():
                return
            # Forward zones first: a secondary paces its SOA checks (BIND's serial-query-rate
            # lets ten through per half second), and the names people ask for come first.
            for zone in sorted(self.store.snapshot(), key=_reverse_last):
                if self._announced.get(zone.origin) == zone.serial:
                    continue
                self._announced[zone.origin] = zone.serial
                for work in self._queues.values():
                    work.put(zone)

    def _work(self, target: tuple[str, int], work: queue.SimpleQueue[Zone | None]) -> None:
        while (zone := work.get()) is not None:
            if not self._stopping.is_set():
                self._notify(zone, target)

    def _current(self, zone: Zone) -> bool:
        return self._announced.get(zone.origin) == zone.serial

    def _notify(self, zone: Zone, target: tuple[str, int]) -> None:
        """Send one zone's NOTIFY to one target until acknowledged, retrying."""
        timeout = self.first_timeout
        host, port = target
        for attempt in range(1, self.attempts + 1):
            if self._stopping.is_set() or not self._current(zone):
                return
            message = self._message(zone)
            try:
                self._count("sent")
                response = dns.query.udp(message, host, port=port, timeout=timeout)
            except (OSError, dns.exception.DNSException) as exc:
                log.debug(
                    "NOTIFY %s serial %d to %s:%d, attempt %d: %s",
                    zone.origin,
                    zone.serial,
                    host,
                    port,
                    attempt,
                    exc,
                )
                timeout *= 2
                continue
            if response.rcode() == dns.rcode.NOERROR:
                self._count("acknowledged")
                log.debug(
                    "NOTIFY %s serial %d acknowledged by %s:%d",
                    zone.origin,
                    zone.serial,
                    host,
                    port,
                )
                return
            self._count("failed")
            log.warning(
                "NOTIFY %s serial %d to %s:%d answered %s",
                zone.origin,
                zone.serial,
                host,
                port,
                dns.rcode.to_text(response.rcode()),
            )
            return
        self._count("failed")
        log.warning(
            "NOTIFY %s serial %d to %s:%d: no answer after %d attempts",
            zone.origin,
            zone.serial,
            host,
            port,
            self.attempts,
        )

    def _message(self, zone: Zone) -> dns.message.Message:
        """A NOTIFY for `zone` with its SOA in the answer section (RFC 1996 3.7)."""
        message = dns.message.make_query(zone.origin, dns.rdatatype.SOA)
        message.set_opcode(dns.opcode.NOTIFY)
        message.flags = (message.flags & ~dns.flags.RD) | dns.flags.AA
        rdata = zone.soa.rdatas[0]
        soa = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.SOA, rdata, 0, len(rdata))
        message.answer.append(dns.rrset.from_rdata(zone.origin, zone.soa.ttl, soa))
        if self.key is not None:
            message.use_tsig(self.key.to_dnspython())
        return message

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self.counts, what, getattr(self.counts, what) + 1)


def _reverse_last(zone: Zone) -> tuple[bool, str]:
    return zone.origin.endswith((".in-addr.arpa.", ".ip6.arpa.")), zone.origin
