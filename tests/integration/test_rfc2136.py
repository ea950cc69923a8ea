"""The RFC 2136 sink against a real BIND: a dynamic zone that accepts updates signed with a
TSIG key, ``dockzone run --rfc2136-server`` publishing into it, dig checking what BIND
answers, and nsupdate playing the other writer whose records must never be touched.

The second half drives the ``Reconciler`` in process over records held in memory, with
dnspython's ``tcp`` and ``xfr`` wrapped to count what goes to BIND: after the first pass a
change sends only its names and no zone transfer, drift by another writer waits for a full
pass, and a failed pass makes the next one read the zone again."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.opcode
import dns.query
import pytest
import yaml

from reconciler.core.model import Owner, ServiceRecord, ZoneSettings
from reconciler.core.triggers import Wakeup
from reconciler.loop import Reconciler
from reconciler.sinks import rfc2136
from reconciler.sinks.rfc2136 import Rfc2136Config, Rfc2136Sink
from reconciler.sources import Snapshot
from reconciler.tsig import parse_key_file
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
    def start(cls, workdir: Path, zone_options: str = "") -> DynamicNamed:
        port = free_port()
        key = key_file(workdir / "dockzone.key")
        (workdir / "db.docker").write_text(ZONE)
        zone = f"""zone "docker" {{
    type primary;
    file "{workdir}/db.docker";
    update-policy {{ grant {KEY_NAME} zonesub ANY; }};
    allow-transfer {{ key {KEY_NAME}; }};
    {zone_options}
}};
"""
        process, log = start_named(workdir, port, zone, include=f'include "{key}";')
        server = cls(process, port, log, key)
        eventually(server.ready, timeout=20)
        return server

    def ready(self) -> None:
        assert self.process.poll() is None, self.log.read_text()
        assert dig_answers(self.port, "docker.", "SOA"), self.log.read_text()
        try:  # updates and transfers go over TCP, which may listen a moment later
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError as exc:
            raise AssertionError(f"TCP: {exc}") from exc

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


def _refused_as_changed(daemon: Daemon, name: str) -> bool:
    """The sink logged that an UPDATE of ``name`` failed its prerequisite."""
    return any(
        f"UPDATE of {name}" in line
        and "NXRRSET: someone else changed the name; not touched" in line
        for line in daemon.output().splitlines()
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
        # the UPDATE's prerequisite (our marker) fails: the sink says so and sends nothing
        eventually(lambda: _refused_as_changed(daemon, "web.docker."), 10)
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

    def remove(self, name: str) -> None:
        self.groups[name] = ()
        self.changed.add(name)

    def load(self, full: bool = False) -> Snapshot:
        keys = set(self.groups) if full else self.changed
        self.changed = set()
        return Snapshot({k: self.groups[k] for k in keys}, complete=full)

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        await stop.wait()


@dataclass
class Traffic:
    """What went to the server: per UPDATE message, the names it changes (ownership names
    left out) and its RRs; and how many zone transfers."""

    updates: list[list[str]] = field(default_factory=list)
    records: list[int] = field(default_factory=list)
    transfers: int = 0

    def since(self, mark: int) -> list[list[str]]:
        return self.updates[mark:]


@pytest.fixture
def traffic(monkeypatch: pytest.MonkeyPatch) -> Traffic:
    seen = Traffic()
    tcp, xfr = dns.query.tcp, dns.query.xfr

    def counting_tcp(query: dns.message.Message, *args: Any, **kwargs: Any) -> Any:
        if query.opcode() == dns.opcode.UPDATE:
            section = query.sections[2]
            changed = {r.name.to_text() for r in section}
            seen.updates.append(sorted(n for n in changed if not n.startswith("_dockzone.")))
            seen.records.append(sum(max(1, len(r)) for r in section))
        return tcp(query, *args, **kwargs)

    def counting_xfr(*args: Any, **kwargs: Any) -> Any:
        seen.transfers += 1
        return xfr(*args, **kwargs)

    monkeypatch.setattr(dns.query, "tcp", counting_tcp)
    monkeypatch.setattr(dns.query, "xfr", counting_xfr)
    return seen


def sink_for(named: DynamicNamed) -> Rfc2136Sink:
    key = parse_key_file(named.key.read_text(), str(named.key))
    return Rfc2136Sink(Rfc2136Config(("127.0.0.1", named.port), ("docker.",), key, "host-a"))


def test_after_the_first_pass_a_change_sends_only_its_name(
    named: DynamicNamed, traffic: Traffic
) -> None:
    source = MemorySource(record("web"), record("api", "10.0.0.2", port=8080), record("db"))
    reconciler = Reconciler(source, SETTINGS, [sink_for(named)])

    async def scenario() -> None:
        report = await reconciler.run_once()
        assert not report.errors
        assert traffic.transfers == 1
        assert traffic.updates == [["api.docker.", "db.docker.", "web.docker."]]  # one message
        source.put(record("web", "10.0.0.9"))
        report = await reconciler.run_once()
        assert not report.errors
        assert traffic.since(1) == [["web.docker."]]
        assert traffic.transfers == 1  # nothing read between full passes
        await reconciler.run_once()  # nothing changed: nothing sent
        source.remove("db.docker.")
        await reconciler.run_once()
        assert traffic.since(2) == [["db.docker."]]
        assert traffic.transfers == 1

    asyncio.run(scenario())
    assert named.answers("web.docker.") == ["web.docker. 30 IN A 10.0.0.9"]
    assert named.answers("api.docker.", "SRV") == ["api.docker. 30 IN SRV 10 100 8080 api.docker."]
    named.gone("db.docker.")


def test_drift_by_another_writer_is_repaired_by_the_next_full_pass(
    named: DynamicNamed, traffic: Traffic
) -> None:
    source = MemorySource(record("web"), record("db"))
    reconciler = Reconciler(source, SETTINGS, [sink_for(named)])

    async def scenario() -> None:
        await reconciler.run_once()
        # someone else removes our record (the ownership TXT stays: the name is still ours)
        named.nsupdate("update delete web.docker. A")
        source.put(record("db", "10.0.0.8"))
        report = await reconciler.run_once()
        assert not report.errors
        assert traffic.since(1) == [["db.docker."]]
        assert traffic.transfers == 1
        assert named.answers("web.docker.") == []  # not seen until a full pass
        report = await reconciler.run_once(full=True, reasons=("resync",))
        assert not report.errors
        assert traffic.transfers == 2
        assert traffic.since(2) == [["web.docker."]]
        assert [c.name for z in report.changes["rfc2136"].zones for c in z.rrsets] == [
            "web.docker."
        ]
        report = await reconciler.run_once(full=True, reasons=("resync",))
        assert not report.changed
        assert len(traffic.updates) == 3

    asyncio.run(scenario())
    assert named.answers("web.docker.") == ["web.docker. 30 IN A 10.0.0.1"]
    assert named.answers("db.docker.") == ["db.docker. 30 IN A 10.0.0.8"]


def test_a_failed_pass_makes_the_next_one_read_the_zone_again(
    named: DynamicNamed, traffic: Traffic
) -> None:
    sink = sink_for(named)
    source = MemorySource(record("web"))
    reconciler = Reconciler(source, SETTINGS, [sink])
    config = sink.config

    async def scenario() -> None:
        await reconciler.run_once()
        sink.config = dataclasses.replace(config, server=("127.0.0.1", free_port()))
        source.put(record("web", "10.0.0.2"))
        report = await reconciler.run_once()
        assert len(report.errors) == 1
        assert "Connection refused" in report.errors[0], report.errors
        assert traffic.transfers == 1
        sink.config = config  # the server is back
        named.nsupdate("update add web.docker. 30 IN A 10.0.0.7")  # drift meanwhile
        report = await reconciler.run_once()
        assert not report.errors
        assert traffic.transfers == 2  # read again, though no full pass
        assert traffic.since(1) == [["web.docker."]]

    asyncio.run(scenario())
    assert named.answers("web.docker.") == ["web.docker. 30 IN A 10.0.0.2"]


def test_a_big_aggregated_rrset_changes_record_by_record(
    named: DynamicNamed, traffic: Traffic
) -> None:
    """``east.docker.`` aggregates 40 services (more than ``SMALL_RRSET``): a one-record
    change deletes one record there and adds one, instead of replacing all 40."""
    assert rfc2136.SMALL_RRSET < 40
    services = {i: record(f"s{i}.east", f"10.0.1.{i + 1}") for i in range(40)}
    source = MemorySource(*services.values())
    reconciler = Reconciler(source, SETTINGS, [sink_for(named)])

    def east() -> list[str]:
        return [line.rsplit(" ", 1)[1] for line in named.answers("east.docker.")]

    async def scenario() -> None:
        await reconciler.run_once()
        assert len(east()) == 40
        source.put(record("s3.east", "10.0.1.200"))
        await reconciler.run_once()
        assert traffic.since(1) == [["east.docker.", "s3.east.docker."]]
        # s3: delete the A RRset and add one record; east: delete one record, add one
        assert traffic.records[1:] == [4]
        assert "10.0.1.200" in east()
        assert "10.0.1.4" not in east()
        source.put(record("s5.east", "10.0.1.6", ttl=10))  # the aggregated TTL drops to 10
        await reconciler.run_once()
        assert {line.split()[1] for line in named.answers("east.docker.")} == {"10"}
        report = await reconciler.run_once(full=True, reasons=("resync",))
        assert not report.changed  # the server holds exactly what the records say

    asyncio.run(scenario())
    assert len(east()) == 40


def test_a_change_too_big_for_one_message_goes_out_in_several(
    named: DynamicNamed, traffic: Traffic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rfc2136, "MAX_MESSAGE", 400)
    services = [record(f"s{i}.big", f"10.0.2.{i + 1}") for i in range(30)]
    source = MemorySource(*services)
    reconciler = Reconciler(source, SETTINGS, [sink_for(named)])

    async def scenario() -> None:
        report = await reconciler.run_once()
        assert not report.errors
        assert traffic.updates.count(["big.docker."]) > 1  # claimed over several messages
        assert len(named.answers("big.docker.")) == 30
        for item in services:
            source.remove(item.name)
        report = await reconciler.run_once()
        assert not report.errors
        report = await reconciler.run_once(full=True, reasons=("resync",))
        assert not report.changed

    asyncio.run(scenario())
    named.gone("big.docker.")
    named.gone("s7.big.docker.")


def test_a_name_taken_meanwhile_does_not_hold_up_the_others(
    named: DynamicNamed, traffic: Traffic, caplog: pytest.LogCaptureFixture
) -> None:
    source = MemorySource(record("web"))
    reconciler = Reconciler(source, SETTINGS, [sink_for(named)])

    async def scenario() -> None:
        await reconciler.run_once()
        named.nsupdate("update add taken.docker. 300 IN A 10.8.8.8")
        source.put(record("fresh", "10.0.0.3"))
        source.put(record("taken", "10.0.0.4"))
        report = await reconciler.run_once()
        assert len(report.errors) == 1
        assert "taken.docker." in report.errors[0], report.errors
        assert "YXDOMAIN" in report.errors[0]
        # both in one message, refused as a whole; then each on its own
        assert traffic.since(1) == [
            ["fresh.docker.", "taken.docker."],
            ["fresh.docker."],
            ["taken.docker."],
        ]
        with caplog.at_level(logging.WARNING):
            report = await reconciler.run_once()  # reads the zone again: the name is taken
        assert not report.errors
        assert "taken.docker. is in use by another writer" in caplog.text

    asyncio.run(scenario())
    assert named.answers("fresh.docker.") == ["fresh.docker. 30 IN A 10.0.0.3"]
    assert named.answers("taken.docker.") == ["taken.docker. 300 IN A 10.8.8.8"]


def test_an_rrset_the_server_refuses_does_not_hold_up_the_others(
    tmp_path: Path, traffic: Traffic
) -> None:
    """BIND 9.18.28+ refuses RRsets over ``max-records-per-type`` (100 by default) with
    SERVFAIL: the aggregated name fails, naming the cause; its neighbours still arrive."""
    workdir = tmp_path / "limited"
    workdir.mkdir()
    server = DynamicNamed.start(workdir, zone_options="max-records-per-type 20;")
    try:
        source = MemorySource(*[record(f"s{i}.big", f"10.0.3.{i + 1}") for i in range(25)])
        reconciler = Reconciler(source, SETTINGS, [sink_for(server)])
        report = asyncio.run(reconciler.run_once())
        assert len(report.errors) == 1, report.errors
        assert "UPDATE of big.docker. " in report.errors[0]
        assert "max-records-per-type" in report.errors[0]
        assert len(traffic.updates) == 1 + 26  # the shared message, then each name alone
        assert server.answers("s7.big.docker.") == ["s7.big.docker. 30 IN A 10.0.3.8"]
        assert server.answers("big.docker.") == []
    finally:
        server.stop()
