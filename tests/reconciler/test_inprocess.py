"""The in-process server's sink: SkyDNS's CNAME for services whose host is a name, kept
right through whole builds, patches and a warm start (answers read with ``resolve``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dnsserver import ZoneStore, resolve
from dnsserver.rdata import AAAA, CNAME, SRV, A, rdata_target
from reconciler.core import plan
from reconciler.core.index import build
from reconciler.core.model import Owner, ServiceRecord, ZoneSettings
from reconciler.sinks.inprocess import InProcessSink
from reconciler.sinks.zonefiles import ZoneFileSink
from reconciler.warm import load_written_zones

SETTINGS = ZoneSettings(domains=("skydns.local.",))
ZONE = "skydns.local."


def service(object_name: str, name: str, host: str, **fields: object) -> ServiceRecord:
    owner = Owner("file", f"servicerecord/{object_name}", f"{object_name}.yaml#0")
    return ServiceRecord(name=name, zone=ZONE, owner=owner, host=host, **fields)  # type: ignore[arg-type]


RAILS = service(
    "rails", "1.rails.production.east.skydns.local.", "service1.example.com.", port=8080
)
INNER = service("inner", "2.rails.production.east.skydns.local.", "svc.skydns.local.", port=80)
SVC = service("svc", "svc.skydns.local.", "10.0.2.15")


def converge(sink: InProcessSink, records: list[ServiceRecord]) -> None:
    zones = build(records, SETTINGS).zones
    changes = plan.calculate(asyncio.run(sink.current()), zones)
    asyncio.run(sink.apply(changes))


def answer(store: ZoneStore, name: str, qtype: int = A) -> list[tuple[str, int, str]]:
    """(owner, type, target or address) of each answer RR, in order."""
    result = resolve(store.snapshot(), name, qtype)
    lines = []
    for rrset in result.answer:
        for rdata in rrset.rdatas:
            if rrset.rdtype == CNAME:
                lines.append((rrset.name, rrset.rdtype, str(rdata_target(CNAME, rdata))))
            else:
                lines.append((rrset.name, rrset.rdtype, rdata.hex()))
    if result.external:
        lines.append(("external", 0, result.external))
    return lines


def test_a_host_name_service_with_a_port_answers_a_with_a_cname() -> None:
    store = ZoneStore()
    sink = InProcessSink(store)
    converge(sink, [RAILS, INNER, SVC])  # the zone is built whole
    name = RAILS.name
    assert answer(store, name) == [
        (name, CNAME, "service1.example.com."),
        ("external", 0, "service1.example.com."),
    ]
    assert answer(store, name, AAAA)[0] == (name, CNAME, "service1.example.com.")
    assert [rrset.rdtype for rrset in resolve(store.snapshot(), name, SRV).answer] == [SRV]
    # a chain inside the zone is followed to the address
    assert answer(store, INNER.name) == [
        (INNER.name, CNAME, "svc.skydns.local."),
        ("svc.skydns.local.", A, "0a00020f"),
    ]
    # aggregated names and names with addresses get no CNAME
    assert answer(store, "east.skydns.local.") == []
    assert answer(store, "svc.skydns.local.") == [("svc.skydns.local.", A, "0a00020f")]


def test_patches_follow_the_host() -> None:
    store = ZoneStore()
    sink = InProcessSink(store)
    converge(sink, [RAILS])
    moved = service("rails", RAILS.name, "service2.example.com.", port=8080)
    converge(sink, [moved])  # a patch
    assert answer(store, RAILS.name)[0] == (RAILS.name, CNAME, "service2.example.com.")
    address = service("rails", RAILS.name, "10.0.3.125", port=8080)
    converge(sink, [address])
    assert answer(store, RAILS.name) == [(RAILS.name, A, "0a00037d")]
    converge(sink, [moved, service("other", RAILS.name, "service0.example.com.", port=81)])
    # two services with host names at one name: the owner that sorts first
    assert answer(store, RAILS.name)[0] == (RAILS.name, CNAME, "service0.example.com.")


def test_a_warm_start_does_not_lose_the_cnames(tmp_path: Path) -> None:
    """Zone files hold no CNAME beside the SRV: a zone that may need one is built whole
    by the first pass instead of patched."""
    files = ZoneFileSink(tmp_path)
    zones = build([RAILS], SETTINGS).zones
    asyncio.run(files.apply(plan.calculate(asyncio.run(files.current()), zones)))
    store = ZoneStore()
    load_written_zones(tmp_path, store)
    assert answer(store, RAILS.name) == []  # the file: SRV only
    sink = InProcessSink(store, files.serial)
    sink.adopt(files.current)
    converge(sink, [RAILS])
    assert answer(store, RAILS.name)[0] == (RAILS.name, CNAME, "service1.example.com.")
