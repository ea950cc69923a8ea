"""BIND as a validating resolver in front of dockzone: named forwards ``docker.`` to the
in-process server (``forward only``), trusts the zone's KSK (a static trust anchor), and
sets the AD bit on the answers it validated: an address, and an NXDOMAIN. Through a relay
that rewrites web.docker's address, the same resolver answers SERVFAIL.

named stays on loopback: its root hints name one server at 127.0.0.254 (nobody listens),
so nothing it does leaves 127.0.0.0/8; only 127.0.0.1 may ask it to recurse.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.dnsserver.conftest import DOCKER_ZONE
from tests.helpers import eventually
from tests.servers import dig, free_port, start_named, stop_process
from tests.signing import Keys, SignedServer, relay, replace_address, signed_server

ORIGIN = "docker."

ROOT_HINTS = """\
.                 3600000 NS a.root.invalid.
a.root.invalid.   3600000 A  127.0.0.254
"""


@contextmanager
def validating_resolver(workdir: Path, keys: Keys, forwarder: int) -> Iterator[tuple[int, Path]]:
    """named on a free 127.0.0.1 port, validating ``docker.`` (forwarded to 127.0.0.1:
    ``forwarder``) with ``keys``' KSK as trust anchor; yields its port and log file."""
    workdir.mkdir(parents=True, exist_ok=True)
    hints = workdir / "root.hints"
    hints.write_text(ROOT_HINTS)
    zones = f"""{keys.trust_anchors(ORIGIN)}
zone "." {{ type hint; file "{hints}"; }};
zone "{ORIGIN}" {{
    type forward;
    forward only;
    forwarders {{ 127.0.0.1 port {forwarder}; }};
}};
"""
    port = free_port()
    process, log = start_named(workdir, port, zones, resolver=True)
    try:

        def running() -> None:
            assert process.poll() is None, log.read_text()
            assert "running" in log.read_text()

        eventually(running, timeout=15)
        yield port, log
    finally:
        stop_process(process)


def _dig(port: int, name: str, rdtype: str = "A") -> str:
    """A recursive question with DO, as a stub behind the resolver asks it."""
    return dig(port, "+rec", "+dnssec", "+time=5", name, rdtype)


def _flags(output: str) -> set[str]:
    for line in output.splitlines():
        if line.startswith(";; flags:"):
            return set(line.split(";")[2].split(":")[1].split())
    raise AssertionError(output)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.make()


@pytest.fixture(scope="module")
def dockzone(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedServer]:
    with signed_server(DOCKER_ZONE, ORIGIN, keys, tmp_path_factory.mktemp("dockzone")) as server:
        yield server


@pytest.fixture(scope="module")
def resolver(
    keys: Keys, dockzone: SignedServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    with validating_resolver(tmp_path_factory.mktemp("named"), keys, dockzone.port) as (port, _):
        yield port


def _records(output: str) -> set[str]:
    """The records dig printed, as ``name type rdata`` (no TTL: the resolver's cache
    counts it down)."""
    records = set()
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 5 and not line.startswith(";") and fields[2] == "IN":
            records.add(" ".join([fields[0], *fields[3:]]))
    return records


def test_a_validated_address_has_the_ad_bit(resolver: int) -> None:
    output = _dig(resolver, "web.docker.")
    assert "status: NOERROR" in output, output
    assert "ad" in _flags(output), output
    assert "web.docker. A 10.0.0.7" in _records(output), output


def test_a_validated_nxdomain_has_the_ad_bit(resolver: int) -> None:
    output = _dig(resolver, "nope.docker.")
    assert "status: NXDOMAIN" in output, output
    assert "ad" in _flags(output), output
    assert any(record.startswith("docker. SOA ") for record in _records(output)), output


def test_a_validated_srv_answer_has_the_ad_bit(resolver: int) -> None:
    output = _dig(resolver, "_redis._tcp.redis.docker.", "SRV")
    assert "status: NOERROR" in output, output
    assert "ad" in _flags(output), output
    assert "_redis._tcp.redis.docker. SRV 10 100 6379 redis1.redis.docker." in _records(output)


def test_without_the_trust_anchor_there_is_no_ad_bit(
    dockzone: SignedServer, tmp_path: Path
) -> None:
    """The AD bit comes from the anchor: trusting another key, named fails to validate."""
    with validating_resolver(tmp_path, Keys.make(), dockzone.port) as (port, _):
        output = _dig(port, "web.docker.")
    assert "status: SERVFAIL" in output, output
    assert "ad" not in _flags(output), output


def test_a_tampered_answer_gets_servfail(
    keys: Keys, dockzone: SignedServer, tmp_path: Path
) -> None:
    tamper = replace_address("10.0.0.7", "10.0.0.66")
    with (
        relay(dockzone.port, tamper) as tampering,
        validating_resolver(tmp_path, keys, tampering.port) as (port, log),
    ):
        output = _dig(port, "web.docker.")
        untouched = _dig(port, "web6.docker.", "AAAA")
        named_log = log.read_text()
    assert "status: SERVFAIL" in output, output
    assert "10.0.0.66" not in output, output
    assert "RRSIG failed to verify resolving 'web.docker/A/IN'" in named_log, named_log
    # the relay passes everything else: the same resolver validates other names
    assert "status: NOERROR" in untouched, untouched
    assert "ad" in _flags(untouched), untouched
