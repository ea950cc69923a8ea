"""Dependencies failing and coming back (issue #16): dockzone keeps serving what it has,
says what failed, and converges within about a second of the dependency's return."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import yaml

from tests.helpers import eventually, service
from tests.integration.test_etcd import EtcdServer, etcd  # noqa: F401 - the fixture
from tests.integration.test_rfc2136 import DynamicNamed, named, start, write  # noqa: F401
from tests.servers import Daemon, dig_answers, stop_process


def _restart(server: EtcdServer) -> None:
    """Start the same etcd again: same ports, same data directory."""
    stop_process(server.process)
    with server.log.open("ab") as out:
        server.process = subprocess.Popen(server.process.args, stdout=out, stderr=subprocess.STDOUT)
    eventually(server.ready, timeout=30, interval=0.1)


def test_etcd_down_and_back_converges_within_seconds_of_its_return(
    tmp_path: Path,
    etcd: EtcdServer,  # noqa: F811 - the fixture
) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    web = definitions / "web.yaml"
    web.write_text(yaml.safe_dump(service("web", host="10.0.1.1")))
    daemon = Daemon.start(
        tmp_path, definitions, "--etcd", etcd.url, "--instance-id", "host-a", "--resync", "3600"
    )

    def published_hosts() -> list[str]:
        return [
            json.loads(value)["host"]
            for key, value in etcd.published().items()
            if key.startswith("/skydns/docker/web/")
        ]

    try:
        eventually(lambda: _is(published_hosts(), ["10.0.1.1"]), 15)
        stop_process(etcd.process)
        # etcd is gone: a change still reaches the DNS server; the etcd sink fails, says so
        web.write_text(yaml.safe_dump(service("web", host="10.0.1.2")))
        eventually(
            lambda: _is(dig_answers(daemon.port, "web.docker."), ["web.docker. 30 IN A 10.0.1.2"]),
            10,
        )
        eventually(
            lambda: _is("etcd" in daemon.output() and "unreachable" in daemon.output(), True), 10
        )
        time.sleep(2)  # retry passes fail meanwhile, one a second
        _restart(etcd)
        back = time.monotonic()
        eventually(lambda: _is(published_hosts(), ["10.0.1.2"]), 15, 0.05)
        took = time.monotonic() - back
        print(f"etcd back -> the change published: {took:.2f} s")
        assert took < 2, took  # a retry pass every second
        assert dig_answers(daemon.port, "web.docker.") == ["web.docker. 30 IN A 10.0.1.2"]
        output = daemon.output()
        assert output.count("ERROR etcd") == 1, output  # once, not once per retry
        assert "etcd: converged again" in output
    finally:
        assert daemon.stop() == 0, daemon.output()


def test_the_rfc2136_primary_down_and_back_gets_the_change_within_a_second(
    tmp_path: Path,
    named: DynamicNamed,  # noqa: F811 - the fixture
) -> None:
    definitions = tmp_path / "definitions"
    write(definitions, service("web", host="10.0.1.1"))
    daemon = start(tmp_path, named, named.key)
    try:
        eventually(lambda: _is(named.answers("web.docker."), ["web.docker. 30 IN A 10.0.1.1"]), 15)
        stop_process(named.process)
        write(definitions, service("web", host="10.0.1.2"))
        eventually(
            lambda: _is(dig_answers(daemon.port, "web.docker."), ["web.docker. 30 IN A 10.0.1.2"]),
            10,
        )
        eventually(lambda: _is("ERROR rfc2136" in daemon.output(), True), 10)
        time.sleep(2)  # retry passes fail meanwhile, one a second
        with named.log.open("ab") as out:
            named.process = subprocess.Popen(
                named.process.args, stdout=out, stderr=subprocess.STDOUT
            )
        eventually(named.ready, timeout=20, interval=0.05)
        back = time.monotonic()
        eventually(
            lambda: _is(named.answers("web.docker."), ["web.docker. 30 IN A 10.0.1.2"]), 15, 0.05
        )
        took = time.monotonic() - back
        print(f"BIND back -> the change applied: {took:.2f} s")
        assert took < 2, took
        assert "rfc2136: converged again" in daemon.output()
    finally:
        assert daemon.stop() == 0, daemon.output()


def _is(found: object, expected: object) -> None:
    assert found == expected
