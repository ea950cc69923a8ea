"""Real BIND as a secondary of ``dockzone run``: every zone transferred with TSIG, a
definitions change reaching BIND within a second (NOTIFY, then IXFR with only the
difference, from the journal), serials and data agreeing, unsigned transfers refused, a
zone beyond 64 KiB sent in several messages that dig and dnspython receive whole, and
after restarts: with the journal kept BIND still transfers incrementally, with the journal
lost it converges with the whole zone. The BIND configuration is the one
docs/secondaries.md shows."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.tsig
import dns.xfr
import dns.zone
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import eventually, service
from tests.servers import (
    EXAMPLE_DOMAINS,
    ROOT,
    Daemon,
    answers_soa,
    dig,
    dig_answers,
    free_port,
    start_named,
    stop_process,
)

KEY_NAME = "dockzone-xfr"
SECRET = base64.b64encode(bytes(range(100, 132))).decode()
BIG = 2000
"""Records in the big zone's file: well beyond one 64 KiB message."""


@dataclass
class Setup:
    daemon: Daemon
    named_port: int
    named_log: Path
    zones: list[str]
    args: tuple[str, ...]
    workdir: Path

    def restart(self) -> None:
        """Start ``dockzone run`` again on the same ports (BIND's primary) and zones."""
        self.daemon = self.daemon.again(self.workdir, *self.args)


def secondary_config(key: Path, origins: list[str], primary_port: int) -> tuple[str, str]:
    """The BIND configuration docs/secondaries.md shows, for dockzone on 127.0.0.1:port:
    its ``include`` line and one ``zone`` statement per origin."""
    text = (ROOT / "docs" / "secondaries.md").read_text()
    found = re.search(r"## BIND as the secondary.*?```\n(.*?)```", text, re.S)
    assert found is not None
    include, _, zone = found.group(1).partition("\n")
    include = include.replace("/etc/bind/dockzone-xfr.key", str(key))
    zone = zone.replace("port 5354", f"port {primary_port}")
    assert f'"{KEY_NAME}"' in zone
    zones = "".join(zone.replace('"docker."', f'"{origin}"') for origin in origins)
    return include, zones


def transfer_key(path: Path) -> Path:
    """Write the TSIG key ``KEY_NAME`` in BIND's format (what ``--transfer-key`` and
    named's ``include`` read) to ``path``; returns it."""
    path.write_text(f'key "{KEY_NAME}" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n')
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("xfr")
    key = transfer_key(workdir / "xfr.key")
    definitions = workdir / "definitions"
    shutil.copytree(ROOT / "manifests" / "examples", definitions)
    (definitions / "big.yaml").write_text(
        yaml.safe_dump_all(
            service(
                f"big{n}",
                dns_name=f"host{n}.big",
                host=f"198.18.{n // 250}.{n % 250 + 1}",
                text=f"record {n} of a zone that needs several transfer messages",
            )
            for n in range(BIG)
        )
    )
    named_port = free_port()
    args = (
        *EXAMPLE_DOMAINS,
        "--transfer-key",
        str(key),
        "--allow-transfer",
        KEY_NAME,
        "--also-notify",
        f"127.0.0.1:{named_port}",
        "--log-level",
        "DEBUG",
    )
    daemon = Daemon.start(workdir, definitions, *args)
    setup: Setup | None = None
    named_dir = workdir / "named"
    named_dir.mkdir()
    try:
        zones = sorted(
            path.name[3:] + "." for path in daemon.zones.glob("db.*") if path.name != "db.root"
        )
        include, statements = secondary_config(key, zones, daemon.port)
        process, log = start_named(named_dir, named_port, statements, include=include)
        try:
            for origin in zones:
                eventually(lambda o=origin: answers_soa("127.0.0.1", named_port, o), timeout=20)
            setup = Setup(daemon, named_port, log, zones, args, workdir)
            yield setup
        finally:
            stop_process(process)
    finally:
        if setup is not None:
            daemon = setup.daemon
        assert daemon.stop() == 0, daemon.output()


def _keyring() -> dict[dns.name.Name, dns.tsig.Key]:
    return {dns.name.from_text(KEY_NAME): dns.tsig.Key(KEY_NAME, SECRET, "hmac-sha256")}


def _transfer(port: int, origin: str) -> dns.zone.Zone:
    zone = dns.zone.Zone(origin)
    query, _ = dns.xfr.make_query(zone, keyring=_keyring())
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=port, timeout=10)
    return zone


def _same(setup: Setup, origin: str) -> None:
    ours = _transfer(setup.daemon.port, origin)
    theirs = _transfer(setup.named_port, origin)
    assert ours.get_soa().serial == theirs.get_soa().serial
    assert ours == theirs


