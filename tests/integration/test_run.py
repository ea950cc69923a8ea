"""``dockzone run`` for real: a daemon on a loopback port, queried with dig and dnspython,
its definitions edited underneath it."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.rcode
import pytest
import yaml

from tests.helpers import assert_zone_files_valid, eventually, service
from tests.servers import EXAMPLE_DOMAINS, ROOT, Daemon, dig_answers, query


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    workdir = tmp_path_factory.mktemp("run")
    definitions = workdir / "definitions"
    shutil.copytree(ROOT / "manifests" / "examples", definitions)
    running = Daemon.start(workdir, definitions, "--log-level", "DEBUG", *EXAMPLE_DOMAINS)
    try:
        yield running
    finally:
        assert running.stop() == 0, running.output()
        assert_zone_files_valid(running.zones)


CASES = [
    (
        "redis.docker.",
        "A",
        "NOERROR",
        ["redis.docker. 30 IN A 172.17.0.2", "redis.docker. 30 IN A 172.17.0.3"],
    ),
    ("redis1.redis.docker.", "A", "NOERROR", ["redis1.redis.docker. 30 IN A 172.17.0.2"]),
    ("cache.docker.", "A", "NOERROR", ["cache.docker. 30 IN A 172.17.0.2"]),
    (
        "6.rails.staging.east.skydns.local.",
        "AAAA",
        "NOERROR",
        ["6.rails.staging.east.skydns.local. 30 IN AAAA 2003::8:1"],
    ),
    ("docs.docker.", "CNAME", "NOERROR", ["docs.docker. 30 IN CNAME docs.example.com."]),
    (
        "staging.east.skydns.local.",
        "SRV",
        "NOERROR",
        [
            "staging.east.skydns.local. 30 IN SRV 10 50 8080 4.rails.staging.east.skydns.local.",
            "staging.east.skydns.local. 30 IN SRV 10 50 8080 6.rails.staging.east.skydns.local.",
        ],
    ),
    ("web.nginx.docker.", "TXT", "NOERROR", ['web.nginx.docker. 30 IN TXT "version=1.27"']),
    (
        "mx1.postfix.docker.",
        "MX",
        "NOERROR",
        ["mx1.postfix.docker. 30 IN MX 10 mx1.postfix.docker."],
    ),
    ("docker.", "NS", "NOERROR", ["docker. 30 IN NS ns.dns.docker."]),
    (
        "2.0.17.172.in-addr.arpa.",
        "PTR",
        "NOERROR",
        ["2.0.17.172.in-addr.arpa. 30 IN PTR redis1.redis.docker."],
    ),
    ("redis1.*.docker.", "A", "NOERROR", ["redis1.*.docker. 30 IN A 172.17.0.2"]),
    ("redis2.any.docker.", "A", "NOERROR", ["redis2.any.docker. 30 IN A 172.17.0.3"]),
    ("nope.docker.", "A", "NXDOMAIN", []),
    ("redis.docker.", "TXT", "NOERROR", []),
]


@pytest.mark.parametrize(
    ("qname", "qtype", "rcode", "answer"), CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES]
)
def test_answers(daemon: Daemon, qname: str, qtype: str, rcode: str, answer: list[str]) -> None:
    response = query("127.0.0.1", daemon.port, qname, qtype)
    assert dns.rcode.to_text(response.rcode()) == rcode
    assert response.flags & dns.flags.AA
    assert dig_answers(daemon.port, qname, qtype) == sorted(answer)
    if not answer:  # NXDOMAIN and NODATA carry the SOA with the negative TTL
        [soa] = response.authority
        assert soa.name.to_text() == "docker."
        assert soa.ttl == 30


def test_serial_served_is_the_zone_file_serial(daemon: Daemon) -> None:
    [soa] = query("127.0.0.1", daemon.port, "docker.", "SOA").answer
    file_serial = next(
        line.split()[6]
        for line in (daemon.zones / "db.docker").read_text().splitlines()
        if " SOA " in line
    )
    assert str(soa[0].serial) == file_serial


def test_a_new_definition_answers_and_a_removed_one_goes(daemon: Daemon) -> None:
    path = daemon.definitions / "new.yaml"
    path.write_text(yaml.safe_dump(service("fresh", dns_name="fresh.app", host="198.18.0.7")))
    eventually(
        lambda: _expect(daemon, "fresh.app.docker.", ["fresh.app.docker. 30 IN A 198.18.0.7"]),
        timeout=10,
    )
    # the answer changes first, the pass is logged when the zone files are written too
    eventually(lambda: _logged(daemon, "+ fresh.app.docker. 30 IN A 198.18.0.7"), timeout=10)
    path.unlink()
    eventually(lambda: _expect(daemon, "fresh.app.docker.", []), timeout=10)
    response = query("127.0.0.1", daemon.port, "fresh.app.docker.", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN


def test_a_broken_edit_keeps_the_last_good_definition(daemon: Daemon) -> None:
    path = daemon.definitions / "keep.yaml"
    path.write_text(yaml.safe_dump(service("keep", dns_name="keep", host="198.18.0.8")))
    eventually(
        lambda: _expect(daemon, "keep.docker.", ["keep.docker. 30 IN A 198.18.0.8"]), timeout=10
    )
    path.write_text(yaml.safe_dump(service("keep", dns_name="keep", host="198.18.0.9", port=0)))
    eventually(
        lambda: _logged(daemon, "keep.yaml#0 spec.port: must be 1..65535, not 0"), timeout=10
    )
    assert dig_answers(daemon.port, "keep.docker.") == ["keep.docker. 30 IN A 198.18.0.8"]
    path.write_text(yaml.safe_dump(service("keep", dns_name="keep", host="198.18.0.9")))
    eventually(
        lambda: _expect(daemon, "keep.docker.", ["keep.docker. 30 IN A 198.18.0.9"]), timeout=10
    )
    path.unlink()
    eventually(lambda: _expect(daemon, "keep.docker.", []), timeout=10)


def test_a_definition_cannot_make_dockzone_authoritative_for_another_zone(
    daemon: Daemon,
) -> None:
    """A ServiceRecord with ``zone: com.`` used to make dockzone serve com. (NXDOMAIN for
    every forwarded name under it): it is rejected, naming the file, field and flag."""
    path = daemon.definitions / "hijack.yaml"
    path.write_text(
        yaml.safe_dump(service("hijack", dns_name="www.google", zone="com.", host="198.18.0.66"))
    )
    try:
        eventually(
            lambda: _logged(
                daemon,
                "hijack.yaml#0 spec.zone: zone com. is not served (the configured domains are "
                "docker., skydns.local.); to serve it, add --domain com.",
            ),
            timeout=10,
        )
        _settle(daemon)
        assert not (daemon.zones / "db.com").exists()
        response = query("127.0.0.1", daemon.port, "www.google.com.", "A")
        assert not response.flags & dns.flags.AA
        assert response.rcode() == dns.rcode.REFUSED  # --no-rec: not ours, not forwarded
    finally:
        path.unlink()


def test_sighup_forces_a_pass_that_writes_nothing(daemon: Daemon) -> None:
    # Answers change before a pass ends (DNS first, files after): let earlier passes finish.
    _settle(daemon)
    before = {p.name: p.stat().st_mtime_ns for p in daemon.zones.iterdir()}
    passes = daemon.output().count(" pass ")
    daemon.signal(signal.SIGHUP)
    eventually(lambda: _logged_more(daemon, " pass ", passes), timeout=10)
    last_pass = [line for line in daemon.output().splitlines() if " pass " in line][-1]
    assert "no changes" in last_pass
    assert {p.name: p.stat().st_mtime_ns for p in daemon.zones.iterdir()} == before


def _settle(daemon: Daemon, quiet: float = 0.5, timeout: float = 10) -> None:
    """Wait until no pass has been logged for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    count = daemon.output().count(" pass ")
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = daemon.output().count(" pass ")
        if now == count:
            return
        count = now
    raise AssertionError("the daemon kept running passes")


def _expect(daemon: Daemon, name: str, answer: list[str]) -> None:
    assert dig_answers(daemon.port, name) == answer


def _logged(daemon: Daemon, text: str) -> None:
    assert text in daemon.output()


def _logged_more(daemon: Daemon, text: str, count: int) -> None:
    assert daemon.output().count(text) > count


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    running = Daemon.start(tmp_path, definitions)
    assert running.stop() == 0
    assert "stopped after 1 passes" in running.output()
