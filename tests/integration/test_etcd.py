"""The etcd sink and source against a real etcd on loopback: two ``dockzone run`` instances
act as two Docker hosts with different definitions, publish into the SkyDNS layout under
their own leases, and each answers for both; a host killed without cleanup loses its
records when its lease expires.

The second half drives the ``Reconciler`` in process over records held in memory, with the
etcd client wrapped to count requests: after the first pass a change costs one transaction
and no range request, keys removed by someone else wait for a full pass, a failed pass
makes the next one read the prefix again, and a lost lease is replaced at once."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.core.model import Owner, ServiceRecord, ZoneSettings
from reconciler.core.triggers import Wakeup
from reconciler.etcdclient import EtcdClient, EtcdError, EtcdOptions, prefix_end
from reconciler.loop import Reconciler
from reconciler.sinks.etcd import EtcdSink, EtcdSinkConfig
from reconciler.sources import Snapshot
from tests.helpers import eventually, require_binary, service
from tests.servers import ROOT, Daemon, dig_answers, free_port, make_certs, stop_process


@dataclass
class EtcdServer:
    """A one-member etcd cluster on free 127.0.0.1 ports, data in a temporary directory."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    certs: dict[str, Path] | None = None

    @classmethod
    def start(cls, workdir: Path, certs: dict[str, Path] | None = None) -> EtcdServer:
        """Start it; with ``certs`` (tests.servers.make_certs) clients need TLS and a
        client certificate."""
        binary = require_binary("etcd")
        client, peer = free_port(), free_port()
        url = f"{'https' if certs else 'http'}://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        tls = []
        if certs:
            tls = [
                "--cert-file",
                str(certs["server-cert"]),
                "--key-file",
                str(certs["server-key"]),
                "--trusted-ca-file",
                str(certs["ca"]),
                "--client-cert-auth",
            ]
        log = workdir / "etcd.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    binary,
                    "--name",
                    "test",
                    "--data-dir",
                    str(workdir / "etcd-data"),
                    "--listen-client-urls",
                    url,
                    "--advertise-client-urls",
                    url,
                    "--listen-peer-urls",
                    peer_url,
                    "--initial-advertise-peer-urls",
                    peer_url,
                    "--initial-cluster",
                    f"test={peer_url}",
                    *tls,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = cls(process, url, log, certs)
        eventually(server.ready, timeout=30, interval=0.2)
        return server

    def client(self) -> EtcdClient:
        certs = self.certs or {}
        return EtcdClient(
            EtcdOptions(
                (self.url,), certs.get("ca"), certs.get("cert"), certs.get("key"), timeout=2.0
            )
        )

    def ready(self) -> None:
        assert self.process.poll() is None, self.log.read_text()
        try:
            self.client().range_prefix("/")
        except EtcdError as exc:
            raise AssertionError(str(exc)) from exc

    def published(self, prefix: str = "/skydns/") -> dict[str, str]:
        return {kv.key: kv.value for kv in self.client().range_prefix(prefix)[1]}

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    workdir = tmp_path / "etcd"
    workdir.mkdir()
    server = EtcdServer.start(workdir)
    try:
        yield server
    finally:
        server.stop()


def host(workdir: Path, etcd: EtcdServer, name: str, *documents: dict[str, object]) -> Daemon:
    workdir.mkdir()
    definitions = workdir / "definitions"
    definitions.mkdir()
    (definitions / "services.yaml").write_text(yaml.safe_dump_all(documents))
    return Daemon.start(
        workdir,
        definitions,
        "--etcd",
        etcd.url,
        "--instance-id",
        name,
        "--etcd-lease-ttl",
        "3",
        "--log-level",
        "DEBUG",
    )


