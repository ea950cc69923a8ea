"""The HTTP API for real: ``dockzone run`` on loopback ports, driven over HTTP with urllib,
its answers checked with dig, its metrics parsed with prometheus-client's own parser."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import service
from tests.servers import ROOT, Daemon, dig_answers, free_port, query


def call(
    daemon: Daemon,
    method: str,
    path: str,
    body: object = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request to the daemon's API: (status, parsed JSON or text)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{daemon.http}{path}", data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, text, kind = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, text, kind = exc.code, exc.read(), exc.headers
    if "json" in kind.get("Content-Type", ""):
        return status, json.loads(text)
    return status, text.decode()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    workdir = tmp_path_factory.mktemp("api")
    definitions = workdir / "definitions"
    definitions.mkdir()
    (definitions / "web.yaml").write_text(
        yaml.safe_dump(service("filed", dns_name="filed.app", host="198.18.0.5"))
    )
    running = Daemon.start(workdir, definitions, "--docker", "off")
    try:
        yield running
    finally:
        assert running.stop() == 0, running.output()


def test_a_dnsdock_put_answers_over_dns_as_soon_as_it_returns(daemon: Daemon) -> None:
    status, body = call(
        daemon,
        "PUT",
        "/services/newid",
        {"name": "foo", "image": "bar", "ip": "198.18.0.3", "ttl": 30},
    )
    assert status == 201, body
    assert dig_answers(daemon.port, "foo.bar.docker.") == ["foo.bar.docker. 30 IN A 198.18.0.3"]
    assert body["Name"] == "foo"
    assert body["Image"] == "bar"
    assert body["IPs"] == ["198.18.0.3"]
    assert body["TTL"] == 30
    assert body["readonly"] is False
    assert body["owner"]["source"] == "api"
    stored = yaml.safe_load((daemon.definitions / "api" / "servicerecord-newid.yaml").read_text())
    assert stored["spec"] == {"name": "foo.bar", "host": "198.18.0.3", "ttl": 30}

    status, body = call(daemon, "PATCH", "/services/newid", {"ttl": 0})
    assert status == 200, body
    assert dig_answers(daemon.port, "foo.bar.docker.") == ["foo.bar.docker. 0 IN A 198.18.0.3"]
    assert body["Name"] == "foo"

    status, body = call(daemon, "GET", "/services/newid")
    assert status == 200
    assert body["TTL"] == 0

    status, body = call(daemon, "DELETE", "/services/newid")
    assert status == 200, body
    assert dig_answers(daemon.port, "foo.bar.docker.") == []
    assert call(daemon, "GET", "/services/newid")[0] == 404


def test_dnsdock_upper_case_keys_and_aliases(daemon: Daemon) -> None:
    status, body = call(
        daemon,
        "PUT",
        "/services/upper",
        {"Name": "db1", "Image": "mysql", "IPs": ["198.18.0.4"], "Aliases": ["sql.docker"]},
    )
    assert status == 201, body
    assert body["Aliases"] == ["sql.docker"]
    assert body["TTL"] == -1
    assert dig_answers(daemon.port, "sql.docker.") == ["sql.docker. 30 IN A 198.18.0.4"]
    assert call(daemon, "PUT", "/services/upper", body)[0] == 200  # a GET can be PUT back
    assert call(daemon, "DELETE", "/services/upper")[0] == 200


def test_a_spec_put_is_a_service_record_that_dockzone_explain_traces(daemon: Daemon) -> None:
    spec = {"name": "api-web", "host": "198.18.0.20", "port": 8080, "text": "v=1"}
    status, body = call(daemon, "PUT", "/services/api-web", spec)
    assert status == 201, body
    assert body["spec"] == spec
    assert dig_answers(daemon.port, "api-web.docker.", "TXT") == ['api-web.docker. 30 IN TXT "v=1"']
    status, body = call(daemon, "PATCH", "/services/api-web", {"text": None, "ttl": 7})
    assert status == 200, body
    assert body["spec"] == {"name": "api-web", "host": "198.18.0.20", "port": 8080, "ttl": 7}
    assert dig_answers(daemon.port, "api-web.docker.") == ["api-web.docker. 7 IN A 198.18.0.20"]
    explained = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "explain",
            "api-web",
            "A",
            "--definitions",
            str(daemon.definitions),
            "--zones",
            str(daemon.zones),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert "from api/servicerecord-api-web.yaml#0" in explained.stdout
    assert call(daemon, "DELETE", "/services/api-web")[0] == 200


def test_services_lists_file_records_read_only_with_their_owner(daemon: Daemon) -> None:
    status, services = call(daemon, "GET", "/services")
    assert status == 200
    filed = services["filed"]
    assert filed["readonly"] is True
    assert filed["IPs"] == ["198.18.0.5"]
    assert filed["fqdn"] == "filed.app.docker."
    assert filed["owner"] == {
        "source": "file",
        "object": "servicerecord/filed",
        "location": "web.yaml#0",
    }
    for method, body in (("PUT", {"name": "x", "ip": "198.18.0.9"}), ("PATCH", {"ttl": 1})):
        status, error = call(daemon, method, "/services/filed", body)
        assert status == 409
        assert "web.yaml#0" in error["error"]
        assert error["owner"]["source"] == "file"
    status, error = call(daemon, "DELETE", "/services/filed")
    assert status == 409
    assert dig_answers(daemon.port, "filed.app.docker.") == ["filed.app.docker. 30 IN A 198.18.0.5"]


def test_a_put_that_loses_a_name_conflict_says_so(daemon: Daemon) -> None:
    """Two services claim the alias ``shared.docker.``: the owner that sorts first keeps it;
    the other's PUT and GET answer which name it lost and to whom."""
    status, first = call(
        daemon,
        "PUT",
        "/services/aa-first",
        {"name": "first", "host": "198.18.0.21", "aliases": ["shared.docker."]},
    )
    assert (status, first["conflicts"]) == (201, [])
    try:
        status, second = call(
            daemon,
            "PUT",
            "/services/zz-second",
            {"name": "second", "host": "198.18.0.22", "aliases": ["shared.docker."]},
        )
        assert status == 201
        assert second["conflicts"] == [
            {
                "name": "shared.docker.",
                "reason": "CNAME or alias claimed by another owner with other data",
                "kept": {
                    "source": "file",
                    "object": "servicerecord/aa-first",
                    "location": "api/servicerecord-aa-first.yaml#0",
                },
            }
        ]
        assert call(daemon, "GET", "/services/zz-second")[1]["conflicts"] == second["conflicts"]
        assert call(daemon, "GET", "/services")[1]["zz-second"]["conflicts"] == second["conflicts"]
        assert dig_answers(daemon.port, "shared.docker.") == ["shared.docker. 30 IN A 198.18.0.21"]
        # the winner goes: the other's alias answers, and its conflict is gone
        assert call(daemon, "DELETE", "/services/aa-first")[0] == 200
        assert call(daemon, "GET", "/services/zz-second")[1]["conflicts"] == []
        assert dig_answers(daemon.port, "shared.docker.") == ["shared.docker. 30 IN A 198.18.0.22"]
    finally:
        call(daemon, "DELETE", "/services/aa-first")
        call(daemon, "DELETE", "/services/zz-second")


