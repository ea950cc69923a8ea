"""The incremental index against the full recompute: after every random step (groups added,
changed, removed), the zones, conflicts and plan equal what a fresh build gives."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core import index as index_module
from reconciler.core import plan
from reconciler.core.index import RecordIndex, build
from reconciler.core.model import Endpoint, Owner, Record, ServiceRecord, ZoneSettings

SETTINGS = ZoneSettings(domains=("docker.", "skydns.local."))

NAMES = [
    "web.docker.",
    "1.web.docker.",
    "2.web.docker.",
    "a.b.c.docker.",
    "b.c.docker.",
    "docker.",
    "ns.dns.docker.",
    "1.rails.east.skydns.local.",
    "2.rails.west.skydns.local.",
    "east.skydns.local.",
    "x.example.org.",
    "outside.test.",
    "y.sub.docker.",
]
HOSTS = ["", "10.0.1.5", "10.0.1.6", "10.0.2.7", "2001:db8::1", "service1.example.com."]


def _zone(name: str) -> str:
    for zone in ("sub.docker.", "docker.", "skydns.local.", "example.org."):
        if name.endswith(zone):
            return zone
    return "test."


@st.composite
def records(draw: st.DrawFn, owner: str) -> Record:
    name = draw(st.sampled_from(NAMES))
    who = Owner(draw(st.sampled_from(["file", "docker"])), owner, f"{owner}.yaml#0")
    if draw(st.integers(0, 9)) == 0:
        return Endpoint(
            name,
            _zone(name),
            "CNAME",
            (draw(st.sampled_from(["a.example.", "b.example."])),),
            who,
            "spec.endpoints[0]",
        )
    host = draw(st.sampled_from(HOSTS))
    text = draw(st.sampled_from([(), ("hello",)]))
    if not host and not text:
        text = ("t",)
    return ServiceRecord(
        name,
        _zone(name),
        who,
        host=host,
        port=draw(st.sampled_from([None, 80, 8080])),
        weight=draw(st.sampled_from([0, 10, 120])),
        ttl=draw(st.sampled_from([None, 10, 60])),
        text=text,
        group=draw(st.sampled_from(["", "", "g1", "g2"])),
        aliases=tuple(
            draw(
                st.lists(
                    st.sampled_from(["db.docker.", "x.nowhere.", "z.example.org."]), max_size=1
                )
            )
        ),
        mail=draw(st.booleans()),
    )


@st.composite
def steps(draw: st.DrawFn) -> list[dict[str, tuple[Record, ...]]]:
    result = []
    for _ in range(draw(st.integers(1, 12))):
        step: dict[str, tuple[Record, ...]] = {}
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.sampled_from(["g1", "g2", "g3", "g4", "g5"]))
            owner = draw(st.sampled_from(["o1", "o2", key]))
            step[key] = tuple(draw(st.lists(records(owner), max_size=3)))
        result.append(step)
    return result


def _all(groups: dict[str, tuple[Record, ...]]) -> list[Record]:
    return [record for key in sorted(groups) for record in groups[key]]


@pytest.mark.parametrize("aggregate_min", [index_module.AGGREGATE_MIN, 1])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=steps())
def test_incremental_equals_full(
    aggregate_min: int, sequence: list[dict[str, tuple[Record, ...]]]
) -> None:
    """With ``aggregate_min`` 1 every eligible name goes through the per-text path."""
    saved = index_module.AGGREGATE_MIN
    index_module.AGGREGATE_MIN = aggregate_min
    try:
        _check_sequence(sequence)
    finally:
        index_module.AGGREGATE_MIN = saved


def _check_sequence(sequence: list[dict[str, tuple[Record, ...]]]) -> None:
    index = RecordIndex(SETTINGS)
    held: dict[str, tuple[Record, ...]] = {}
    before: dict[str, object] = {}
    for step in sequence:
        index.update(step)
        held.update(step)
        changes = index.commit()
        full = build(_all(held), SETTINGS)
        assert index.zones == full.zones
        assert index.conflicts == full.conflicts
        # the plan is exactly the difference between the zones before and after
        expected = plan.calculate(before, full.zones)  # type: ignore[arg-type]
        assert [(z.origin, z.action, z.rrsets) for z in changes.zones] == [
            (z.origin, z.action, z.rrsets) for z in expected.zones
        ]
        for origin, zone in index.zones.items():
            assert dict(zone.provenance) == dict(full.zones[origin].provenance), origin
        before = dict(full.zones)
        # nothing changed: nothing to do
        index.update(dict(step))
        assert index.commit().is_empty


def test_complete_update_removes_missing_groups() -> None:
    web = ServiceRecord("web.docker.", "docker.", Owner("file", "web"), host="10.0.1.5")
    db = ServiceRecord("db.docker.", "docker.", Owner("file", "db"), host="10.0.1.6")
    index = RecordIndex(SETTINGS)
    index.update({"web": (web,), "db": (db,)})
    index.commit()
    index.update({"web": (web,)}, complete=True)
    changes = index.commit()
    removed = [c.name for z in changes.zones for c in z.rrsets if c.action == "removed"]
    assert "db.docker." in removed
    assert "6.1.0.10.in-addr.arpa." in removed
    assert index.zones == build([web], SETTINGS).zones


def test_one_change_touches_only_its_names() -> None:
    services = [
        ServiceRecord(f"s{i}.app.docker.", "docker.", Owner("file", f"s{i}"), host=f"10.0.1.{i}")
        for i in range(1, 200)
    ]
    index = RecordIndex(SETTINGS)
    index.update({str(i): (r,) for i, r in enumerate(services)})
    index.commit()
    moved = ServiceRecord("s1.app.docker.", "docker.", Owner("file", "s1"), host="10.0.1.250")
    index.update({"0": (moved,)})
    changes = index.commit()
    touched = sorted(c.name for z in changes.zones for c in z.rrsets)
    assert touched == [
        "1.1.0.10.in-addr.arpa.",
        "250.1.0.10.in-addr.arpa.",
        "app.docker.",
        "s1.app.docker.",
    ]