def test_two_hosts_each_answer_for_both_and_a_killed_host_expires(
    tmp_path: Path, etcd: EtcdServer
) -> None:
    # someone else's SkyDNS key: served too, never touched
    etcd.client().put("/skydns/docker/legacy/x1", json.dumps({"host": "10.0.9.9"}))
    a = host(tmp_path / "a", etcd, "host-a", service("web-a", host="10.0.1.1", port=8080))
    b = host(tmp_path / "b", etcd, "host-b", service("web-b", host="10.0.2.2"))
    try:
        for daemon in (a, b):
            eventually(
                lambda d=daemon: (
                    dig_answers(d.port, "web-b.docker.")  # type: ignore[misc]
                    == ["web-b.docker. 30 IN A 10.0.2.2"]
                ),
                15,
            )
            eventually(
                lambda d=daemon: (
                    dig_answers(d.port, "web-a.docker.")  # type: ignore[misc]
                    == ["web-a.docker. 30 IN A 10.0.1.1"]
                ),
                15,
            )
            assert dig_answers(daemon.port, "legacy.docker.") == ["legacy.docker. 30 IN A 10.0.9.9"]
        keys = etcd.published()
        mine = {k: v for k, v in keys.items() if k.startswith("/skydns/docker/web-a/")}
        assert len(mine) == 1, keys
        key, value = next(iter(mine.items()))
        assert key.rpartition("/")[2].startswith("host-a-")
        assert json.loads(value) == {
            "host": "10.0.1.1",
            "port": 8080,
            "priority": 10,
            "weight": 100,
            "ttl": 30,
        }
        # each host writes only its own records: nothing it learned from etcd
        assert [k for k in keys if "host-a-" in k] == [key], keys
        assert len([k for k in keys if "host-b-" in k]) == 1, keys

        b.process.send_signal(signal.SIGKILL)
        b.process.wait(timeout=10)
        eventually(lambda: not any("host-b-" in k for k in etcd.published()), 15, 0.2)
        eventually(lambda: dig_answers(a.port, "web-b.docker.") == [], 15, 0.2)
        assert dig_answers(a.port, "web-a.docker.") == ["web-a.docker. 30 IN A 10.0.1.1"]
        assert "/skydns/docker/legacy/x1" in etcd.published()
        # a's lease is kept alive: its key outlives several lease TTLs
        started = time.monotonic()
        while time.monotonic() - started < 7:
            assert key in etcd.published()
            time.sleep(0.5)

        # a's definitions change: its key changes, the others stay
        (a.definitions / "services.yaml").write_text(
            yaml.safe_dump_all([service("web-a", host="10.0.1.5")])
        )
        eventually(
            lambda: (
                [json.loads(v)["host"] for k, v in etcd.published().items() if "host-a-" in k]
                == ["10.0.1.5"]
            ),
            15,
        )
    finally:
        assert a.stop() == 0, a.output()
        b.stop()


def test_another_writers_change_answers_here_at_once(tmp_path: Path, etcd: EtcdServer) -> None:
    """The etcd source follows /v3/watch: another host's key, put or changed, answers here
    within a fraction of a second (polling took up to a second more), and a key deleted
    goes as fast; none of it reads the prefix again."""
    a = host(tmp_path / "a", etcd, "host-a", service("web-a", host="10.0.1.1"))
    client = etcd.client()
    try:
        eventually(lambda: _answers(a, "web-a.docker.", ["web-a.docker. 30 IN A 10.0.1.1"]), 15)
        reads_before = a.output().count("etcd source: read")
        delays = []
        for n in range(1, 6):
            started = time.monotonic()
            client.put("/skydns/docker/peer/x1", json.dumps({"host": f"10.0.9.{n}"}))
            expected = [f"peer.docker. 30 IN A 10.0.9.{n}"]
            while dig_answers(a.port, "peer.docker.") != expected:
                assert time.monotonic() - started < 5, a.output()
                time.sleep(0.005)
            delays.append(time.monotonic() - started)
        print(f"another writer's put -> answered here: {sorted(delays)}")
        assert sorted(delays)[2] < 0.3, delays
        client.put("/skydns/docker/peer/x2", json.dumps({"host": "10.0.9.20"}))
        eventually(
            lambda: _answers(
                a,
                "peer.docker.",
                ["peer.docker. 30 IN A 10.0.9.20", "peer.docker. 30 IN A 10.0.9.5"],
            ),
            5,
            0.01,
        )
        client.delete("/skydns/docker/peer/x2")
        eventually(lambda: _answers(a, "peer.docker.", ["peer.docker. 30 IN A 10.0.9.5"]), 5, 0.01)
        assert a.output().count("etcd source: read") == reads_before, a.output()
        # two instances: b's definitions change, a answers b's new address
        b = host(tmp_path / "b", etcd, "host-b", service("web-b", host="10.0.2.1"))
        try:
            eventually(lambda: _answers(a, "web-b.docker.", ["web-b.docker. 30 IN A 10.0.2.1"]), 15)
            between = []
            for n in range(2, 7):
                expected = [f"web-b.docker. 30 IN A 10.0.2.{n}"]
                started = time.monotonic()
                (b.definitions / "services.yaml").write_text(
                    yaml.safe_dump_all([service("web-b", host=f"10.0.2.{n}")])
                )
                while dig_answers(a.port, "web-b.docker.") != expected:
                    assert time.monotonic() - started < 5, a.output() + b.output()
                    time.sleep(0.005)
                between.append(time.monotonic() - started)
            print(f"host b's definitions written -> answered by host a: {sorted(between)}")
            assert sorted(between)[2] < 0.5, between
        finally:
            b.stop()
    finally:
        assert a.stop() == 0, a.output()


