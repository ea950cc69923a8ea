"""Zone compilation: SkyDNS's and dnsdock's rules, as tables of records -> zone lines."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from reconciler.core.index import BuildResult, build
from reconciler.core.model import ZoneSettings
from reconciler.definitions import NameDefaults, parse_definitions
from tests.helpers import service

SKY = ("skydns.local.",)


def compile_docs(
    docs: list[dict[str, Any]], domains: tuple[str, ...] = ("docker.",), **settings: Any
) -> BuildResult:
    text = yaml.safe_dump_all(docs)
    found = parse_definitions(
        text, "defs.yaml", NameDefaults(domains, settings.pop("environment", ""))
    )
    assert not found.errors, [str(e) for e in found.errors]
    return build(found.records, ZoneSettings(domains=domains, **settings))


def lines(result: BuildResult, name: str, rdtype: str | None = None) -> list[str]:
    """The RRs at ``name`` (optionally of one type) as ``TYPE rdata``, ordered."""
    zone = next(z for origin, z in result.zones.items() if name.endswith(origin))
    return [
        f"{rrset.rdtype} {text}"
        for rrset in zone.rrsets
        if rrset.name == name and rdtype in (None, rrset.rdtype)
        for text in rrset.rdatas
    ]


def ttl(result: BuildResult, name: str, rdtype: str) -> int:
    for zone in result.zones.values():
        rrset = zone.rrset(name, rdtype)
        if rrset is not None:
            return rrset.ttl
    raise AssertionError(f"no {rdtype} at {name}")


# The SkyDNS README's worked example: four rails services in east and west.
README = [
    service("r1", dns_name="1.rails.production.east", host="service1.example.com", port=8080),
    service("r2", dns_name="2.rails.production.west", host="service2.example.com", port=8080),
    service("r4", dns_name="4.rails.staging.east", host="10.0.1.125", port=8080),
    service("r6", dns_name="6.rails.staging.east", host="2003::8:1", port=8080),
]

README_CASES = [
    (
        "east.skydns.local.",
        "SRV",
        [
            "SRV 10 33 8080 4.rails.staging.east.skydns.local.",
            "SRV 10 33 8080 6.rails.staging.east.skydns.local.",
            "SRV 10 33 8080 service1.example.com.",
        ],
    ),
    (
        "staging.east.skydns.local.",
        "SRV",
        [
            "SRV 10 50 8080 4.rails.staging.east.skydns.local.",
            "SRV 10 50 8080 6.rails.staging.east.skydns.local.",
        ],
    ),
    ("staging.east.skydns.local.", "A", ["A 10.0.1.125"]),
    ("east.skydns.local.", "AAAA", ["AAAA 2003::8:1"]),
    ("4.rails.staging.east.skydns.local.", "A", ["A 10.0.1.125"]),
    ("1.rails.production.east.skydns.local.", "SRV", ["SRV 10 100 8080 service1.example.com."]),
    ("1.rails.production.east.skydns.local.", "CNAME", []),
    ("west.skydns.local.", "SRV", ["SRV 10 100 8080 service2.example.com."]),
    ("skydns.local.", "A", []),
]


@pytest.mark.parametrize(
    ("name", "rdtype", "expected"), README_CASES, ids=[f"{c[0]}/{c[1]}" for c in README_CASES]
)
def test_skydns_readme_example_aggregates_subtrees(
    name: str, rdtype: str, expected: list[str]
) -> None:
    result = compile_docs(
        [{**d, "spec": {**d["spec"], "zone": "skydns.local."}} for d in README], SKY
    )
    assert lines(result, name, rdtype) == expected
    assert result.conflicts == ()


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ((100, 100, 100), [33, 33, 33]),
        ((120, 100, 130), [34, 28, 37]),
        ((0, 0), [50, 50]),
        ((0, 300), [25, 75]),
    ],
    ids=["equal", "readme-120-100-130", "zero-means-100", "zero-beside-300"],
)
def test_srv_weights_are_normalised_per_name_like_skydns(
    weights: tuple[int, ...], expected: list[int]
) -> None:
    docs = [
        service(f"s{i}", dns_name=f"s{i}.db", host=f"10.0.0.{i + 1}", port=5432, weight=w)
        for i, w in enumerate(weights)
    ]
    got = {
        line.split()[4]: int(line.split()[2])
        for line in lines(compile_docs(docs), "db.docker.", "SRV")
    }
    assert [got[f"s{i}.db.docker."] for i in range(len(weights))] == expected


def test_weights_are_normalised_within_each_priority() -> None:
    docs = [
        service("a", dns_name="a.db", host="10.0.0.1", port=1, priority=10, weight=100),
        service("b", dns_name="b.db", host="10.0.0.2", port=1, priority=10, weight=300),
        service("c", dns_name="c.db", host="10.0.0.3", port=1, priority=20, weight=5),
    ]
    assert lines(compile_docs(docs), "db.docker.", "SRV") == [
        "SRV 10 25 1 a.db.docker.",
        "SRV 10 75 1 b.db.docker.",
        "SRV 20 100 1 c.db.docker.",
    ]


@pytest.mark.parametrize(
    ("strip", "target"),
    [
        (0, "1.web.prod.docker."),
        (1, "web.prod.docker."),
        (2, "prod.docker."),
        (3, "1.web.prod.docker."),  # would reach the apex: the name is kept whole
        (9, "1.web.prod.docker."),
    ],
    ids=["none", "one", "two", "apex", "overshoot"],
)
def test_target_strip_shortens_synthesised_srv_targets(strip: int, target: str) -> None:
    result = compile_docs(
        [service("w", dns_name="1.web.prod", host="10.0.0.9", port=80, targetStrip=strip)]
    )
    assert lines(result, "1.web.prod.docker.", "SRV") == [f"SRV 10 100 80 {target}"]
    # The stripped target answers with the address, through aggregation.
    assert lines(result, target, "A") == ["A 10.0.0.9"]


def test_groups_limit_aggregation_like_coredns_example() -> None:
    """CoreDNS's etcd docs: a, b in one group at domain.local; c, d in another one level
    down; domain.local returns a and b only, subdom.domain.local returns c and d."""
    docs = [
        service("a", dns_name="a", host="127.0.0.1", group="g1"),
        service("b", dns_name="b", host="127.0.0.2", group="g1"),
        service("c", dns_name="c.subdom", host="127.0.0.3", group="g2"),
        service("d", dns_name="d.subdom", host="127.0.0.4", group="g2"),
        service("e", dns_name="x.sub2", host="127.0.0.5"),
        service("f", dns_name="y.sub2", host="127.0.0.6", group="g3"),
    ]
    result = compile_docs(docs, ("domain.local.",), reverse=False)
    assert lines(result, "subdom.domain.local.", "A") == ["A 127.0.0.3", "A 127.0.0.4"]
    # Without a group a service is always included.
    assert lines(result, "sub2.domain.local.", "A") == ["A 127.0.0.5", "A 127.0.0.6"]


def test_groups_disagreeing_at_the_same_depth_are_ignored() -> None:
    docs = [
        service("a", dns_name="a.svc", host="10.0.0.1", group="g1"),
        service("b", dns_name="b.svc", host="10.0.0.2", group="g2"),
    ]
    assert lines(compile_docs(docs), "svc.docker.", "A") == ["A 10.0.0.1", "A 10.0.0.2"]


def test_shallowest_group_wins_below() -> None:
    docs = [
        service("a", dns_name="a.svc", host="10.0.0.1", group="g1"),
        service("b", dns_name="b.x.svc", host="10.0.0.2", group="g2"),
        service("c", dns_name="c.x.svc", host="10.0.0.3", group="g1"),
    ]
    assert lines(compile_docs(docs), "svc.docker.", "A") == ["A 10.0.0.1", "A 10.0.0.3"]


RECORD_CASES = [
    ({"host": "10.0.0.7"}, "web.docker.", ["A 10.0.0.7"]),
    ({"host": "fd00::7"}, "web.docker.", ["AAAA fd00::7"]),
    ({"host": "FD00:0:0::7"}, "web.docker.", ["AAAA fd00::7"]),
    ({"host": "web.example.com"}, "web.docker.", ["CNAME web.example.com."]),
    ({"host": "web.example.com", "port": 80}, "web.docker.", ["SRV 10 100 80 web.example.com."]),
    (
        {"host": "10.0.0.7", "text": 'hello "world"'},
        "web.docker.",
        ["A 10.0.0.7", 'TXT "hello \\"world\\""'],
    ),
    ({"text": ["a", "b"]}, "web.docker.", ['TXT "a" "b"']),
    (
        {"host": "10.0.0.7", "mail": True, "priority": 5},
        "web.docker.",
        ["A 10.0.0.7", "MX 5 web.docker."],
    ),
    ({"host": "mx.example.com", "mail": True}, "web.docker.", ["MX 10 mx.example.com."]),
    (
        {"host": "10.0.0.7", "port": 53, "protocol": "udp", "priority": 1, "weight": 7},
        "web.docker.",
        ["A 10.0.0.7", "SRV 1 100 53 web.docker."],
    ),
]


@pytest.mark.parametrize(
    ("spec", "name", "expected"), RECORD_CASES, ids=[f"case{i}" for i in range(len(RECORD_CASES))]
)
def test_fields_become_records(spec: dict[str, Any], name: str, expected: list[str]) -> None:
    assert lines(compile_docs([service("web", **spec)]), name) == expected


def test_long_text_is_split_in_255_byte_strings() -> None:
    result = compile_docs([service("t", text="x" * 300)])
    assert lines(result, "t.docker.", "TXT") == [f'TXT "{"x" * 255}" "{"x" * 45}"']


def test_ptr_records_point_at_the_primary_name() -> None:
    docs = [
        service("a", dns_name="a.app", host="10.0.1.5", aliases=["alias.docker."]),
        service("b", dns_name="b.app", host="2001:db8::5"),
    ]
    result = compile_docs(docs)
    assert lines(result, "5.1.0.10.in-addr.arpa.") == ["PTR a.app.docker."]
    assert "1.0.10.in-addr.arpa." in result.zones
    v6 = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
    assert lines(result, v6) == ["PTR b.app.docker."]
    assert "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa." in result.zones


def test_reverse_zones_can_be_turned_off_and_sized() -> None:
    docs = [service("a", host="10.0.1.5")]
    assert list(compile_docs(docs, reverse=False).zones) == ["docker."]
    assert "0.10.in-addr.arpa." in compile_docs(docs, reverse_prefix_v4=16).zones


def test_ttl_of_an_rrset_is_the_lowest_and_defaults_apply() -> None:
    docs = [
        service("a", dns_name="a.pool", host="10.0.0.1", ttl=60),
        service("b", dns_name="b.pool", host="10.0.0.2", ttl=10),
        service("c", dns_name="c.pool", host="10.0.0.3"),
    ]
    result = compile_docs(docs, default_ttl=45)
    assert ttl(result, "pool.docker.", "A") == 10
    assert ttl(result, "a.pool.docker.", "A") == 60
    assert ttl(result, "c.pool.docker.", "A") == 45


def test_soa_and_ns_follow_settings() -> None:
    result = compile_docs([], hostmaster="dns.admin@example.com", negative_ttl=5, ns_address="::1")
    zone = result.zones["docker."]
    assert zone.soa.rname == "dns\\.admin.example.com."
    assert zone.soa.minimum == 5
    assert zone.soa.mname == "ns.dns.docker."
    assert lines(result, "docker.") == ["NS ns.dns.docker."]
    assert lines(result, "ns.dns.docker.") == ["AAAA ::1"]


def test_environment_label_sits_between_name_and_domain() -> None:
    result = compile_docs([service("w", dns_name="web", host="10.0.0.1")], environment="prod")
    assert lines(result, "web.prod.docker.", "A") == ["A 10.0.0.1"]
    assert lines(result, "prod.docker.", "A") == ["A 10.0.0.1"]


def test_aliases_are_exact_names() -> None:
    result = compile_docs(
        [service("db", dns_name="db1.pg", host="10.0.0.3", aliases=["db.docker.", "sql"])]
    )
    assert lines(result, "db.docker.") == ["A 10.0.0.3"]
    assert lines(result, "sql.docker.") == ["A 10.0.0.3"]
    assert lines(result, "3.0.0.10.in-addr.arpa.") == ["PTR db1.pg.docker."]


def test_two_owners_claiming_one_alias_keep_the_first_owner() -> None:
    docs = [
        service("zeta", dns_name="z", host="10.0.0.2", aliases=["db.docker."]),
        service("alpha", dns_name="a", host="10.0.0.1", aliases=["db.docker."]),
    ]
    for order in (docs, docs[::-1]):
        result = compile_docs(order)
        assert lines(result, "db.docker.") == ["A 10.0.0.1"]
        [conflict] = result.conflicts
        assert conflict.name == "db.docker."
        assert conflict.dropped.object == "servicerecord/zeta"
        assert conflict.kept is not None
        assert conflict.kept.object == "servicerecord/alpha"


def test_identical_alias_claims_merge_without_conflict() -> None:
    docs = [
        service("a", dns_name="a", host="10.0.0.1", aliases=["db.docker."]),
        service("b", dns_name="b", host="10.0.0.1", aliases=["db.docker."]),
    ]
    result = compile_docs(docs)
    assert lines(result, "db.docker.") == ["A 10.0.0.1"]
    assert result.conflicts == ()


def test_cname_beside_other_data_is_settled_by_owner_order() -> None:
    docs = [
        service("b-cname", dns_name="api", host="api.example.com"),
        service("a-address", dns_name="api", host="10.0.0.5"),
    ]
    result = compile_docs(docs)
    assert lines(result, "api.docker.") == ["A 10.0.0.5"]
    assert [(c.dropped.object, c.kept.object if c.kept else None) for c in result.conflicts] == [
        ("servicerecord/b-cname", "servicerecord/a-address")
    ]
    flipped = compile_docs(
        [
            service("a-cname", dns_name="api", host="api.example.com"),
            service("b-address", dns_name="api", host="10.0.0.5"),
        ]
    )
    assert lines(flipped, "api.docker.") == ["CNAME api.example.com."]


def test_cname_hides_aggregation_from_below_and_says_so() -> None:
    docs = [
        service("rails", dns_name="rails", host="service5.example.com"),
        service("one", dns_name="1.rails", host="10.0.0.1"),
    ]
    result = compile_docs(docs)
    assert lines(result, "rails.docker.") == ["CNAME service5.example.com."]
    assert lines(result, "1.rails.docker.") == ["A 10.0.0.1"]
    assert [c.reason for c in result.conflicts] == ["aggregated records hidden by an exact name"]


def test_cname_at_the_apex_is_refused() -> None:
    result = compile_docs([service("apex", dns_name="docker.", host="elsewhere.example.")])
    assert lines(result, "docker.", "CNAME") == []
    assert [c.reason for c in result.conflicts] == ["CNAME is not allowed at the apex"]


def test_the_nameserver_name_is_reserved() -> None:
    result = compile_docs([service("ns", dns_name="ns.dns", host="10.9.9.9")])
    assert lines(result, "ns.dns.docker.") == ["A 127.0.0.1"]
    assert [c.reason for c in result.conflicts] == ["is the zone's nameserver"]


def test_alias_outside_every_zone_is_reported() -> None:
    result = compile_docs([service("w", host="10.0.0.1", aliases=["w.example.org."])])
    assert [(c.name, c.kept) for c in result.conflicts] == [("w.example.org.", None)]


def test_pool_members_at_one_name_merge() -> None:
    docs = [service(f"w{i}", dns_name="web", host=f"10.0.0.{i}") for i in (3, 1, 2)]
    result = compile_docs(docs)
    assert lines(result, "web.docker.") == ["A 10.0.0.1", "A 10.0.0.2", "A 10.0.0.3"]
    assert result.conflicts == ()


def test_endpoints_are_explicit_rrsets() -> None:
    doc = {
        "apiVersion": "externaldns.k8s.io/v1alpha1",
        "kind": "DNSEndpoint",
        "metadata": {"name": "ext"},
        "spec": {
            "endpoints": [
                {
                    "dnsName": "app.docker",
                    "recordType": "A",
                    "targets": ["10.1.1.2", "10.1.1.1"],
                    "recordTTL": 120,
                },
                {
                    "dnsName": "_app._tcp.docker",
                    "recordType": "SRV",
                    "targets": ["1 7 443 app.docker"],
                },
                {"dnsName": "www.docker", "recordType": "CNAME", "targets": ["app.docker"]},
                {"dnsName": "docker", "recordType": "TXT", "targets": ["v=spf1 -all"]},
                {"dnsName": "docker", "recordType": "MX", "targets": ["10 mail.example.com"]},
            ]
        },
    }
    result = compile_docs([doc])
    assert lines(result, "app.docker.") == ["A 10.1.1.1", "A 10.1.1.2"]
    assert ttl(result, "app.docker.", "A") == 120
    assert lines(result, "_app._tcp.docker.") == ["SRV 1 7 443 app.docker."]
    assert lines(result, "www.docker.") == ["CNAME app.docker."]
    assert lines(result, "docker.", "TXT") == ['TXT "v=spf1 -all"']
    assert lines(result, "docker.", "MX") == ["MX 10 mail.example.com."]
    assert "1.1.10.in-addr.arpa." not in result.zones  # DNSEndpoints get no PTR


def test_provenance_names_file_document_and_field() -> None:
    result = compile_docs([service("a", dns_name="1.web", host="10.0.0.1", port=80)])
    zone = result.zones["docker."]
    [own] = zone.provenance[("1.web.docker.", "A", "10.0.0.1")]
    assert str(own) == "defs.yaml#0 (servicerecord/a) spec.host"
    [agg] = zone.provenance[("web.docker.", "SRV", "10 100 80 1.web.docker.")]
    assert str(agg) == "defs.yaml#0 (servicerecord/a) spec.port, aggregated from 1.web.docker."


def test_same_records_in_any_order_build_the_same_zones() -> None:
    docs = [
        service(f"s{i}", dns_name=f"{i}.svc", host=f"10.0.0.{i}", port=80 + i, group="g" * (i % 2))
        for i in range(1, 8)
    ]
    first = compile_docs(docs)
    second = compile_docs(docs[::-1])
    assert first.zones == second.zones
    assert first.conflicts == second.conflicts
