"""Real BIND as a secondary of ``dockzone run``: every zone transferred with TSIG, a
definitions change reaching BIND within seconds (NOTIFY, then IXFR answered with the whole
zone), serials and data agreeing, unsigned transfers refused, and a zone beyond 64 KiB sent
in several messages that dig and dnspython receive whole. The BIND configuration is the
one docs/secondaries.md shows."""

from __future__ import annotations

import base64
import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.name
import dns.query
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


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("xfr")
    key = workdir / "xfr.key"
    key.write_text(f'key "{KEY_NAME}" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n')
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
    daemon = Daemon.start(
        workdir,
        definitions,
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
            yield Setup(daemon, named_port, log, zones)
        finally:
            stop_process(process)
    finally:
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


def test_a_definitions_change_reaches_bind_within_seconds(setup: Setup) -> None:
    path = setup.daemon.definitions / "late.yaml"
    path.write_text(yaml.safe_dump(service("late", dns_name="late.app", host="198.18.200.7")))
    expected = ["late.app.docker. 30 IN A 198.18.200.7"]
    eventually(lambda: _answers(setup.daemon.port, expected), timeout=10)
    eventually(lambda: _answers(setup.named_port, expected), timeout=5)
    eventually(lambda: _same(setup, "docker."), timeout=5)
    log = setup.named_log.read_text()
    assert "notify from 127.0.0.1" in log
    assert f"TSIG {KEY_NAME}" in log or f"key {KEY_NAME}" in log


def _answers(port: int, expected: list[str]) -> None:
    assert dig_answers(port, expected[0].split()[0]) == expected


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