def test_user_and_password_auth(etcd: EtcdServer) -> None:
    admin = etcd.client()
    admin.call("/v3/auth/role/add", {"name": "root"})
    admin.call("/v3/auth/user/add", {"name": "root", "password": "s3cret-pw"})
    admin.call("/v3/auth/user/grant", {"user": "root", "role": "root"})
    admin.call("/v3/auth/enable", {})
    with pytest.raises(EtcdError, match="user name is empty"):
        admin.put("/skydns/x", "{}")
    client = EtcdClient(EtcdOptions((etcd.url,), user="root", password="s3cret-pw"))
    lease = client.lease_grant(5)
    client.put("/skydns/docker/web/x1", '{"host":"10.0.0.1"}', lease)
    assert [kv.key for kv in client.range_prefix("/skydns/")[1]] == ["/skydns/docker/web/x1"]
    assert client.lease_keepalive(lease) > 0
    wrong = EtcdClient(EtcdOptions((etcd.url,), user="root", password="wrong-pw"))
    with pytest.raises(EtcdError, match="authentication failed") as info:
        wrong.range_prefix("/skydns/")
    assert "wrong-pw" not in str(info.value)


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    """etcd that requires TLS client certificates: dockzone publishes with --etcd-ca,
    --etcd-cert and --etcd-key; a client without a certificate is refused, naming etcd."""
    certs = make_certs(tmp_path / "certs")
    (tmp_path / "etcd").mkdir()
    server = EtcdServer.start(tmp_path / "etcd", certs)
    try:
        anonymous = EtcdClient(EtcdOptions((server.url,), certs["ca"], timeout=2.0))
        with pytest.raises(EtcdError) as refused:
            anonymous.range_prefix("/")
        assert server.url in str(refused.value)
        definitions = tmp_path / "definitions"
        definitions.mkdir()
        (definitions / "web.yaml").write_text(yaml.safe_dump(service("web", host="10.7.0.1")))
        daemon = Daemon.start(
            tmp_path,
            definitions,
            "--etcd",
            server.url,
            "--etcd-ca",
            str(certs["ca"]),
            "--etcd-cert",
            str(certs["cert"]),
            "--etcd-key",
            str(certs["key"]),
            "--instance-id",
            "secure",
        )
        try:

            def published() -> None:
                values = [json.loads(v) for v in server.published().values()]
                assert {"host": "10.7.0.1"}.items() <= values[0].items()

            eventually(published, timeout=15)
        finally:
            assert daemon.stop() == 0, daemon.output()
    finally:
        server.stop()


# --- in process: what each pass sends ---------------------------------------------------

SETTINGS = ZoneSettings(reverse=False)


def record(label: str, host: str = "10.0.0.1", **fields: Any) -> ServiceRecord:
    return ServiceRecord(
        name=f"{label}.docker.",
        zone="docker.",
        owner=Owner("file", f"servicerecord/{label}", "test"),
        host=host,
        **fields,
    )


class MemorySource:
    """Records held in memory, one group per record: a load returns what changed since
    the previous load (everything when full)."""

    name = "memory"

    def __init__(self, *records: ServiceRecord) -> None:
        self.groups: dict[str, tuple[ServiceRecord, ...]] = {}
        self.changed: set[str] = set()
        for item in records:
            self.put(item)

    def put(self, item: ServiceRecord) -> None:
        self.groups[item.name] = (item,)
        self.changed.add(item.name)

    def load(self, full: bool = False) -> Snapshot:
        keys = set(self.groups) if full else self.changed
        self.changed = set()
        return Snapshot({k: self.groups[k] for k in keys}, complete=full)

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        await stop.wait()


@dataclass
class Requests:
    """Every request the client sent: its path and the keys it put and deleted."""

    calls: list[tuple[str, int, int]] = field(default_factory=list)
    fail: str = ""
    """A path whose next request fails (then this is cleared)."""

    def count(self, path: str) -> int:
        return sum(1 for p, _, _ in self.calls if p == path)

    def writes(self, since: int = 0) -> list[tuple[int, int]]:
        return [(puts, deletes) for _, puts, deletes in self.calls[since:] if puts or deletes]


