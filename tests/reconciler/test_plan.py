"""The plan as scenarios: first pass, second pass, type change, removal, SOA change."""

from __future__ import annotations

import yaml

from reconciler.core import plan
from reconciler.core.index import build
from reconciler.core.model import ZoneSet, ZoneSettings
from reconciler.definitions import NameDefaults, parse_definitions
from tests.helpers import service


def zones(
    *docs: dict[str, object], domains: tuple[str, ...] = ("docker.",), **settings: object
) -> ZoneSet:
    found = parse_definitions(yaml.safe_dump_all(list(docs)), "d.yaml", NameDefaults(domains))
    assert not found.errors
    zone_settings = ZoneSettings(domains=domains, reverse=False, **settings)  # type: ignore[arg-type]
    return build(found.records, zone_settings).zones


def summary(changes: plan.Changes) -> list[tuple[str, str, str, str]]:
    return [(z.origin, c.name, c.rdtype, c.action) for z in changes.zones for c in z.rrsets]


def test_first_pass_creates_every_zone_and_rrset() -> None:
    changes = plan.calculate({}, zones(service("web", host="10.0.0.1")))
    assert [(z.origin, z.action) for z in changes.zones] == [("docker.", "create")]
    assert summary(changes) == [
        ("docker.", "docker.", "NS", "added"),
        ("docker.", "ns.dns.docker.", "A", "added"),
        ("docker.", "web.docker.", "A", "added"),
    ]


def test_second_pass_with_the_same_input_is_empty() -> None:
    desired = zones(service("web", host="10.0.0.1", port=80))
    assert plan.calculate(desired, zones(service("web", host="10.0.0.1", port=80))).is_empty


def test_type_change_cname_to_address_removes_and_adds() -> None:
    before = zones(service("web", host="web.example.com"))
    after = zones(service("web", host="10.0.0.1"))
    assert summary(plan.calculate(before, after)) == [
        ("docker.", "web.docker.", "A", "added"),
        ("docker.", "web.docker.", "CNAME", "removed"),
    ]


def test_ttl_or_data_change_is_a_changed_rrset() -> None:
    before = zones(service("web", host="10.0.0.1"))
    after = zones(service("web", host="10.0.0.1", ttl=99))
    [zone] = plan.calculate(before, after).zones
    [change] = zone.rrsets
    assert (change.action, change.old and change.old.ttl, change.new and change.new.ttl) == (
        "changed",
        30,
        99,
    )


def test_removal_and_zone_deletion() -> None:
    """A zone goes when its domain leaves the configuration (a definition cannot add one)."""
    before = zones(
        service("web", host="10.0.0.1"),
        service("x", zone="other.", host="10.0.0.2"),
        domains=("docker.", "other."),
    )
    after = zones(service("web", host="10.0.0.1"))
    changes = plan.calculate(before, after)
    assert [(z.origin, z.action) for z in changes.zones] == [("other.", "delete")]
    assert {c.action for c in changes.zones[0].rrsets} == {"removed"}


def test_soa_change_alone_is_a_change() -> None:
    before = zones(service("web", host="10.0.0.1"))
    after = zones(service("web", host="10.0.0.1"), hostmaster="ops@example.com")
    [zone] = plan.calculate(before, after).zones
    assert zone.soa_changed
    assert zone.rrsets == ()


def test_owner_conflict_resolution_does_not_flap() -> None:
    a = service("a", dns_name="db", host="10.0.0.1", aliases=["x.docker."])
    b = service("b", dns_name="db2", host="10.0.0.2", aliases=["x.docker."])
    assert plan.calculate(zones(a, b), zones(b, a)).is_empty