ERRORS = [
    ("bad JSON", "PUT", "/services/e1", b"{nope", {}, 400, ""),
    ("not an object", "PUT", "/services/e1", b"[1]", {}, 400, ""),
    (
        "unknown spec field",
        "PUT",
        "/services/e1",
        b'{"name": "a", "host": "198.18.0.1", "bogus": 1}',
        {},
        400,
        "spec.bogus",
    ),
    (
        "unknown dnsdock field",
        "PUT",
        "/services/e1",
        b'{"name": "a", "ip": "198.18.0.1", "port": 1}',
        {},
        400,
        "port",
    ),
    (
        "bad IP",
        "PUT",
        "/services/e1",
        b'{"name": "a", "image": "b", "ip": "198.18.0.300"}',
        {},
        400,
        "ip",
    ),
    (
        "bad host",
        "PUT",
        "/services/e1",
        b'{"name": "a", "host": "bad_host!"}',
        {},
        400,
        "spec.host",
    ),
    (
        "bad TTL",
        "PUT",
        "/services/e1",
        b'{"name": "a", "host": "198.18.0.1", "ttl": -5}',
        {},
        400,
        "spec.ttl",
    ),
    (
        "bad dnsdock TTL",
        "PUT",
        "/services/e1",
        b'{"name": "a", "ip": "198.18.0.1", "ttl": "x"}',
        {},
        400,
        "ttl",
    ),
    (
        "bad name",
        "PUT",
        "/services/e1",
        b'{"name": "a..b", "host": "198.18.0.1"}',
        {},
        400,
        "spec.name",
    ),
    (
        "bad port",
        "PUT",
        "/services/e1",
        b'{"name": "a", "host": "198.18.0.1", "port": 0}',
        {},
        400,
        "spec.port",
    ),
    (
        "zone not configured",
        "PUT",
        "/services/e1",
        b'{"name": "www.google", "zone": "com.", "host": "198.18.0.1"}',
        {},
        400,
        "spec.zone",
    ),
    ("bad id", "PUT", "/services/Bad_Id", b'{"name": "a", "host": "198.18.0.1"}', {}, 400, "id"),
    ("oversize body", "PUT", "/services/e1", b'{"name": "' + b"a" * 70000 + b'"}', {}, 413, ""),
    ("not JSON", "PUT", "/services/e1", b"name: a", {"Content-Type": "application/yaml"}, 415, ""),
    ("unknown id", "GET", "/services/nothing-here", None, {}, 404, "id"),
    ("patch unknown id", "PATCH", "/services/nothing-here", b'{"ttl": 1}', {}, 404, "id"),
    ("delete unknown id", "DELETE", "/services/nothing-here", None, {}, 404, "id"),
    ("method", "POST", "/services/e1", b"{}", {}, 405, ""),
    ("bad default TTL", "PUT", "/set/ttl", b"-1", {}, 400, "ttl"),
    ("default TTL not a number", "PUT", "/set/ttl", b'"ten"', {}, 400, "ttl"),
    ("unknown zone", "GET", "/zones/nowhere.test", None, {}, 404, "zone"),
]