def counting(client: EtcdClient) -> Requests:
    seen = Requests()
    call = client.call

    def wrapper(path: str, body: dict[str, Any]) -> dict[str, Any]:
        puts = deletes = 0
        for op in body.get("success", []):
            puts += "request_put" in op
            deletes += "request_delete_range" in op
        puts += path == "/v3/kv/put"
        deletes += path == "/v3/kv/deleterange"
        seen.calls.append((path, puts, deletes))
        if path == seen.fail:
            seen.fail = ""
            raise EtcdError(f"etcd at {client.where}: {path}: injected failure")
        return call(path, body)

    client.call = wrapper  # type: ignore[method-assign]
    return seen


def hosts(etcd: EtcdServer) -> dict[str, str]:
    """The published address of each name, from this instance's keys."""
    return {
        key.split("/")[3]: json.loads(value)["host"]
        for key, value in etcd.published("/skydns/docker/").items()
        if "/host-a-" in key
    }


def test_after_the_first_pass_a_change_costs_one_transaction(etcd: EtcdServer) -> None:
    client = etcd.client()
    requests = counting(client)
    source = MemorySource(record("web"), record("db", "10.0.0.2"), record("api", "10.0.0.3"))
    reconciler = Reconciler(
        source, SETTINGS, [EtcdSink(client, EtcdSinkConfig("/skydns", "host-a"))]
    )

    async def scenario() -> None:
        report = await reconciler.run_once()
        assert not report.errors
        assert requests.count("/v3/kv/range") == 1
        assert requests.writes() == [(3, 0)]
        mark = len(requests.calls)
        source.put(record("web", "10.0.0.9"))  # a new value is a new key: put it, delete the old
        report = await reconciler.run_once()
        assert not report.errors
        assert requests.writes(mark) == [(1, 1)]
        assert requests.count("/v3/kv/range") == 1
        mark = len(requests.calls)
        await reconciler.run_once()  # nothing changed: nothing sent
        assert requests.writes(mark) == []

    asyncio.run(scenario())
    assert hosts(etcd) == {"web": "10.0.0.9", "db": "10.0.0.2", "api": "10.0.0.3"}


def test_keys_removed_by_someone_else_come_back_on_the_next_full_pass(etcd: EtcdServer) -> None:
    client = etcd.client()
    requests = counting(client)
    source = MemorySource(record("web"), record("db", "10.0.0.2"))
    reconciler = Reconciler(
        source, SETTINGS, [EtcdSink(client, EtcdSinkConfig("/skydns", "host-a"))]
    )

    async def scenario() -> None:
        await reconciler.run_once()
        (web,) = list(etcd.published("/skydns/docker/web/"))
        etcd.client().delete(web)
        source.put(record("db", "10.0.0.8"))
        mark = len(requests.calls)
        await reconciler.run_once()
        assert requests.writes(mark) == [(1, 1)]  # db only
        assert hosts(etcd) == {"db": "10.0.0.8"}  # not seen until a full pass
        report = await reconciler.run_once(full=True, reasons=("resync",))
        assert not report.errors
        assert requests.count("/v3/kv/range") == 2
        assert [c.name for z in report.changes["etcd"].zones for c in z.rrsets] == ["web.docker."]
        assert hosts(etcd) == {"web": "10.0.0.1", "db": "10.0.0.8"}
        report = await reconciler.run_once(full=True, reasons=("resync",))
        assert not report.changed

    asyncio.run(scenario())


def test_a_failed_pass_makes_the_next_one_read_the_prefix_again(etcd: EtcdServer) -> None:
    client = etcd.client()
    requests = counting(client)
    source = MemorySource(record("web"))
    reconciler = Reconciler(
        source, SETTINGS, [EtcdSink(client, EtcdSinkConfig("/skydns", "host-a"))]
    )

    async def scenario() -> None:
        await reconciler.run_once()
        requests.fail = "/v3/kv/txn"
        source.put(record("web", "10.0.0.2"))
        report = await reconciler.run_once()
        assert report.errors
        assert "injected failure" in report.errors[0]
        assert hosts(etcd) == {"web": "10.0.0.1"}
        report = await reconciler.run_once()  # not a full pass, but the sink failed
        assert not report.errors
        assert requests.count("/v3/kv/range") == 2
        assert hosts(etcd) == {"web": "10.0.0.2"}

    asyncio.run(scenario())