def test_bind_transfers_every_zone_and_holds_the_same_data(setup: Setup) -> None:
    assert "docker." in setup.zones
    assert "skydns.local." in setup.zones
    for origin in setup.zones:
        eventually(lambda o=origin: _same(setup, o), timeout=20)
    assert dig_answers(setup.named_port, "redis1.redis.docker.") == [
        "redis1.redis.docker. 30 IN A 172.17.0.2"
    ]


def test_a_definitions_change_reaches_bind_by_ixfr_within_a_second(setup: Setup) -> None:
    """A new definition: dockzone's pass, NOTIFY, BIND's SOA query, an IXFR of a few
    records from the journal; BIND answers the new name within a second of the write."""
    _current(setup, "docker.")
    before = len(_log_lines(setup.named_log))
    seconds = _write_and_wait(setup, "late", "late.app", "198.18.200.7")
    print(f"definitions write -> BIND answers (NOTIFY, IXFR): {seconds:.3f}s")
    assert seconds <= 1.0, f"BIND answered {seconds:.3f}s after the write"
    eventually(lambda: _same(setup, "docker."), timeout=5)
    log = _log_lines(setup.named_log)[before:]
    text = "\n".join(log)
    assert "notify from 127.0.0.1" in "\n".join(_log_lines(setup.named_log))
    assert f"TSIG {KEY_NAME}" in text or f"key {KEY_NAME}" in text
    assert _incremental(text, "docker"), text
    assert "IXFR from serial" in setup.daemon.output()
    assert "from the journal" in setup.daemon.output()


def _current(setup: Setup, origin: str) -> None:
    """Wait until BIND holds ``origin`` at dockzone's serial."""
    eventually(lambda: _same_serial(setup, origin), timeout=20)


def _same_serial(setup: Setup, origin: str) -> None:
    ours = _serial(setup.daemon.port, origin)
    assert ours == _serial(setup.named_port, origin)


def _serial(port: int, origin: str) -> int:
    query = dns.message.make_query(origin, "SOA")
    response = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
    return int(response.answer[0][0].serial)


def _write_and_wait(setup: Setup, object_name: str, name: str, address: str) -> float:
    """Write a definition, return the seconds until BIND answers it."""
    path = setup.daemon.definitions / f"{object_name}.yaml"
    started = time.monotonic()
    path.write_text(yaml.safe_dump(service(object_name, dns_name=name, host=address)))
    fqdn = f"{name}.docker."
    eventually(lambda: _answers_fast(setup.named_port, fqdn, address), timeout=10, interval=0.01)
    return time.monotonic() - started


def _answers_fast(port: int, name: str, address: str) -> None:
    query = dns.message.make_query(name, "A")
    response = dns.query.udp(query, "127.0.0.1", port=port, timeout=1)
    assert [r.to_text() for rrset in response.answer for r in rrset] == [address]


def _log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _transferred(log: str, zone: str) -> list[int]:
    """The records of each inbound transfer of ``zone`` in BIND's log. named 9.18 logs no
    word for the kind at its default level, but an IXFR of a change counts a handful of
    records where the whole zone holds thousands: ``transfer of 'docker/IN' from
    127.0.0.1#5354: Transfer completed: 1 messages, 6 records, 414 bytes, ...``."""
    pattern = rf"transfer of '{re.escape(zone)}/IN' from .*: Transfer completed: \d+ messages, (\d+) records"
    return [int(count) for count in re.findall(pattern, log)]


def _incremental(log: str, zone: str) -> bool:
    """Whether the transfers of ``zone`` in ``log`` were incremental: each a few records
    (the big zone holds over 2,000)."""
    counts = _transferred(log, zone)
    assert counts, f"no transfer of {zone} in BIND's log:\n{log}"
    return all(count < 100 for count in counts)


def test_a_transfer_without_the_key_is_refused(setup: Setup) -> None:
    unsigned = dig(setup.daemon.port, "docker.", "AXFR")
    assert "Transfer failed" in unsigned or "REFUSED" in unsigned, unsigned
    assert "IN\tSOA" not in unsigned
    signed = dig(setup.daemon.port, "-y", f"hmac-sha256:{KEY_NAME}:{SECRET}", "docker.", "AXFR")
    assert "IN\tSOA" in signed, signed
    assert "Transfer failed" not in signed
    assert "refused to 127.0.0.1 (unsigned)" in setup.daemon.output()
    with urllib.request.urlopen(f"http://{setup.daemon.http}/metrics", timeout=5) as response:
        metrics = {
            (sample.name, tuple(sample.labels.values())): sample.value
            for family in text_string_to_metric_families(response.read().decode())
            for sample in family.samples
        }
    assert metrics[("dockzone_dns_transfer_count_total", ("refused",))] >= 1
    assert metrics[("dockzone_dns_transfer_count_total", ("axfr",))] >= 1
    assert metrics[("dockzone_dns_notify_count_total", ("acknowledged",))] >= 1