@pytest.mark.parametrize("row", [row[1:] for row in ERRORS], ids=[row[0] for row in ERRORS])
def test_errors_are_json_naming_the_field_and_change_nothing(
    daemon: Daemon, row: tuple[str, str, bytes | None, dict[str, str], int, str]
) -> None:
    method, path, raw, headers, status, field = row
    before = _api_files(daemon)
    got, body = call(daemon, method, path, raw=raw, headers=headers)
    assert got == status, body
    assert isinstance(body, dict)
    assert body["error"]
    if field:
        assert body["field"] == field
    assert _api_files(daemon) == before


def test_a_record_in_a_zone_dockzone_does_not_serve_is_refused_naming_the_flag(
    daemon: Daemon,
) -> None:
    spec = {"name": "www.google", "zone": "com.", "host": "198.18.0.1"}
    status, body = call(daemon, "PUT", "/services/hijack", spec)
    assert status == 400, body
    assert body["field"] == "spec.zone"
    assert "zone com. is not served" in body["error"]
    assert "add --domain com." in body["error"]
    assert not (daemon.zones / "db.com").exists()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"name": "a", "image": "b", "ip": "198.18.0.300"},
            "ip",
            "'198.18.0.300' is not a valid IPv4 address",
        ),
        (
            {"name": "a", "host": "198.18.0.300"},
            "spec.host",
            "'198.18.0.300' is not a valid IPv4 address",
        ),
    ],
    ids=["dnsdock ip", "spec host"],
)
def test_a_mistyped_address_is_refused_not_published_as_a_name(
    daemon: Daemon, body: dict[str, str], field: str, message: str
) -> None:
    status, answer = call(daemon, "PUT", "/services/typo", body)
    assert status == 400, answer
    assert answer["field"] == field
    assert answer["error"].startswith(message)
    assert call(daemon, "GET", "/services/typo")[0] == 404


def _api_files(daemon: Daemon) -> list[str]:
    directory = daemon.definitions / "api"
    return sorted(p.name for p in directory.glob("*")) if directory.exists() else []


def test_status_zones_health_and_readiness(daemon: Daemon) -> None:
    status, body = call(daemon, "GET", "/status")
    assert status == 200
    assert body["ready"] is True
    assert body["passes"] >= 1
    assert body["sources"]["files"]["stale"] is False
    assert body["sources"]["files"]["records"] >= 1
    assert body["last_reconcile"]["errors"] == []
    assert set(body["last_reconcile"]["changes"]) == {"zonefiles", "dns"}
    zone = body["zones"]["docker."]
    [soa] = query("127.0.0.1", daemon.port, "docker.", "SOA").answer
    assert zone["serial"] == soa[0].serial
    assert zone["records"] >= 3
    status, text = call(daemon, "GET", "/zones/docker.")
    assert status == 200
    assert text == (daemon.zones / "db.docker").read_text()
    assert "filed.app.docker." in text
    assert call(daemon, "GET", "/zones/docker")[1] == text
    assert call(daemon, "GET", "/healthz") == (200, {"status": "ok"})
    assert call(daemon, "GET", "/readyz") == (200, {"status": "ready"})


