"""Bounded fuzzing of every input a user or a peer controls: DNS messages, YAML
definitions, the API's JSON bodies, container labels and environment, etcd values, and zone
files for ``dockzone serve``. Each target must not crash or hang, and must reject bad input
with a clear error (an rcode, a message naming the file and field, an HTTP 4xx with a JSON
``error``). What it accepts goes on through the zone build and renders a zone file that
parses again.

CI tries ``DOCKZONE_FUZZ_EXAMPLES`` inputs per target (default 150, a few seconds each);
``hack/fuzz`` tries many more. Figures are printed with ``pytest -s``.
"""

from __future__ import annotations

import json
import os
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsserver import DNSService, ZoneLoadError, ZoneStore, parse_zone_text
from dnsserver.errors import MessageError
from dnsserver.message import parse_query
from reconciler.core.index import build
from reconciler.core.model import Record, ZoneSettings
from reconciler.definitions import NameDefaults, parse_definitions
from reconciler.render import render_zone
from reconciler.skydns import record_from_entry
from reconciler.sources.docker import DockerOptions, container_records
from tests.helpers import service
from tests.servers import Daemon, query

EXAMPLES = int(os.environ.get("DOCKZONE_FUZZ_EXAMPLES", "150"))
DOMAINS = ("docker.", "skydns.local.")
DEFAULTS = NameDefaults(domains=DOMAINS)
ZONE_SETTINGS = ZoneSettings(domains=DOMAINS)

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),  # a hang fails the example instead of the whole run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

ZONE = """\
$ORIGIN docker.
$TTL 30
@ IN SOA ns.dns.docker. hostmaster.docker. 1 3600 600 86400 30
@ IN NS ns.dns.docker.
ns.dns IN A 127.0.0.1
web IN A 198.18.0.1
web IN AAAA 2001:db8::1
api IN SRV 10 100 8080 web.docker.
www IN CNAME web.docker.
txt IN TXT "hello" "world"
mail IN MX 10 web.docker.
"""

# --- strategies -------------------------------------------------------------------------

LABEL_CHARS = st.sampled_from("abcz09-_*.\\ \t\x00é")
words = st.text(LABEL_CHARS, max_size=20) | st.sampled_from(
    ["web", "*", "any", "", ".", "..", "a" * 64, "10.0.0.300", "198.18.0.7", "::1", "x.docker."]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    words,
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words, inner, max_size=4),
    max_leaves=12,
)
SPEC_KEYS = [
    "name", "zone", "host", "port", "protocol", "priority", "weight", "ttl", "text", "mail",
    "targetStrip", "group", "aliases", "endpoints", "addresses",
]  # fmt: skip


@st.composite
def service_documents(draw: st.DrawFn) -> Any:
    """A ServiceRecord with some fields replaced by anything, or anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    doc = service("web", host="198.18.0.7", port=8080)
    spec = doc["spec"]
    assert isinstance(spec, dict)
    for key in draw(st.lists(st.sampled_from(SPEC_KEYS), max_size=4)):
        spec[key] = draw(json_values)
    if draw(st.integers(0, 5)) == 0:
        doc[draw(st.sampled_from(["apiVersion", "kind", "metadata", "spec"]))] = draw(json_values)
    return doc


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        if out:
            out[position % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


@st.composite
def dns_messages(draw: st.DrawFn) -> bytes:
    """A query for a name in or near the zone, with bytes changed, cut or added; or noise."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=600))
    qname = draw(st.sampled_from(["web.docker.", "docker.", "nope.docker.", "x.", "*.docker."]))
    qtype = draw(st.sampled_from(["A", "AAAA", "SRV", "TXT", "MX", "ANY", "SOA", "NS", "PTR"]))
    message = dns.message.make_query(qname, qtype, use_edns=draw(st.booleans()))
    wire = message.to_wire()
    edits = draw(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 255)), max_size=4))
    cut = draw(st.none() | st.integers(0, len(wire)))
    return _mutate(wire, edits, cut) + draw(st.binary(max_size=8))


@st.composite
def zone_texts(draw: st.DrawFn) -> str:
    """The example zone with lines dropped, doubled, or tokens replaced; or noise."""
    if draw(st.integers(0, 6)) == 0:
        return draw(st.text(max_size=300))
    lines = ZONE.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(0, len(lines) - 1))
        action = draw(st.integers(0, 3))
        if action == 0:
            del lines[n]
        elif action == 1:
            lines.insert(n, lines[n])
        else:
            tokens = lines[n].split(" ")
            tokens[draw(st.integers(0, len(tokens) - 1))] = draw(
                words | st.sampled_from(["(", ")", ";", '"', "\\", "$INCLUDE", "65536", "-1"])
            )
            lines[n] = " ".join(tokens)
        if not lines:
            break
    return "\n".join(lines) + "\n"


