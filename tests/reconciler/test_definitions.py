"""Reading definitions: every field checked, errors name file, document and field, and one
bad document never hides the others."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import definitions
from reconciler.core.model import Endpoint, ServiceRecord
from reconciler.definitions import NameDefaults, load_definitions, parse_definitions
from tests.helpers import service

ROOT = Path(__file__).resolve().parents[2]

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
    ({"name": "w", "host": "10.0.0.300"}, "spec.host: '10.0.0.300' is not a valid IPv4 address"),
    ({"name": "w", "host": "10.0.0.300."}, "spec.host: '10.0.0.300.' is not a valid IPv4 address"),
    ({"name": "w", "host": "10.1", "port": 80}, "spec.host: '10.1' is not a valid IPv4 address"),
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
    ({"name": "w", "host": "10.0.0.1", "aliases": 1.0}, "spec.aliases: must be a list of names"),
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


def test_dnsendpoint_zone_annotation_picks_one_of_the_configured_domains() -> None:
    defaults = NameDefaults(("docker.", "example.org.", "sub.example.org."))
    item = {"dnsName": "a.sub.example.org", "recordType": "A", "targets": ["10.0.0.1"]}
    [plain] = parse_definitions(yaml.safe_dump(endpoint(item)), "ep.yaml", defaults).records
    assert plain.zone == "sub.example.org."
    doc = endpoint(item, annotations={"dockzone.dev/zone": "example.org"})
    [record] = parse_definitions(yaml.safe_dump(doc), "ep.yaml", defaults).records
    assert record.zone == "example.org."


HIJACKS = [
    (
        "servicerecord zone",
        service("web", dns_name="www", zone="com.", host="10.0.0.1"),
        "defs/web.yaml#0 spec.zone: zone com. is not served (the configured domains are "
        "docker., skydns.local.); to serve it, add --domain com. (or com. to the config "
        "file's domain list)",
    ),
    (
        "servicerecord zone without its dot",
        service("web", dns_name="www.google.com.", zone="COM", host="10.0.0.1"),
        "defs/web.yaml#0 spec.zone: zone com. is not served",
    ),
    (
        "servicerecord absolute name",
        service("web", dns_name="www.google.com.", host="10.0.0.1"),
        "defs/web.yaml#0 spec.name: www.google.com. is outside every configured domain "
        "(docker., skydns.local.); add its zone with --domain",
    ),
    (
        "dnsendpoint annotation",
        endpoint(
            {"dnsName": "www.google.com", "recordType": "A", "targets": ["10.0.0.1"]},
            annotations={"dockzone.dev/zone": "com"},
        ),
        "defs/web.yaml#0 metadata.annotations.dockzone.dev/zone: zone com. is not served",
    ),
]


@pytest.mark.parametrize(("doc", "message"), [h[1:] for h in HIJACKS], ids=[h[0] for h in HIJACKS])
def test_a_zone_that_is_not_configured_is_an_error_naming_the_flag(
    doc: dict[str, Any], message: str
) -> None:
    """Zones come from the configuration: a definition cannot make dockzone authoritative
    for com. (and so answer NXDOMAIN for every name it used to forward)."""
    errors = errors_of(doc)
    assert len(errors) == 1, errors
    assert errors[0].startswith(message), errors


def test_a_configured_zone_is_taken_and_the_others_in_the_file_still_count() -> None:
    text = yaml.safe_dump_all(
        [
            service("hijack", dns_name="www", zone="com.", host="10.0.0.1"),
            service("ok", dns_name="www", zone="skydns.local.", host="10.0.0.2"),
        ]
    )
    found = parse_definitions(text, "defs/web.yaml", DEFAULTS)
    assert [str(e).split(":")[0] for e in found.errors] == ["defs/web.yaml#0 spec.zone"]
    assert [(r.name, r.zone) for r in found.records] == [("www.skydns.local.", "skydns.local.")]


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
            {"dnsName": "a.docker", "recordType": "CNAME", "targets": ["10.0.0.300"]},
            "spec.endpoints[0].targets[0]: '10.0.0.300' is not a valid IPv4 address",
        ),
        (
            {"dnsName": "a.docker", "recordType": "SRV", "targets": ["1 2 80 10.0.0.300"]},
            "spec.endpoints[0].targets[0]: '10.0.0.300' is not a valid IPv4 address",
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
        "cname-typo",
        "srv-typo",
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


# Fast paths: libyaml events for plain documents, a one-pass check for clean ServiceRecords.
# Both must give exactly what PyYAML's safe loader and the field-by-field checker give.

YAML_TEXTS = [
    "a: 1\nb: [x, 'y', \"z\"]\n",
    "---\n---\n",
    "a: 1\n---\n",
    "# only a comment\n",
    "",
    "plain\n",
    "a: 1\n...\n---\nb: 2\n",
    "n: ~\ne:\nt: yes\nf: Off\no: 0o17\nx: 0x1f\nu: 1_000\ns: 1:30\nfl: 1.5e+3\ninf: .inf\n",
    "d: 2001-12-14t21:59:43.10-05:00\nday: 2002-12-14\n",
    "q: '08'\nbig: 123456789012345678901234567890\nneg: -12\nplus: +7\nnan: .NaN\n",
    "text: |\n  line one\n  line two\nfolded: >\n  a\n  b\n",
    "flow: {a: 1, b: [c, {d: e}]}\nempty: {}\nnone: []\n",
    "base: &base {a: 1}\nuse: *base\n",
    "merged:\n  <<: {a: 1, b: 2}\n  b: 3\n",
    "tagged: !!str 5\nset: !!set {a, b}\n",
    "value: =\n",
    "= : x\n",
    "? [a, b]\n: c\n",
    "1: int key\n2.5: float key\nnull: null key\ntrue: bool key\n",
    "dup: 1\ndup: 2\n",
    "unknown: !custom x\n",
    "a: [unclosed\n",
    "a: 'quoted\n---\nb: 2\n",
    "a: 1\n...\nb: 2\n",
    "first: 1\n---\nsecond: [2\n---\nthird: 3\n",
    "%YAML 1.1\n---\na: 1\n",
    "a: 1\n---\nb: &x 1\nc: *x\n---\nd: 4\n",
    "a: 1\n---\nb: *nope\n",
    "\ufeffbom: 1\n",
    "key with spaces: value with: colon\n",
    "- a\n- - b\n  - c\n- {d: [e]}\n",
]


def _safe_load_all(text: str) -> tuple[list[Any], str | None]:
    found: list[Any] = []
    try:
        for body in yaml.load_all(text, Loader=definitions.LOADER):
            found.append(body)
    except yaml.YAMLError as exc:
        return found, f"{type(exc).__name__}: {exc}"
    return found, None


def _fast_load_all(text: str) -> tuple[list[Any], str | None]:
    found: list[Any] = []
    try:
        for body in definitions.load_documents(text):
            found.append(body)
    except yaml.YAMLError as exc:
        return found, f"{type(exc).__name__}: {exc}"
    return found, None


@pytest.mark.parametrize("text", YAML_TEXTS, ids=[f"yaml-{i}" for i in range(len(YAML_TEXTS))])
def test_load_documents_reads_what_the_safe_loader_reads(text: str) -> None:
    expected = _safe_load_all(text)
    assert _fast_load_all(text) == expected
    # and the plain-value cache does not change a second reading
    assert _fast_load_all(text) == expected


def test_load_documents_reads_the_example_definitions() -> None:
    for path in sorted((ROOT / "manifests" / "examples").rglob("*.yaml")):
        text = path.read_text()
        assert _fast_load_all(text) == _safe_load_all(text), path


def test_parse_uses_libyaml_and_syntax_errors_keep_line_and_column() -> None:
    assert definitions.LOADER is yaml.CSafeLoader  # PyYAML's wheels ship libyaml
    a, b = (yaml.safe_dump(service(name, host="10.0.0.1")) for name in "ab")  # 7 lines each
    text = f"{a}---\n{b}---\nspec: [unclosed\n"
    found = parse_definitions(text, "x.yaml", DEFAULTS)
    assert [d.location for d in found.documents] == ["x.yaml#0", "x.yaml#1"]
    [error] = found.errors
    assert str(error) == (
        "x.yaml: YAML syntax error at line 18 column 1: did not find expected ',' or ']'"
    )


def _checked(body: Any) -> Any:
    try:
        return definitions._checked_document(body, "f.yaml", 3, DEFAULTS)
    except definitions.DefinitionProblems as problems:
        return [str(e) for e in problems.errors]


def _assert_one_pass_agrees(body: Any) -> bool:
    """The one-pass check either declines ``body`` or gives what the checker gives."""
    fast = definitions._clean_service(body, "f.yaml", 3, DEFAULTS)
    checked = _checked(body)
    if fast is not None:
        assert isinstance(checked, definitions.Document), (body, checked)
        assert fast == checked
        assert fast.records == checked.records
    return fast is not None


FIELD_VALUES: dict[str, list[Any]] = {
    "name": [
        "web",
        "Web.NGINX",
        "1.rails.production.east",
        "x.skydns.local.",
        "web.example.org.",
        "@",
        "_http._tcp.web",
        "a..b",
        "-a",
        "a b",
        "x" * 64,
        ".".join(["abcdefgh"] * 30),
        "redis.*",
        "any.redis",
        "company",
        "web\n",
        "\u212a8s",
        "",
        5,
        None,
        "docker.",
    ],
    "zone": [None, "skydns.local", "skydns.local.", "docker.", "bad zone", "", 3, "Example.ORG"],
    "host": [
        None,
        "10.0.0.1",
        "010.0.0.1",
        "10.0.0.256",
        "2001:DB8:0::1",
        "::ffff:1.2.3.4",
        "Service5.Example.com",
        "not_an ip",
        "",
        "a..b",
        7,
        "fe80::1%eth0",
    ],
    "port": [None, 8080, 0, 1, 65535, 65536, "80", True, 1.5],
    "protocol": [None, "tcp", "udp", "", "sctp", "TCP", 6],
    "priority": [None, 0, 10, -1, 65535, 65536, False],
    "weight": [None, 0, 120, 65536, "1"],
    "ttl": [None, 0, 30, -5, 1.5, 2**31 - 1, 2**31],
    "text": [None, "hi", ["a", "b"], [], ["a", 1], 5, ""],
    "mail": [None, True, False, "yes", 0],
    "targetStrip": [None, 0, 2, 127, 128, -1],
    "group": [None, "", "blue", "x" * 64, "tab\there", 3],
    "aliases": [
        None,
        [],
        ["db.docker.", "sql", "db.docker."],
        "db",
        ["ok", 3],
        ["web"],
        ["*.x"],
        ["web.skydns.local."],
        ["Any.x"],
    ],
}


FIELD_CHANGES = [(key, value) for key, values in FIELD_VALUES.items() for value in values]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(FIELD_CHANGES), max_size=4),
    st.sampled_from(["web", "Web_1", "", None, "a.b-c"]),
    st.sampled_from([None, {"x": 1}, "status-only"]),
)
def test_the_one_pass_check_agrees_with_the_checker(
    changes: list[tuple[str, Any]], object_name: Any, extra: Any
) -> None:
    spec: dict[str, Any] = {"name": "web", "host": "10.0.0.1"}
    for key, value in changes:
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    body: dict[str, Any] = {
        "apiVersion": "dockzone.dev/v1alpha1",
        "kind": "ServiceRecord",
        "metadata": {"name": object_name},
        "spec": spec,
    }
    if extra == "status-only":
        body["status"] = {"ready": True}
    elif extra is not None:
        body["extra"] = extra
    _assert_one_pass_agrees(body)


def test_the_one_pass_check_takes_most_of_a_random_mix() -> None:
    chooser = random.Random(10)
    taken = 0
    for _ in range(3000):
        spec: dict[str, Any] = {"name": "web", "host": "10.0.0.1"}
        for key, value in chooser.sample(FIELD_CHANGES, chooser.randrange(4)):
            spec[key] = value
        spec = {key: value for key, value in spec.items() if value is not None}
        taken += _assert_one_pass_agrees(service("web", dns_name=None, **spec))
    assert taken > 300


def test_the_one_pass_check_takes_the_common_documents() -> None:
    specs = [cast("dict[str, Any]", spec) for spec, _, _ in VALID]
    taken = [
        _assert_one_pass_agrees(service("web", **spec)) for spec in specs if spec["name"] != "@"
    ]
    assert all(taken)
    examples = load_definitions(ROOT / "manifests" / "examples", DEFAULTS)
    services = [d for d in examples.documents if d.kind == "ServiceRecord"]
    assert services
    assert all(_assert_one_pass_agrees(d.body) for d in services)


@pytest.mark.parametrize(
    ("spec", "message"), INVALID, ids=[f"declined-{i}" for i in range(len(INVALID))]
)
def test_the_one_pass_check_declines_every_invalid_spec(spec: dict[str, Any], message: str) -> None:
    assert not _assert_one_pass_agrees(service("web", **spec))


def test_an_unhashable_kind_is_a_problem_not_a_crash() -> None:
    errors = errors_of({"kind": ["ServiceRecord"], "apiVersion": "dockzone.dev/v1alpha1"})
    assert errors == [
        "defs/web.yaml#0 kind: must be ServiceRecord or DNSEndpoint, not ['ServiceRecord']"
    ]
