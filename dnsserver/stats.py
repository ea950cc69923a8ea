"""Query statistics kept by the DNS server as plain integers, summed on demand.

The hot path must stay a few integer increments: each UDP serving thread owns one
`Counters` object and is its only writer, so no lock is taken per query. TCP connections
and forwarded queries (which run on other threads) share one `Counters` behind a lock.
`DNSService.stats()` sums every `Counters` into a `DNSStats` value; the reconciler's
metrics collector reads that at scrape time (dnsserver never imports a metrics library).

A response is counted once in an *outcome* slot: (response size, cause). The few distinct
pairs are numbered per `Counters` as they appear, so a cached answer carries its slot
number and a hit costs one list increment; sizes and causes are recovered when summing.
A response that response rate limiting dropped or slipped is still counted in its outcome
slot (the query was made, and that is the answer it got or would have got), and also in
`limited` (indexed by the `dnsserver.rrl` verdict).
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

SIZE_BUCKETS = (0, 512, 1024, 1500, 2048, 4096, 8192, 16384, 32768, 65536)
"""Upper bounds (bytes) of the response size histogram, SkyDNS's first buckets."""

DURATION_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Upper bounds (seconds) of the request duration histogram."""

_DURATION_NS = tuple(int(bound * 1e9) for bound in DURATION_BUCKETS)

CAUSES = ("", "nxdomain", "nodata", "refused", "servfail", "formerr", "notimp", "truncated")
"""Error causes of a response; "" is a response without error."""

_RCODE_CAUSE = {1: 5, 2: 4, 3: 1, 4: 6, 5: 3}


def cause_of(wire: bytes) -> int:
    """The index in `CAUSES` of a response message: truncated (TC) first, then the rcode;
    NOERROR with an empty answer section is NODATA."""
    if len(wire) < 12:
        return 0
    if wire[2] & 0x02:
        return 7
    rcode = wire[3] & 0x0F
    if rcode == 0:
        return 2 if wire[6] == 0 and wire[7] == 0 else 0
    return _RCODE_CAUSE.get(rcode, 0)


class Counters:
    """The statistics of one writer (a UDP thread), or of several behind `lock`."""

    __slots__ = (
        "dropped",
        "duration",
        "duration_ns",
        "limited",
        "lock",
        "misses",
        "outcomes",
        "slot_keys",
        "slots",
        "transport",
    )

    def __init__(self, transport: str, *, shared: bool = False) -> None:
        self.transport = transport
        self.outcomes: list[int] = []
        self.slots: dict[tuple[int, int], int] = {}
        self.slot_keys: list[tuple[int, int]] = []
        self.misses = 0
        self.dropped = 0
        self.duration = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_ns = 0
        self.limited = [0, 0, 0]
        """Responses rate limiting held back, by verdict: [unused, dropped, slipped]."""
        self.lock = threading.Lock() if shared else None

    def slot(self, wire: bytes) -> int:
        """The outcome slot of a response (numbered on first sight); call on the writer's
        thread (or holding `lock`)."""
        key = (len(wire), cause_of(wire))
        found = self.slots.get(key)
        if found is None:
            found = len(self.slot_keys)
            self.slot_keys.append(key)
            self.outcomes.append(0)
            self.slots[key] = found
        return found

    def answered(self, wire: bytes | None, elapsed_ns: int) -> None:
        """Count one response that was built (not served from the cache), and its time."""
        if wire is None:
            self.dropped += 1
        else:
            self.outcomes[self.slot(wire)] += 1
        self.duration[bisect.bisect_left(_DURATION_NS, elapsed_ns)] += 1
        self.duration_ns += elapsed_ns

    def answered_locked(self, wire: bytes | None, elapsed_ns: int) -> None:
        """`answered` for a shared object."""
        assert self.lock is not None
        with self.lock:
            self.answered(wire, elapsed_ns)


@dataclass(slots=True)
class DNSStats:
    """Every counter of a `DNSService`, summed over its threads (per transport where the
    metric has a ``type`` label)."""

    requests: dict[str, int] = field(default_factory=dict)
    cache_misses: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CAUSES[1:], 0))
    sizes: dict[str, list[int]] = field(default_factory=dict)
    """Per transport: response counts per `SIZE_BUCKETS` bound, plus one over the last."""
    size_sum: dict[str, int] = field(default_factory=dict)
    durations: dict[str, list[int]] = field(default_factory=dict)
    """Per transport: timed requests per `DURATION_BUCKETS` bound, plus one over the last."""
    duration_sum: dict[str, float] = field(default_factory=dict)
    rrl_dropped: int = 0
    """UDP responses response rate limiting dropped (not sent at all)."""
    rrl_slipped: int = 0
    """UDP responses it replaced by a truncated reply (a slip)."""
    transfers: dict[str, int] = field(default_factory=dict)
    """Zone transfer requests by outcome (`dnsserver.transfer.TransferCounts`)."""
    notifies: dict[str, int] = field(default_factory=dict)
    """NOTIFY messages sent, acknowledged, given up (`dnsserver.notify.NotifyCounts`)."""

    def add(self, counters: Counters) -> None:
        """Add one writer's counters (read without its lock: counts only grow, and a
        scrape that is one query behind is fine)."""
        transport = counters.transport
        outcomes = list(counters.outcomes)
        keys = counters.slot_keys[: len(outcomes)]
        sizes = self.sizes.setdefault(transport, [0] * (len(SIZE_BUCKETS) + 1))
        total = counters.dropped
        size_sum = 0
        for (size, cause), count in zip(keys, outcomes, strict=True):
            if not count:
                continue
            total += count
            size_sum += size * count
            sizes[bisect.bisect_left(SIZE_BUCKETS, size)] += count
            if cause:
                self.errors[CAUSES[cause]] += count
        self.requests[transport] = self.requests.get(transport, 0) + total
        self.size_sum[transport] = self.size_sum.get(transport, 0) + size_sum
        self.cache_misses += counters.misses
        self.rrl_dropped += counters.limited[1]
        self.rrl_slipped += counters.limited[2]
        durations = self.durations.setdefault(transport, [0] * (len(DURATION_BUCKETS) + 1))
        for number, count in enumerate(list(counters.duration)):
            durations[number] += count
        self.duration_sum[transport] = (
            self.duration_sum.get(transport, 0.0) + counters.duration_ns / 1e9
        )