def test_a_lost_lease_is_replaced_and_the_keys_put_again_without_a_pass(
    etcd: EtcdServer,
) -> None:
    client = etcd.client()
    sink = EtcdSink(client, EtcdSinkConfig("/skydns", "host-a", lease_ttl=3))
    source = MemorySource(record("web"), record("db", "10.0.0.2"))
    reconciler = Reconciler(source, SETTINGS, [sink])

    async def scenario() -> None:
        await reconciler.run_once()
        lost = sink.lease
        etcd.client().lease_revoke(lost)  # as if etcd had been unreachable past the TTL
        assert hosts(etcd) == {}
        deadline = time.monotonic() + 10
        while hosts(etcd) != {"web": "10.0.0.1", "db": "10.0.0.2"}:
            assert time.monotonic() < deadline, etcd.published()
            await asyncio.sleep(0.1)
        assert sink.lease not in (0, lost)
        assert reconciler.passes == 1
        source.put(record("web", "10.0.0.5"))  # and the next pass carries on with the new lease
        report = await reconciler.run_once()
        assert not report.errors
        report = await reconciler.run_once(full=True, reasons=("resync",))
        assert not report.changed

    asyncio.run(scenario())
    assert hosts(etcd) == {"web": "10.0.0.5", "db": "10.0.0.2"}


def test_an_etcd_prefix_read_empty_is_held_back_until_an_operator_confirms(
    tmp_path: Path, etcd: EtcdServer
) -> None:
    """The deletion budget with real etcd: another host's records vanish from etcd all at
    once (the source comes back empty): they stay served, /status, /metrics and the log say
    so, and `dockzone confirm etcd` lets the removal through."""
    client = etcd.client()
    for n in (1, 2, 3):
        client.put(f"/skydns/docker/peer/x{n}", json.dumps({"host": f"10.0.9.{n}"}))
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    (definitions / "own.yaml").write_text(yaml.safe_dump(service("own", host="10.0.1.1")))
    daemon = Daemon.start(
        tmp_path, definitions, "--etcd", etcd.url, "--instance-id", "host-a", "--resync", "3600"
    )
    try:
        peer = [f"peer.docker. 30 IN A 10.0.9.{n}" for n in (1, 2, 3)]
        eventually(lambda: _answers(daemon, "peer.docker.", peer), 15)
        prefix = "/skydns/docker/peer/"
        client.call(
            "/v3/kv/deleterange",
            {"key": _b64(prefix), "range_end": prefix_end(prefix)},
        )
        held = (
            "etcd: held back a read that would remove 3 of its 3 records (100%, over "
            "--max-delete-fraction) after the source came back empty"
        )
        eventually(lambda: _logged(daemon, held), 15)
        assert dig_answers(daemon.port, "peer.docker.") == peer
        with urllib.request.urlopen(f"http://{daemon.http}/status", timeout=10) as response:
            status = json.load(response)
        assert status["sources"]["etcd"]["held"]["removed"] == 3
        assert status["sources"]["etcd"]["held"]["reason"] == "came back empty"
        details = status["sources"]["etcd"]["details"]  # the status page's etcd line
        assert int(details["revision"]) >= 4  # three puts and the delete
        assert details["changes waiting"] == "0"
        with urllib.request.urlopen(f"http://{daemon.http}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert 'dockzone_source_deletions_held{source="etcd"} 3.0' in metrics

        confirm = _confirm(daemon, "etcd")
        assert confirm.returncode == 0, confirm.stdout + confirm.stderr
        assert confirm.stdout.startswith("confirmed: " + held), confirm.stdout
        eventually(lambda: _answers(daemon, "peer.docker.", []), 15)
        assert dig_answers(daemon.port, "own.docker.") == ["own.docker. 30 IN A 10.0.1.1"]
        again = _confirm(daemon)
        assert again.returncode == 1
        assert "no read is held back" in again.stderr
    finally:
        assert daemon.stop() == 0, daemon.output()


def _confirm(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    """``dockzone confirm ARGS`` against the daemon's HTTP API."""
    command = [sys.executable, "-m", "reconciler", "confirm", *args, "--http", daemon.http]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


def _answers(daemon: Daemon, name: str, expected: list[str]) -> None:
    assert dig_answers(daemon.port, name) == expected


def _logged(daemon: Daemon, text: str) -> None:
    assert text in daemon.output()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
