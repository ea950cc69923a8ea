"""The etcd sink and source against a real etcd on loopback: two ``dockzone run`` instances
act as two Docker hosts with different definitions, publish into the SkyDNS layout under
their own leases, and each answers for both; a host killed without cleanup loses its
records when its lease expires."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from reconciler.etcdclient import EtcdClient, EtcdError, EtcdOptions
from tests.helpers import eventually, require_binary, service
from tests.servers import Daemon, dig_answers, free_port, make_certs, stop_process


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