# --- checks -----------------------------------------------------------------------------


def _renders(records: list[Record]) -> None:
    """Accepted records build into zones whose files parse again."""
    zones = build(records, ZONE_SETTINGS).zones
    for origin, content in zones.items():
        parse_zone_text(render_zone(content, 1), origin)


class _Counter:
    def __init__(self) -> None:
        self.tried = 0
        self.rejected = 0

    def report(self, target: str, started: float) -> None:
        print(
            f"\nfuzz {target}: {self.tried} inputs, {self.rejected} rejected with an error, "
            f"0 crashes, {time.monotonic() - started:.1f} s"
        )


@pytest.fixture
def dns_service() -> Iterator[DNSService]:
    store = ZoneStore()
    store.replace({"docker.": parse_zone_text(ZONE, "docker.")})
    service_ = DNSService(store, [("127.0.0.1", 0)], forwarder=None)
    service_.start()
    try:
        yield service_
    finally:
        service_.stop()


def test_dns_messages_never_crash_the_server_and_bad_ones_get_formerr(
    dns_service: DNSService,
) -> None:
    counter, started = _Counter(), time.monotonic()

    @FUZZ
    @given(dns_messages())
    def one(data: bytes) -> None:
        counter.tried += 1
        try:
            parse_query(data)
        except MessageError:
            counter.rejected += 1
        reply = dns_service.answer(data, udp=True, client="127.0.0.1")
        if reply is None:  # no header, or a response: dropped (never reflected)
            assert len(data) < 12 or data[2] & 0x80
            return
        assert reply[:2] == data[:2], "the reply carries the query's ID"
        (flags,) = struct.unpack_from("!H", reply, 2)
        assert flags & 0x8000, "the reply is a response"
        assert flags & 0xF != dns.rcode.SERVFAIL, "SERVFAIL to a query the zone holds"
        if flags & 0xF == dns.rcode.NOERROR:
            dns.message.from_wire(reply)  # what dockzone answers, dnspython reads

    one()
    host, port = dns_service.addresses[0][:2]
    assert query(host, port, "web.docker.").answer, "the server still answers"
    counter.report("DNS messages", started)


def test_yaml_definitions_are_accepted_or_rejected_naming_file_and_field() -> None:
    counter, started = _Counter(), time.monotonic()

    @FUZZ
    @given(
        st.lists(service_documents(), min_size=1, max_size=3).map(yaml.safe_dump_all)
        | st.text(max_size=200)
    )
    def one(text: str) -> None:
        counter.tried += 1
        found = parse_definitions(text, "defs/fuzz.yaml", DEFAULTS)
        for error in found.errors:
            assert str(error).startswith("defs/fuzz.yaml"), error
        counter.rejected += bool(found.errors)
        _renders(list(found.records))

    one()
    counter.report("YAML definitions", started)