def test_a_zone_beyond_64_kib_arrives_whole_in_several_messages(setup: Setup) -> None:
    out = dig(
        setup.daemon.port,
        "-y",
        f"hmac-sha256:{KEY_NAME}:{SECRET}",
        "+noall",
        "+answer",
        "+stats",
        "docker.",
        "AXFR",
    )
    hosts = [line for line in out.splitlines() if line.startswith("host") and "\tA\t" in line]
    assert len(hosts) == BIG
    # ;; XFR size: 8123 records (messages 5, bytes 301234)
    stats = next(line for line in out.splitlines() if "XFR size" in line)
    messages = int(stats.split("messages")[1].split(",")[0])
    size = int(stats.split("bytes")[1].strip(" )"))
    assert messages > 1, stats
    assert size > 65536, stats
    zone = _transfer(setup.daemon.port, "docker.")
    assert len(list(zone.iterate_rdatas("TXT"))) >= BIG


def _ixfr(port: int, zone: dns.zone.Zone) -> list[dns.message.Message]:
    """Bring ``zone`` up to date by IXFR from its serial; returns the messages."""
    serial = zone.get_soa().serial
    messages = list(
        dns.query.xfr(
            "127.0.0.1",
            zone.origin,
            "IXFR",
            port=port,
            serial=serial,
            keyring=_keyring(),
            timeout=10,
        )
    )
    query, _ = dns.xfr.make_query(zone, keyring=_keyring())
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=port, timeout=10)
    return messages


def test_after_a_restart_the_journal_file_still_serves_incremental_transfers(
    setup: Setup,
) -> None:
    """A secondary two versions behind (dnspython's, held from before the stop) gets only the
    difference after a clean restart; BIND, current at the stop, gets the change made while
    dockzone was down by IXFR."""
    _current(setup, "docker.")
    old = _transfer(setup.daemon.port, "docker.")
    _write_and_wait(setup, "before-stop", "before.app", "198.18.200.10")
    assert setup.daemon.stop() == 0
    assert (setup.daemon.zones / ".dockzone-journal.docker").exists()
    path = setup.daemon.definitions / "while-down.yaml"
    path.write_text(yaml.safe_dump(service("while-down", dns_name="down.app", host="198.18.200.8")))
    before = len(_log_lines(setup.named_log))
    ours = len(setup.daemon.output())
    setup.restart()
    assert "journal of docker. loaded" in setup.daemon.output()[ours:]
    eventually(
        lambda: _answers_fast(setup.named_port, "down.app.docker.", "198.18.200.8"), timeout=10
    )
    eventually(lambda: _same(setup, "docker."), timeout=5)
    text = "\n".join(_log_lines(setup.named_log)[before:])
    assert _incremental(text, "docker"), text
    messages = _ixfr(setup.daemon.port, old)
    serials = [r[0].serial for r in messages[0].answer if r.rdtype == dns.rdatatype.SOA]
    assert len(serials) == 4, serials  # new, old, new, new: one condensed difference
    assert sum(len(r) for m in messages for r in m.answer) < 20
    assert old == _transfer(setup.daemon.port, "docker.")


def test_after_a_restart_without_the_journal_bind_converges_with_the_whole_zone(
    setup: Setup,
) -> None:
    """The journal files are lost and the zone files move on while dockzone is down
    (``dockzone render``, as a crash between writing zones and journal would leave them):
    BIND, at the serial before, cannot get a difference and takes the whole zone."""
    _current(setup, "docker.")
    assert setup.daemon.stop() == 0
    journals = list(setup.daemon.zones.glob(".dockzone-journal.*"))
    assert journals
    for path in journals:
        path.unlink()
    path = setup.daemon.definitions / "lost.yaml"
    path.write_text(yaml.safe_dump(service("lost", dns_name="lost.app", host="198.18.200.9")))
    render = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "render",
            "--definitions",
            str(setup.daemon.definitions),
            "--zones",
            str(setup.daemon.zones),
            *EXAMPLE_DOMAINS,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "XDG_STATE_HOME": str(setup.workdir)},
        timeout=60,
    )
    assert render.returncode == 0, render.stdout + render.stderr
    before = len(_log_lines(setup.named_log))
    ours = len(setup.daemon.output())
    setup.restart()
    eventually(
        lambda: _answers_fast(setup.named_port, "lost.app.docker.", "198.18.200.9"), timeout=20
    )
    for origin in setup.zones:
        eventually(lambda o=origin: _same(setup, o), timeout=20)
    text = "\n".join(_log_lines(setup.named_log)[before:])
    assert not _incremental(text, "docker"), text
    assert "whole zone: not in the journal" in setup.daemon.output()[ours:]
