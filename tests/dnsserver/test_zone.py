"""Zone.from_records (the reconciler's path), ZoneStore swaps and longest-suffix lookup."""

from __future__ import annotations

import pytest

from dnsserver import Zone, ZoneError, ZoneStore
from dnsserver.rdata import rdtype_from_text

SOA = ("docker.", "SOA", 30, "ns.dns.docker. hostmaster.docker. 5 3600 600 86400 30")


def _zone(*records: tuple[str, str, int, str], origin: str = "docker.") -> Zone:
    return Zone.from_records(origin, [SOA, *records] if origin == "docker." else list(records))


def test_from_records_builds_every_supported_type() -> None:
    zone = _zone(
        ("docker.", "NS", 30, "ns.dns.docker."),
        ("ns.dns.docker.", "A", 30, "127.0.0.1"),
        ("web.docker.", "A", 30, "10.0.0.7"),
        ("web.docker.", "AAAA", 30, "fd00::7"),
        ("_http._tcp.web.docker.", "SRV", 30, "10 33 8080 web.docker."),
        ("web.docker.", "TXT", 30, '"some text" "more"'),
        ("docker.", "MX", 30, "10 web.docker."),
        ("alias.docker.", "CNAME", 30, "web.docker."),
        ("7.0.0.10.in-addr.arpa.docker.", "PTR", 30, "web.docker."),
    )
    assert zone.serial == 5
    assert zone.ns is not None
    assert zone.ns.rdatas == (b"\x02ns\x03dns\x06docker\x00",)
    assert zone.negative_ttl == 30
    txt = zone.get("web.docker.", rdtype_from_text("TXT"))
    assert txt is not None
    assert txt.rdatas == (b"\x09some text\x04more",)
    srv = zone.get("_http._tcp.web.docker.", rdtype_from_text("SRV"))
    assert srv is not None
    assert srv.rdatas == (b"\x00\x0a\x00\x21\x1f\x90\x03web\x06docker\x00",)
    assert zone.exists("_tcp.web.docker.")
    assert not zone.exists("nope.docker.")


ERRORS = [
    ([("web.docker.", "A", 30, "10.0.0.7")], "no SOA", "docker."),
    ([SOA, ("web.other.", "A", 30, "10.0.0.7")], "outside the origin", "docker."),
    (
        [SOA, ("web.docker.", "A", 30, "10.0.0.7"), ("web.docker.", "CNAME", 30, "x.docker.")],
        "CNAME beside other data at web.docker.",
        "docker.",
    ),
    ([SOA, ("web.docker.", "A", 30, "not-an-ip")], "bad A rdata", "docker."),
    ([SOA, ("web.docker.", "WHAT", 30, "x")], "unknown record type", "docker."),
    ([SOA, ("web.docker.", "A", -1, "10.0.0.1")], "TTL out of range", "docker."),
]


@pytest.mark.parametrize(("records", "reason", "origin"), ERRORS, ids=[e[1] for e in ERRORS])
def test_from_records_rejects(
    records: list[tuple[str, str, int, str]], reason: str, origin: str
) -> None:
    with pytest.raises(ZoneError, match=reason):
        Zone.from_records(origin, records)


def test_error_names_the_record_index() -> None:
    with pytest.raises(ZoneError) as info:
        Zone.from_records(
            "docker.", [SOA, ("a.docker.", "A", 30, "1.2.3.4"), ("b.x.", "A", 1, "1.1.1.1")]
        )
    assert info.value.line == 2


def test_large_zone_builds_without_text_parsing_per_record() -> None:
    """40k records (the reconciler's big case) build; hack/bench measures how fast."""
    records = [SOA] + [
        (f"c{i}.svc.docker.", "A", 30, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        for i in range(40_000)
    ]
    zone = Zone.from_records("docker.", records)
    assert len(zone) == 40_001
    assert zone.exists("svc.docker.")


def test_store_finds_the_longest_suffix_zone() -> None:
    parent = _zone()
    child = Zone.from_records(
        "sub.docker.", [("sub.docker.", "SOA", 30, "ns.docker. h.docker. 1 1 1 1 1")]
    )
    store = ZoneStore({"docker.": parent, "sub.docker.": child})
    index = store.snapshot()
    assert index.find("a.b.sub.docker.") is child
    assert index.find("sub.docker.") is child
    assert index.find("xsub.docker.") is parent
    assert index.find("docker.") is parent
    assert index.find("other.") is None


def test_replace_swaps_the_whole_index() -> None:
    store = ZoneStore({"docker.": _zone()})
    before = store.snapshot()
    store.replace({})
    assert store.snapshot() is not before
    assert before.find("web.docker.") is not None  # a reader's snapshot stays whole
    assert store.snapshot().find("web.docker.") is None


def test_store_rejects_a_zone_under_the_wrong_origin() -> None:
    with pytest.raises(ValueError, match="stored under"):
        ZoneStore({"other.": _zone()})


def test_update_replaces_some_zones_and_keeps_the_rest() -> None:
    other = Zone.from_records("other.", [("other.", "SOA", 30, "ns.other. h.other. 1 1 1 1 1")])
    store = ZoneStore({"docker.": _zone()})
    store.update({"other.": other})
    assert sorted(z.origin for z in store.snapshot()) == ["docker.", "other."]
    store.update({}, removed={"docker."})
    assert [z.origin for z in store.snapshot()] == ["other."]