def _docker_inputs() -> st.SearchStrategy[tuple[dict[str, Any], dict[str, Any]]]:
    keys = st.sampled_from(
        [
            "com.dnsdock.name", "com.dnsdock.image", "com.dnsdock.alias", "com.dnsdock.ttl",
            "com.dnsdock.ip_addr", "com.dnsdock.ignore", "DNSDOCK_NAME", "DNSDOCK_IMAGE",
            "DNSDOCK_ALIAS", "DNSDOCK_TTL", "DNSDOCK_IGNORE", "SERVICE_NAME", "SERVICE_TAGS",
            "SERVICE_REGION", "SERVICE_IGNORE", "DISCOVER", "PATH",
        ]
    )  # fmt: skip
    values = words | st.sampled_from(
        ["a:80", "svc:8080, svc2:8125/udp", "x:99999", "db.docker.,,", "-1", "1e9", "a,b"]
    )
    settings_ = st.dictionaries(keys, values, max_size=5)

    def container(
        labels: dict[str, str], env: dict[str, str], name: str, ip: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        summary = {
            "Id": "0123456789abcdef" * 4,
            "Names": [f"/{name}"],
            "Image": "registry.example/team/web:1.2",
            "Labels": labels,
            "State": "running",
            "Ports": [{"PrivatePort": 8080, "PublicPort": 18080, "Type": "tcp", "IP": "0.0.0.0"}],
            "NetworkSettings": {"Networks": {"dz": {"IPAddress": ip, "GlobalIPv6Address": ""}}},
        }
        inspect = {"Config": {"Env": [f"{k}={v}" for k, v in env.items()], "Image": "team/web:1.2"}}
        return summary, inspect

    return st.builds(container, settings_, settings_, words, words | st.just("198.18.0.9"))


def test_container_labels_and_env_publish_or_report_a_problem() -> None:
    counter, started = _Counter(), time.monotonic()
    options = DockerOptions(url="unix:///nonexistent")

    @FUZZ
    @given(_docker_inputs())
    def one(container: tuple[dict[str, Any], dict[str, Any]]) -> None:
        counter.tried += 1
        records, problems = container_records(container[0], container[1], options, DEFAULTS)
        for problem in problems:
            assert problem.startswith("container "), problem
        counter.rejected += bool(problems)
        _renders(list(records))

    one()
    counter.report("container labels/env", started)


def test_etcd_values_become_records_or_a_clear_value_error() -> None:
    counter, started = _Counter(), time.monotonic()
    keys = st.sampled_from(["web", "x1", "a/b", "", "*", "é", ".."]).map(
        lambda tail: f"/skydns/docker/{tail}/host-b-1"
    )
    values = json_values.map(json.dumps) | st.dictionaries(
        st.sampled_from(["host", "port", "priority", "weight", "ttl", "text", "mail", "group",
                         "targetstrip"]),
        json_values,
    ).map(json.dumps) | st.text(max_size=50)  # fmt: skip

    @FUZZ
    @given(keys, values)
    def one(key: str, value: str) -> None:
        counter.tried += 1
        try:
            record = record_from_entry(key, value, "/skydns/", DOMAINS)
        except ValueError as exc:
            problem = str(exc)
        else:
            _renders([record])
            return
        assert problem, "a rejection says why"
        counter.rejected += 1

    one()
    counter.report("etcd values", started)


def test_zone_files_for_serve_load_or_fail_naming_file_and_line() -> None:
    counter, started = _Counter(), time.monotonic()

    @FUZZ
    @given(zone_texts())
    def one(text: str) -> None:
        counter.tried += 1
        try:
            zone = parse_zone_text(text, "docker.", path="zones/db.docker")
        except ZoneLoadError as exc:
            error = exc
        else:
            ZoneStore().replace({"docker.": zone})
            return
        assert str(error).startswith("zones/db.docker:"), error
        assert error.reason, error
        counter.rejected += 1

    one()
    counter.report("zone files", started)


def _request(daemon: Daemon, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://{daemon.http}{path}",
        data=body,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_api_json_bodies_get_2xx_or_a_4xx_naming_the_problem(tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    daemon = Daemon.start(tmp_path, definitions, "--domain", "docker.")
    counter, started = _Counter(), time.monotonic()
    fields = st.sampled_from(["Name", "Image", "IPs", "IP", "TTL", "Aliases", "name", "spec"])
    valid = {"Name": "f", "Image": "api", "IPs": ["198.18.7.1"], "TTL": 30}
    dnsdock = st.builds(
        lambda changes: {**valid, **changes}, st.dictionaries(fields, json_values, max_size=1)
    )
    bodies = (dnsdock | service_documents() | json_values).map(
        lambda v: json.dumps(v).encode()
    ) | st.binary(max_size=50)
    ids = st.sampled_from(["f1", "f2", "f3"]) | st.sampled_from(
        ["bad%20id", "..", "x" * 300, "%00"]
    )

    def one_request(method: str, service_id: str, body: bytes) -> None:
        counter.tried += 1
        status, text = _request(daemon, method, f"/services/{service_id}", body)
        assert status < 500, (status, text)
        if status >= 400:
            counter.rejected += 1
            answer = json.loads(text)
            assert answer["error"], answer

    try:

        @settings(FUZZ, max_examples=max(EXAMPLES // 3, 10))
        @given(st.sampled_from(["PUT", "PUT", "PATCH"]), ids, bodies)
        def one(method: str, service_id: str, body: bytes) -> None:
            one_request(method, service_id, body)

        one()
        assert daemon.process.poll() is None, daemon.output()
        daemon.ready()
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert "Traceback" not in daemon.output(), daemon.output()
    counter.report("API JSON bodies", started)
