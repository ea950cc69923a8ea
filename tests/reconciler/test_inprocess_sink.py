"""The in-process sink against a zone built whole: after patches of a big aggregated RRset
(where only the new texts are converted), the server holds exactly what a fresh build of the
same zone holds."""

from __future__ import annotations

import asyncio
import dataclasses

from dnsserver import Zone, ZoneStore
from reconciler.core.index import RecordIndex
from reconciler.core.model import Owner, ServiceRecord, ZoneSettings
from reconciler.sinks.inprocess import BIG_RRSET, InProcessSink, zone_records

SETTINGS = ZoneSettings(domains=("docker.",))


def _service(n: int, host: str) -> ServiceRecord:
    owner = Owner("file", f"svc-{n}", f"services.yaml#{n}")
    return ServiceRecord(f"web-{n}.east.docker.", "docker.", owner, host=host)


def _served_equals_fresh(sink: InProcessSink, store: ZoneStore, index: RecordIndex) -> None:
    for origin, content in index.zones.items():
        served = store.snapshot().zones[origin]
        fresh = Zone.from_records(origin, zone_records(content, served.serial))
        assert sorted(served.rrsets()) == sorted(fresh.rrsets()), origin


def test_patched_aggregates_equal_a_fresh_build() -> None:
    count = BIG_RRSET * 2
    records = {n: _service(n, f"10.0.{n // 200}.{n % 200 + 1}") for n in range(count)}
    index = RecordIndex(SETTINGS)
    store = ZoneStore()
    sink = InProcessSink(store, clock=lambda: 1_700_000_000)

    def step(groups: dict[str, tuple[ServiceRecord, ...]]) -> None:
        index.update(groups)
        asyncio.run(sink.apply(index.commit()))
        _served_equals_fresh(sink, store, index)

    step({str(n): (record,) for n, record in records.items()})
    east = store.snapshot().zones["docker."].get("east.docker.", 1)
    assert east is not None
    assert len(east.rdatas) == count
    # one address changes, one record goes, one comes: the aggregate follows each time
    moved = dataclasses.replace(records[3], host="10.9.9.9")
    step({"3": (moved,)})
    assert ("docker.", "east.docker.", "A") in sink._big  # the next patches reuse its wire
    step({"4": ()})
    step({str(count): (_service(count, "10.8.8.8"),)})
    # below the threshold the RRset is converted whole again; still the same data
    step({str(n): () for n in range(10, count)})
    east = store.snapshot().zones["docker."].get("east.docker.", 1)
    assert east is not None
    assert len(east.rdatas) == 10
