"""The RFC 2136 sink against a real BIND: a dynamic zone that accepts updates signed with a
TSIG key, ``dockzone run --rfc2136-server`` publishing into it, dig checking what BIND
answers, and nsupdate playing the other writer whose records must never be touched."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import eventually, require_binary, service
from tests.servers import Daemon, dig, dig_answers, free_port, start_named, stop_process

KEY_NAME = "dockzone-key"
SECRET = base64.b64encode(bytes(range(32))).decode()
ZONE = """$TTL 300
@ IN SOA ns.docker. hostmaster.docker. 1 3600 600 86400 30
@ IN NS ns.docker.
ns IN A 127.0.0.1
"""


def key_file(path: Path, name: str = KEY_NAME, secret: str = SECRET) -> Path:
    path.write_text(f'key "{name}" {{\n\talgorithm hmac-sha256;\n\tsecret "{secret}";\n}};\n')
    return path


@dataclass
class DynamicNamed:
    """named with one dynamic zone, ``docker.``, updatable and transferable with the key."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    key: Path

    @classmethod
    def start(cls, workdir: Path) -> DynamicNamed:
        port = free_port()
        key = key_file(workdir / "dockzone.key")
        (workdir / "db.docker").write_text(ZONE)
        zone = f"""zone "docker" {{
    type primary;
    file "{workdir}/db.docker";
    update-policy {{ grant {KEY_NAME} zonesub ANY; }};
    allow-transfer {{ key {KEY_NAME}; }};
}};
"""
        process, log = start_named(workdir, port, zone, include=f'include "{key}";')
        server = cls(process, port, log, key)
        eventually(server.ready, timeout=20)
        return server

    def ready(self) -> None:
        assert self.process.poll() is None, self.log.read_text()
        assert dig_answers(self.port, "docker.", "SOA"), self.log.read_text()

    def answers(self, name: str, rdtype: str = "A") -> list[str]:
        return dig_answers(self.port, name, rdtype)

    def status(self, name: str, rdtype: str = "A") -> str:
        """The rcode of an answer (NOERROR, NXDOMAIN, ...), or the error dig printed."""
        out = dig(self.port, name, rdtype)
        for line in out.splitlines():
            if "status:" in line:
                return line.split("status:")[1].split(",")[0].strip()
        return out

    def gone(self, name: str) -> None:
        """Assert that ``name`` and its ownership TXT no longer exist (for ``eventually``)."""
        assert self.status(name) == "NXDOMAIN"
        assert self.answers(f"_dockzone.{name}", "TXT") == []

    def nsupdate(self, *commands: str) -> None:
        binary = require_binary("nsupdate")
        script = "\n".join([f"server 127.0.0.1 {self.port}", "zone docker.", *commands, "send"])
        result = subprocess.run(
            [binary, "-k", str(self.key)],
            input=script + "\n",
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def named(tmp_path: Path) -> Iterator[DynamicNamed]:
    workdir = tmp_path / "named"
    workdir.mkdir()
    server = DynamicNamed.start(workdir)
    try:
        yield server
    finally:
        server.stop()


def write(definitions: Path, *documents: dict[str, object]) -> None:
    definitions.mkdir(parents=True, exist_ok=True)
    tmp = definitions / ".services.yaml.tmp"
    tmp.write_text(yaml.safe_dump_all(documents))
    os.replace(tmp, definitions / "services.yaml")


def start(workdir: Path, named: DynamicNamed, key: Path, *extra: str) -> Daemon:
    return Daemon.start(
        workdir,
        workdir / "definitions",
        "--rfc2136-server",
        f"127.0.0.1:{named.port}",
        "--tsig-key-file",
        str(key),
        "--instance-id",
        "host-a",
        "--no-reverse",
        "--log-level",
        "DEBUG",
        *extra,
    )


def passes(daemon: Daemon) -> int:
    return daemon.output().count(": no changes (")


def test_records_appear_change_and_disappear_and_others_are_untouched(
    tmp_path: Path, named: DynamicNamed
) -> None:
    named.nsupdate(
        "update add manual.docker. 300 IN A 10.9.9.9", "update add taken.docker. 300 IN A 10.8.8.8"
    )
    definitions = tmp_path / "definitions"
    write(
        definitions,
        service("web", host="10.0.0.1"),
        service("api", host="10.0.0.2", port=8080),
        service("taken", host="10.0.0.3"),
    )
    daemon = start(tmp_path, named, named.key)
    try:
        eventually(lambda: named.answers("web.docker.") == ["web.docker. 30 IN A 10.0.0.1"], 10)
        assert named.answers("api.docker.", "SRV") == [
            "api.docker. 30 IN SRV 10 100 8080 api.docker."
        ]
        assert named.answers("_dockzone.web.docker.", "TXT") == [
            '_dockzone.web.docker. 30 IN TXT "heritage=dockzone,dockzone/owner=host-a"'
        ]
        # someone else's names: never touched, and a conflict is reported once
        assert named.answers("manual.docker.") == ["manual.docker. 300 IN A 10.9.9.9"]
        assert named.answers("taken.docker.") == ["taken.docker. 300 IN A 10.8.8.8"]
        eventually(lambda: "taken.docker. is in use by another writer" in daemon.output())

        # an unchanged pass sends nothing: the zone's serial stays
        serial = named.answers("docker.", "SOA")
        before = passes(daemon)
        daemon.signal(signal.SIGHUP)
        eventually(lambda: passes(daemon) > before, 10)
        assert named.answers("docker.", "SOA") == serial

        write(
            definitions, service("web", host="10.0.0.5", ttl=60), service("taken", host="10.0.0.3")
        )
        eventually(lambda: named.answers("web.docker.") == ["web.docker. 60 IN A 10.0.0.5"], 10)
        eventually(lambda: named.gone("api.docker."), 10)

        write(definitions, service("taken", host="10.0.0.3"))
        eventually(lambda: named.gone("web.docker."), 10)
        assert named.answers("manual.docker.") == ["manual.docker. 300 IN A 10.9.9.9"]
        assert named.answers("taken.docker.") == ["taken.docker. 300 IN A 10.8.8.8"]
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert SECRET not in daemon.output()


def test_a_record_changed_by_someone_else_is_not_clobbered(
    tmp_path: Path, named: DynamicNamed
) -> None:
    definitions = tmp_path / "definitions"
    write(definitions, service("web", host="10.0.0.1"))
    daemon = start(tmp_path, named, named.key)
    try:
        eventually(lambda: named.answers("web.docker.") == ["web.docker. 30 IN A 10.0.0.1"], 10)
        # another writer takes the name over: removes our marker, adds its own record
        named.nsupdate(
            "update delete _dockzone.web.docker. TXT", "update add web.docker. 300 IN A 10.7.7.7"
        )
        write(definitions, service("web", host="10.0.0.2"))
        eventually(lambda: "web.docker. is in use by another writer" in daemon.output(), 10)
        assert named.answers("web.docker.") == [
            "web.docker. 300 IN A 10.0.0.1",  # BIND keeps one TTL per RRset
            "web.docker. 300 IN A 10.7.7.7",
        ]
    finally:
        assert daemon.stop() == 0, daemon.output()


def test_a_wrong_key_is_reported_naming_the_key(tmp_path: Path, named: DynamicNamed) -> None:
    wrong = key_file(tmp_path / "wrong.key", name="not-the-key")
    bad_secret = key_file(tmp_path / "bad-secret.key", secret=base64.b64encode(b"x" * 32).decode())
    write(tmp_path / "definitions", service("web", host="10.0.0.1"))
    daemon = start(tmp_path, named, wrong)
    try:
        eventually(lambda: "TSIG key not-the-key. is not known" in daemon.output(), 10)
        assert named.status("web.docker.") == "NXDOMAIN"
    finally:
        assert daemon.stop() == 0, daemon.output()
    second = tmp_path / "second"
    second.mkdir()
    write(second / "definitions", service("web", host="10.0.0.1"))
    daemon = start(second, named, bad_secret)
    try:
        eventually(lambda: f"TSIG key {KEY_NAME}. was rejected" in daemon.output(), 10)
        assert named.status("web.docker.") == "NXDOMAIN"
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert base64.b64encode(b"x" * 32).decode() not in daemon.output()
