"""Prometheus metrics with SkyDNS's names, read at scrape time.

Nothing here runs per query: the DNS server keeps plain integer counters
(``DNSService.stats()``), the loop hands each ``PassReport`` to ``ReconcileStats.observe``,
and ``DockzoneCollector.collect`` turns both into metric families when ``/metrics`` is
scraped. Names are ``<namespace>_<subsystem>_<name>`` (empty parts left out): with the
defaults ``dockzone_dns_request_count_total``; ``--metrics-namespace skydns
--metrics-subsystem skydns`` gives SkyDNS's own ``skydns_skydns_dns_request_count_total``.
Used by the HTTP API (``api.py``) and wired by ``daemon.run``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from dnsserver import DNSStats
from dnsserver.stats import DURATION_BUCKETS, SIZE_BUCKETS
from reconciler.loop import PassReport

PASS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (seconds) of the reconcile pass duration histogram."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ReconcileStats:
    """Counts of the loop's passes, fed by ``Reconciler.on_report``."""

    def __init__(self) -> None:
        self.passes = 0
        self.errors = 0
        self.changed = 0
        self.durations = [0] * (len(PASS_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.repairs: dict[str, int] = {"source": 0, "index": 0}

    def observe(self, report: PassReport) -> None:
        self.passes += 1
        for layer, count in report.repairs.items():
            self.repairs[layer] = self.repairs.get(layer, 0) + count
        self.errors += len(report.errors)
        self.changed += report.changed
        self.durations[bisect.bisect_left(PASS_BUCKETS, report.seconds)] += 1
        self.duration_sum += report.seconds


@dataclass(frozen=True, slots=True)
class ZoneFigures:
    """One zone as the gauges show it."""

    serial: int
    records: int


@dataclass(slots=True)
class Sources:
    """Where the collector reads the daemon's state (each callable is cheap and blocking)."""

    dns: Callable[[], DNSStats | None]
    reconcile: ReconcileStats
    records: Callable[[], Mapping[str, int]]
    """Records per source name."""
    zones: Callable[[], Mapping[str, ZoneFigures]]
    held: Callable[[], Mapping[str, int]] = dict
    """Records per source that the deletion budget holds back from removal."""
    signatures: Callable[[], int] = int
    """DNSSEC signatures made since start (0 without --dnssec)."""


def _buckets(bounds: Iterable[float], counts: list[int]) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets from per-bucket counts (the last is +Inf)."""
    result: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=True):
        total += count
        result.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
    return result


class DockzoneCollector(Collector):
    """Every dockzone metric, computed from ``sources`` at each scrape."""

    def __init__(self, sources: Sources, namespace: str = "dockzone", subsystem: str = "") -> None:
        self.sources = sources
        self.prefix = "".join(f"{part}_" for part in (namespace, subsystem) if part)

    def collect(self) -> Iterable[Metric]:
        yield from self._dns()
        yield from self._reconcile()
        yield from self._state()

    def _dns(self) -> Iterable[Metric]:
        p = self.prefix
        stats = self.sources.dns() or DNSStats()
        requests = CounterMetricFamily(
            f"{p}dns_request_count_total",
            "Counter of DNS requests made.",
            labels=["type"],
        )
        for transport in ("udp", "tcp"):
            requests.add_metric([transport], stats.requests.get(transport, 0))
        yield requests
        duration = HistogramMetricFamily(
            f"{p}dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took to resolve; answers served "
            "from the response cache are not timed.",
            labels=["type"],
        )
        for transport in ("udp", "tcp"):
            counts = stats.durations.get(transport, [0] * (len(DURATION_BUCKETS) + 1))
            duration.add_metric(
                [transport],
                _buckets(DURATION_BUCKETS, counts),
                stats.duration_sum.get(transport, 0.0),
            )
        yield duration
        size = HistogramMetricFamily(
            f"{p}dns_response_size_bytes",
            "Size of the returned response in bytes.",
            labels=["type"],
        )
        for transport in ("udp", "tcp"):
            counts = stats.sizes.get(transport, [0] * (len(SIZE_BUCKETS) + 1))
            size.add_metric(
                [transport], _buckets(SIZE_BUCKETS, counts), stats.size_sum.get(transport, 0)
            )
        yield size
        errors = CounterMetricFamily(
            f"{p}dns_error_count_total",
            "Counter of DNS requests resulting in an error.",
            labels=["cause"],
        )
        for cause, count in stats.errors.items():
            errors.add_metric([cause], count)
        yield errors
        misses = CounterMetricFamily(
            f"{p}dns_cachemiss_count_total",
            "Counter of DNS requests that missed the response cache.",
            labels=["cache"],
        )
        misses.add_metric(["response"], stats.cache_misses)
        yield misses
        limited = CounterMetricFamily(
            f"{p}dns_rrl_count_total",
            "Counter of UDP responses response rate limiting (--rrl) held back: dropped "
            "(nothing sent) or slipped (a truncated reply sent instead, so the client "
            "retries over TCP). They are also counted in the request, size and error "
            "metrics as the response they would have been.",
            labels=["action"],
        )
        limited.add_metric(["dropped"], stats.rrl_dropped)
        limited.add_metric(["slipped"], stats.rrl_slipped)
        yield limited
        transfers = CounterMetricFamily(
            f"{p}dns_transfer_count_total",
            "Counter of zone transfer requests and signed queries by outcome: axfr, ixfr "
            "(whole zone), ixfr_journal (the difference, from the journal), ixfr_current "
            "(SOA only), refused, bad_tsig, signed.",
            labels=["result"],
        )
        for result, count in stats.transfers.items():
            transfers.add_metric([result], count)
        yield transfers
        notifies = CounterMetricFamily(
            f"{p}dns_notify_count_total",
            "Counter of NOTIFY messages to secondaries: sent, acknowledged, failed.",
            labels=["result"],
        )
        for result, count in stats.notifies.items():
            notifies.add_metric([result], count)
        yield notifies
        yield CounterMetricFamily(
            f"{p}dnssec_signatures_total",
            "DNSSEC signatures (RRSIG records) made since start: when RRsets change, when "
            "signatures come due, when keys change; never per query.",
            value=self.sources.signatures(),
        )

    def _reconcile(self) -> Iterable[Metric]:
        p = self.prefix
        stats = self.sources.reconcile
        yield CounterMetricFamily(
            f"{p}reconcile_passes_total", "Reconcile passes run.", value=stats.passes
        )
        yield CounterMetricFamily(
            f"{p}reconcile_changed_passes_total",
            "Reconcile passes that changed a sink.",
            value=stats.changed,
        )
        yield CounterMetricFamily(
            f"{p}reconcile_errors_total",
            "Errors reported by reconcile passes (a sink that failed to apply).",
            value=stats.errors,
        )
        repairs = CounterMetricFamily(
            f"{p}resync_repairs_total",
            "Differences a full pass found between the incremental state and a recompute "
            "from scratch, by layer (source: a change a source did not report; index: a "
            "name the incremental index got wrong). Anything but 0 is a bug.",
            labels=["layer"],
        )
        for layer, count in sorted(stats.repairs.items()):
            repairs.add_metric([layer], count)
        yield repairs
        duration = HistogramMetricFamily(
            f"{p}reconcile_duration_seconds", "Histogram of reconcile pass durations."
        )
        duration.add_metric([], _buckets(PASS_BUCKETS, stats.durations), stats.duration_sum)
        yield duration

    def _state(self) -> Iterable[Metric]:
        p = self.prefix
        records = GaugeMetricFamily(
            f"{p}source_records", "Records each source defines.", labels=["source"]
        )
        for name, count in sorted(self.sources.records().items()):
            records.add_metric([name], count)
        yield records
        held = GaugeMetricFamily(
            f"{p}source_deletions_held",
            "Records of each source a held-back read would remove (--max-delete-fraction); "
            "0 when nothing is held.",
            labels=["source"],
        )
        for name, count in sorted(self.sources.held().items()):
            held.add_metric([name], count)
        yield held
        zones = self.sources.zones()
        serials = GaugeMetricFamily(f"{p}zone_serial", "SOA serial of each zone.", labels=["zone"])
        counts = GaugeMetricFamily(
            f"{p}zone_records", "Resource records in each zone, SOA included.", labels=["zone"]
        )
        for origin, figures in sorted(zones.items()):
            serials.add_metric([origin], figures.serial)
            counts.add_metric([origin], figures.records)
        yield serials
        yield counts


def make_registry(collector: DockzoneCollector) -> CollectorRegistry:
    """A private registry holding only dockzone's collector (no process or GC metrics of
    the global default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)
