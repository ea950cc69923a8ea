"""Reading definitions: every field checked, errors name file, document and field, and one
bad document never hides the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.core.model import Endpoint, ServiceRecord
from reconciler.definitions import NameDefaults, load_definitions, parse_definitions
from tests.helpers import service

DEFAULTS = NameDefaults(("docker.", "skydns.local."))


def one(spec: dict[str, Any], defaults: NameDefaults = DEFAULTS) -> ServiceRecord:
    found = parse_definitions(yaml.safe_dump(service("web", **spec)), "defs/web.yaml", defaults)
    assert not found.errors, [str(e) for e in found.errors]
    [record] = found.records
    assert isinstance(record, ServiceRecord)
    return record


def errors_of(doc: Any, defaults: NameDefaults = DEFAULTS) -> list[str]:
    found = parse_definitions(yaml.safe_dump(doc), "defs/web.yaml", defaults)
    assert not found.documents
    return [str(e) for e in found.errors]


VALID = [
    ({"name": "web", "host": "10.0.0.1"}, "name", "web.docker."),
    ({"name": "Web.NGINX", "host": "10.0.0.1"}, "name", "web.nginx.docker."),
    (
        {"name": "1.rails.production.east", "zone": "skydns.local", "host": "10.0.0.1"},
        "name",
        "1.rails.production.east.skydns.local.",
    ),
    ({"name": "x.skydns.local.", "host": "10.0.0.1"}, "zone", "skydns.local."),
    ({"name": "x.skydns.local.", "host": "10.0.0.1"}, "name", "x.skydns.local."),
    ({"name": "@", "host": "10.0.0.1"}, "name", "docker."),
    ({"name": "_http._tcp.web", "host": "10.0.0.1"}, "name", "_http._tcp.web.docker."),
    ({"name": "w", "host": "Service5.Example.com"}, "host", "service5.example.com."),
    ({"name": "w", "host": "2001:DB8:0::1"}, "host", "2001:db8::1"),
    ({"name": "w", "host": "10.0.0.1", "port": 8080}, "port", 8080),
    ({"name": "w", "host": "10.0.0.1"}, "port", None),
    ({"name": "w", "host": "10.0.0.1", "protocol": "udp"}, "protocol", "udp"),
    ({"name": "w", "host": "10.0.0.1"}, "protocol", "tcp"),
    ({"name": "w", "host": "10.0.0.1"}, "priority", 10),
    ({"name": "w", "host": "10.0.0.1", "priority": 0}, "priority", 0),
    ({"name": "w", "host": "10.0.0.1", "weight": 120}, "weight", 120),
    ({"name": "w", "host": "10.0.0.1", "ttl": 0}, "ttl", 0),
    ({"name": "w", "host": "10.0.0.1"}, "ttl", None),
    ({"name": "w", "text": "hi"}, "text", ("hi",)),
    ({"name": "w", "text": ["a", "b"]}, "text", ("a", "b")),
    ({"name": "w", "host": "10.0.0.1", "mail": True}, "mail", True),
    ({"name": "w", "host": "10.0.0.1", "targetStrip": 2}, "target_strip", 2),
    ({"name": "w", "host": "10.0.0.1", "group": "blue"}, "group", "blue"),
    (
        {"name": "w", "host": "10.0.0.1", "aliases": ["db.docker.", "sql", "db.docker."]},
        "aliases",
        ("db.docker.", "sql.docker."),
    ),
]


@pytest.mark.parametrize(
    ("spec", "attribute", "expected"), VALID, ids=[f"{c[1]}-{i}" for i, c in enumerate(VALID)]
)
def test_valid_fields_are_read(spec: dict[str, Any], attribute: str, expected: Any) -> None:
    assert getattr(one(spec), attribute) == expected


INVALID = [
    ({"dns_name": None, "host": "10.0.0.1"}, "spec.name: is required"),
    ({"name": "", "host": "10.0.0.1"}, "spec.name: must not be empty"),
    ({"name": 5, "host": "10.0.0.1"}, "spec.name: must be a string, not an integer"),
    ({"name": "a..b", "host": "10.0.0.1"}, "spec.name: 'a..b' has an empty label"),
    ({"name": "-a", "host": "10.0.0.1"}, "may not start or end with '-'"),
    ({"name": "a b", "host": "10.0.0.1"}, "may hold only letters, digits"),
    ({"name": "x" * 64, "host": "10.0.0.1"}, "is longer than 63 characters"),
    ({"name": ".".join(["abcdefgh"] * 30), "host": "10.0.0.1"}, "is longer than 253 characters"),
    ({"name": "redis.*", "host": "10.0.0.1"}, "label '*' is a query wildcard"),
    ({"name": "any.redis", "host": "10.0.0.1"}, "label 'any' is a query wildcard"),
    (
        {"name": "web.example.org.", "host": "10.0.0.1"},
        "spec.name: web.example.org. is outside every configured domain",
    ),
    (
        {"name": "web.example.org.", "zone": "docker.", "host": "10.0.0.1"},
        "spec.name: web.example.org. is outside its zone docker.",
    ),
    ({"name": "w", "zone": "bad zone", "host": "10.0.0.1"}, "spec.zone:"),
    ({"name": "w"}, "spec.host: is required (unless spec.text is given)"),
    ({"name": "w", "host": "not_an ip"}, "spec.host: must be an IPv4/IPv6 address or a host name"),
    ({"name": "w", "host": "10.0.0.1", "port": 0}, "spec.port: must be 1..65535, not 0"),
    ({"name": "w", "host": "10.0.0.1", "port": 70000}, "spec.port: must be 1..65535, not 70000"),
    (
        {"name": "w", "host": "10.0.0.1", "port": "80"},
        "spec.port: must be an integer 1..65535, not a string",
    ),
    (
        {"name": "w", "host": "10.0.0.1", "port": True},
        "spec.port: must be an integer 1..65535, not a boolean",
    ),
    ({"name": "w", "text": "t", "port": 80}, "spec.port: needs spec.host"),
    ({"name": "w", "host": "10.0.0.1", "protocol": "sctp"}, "spec.protocol: must be tcp or udp"),
    ({"name": "w", "host": "10.0.0.1", "priority": -1}, "spec.priority: must be 0..65535, not -1"),
    ({"name": "w", "host": "10.0.0.1", "weight": 65536}, "spec.weight: must be 0..65535"),
    ({"name": "w", "host": "10.0.0.1", "ttl": -5}, "spec.ttl: must be 0..2147483647, not -5"),
    ({"name": "w", "host": "10.0.0.1", "ttl": 1.5}, "spec.ttl: must be an integer"),
    (
        {"name": "w", "host": "10.0.0.1", "text": 5},
        "spec.text: must be a string or a list of strings",
    ),
    ({"name": "w", "host": "10.0.0.1", "mail": "yes"}, "spec.mail: must be true or false"),
    ({"name": "w", "text": "t", "mail": True}, "spec.mail: needs spec.host"),
    ({"name": "w", "host": "10.0.0.1", "targetStrip": -1}, "spec.targetStrip: must be 0..127"),
    ({"name": "w", "host": "10.0.0.1", "group": "x" * 64}, "spec.group: must be at most 63"),
    ({"name": "w", "host": "10.0.0.1", "aliases": "db"}, "spec.aliases: must be a list of names"),
    ({"name": "w", "host": "10.0.0.1", "aliases": ["ok", 3]}, "spec.aliases[1]: must be a string"),
    (
        {"name": "w", "host": "10.0.0.1", "aliases": ["w"]},
        "spec.aliases[0]: w.docker. is the record's own name",
    ),
    ({"name": "w", "host": "10.0.0.1", "aliases": ["*.x"]}, "spec.aliases[0]:"),
    ({"name": "w", "host": "10.0.0.1", "prot": "tcp"}, "spec.prot: unknown field"),
]


@pytest.mark.parametrize(
    ("spec", "message"), INVALID, ids=[f"bad-{i}" for i in range(len(INVALID))]
)
def test_invalid_fields_are_named_in_the_error(spec: dict[str, Any], message: str) -> None:
    errors = errors_of(service("web", **spec))
    assert any(message in error for error in errors), errors
    assert all(error.startswith("defs/web.yaml#0 ") for error in errors)


def test_every_problem_of_a_document_is_reported_at_once() -> None:
    errors = errors_of(service("web", dns_name="a..b", port=0, protocol="x"))
    fields = [e.split(" ")[1] for e in errors]
    assert fields == ["spec.name:", "spec.port:", "spec.protocol:", "spec.host:"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("just text", "#0: a definition must be a mapping"),
        (
            {"kind": "Service", "apiVersion": "v1"},
            "#0 kind: must be ServiceRecord or DNSEndpoint, not 'Service'",
        ),
        (
            {**service("w", host="10.0.0.1"), "apiVersion": "dockzone.dev/v2"},
            "#0 apiVersion: must be 'dockzone.dev/v1alpha1'",
        ),
        ({**service("w", host="10.0.0.1"), "metadata": {}}, "#0 metadata.name: is required"),
        (
            {**service("w", host="10.0.0.1"), "metadata": {"name": "Web_1"}},
            "#0 metadata.name: 'Web_1' must be lowercase",
        ),
        ({**service("w", host="10.0.0.1"), "spec": []}, "#0 spec: must be a mapping, not a list"),
        ({**service("w", host="10.0.0.1"), "extra": 1}, "#0 .extra: unknown field"),
    ],
    ids=["not-mapping", "kind", "api", "no-name", "bad-name", "spec-list", "extra-top"],
)
def test_document_shape_errors(doc: Any, message: str) -> None:
    errors = errors_of(doc)
    assert any(message in error for error in errors), errors


def test_one_bad_document_does_not_hide_the_others() -> None:
    text = yaml.safe_dump_all(
        [
            service("a", host="10.0.0.1"),
            service("b", host="10.0.0.1", port=99999),
            None,
            service("c", host="10.0.0.3"),
        ]
    )
    found = parse_definitions(text, "defs/x.yaml", DEFAULTS)
    assert [d.name for d in found.documents] == ["a", "c"]
    assert [str(e) for e in found.errors] == [
        "defs/x.yaml#1 spec.port: must be 1..65535, not 99999"
    ]


def test_yaml_syntax_error_keeps_the_documents_before_it() -> None:
    text = yaml.safe_dump(service("a", host="10.0.0.1")) + "---\nspec: [unclosed\n"
    found = parse_definitions(text, "defs/x.yaml", DEFAULTS)
    assert [d.name for d in found.documents] == ["a"]
    [error] = found.errors
    assert str(error).startswith("defs/x.yaml: YAML syntax error at line ")


def test_directory_is_read_recursively_skipping_hidden_and_other_files(tmp_path: Path) -> None:
    (tmp_path / "team" / "deep").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(service("a", host="10.0.0.1")))
    (tmp_path / "team" / "deep" / "b.yml").write_text(yaml.safe_dump(service("b", host="10.0.0.2")))
    (tmp_path / ".git" / "c.yaml").write_text(yaml.safe_dump(service("c", host="10.0.0.3")))
    (tmp_path / ".a.yaml.swp.yaml").write_text("garbage: [")
    (tmp_path / "notes.txt").write_text("not yaml")
    found = load_definitions(tmp_path, DEFAULTS)
    assert found.errors == ()
    assert [d.location for d in found.documents] == ["a.yaml#0", "team/deep/b.yml#0"]


def test_duplicate_names_keep_the_first(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(service("web", host="10.0.0.1")))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(service("web", host="10.0.0.2")))
    found = load_definitions(tmp_path, DEFAULTS)
    [record] = found.records
    assert isinstance(record, ServiceRecord)
    assert record.host == "10.0.0.1"
    assert [str(e) for e in found.errors] == [
        "b.yaml#0 metadata.name: ServiceRecord 'web' is already defined at a.yaml#0"
    ]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    found = load_definitions(tmp_path / "nope", DEFAULTS)
    assert [e.problem for e in found.errors] == ["no such file or directory"]


def endpoint(*endpoints: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "externaldns.k8s.io/v1alpha1",
        "kind": "DNSEndpoint",
        "metadata": {"name": "ep", **metadata},
        "spec": {"endpoints": list(endpoints)},
    }


def test_dnsendpoint_is_read() -> None:
    doc = endpoint(
        {
            "dnsName": "a.docker",
            "recordType": "A",
            "targets": ["10.0.0.1"],
            "recordTTL": 60,
            "labels": {"x": "y"},
            "providerSpecific": [],
            "setIdentifier": "",
        }
    )
    found = parse_definitions(yaml.safe_dump(doc), "ep.yaml", DEFAULTS)
    [record] = found.records
    assert isinstance(record, Endpoint)
    assert (record.name, record.zone, record.rdtype, record.rdatas, record.ttl) == (
        "a.docker.",
        "docker.",
        "A",
        ("10.0.0.1",),
        60,
    )
    assert record.field == "spec.endpoints[0]"


def test_dnsendpoint_zone_annotation_admits_other_domains() -> None:
    doc = endpoint(
        {"dnsName": "a.example.org", "recordType": "A", "targets": ["10.0.0.1"]},
        annotations={"dockzone.dev/zone": "example.org"},
    )
    [record] = parse_definitions(yaml.safe_dump(doc), "ep.yaml", DEFAULTS).records
    assert record.zone == "example.org."


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"recordType": "A", "targets": ["10.0.0.1"]}, "spec.endpoints[0].dnsName: is required"),
        (
            {"dnsName": "a.example.org", "recordType": "A", "targets": ["10.0.0.1"]},
            "is outside every configured domain",
        ),
        (
            {"dnsName": "a.docker", "recordType": "NAPTR", "targets": ["x"]},
            "spec.endpoints[0].recordType: must be one of",
        ),
        (
            {"dnsName": "a.docker", "recordType": "A", "targets": []},
            "spec.endpoints[0].targets: must be a non-empty list",
        ),
        (
            {"dnsName": "a.docker", "recordType": "A", "targets": ["fd00::1"]},
            "targets[0]: 'fd00::1' is not an IPv4 address",
        ),
        (
            {"dnsName": "a.docker", "recordType": "AAAA", "targets": ["10.0.0.1"]},
            "is not an IPv6 address",
        ),
        (
            {"dnsName": "a.docker", "recordType": "CNAME", "targets": ["x.example", "y.example"]},
            "a CNAME has exactly one target",
        ),
        (
            {"dnsName": "a.docker", "recordType": "SRV", "targets": ["1 2 x.example"]},
            "must be 'priority weight port host'",
        ),
        (
            {"dnsName": "a.docker", "recordType": "SRV", "targets": ["1 2 99999 x.example"]},
            "SRV port must be a number 0..65535",
        ),
        (
            {"dnsName": "a.docker", "recordType": "MX", "targets": ["mail.example"]},
            "must be 'preference host'",
        ),
        (
            {"dnsName": "a.docker", "recordType": "A", "targets": ["10.0.0.1"], "ttl": 5},
            "spec.endpoints[0].ttl: unknown field",
        ),
        (
            {"dnsName": "a.docker", "recordType": "A", "targets": ["10.0.0.1"], "recordTTL": -1},
            "recordTTL: must be 0..2147483647",
        ),
    ],
    ids=[
        "no-name",
        "outside",
        "type",
        "no-targets",
        "a-v6",
        "aaaa-v4",
        "cname-2",
        "srv-short",
        "srv-port",
        "mx",
        "unknown",
        "ttl",
    ],
)
def test_dnsendpoint_errors_name_the_endpoint_field(item: dict[str, Any], message: str) -> None:
    errors = errors_of(endpoint(item))
    assert any(message in error for error in errors), errors


def test_dnsendpoint_needs_endpoints() -> None:
    doc = endpoint()
    assert errors_of(doc) == [
        "defs/web.yaml#0 spec.endpoints: must be a non-empty list of endpoints"
    ]