def _metrics(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = call(daemon, "GET", "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_parse_and_move_with_queries(daemon: Daemon) -> None:
    before = _metrics(daemon)
    requests = ("dockzone_dns_request_count_total", (("type", "udp"),))
    misses = ("dockzone_dns_cachemiss_count_total", (("cache", "response"),))
    nxdomain = ("dockzone_dns_error_count_total", (("cause", "nxdomain"),))
    nodata = ("dockzone_dns_error_count_total", (("cause", "nodata"),))
    tcp = ("dockzone_dns_request_count_total", (("type", "tcp"),))
    for _ in range(3):
        query("127.0.0.1", daemon.port, "metrics-missing.docker.", "A")
    query("127.0.0.1", daemon.port, "filed.app.docker.", "TXT")
    query("127.0.0.1", daemon.port, "filed.app.docker.", "A", tcp=True)
    after = _metrics(daemon)
    assert after[requests] - before[requests] == 4
    # The first NXDOMAIN and the TXT miss the cache; the repeated NXDOMAINs are hits (a
    # reload in between would start a new cache, hence the upper bound of 4).
    assert 2 <= after[misses] - before[misses] <= 4
    assert after[nxdomain] - before[nxdomain] == 3
    assert after[nodata] - before[nodata] == 1
    assert after[tcp] - before[tcp] == 1
    assert after[("dockzone_reconcile_passes_total", ())] >= 1
    assert after[("dockzone_source_records", (("source", "files"),))] >= 1
    assert after[("dockzone_zone_records", (("zone", "docker."),))] >= 3
    sizes = ("dockzone_dns_response_size_bytes_count", (("type", "udp"),))
    assert after[sizes] - before[sizes] == 4
    durations = ("dockzone_dns_request_duration_seconds_count", (("type", "tcp"),))
    assert after[durations] - before[durations] == 1


def test_a_record_and_the_default_ttl_survive_sigkill_and_restart(tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    first = Daemon.start(tmp_path, definitions, "--docker", "off")
    try:
        status, body = call(first, "PUT", "/services/keep", {"name": "keep", "ip": "198.18.0.6"})
        assert status == 201, body
        assert call(first, "PUT", "/set/ttl", raw=b"12") == (200, {"ttl": 12})
        assert dig_answers(first.port, "keep.docker.") == ["keep.docker. 12 IN A 198.18.0.6"]
    finally:
        first.process.kill()
        first.process.wait(timeout=10)
    second = Daemon.start(tmp_path, definitions, "--docker", "off")
    try:
        assert dig_answers(second.port, "keep.docker.") == ["keep.docker. 12 IN A 198.18.0.6"]
        assert call(second, "GET", "/set/ttl") == (200, {"ttl": 12})
        assert call(second, "GET", "/services/keep")[1]["IPs"] == ["198.18.0.6"]
    finally:
        assert second.stop() == 0, second.output()


def test_beyond_loopback_without_a_token_dockzone_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "run",
            "--definitions",
            str(tmp_path / "definitions"),
            "--zones",
            str(tmp_path / "zones"),
            "--dns",
            f"127.0.0.1:{free_port()}",
            "--http",
            f"0.0.0.0:{free_port()}",
            "--docker",
            "off",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr
    assert "--insecure-api" in result.stderr
    assert "DOCKZONE_API_TOKEN" in result.stderr


def test_beyond_loopback_mutations_need_the_bearer_token(tmp_path: Path) -> None:
    secret = "s3cret-token-for-tests"
    token_file = tmp_path / "token"
    token_file.write_text(secret + "\n")
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    port = free_port("0.0.0.0")
    running = Daemon.start(
        tmp_path,
        definitions,
        "--docker",
        "off",
        "--http",
        f"0.0.0.0:{port}",
        "--api-token-file",
        str(token_file),
    )
    running.http = f"127.0.0.1:{port}"  # bound everywhere, queried on loopback only
    body = {"name": "guarded", "ip": "198.18.0.7"}
    try:
        assert call(running, "GET", "/services") == (200, {})
        status, error = call(running, "PUT", "/services/guarded", body)
        assert status == 401
        assert "Bearer" in error["error"]
        wrong = {"Authorization": "Bearer nope"}
        assert call(running, "PUT", "/services/guarded", body, headers=wrong)[0] == 401
        assert call(running, "PUT", "/set/ttl", raw=b"5", headers=wrong)[0] == 401
        assert call(running, "DELETE", "/services/guarded", headers=wrong)[0] == 401
        right = {"Authorization": f"Bearer {secret}"}
        assert call(running, "PUT", "/services/guarded", body, headers=right)[0] == 201
        assert dig_answers(running.port, "guarded.docker.") == [
            "guarded.docker. 30 IN A 198.18.0.7"
        ]
        assert call(running, "DELETE", "/services/guarded", headers=right)[0] == 200
    finally:
        assert running.stop() == 0, running.output()
    assert secret not in running.output()
