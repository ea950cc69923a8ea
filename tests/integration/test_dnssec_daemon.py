"""``dockzone run --dnssec`` for real, checked with the tools a user has: BIND's ``delv``
(the zone's KSK, read from the running daemon, as its trust anchor) validates the daemon's
answers, before and after definitions change; the signed zone files pass
``dnssec-verify`` and ``named-checkzone`` and BIND serving them answers the same
signatures; BIND as a secondary transfers the signatures and validates after an IXFR; a
restart makes no new key and writes nothing; a ZSK roll on command pre-publishes the new
key at the next pass; bad options and a damaged key store stop ``run`` with exit 2.

Everything stays on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.message
import dns.query
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import eventually, named_checkzone, require_binary, service
from tests.integration.test_xfr import KEY_NAME, secondary_config, transfer_key
from tests.reconciler.test_cli import dockzone
from tests.servers import Daemon, answers_soa, free_port, start_named, stop_process
from tests.signing import (
    SECURE_ENTRY_POINT,
    assert_denial_validated,
    assert_validated,
    delv,
    served_dnskeys,
    served_trust_anchors,
)

ORIGIN = "docker."

SERVICES = [
    service("web", host="198.18.0.7", port=80),
    service("redis1", dns_name="redis1.redis", host="198.18.0.8", port=6379),
]


def _definitions(workdir: Path) -> Path:
    directory = workdir / "definitions"
    directory.mkdir()
    (directory / "services.yaml").write_text(yaml.safe_dump_all(SERVICES))
    return directory


def _write(daemon: Daemon, object_name: str, name: str, address: str) -> Path:
    path = daemon.definitions / f"{object_name}.yaml"
    path.write_text(yaml.safe_dump(service(object_name, dns_name=name, host=address)))
    return path


def _anchor(workdir: Path, port: int) -> Path:
    """The delv anchor file for the KSK 127.0.0.1:``port`` serves."""
    anchor = workdir / "anchor.conf"
    anchor.write_text(served_trust_anchors(port, ORIGIN))
    return anchor


def _dnskeys(port: int) -> list[str]:
    return sorted(rdata.to_text() for rdata in served_dnskeys(port, ORIGIN))


def _served_ds(port: int) -> list[str]:
    """The DS records (SHA-256) of the KSKs 127.0.0.1:``port`` serves, as rdata text."""
    return sorted(
        dns.dnssec.make_ds(ORIGIN, key, "SHA256").to_text().upper()
        for key in served_dnskeys(port, ORIGIN)
        if key.flags == SECURE_ENTRY_POINT
    )


def _serial(port: int) -> int:
    response = dns.query.udp(dns.message.make_query(ORIGIN, "SOA"), "127.0.0.1", port=port)
    return int(response.answer[0][0].serial)


def _signed_answer(port: int, name: str, rdtype: str = "A") -> list[str]:
    """The answer section with DO: the RRset and its RRSIG, sorted, TTLs included."""
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    response = dns.query.tcp(query, "127.0.0.1", port=port, timeout=5)
    return sorted(line for rrset in response.answer for line in rrset.to_text().splitlines())


@dataclass
class Signed:
    """``dockzone run --dnssec all --sign-zone-files`` (zone transfers with TSIG, NOTIFY
    to BIND), BIND as its secondary for docker., and a delv anchor for the daemon's KSK."""

    daemon: Daemon
    keys: Path
    anchor: Path
    secondary: int
    workdir: Path

    def delv(self, name: str, rdtype: str = "A", *, port: int | None = None) -> str:
        return delv(port or self.daemon.port, self.anchor, ORIGIN, name, rdtype)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    workdir = tmp_path_factory.mktemp("dnssec")
    key = transfer_key(workdir / "xfr.key")
    keys = workdir / "keys"
    secondary = free_port()
    daemon = Daemon.start(
        workdir,
        _definitions(workdir),
        "--domain",
        ORIGIN,
        "--dnssec",
        "all",
        "--sign-zone-files",
        "--dnssec-keys",
        str(keys),
        "--transfer-key",
        str(key),
        "--allow-transfer",
        KEY_NAME,
        "--also-notify",
        f"127.0.0.1:{secondary}",
        "--log-level",
        "DEBUG",
    )
    try:
        named = workdir / "named"
        named.mkdir()
        include, statements = secondary_config(key, [ORIGIN], daemon.port)
        process, _ = start_named(named, secondary, statements, include=include)
        try:
            eventually(lambda: answers_soa("127.0.0.1", secondary, ORIGIN), timeout=20)
            yield Signed(daemon, keys, _anchor(workdir, daemon.port), secondary, workdir)
        finally:
            stop_process(process)
    finally:
        assert daemon.stop() == 0, daemon.output()


# 1. the daemon's answers validate, and keep validating as the definitions change


def test_delv_validates_an_address_an_nxdomain_and_an_srv(signed: Signed) -> None:
    assert_validated(signed.delv("web.docker."), "web.docker. 30 IN A 198.18.0.7")
    assert_denial_validated(signed.delv("nope.docker."), "nope.docker.", "A", "NXDOMAIN")
    assert_validated(
        signed.delv("redis.docker.", "SRV"),
        "redis.docker. 30 IN SRV 10 100 6379 redis1.redis.docker.",
    )


def test_a_new_service_validates_within_seconds_and_a_removed_one_is_a_validated_nxdomain(
    signed: Signed,
) -> None:
    path = _write(signed.daemon, "late", "late", "198.18.0.20")
    eventually(
        lambda: assert_validated(signed.delv("late.docker."), "late.docker. 30 IN A 198.18.0.20"),
        timeout=5,
    )
    path.unlink()
    eventually(
        lambda: assert_denial_validated(
            signed.delv("late.docker."), "late.docker.", "A", "NXDOMAIN"
        ),
        timeout=5,
    )


# 2. the signed zone files: what BIND's tools check, and BIND serving the same data


def test_the_signed_zone_files_pass_dnssec_verify_and_named_checkzone(signed: Signed) -> None:
    verify = require_binary("dnssec-verify")
    files = sorted(signed.daemon.zones.glob("db.*"))
    assert [path.name for path in files] == ["db.0.18.198.in-addr.arpa", "db.docker"]
    for path in files:
        origin = path.name[3:] + "."
        result = subprocess.run(
            [verify, "-z", "-o", origin, str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Zone fully signed" in result.stdout + result.stderr, result.stdout + result.stderr
        checked = named_checkzone(origin, path)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_bind_serving_the_signed_file_answers_the_same_signatures(
    signed: Signed, tmp_path: Path
) -> None:
    zone = tmp_path / "db.docker"
    shutil.copyfile(signed.daemon.zones / "db.docker", zone)
    port = free_port()
    process, log = start_named(
        tmp_path, port, f'zone "{ORIGIN}" {{ type primary; file "{zone}"; }};\n'
    )
    try:
        eventually(lambda: answers_soa("127.0.0.1", port, ORIGIN), timeout=20)
        assert_validated(signed.delv("web.docker.", port=port), "web.docker. 30 IN A 198.18.0.7")
        assert_denial_validated(
            signed.delv("nope.docker.", port=port), "nope.docker.", "A", "NXDOMAIN"
        )
        for name, rdtype in (("web.docker.", "A"), ("redis.docker.", "SRV"), (ORIGIN, "DNSKEY")):
            assert _signed_answer(port, name, rdtype) == _signed_answer(
                signed.daemon.port, name, rdtype
            )
    finally:
        stop_process(process)
    assert "loaded serial" in log.read_text(), log.read_text()


# 3. zone transfers carry the signatures


def test_bind_as_a_secondary_serves_answers_that_validate_after_an_ixfr(signed: Signed) -> None:
    eventually(lambda: _serial(signed.secondary) == _serial(signed.daemon.port), timeout=10)
    assert_validated(
        signed.delv("web.docker.", port=signed.secondary), "web.docker. 30 IN A 198.18.0.7"
    )
    assert_denial_validated(
        signed.delv("nope.docker.", port=signed.secondary), "nope.docker.", "A", "NXDOMAIN"
    )
    logged = len(signed.daemon.output())
    _write(signed.daemon, "xfr", "xfr", "198.18.0.30")
    eventually(
        lambda: assert_validated(
            signed.delv("xfr.docker.", port=signed.secondary), "xfr.docker. 30 IN A 198.18.0.30"
        ),
        timeout=10,
    )
    # the new NSEC chain came along: the name before it proves a nonexistent name after it
    assert_denial_validated(
        signed.delv("xfs.docker.", port=signed.secondary), "xfs.docker.", "A", "NXDOMAIN"
    )
    assert "IXFR from serial" in signed.daemon.output()[logged:]


# 4. a restart: the same keys, nothing written, answers that validate at once


def test_a_restart_keeps_the_keys_writes_nothing_and_validates_at_once(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    settings = ("--dnssec-keys", str(keys), "--domain", ORIGIN)
    ds = dockzone("dnssec", "ds", ORIGIN, *settings, env={"XDG_STATE_HOME": str(tmp_path)})
    assert ds.returncode == 0, ds.stderr
    args = ("--dnssec", "all", "--sign-zone-files", *settings)
    daemon = Daemon.start(tmp_path, _definitions(tmp_path), *args)
    try:
        anchor = _anchor(tmp_path, daemon.port)
        key_files = sorted(path.name for path in keys.rglob("*"))
        zone = daemon.zones / "db.docker"
        written = zone.read_bytes(), zone.stat().st_mtime_ns
        assert _signatures_made(daemon) > 10
    finally:
        assert daemon.stop() == 0, daemon.output()
    first_run = len(daemon.output())
    restarted = Daemon.start(tmp_path, daemon.definitions, *args, first_pass=False)
    try:
        # warm start: the signed zones are served before the first pass ends
        assert_validated(
            delv(restarted.port, anchor, ORIGIN, "web.docker."), "web.docker. 30 IN A 198.18.0.7"
        )
        eventually(restarted.ready, timeout=20)
        assert _signatures_made(restarted) == 0  # everything served as it was signed
        assert (zone.read_bytes(), zone.stat().st_mtime_ns) == written
        assert sorted(path.name for path in keys.rglob("*")) == key_files
        assert _served_ds(restarted.port) == [
            line.split(" DS ")[1] for line in ds.stdout.split("\n") if line
        ]
        assert_denial_validated(
            delv(restarted.port, anchor, ORIGIN, "nope.docker."), "nope.docker.", "A", "NXDOMAIN"
        )
    finally:
        assert restarted.stop() == 0, restarted.output()
    again = dockzone("dnssec", "ds", ORIGIN, *settings, env={"XDG_STATE_HOME": str(tmp_path)})
    assert again.stdout == ds.stdout
    log = restarted.output()[first_run:]
    assert "warm start: serving 2 zones" in log, log
    assert "made" not in log, log
    assert "zones changed" not in log, log  # the first pass after the restart: an empty plan


# 5. split keys: a ZSK roll on command, picked up by the next full pass


def test_a_zsk_roll_pre_publishes_the_new_zsk_at_the_next_pass(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    settings = ("--dnssec-keys", str(keys), "--dnssec-split-keys", "--domain", ORIGIN)
    daemon = Daemon.start(tmp_path, _definitions(tmp_path), "--dnssec", "all", *settings)
    try:
        anchor = _anchor(tmp_path, daemon.port)
        before = _dnskeys(daemon.port)
        assert sorted(key.split()[0] for key in before) == ["256", "257"]
        serial = _serial(daemon.port)
        roll = dockzone(
            "dnssec", "roll", ORIGIN, "--zsk", *settings, env={"XDG_STATE_HOME": str(tmp_path)}
        )
        assert roll.returncode == 0, roll.stdout + roll.stderr
        assert " ZSK " in roll.stdout, roll.stdout
        assert "published" in roll.stdout, roll.stdout
        daemon.signal(signal.SIGHUP)
        eventually(lambda: len(_dnskeys(daemon.port)) == 3, timeout=10)
        after = _dnskeys(daemon.port)
        assert set(before) < set(after)
        assert sorted(key.split()[0] for key in after) == ["256", "256", "257"]
        assert _serial(daemon.port) > serial
        assert_validated(delv(daemon.port, anchor, ORIGIN, ORIGIN, "DNSKEY"))
        assert_validated(
            delv(daemon.port, anchor, ORIGIN, "web.docker."), "web.docker. 30 IN A 198.18.0.7"
        )
        assert_denial_validated(
            delv(daemon.port, anchor, ORIGIN, "nope.docker."), "nope.docker.", "A", "NXDOMAIN"
        )
    finally:
        assert daemon.stop() == 0, daemon.output()


# 6. what stops run before it serves


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return dockzone(
        "run",
        "--definitions",
        str(tmp_path),
        "--zones",
        str(tmp_path / "zones"),
        "--dns",
        f"127.0.0.1:{free_port()}",
        "--http",
        "off",
        "--no-rec",
        "--domain",
        ORIGIN,
        *args,
        env={"XDG_STATE_HOME": str(tmp_path)},
    )


def test_sign_zone_files_without_dnssec_exits_2_naming_the_option(tmp_path: Path) -> None:
    result = _run(tmp_path, "--sign-zone-files")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--sign-zone-files" in result.stderr, result.stderr


def test_a_damaged_key_store_stops_run_with_exit_2_naming_the_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    env = {"XDG_STATE_HOME": str(tmp_path)}
    assert dockzone("dnssec", "ds", ORIGIN, "--dnssec-keys", str(keys), env=env).returncode == 0
    store = keys / "docker" / "keys.json"
    store.write_text(store.read_text()[:-20])
    files = sorted(os.listdir(keys / "docker"))
    result = _run(tmp_path, "--dnssec", "all", "--dnssec-keys", str(keys))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "docker/keys.json" in result.stderr, result.stderr
    assert sorted(os.listdir(keys / "docker")) == files  # no new key over the damaged store


def _signatures_made(daemon: Daemon) -> float:
    """The daemon's dockzone_dnssec_signatures_total (/metrics)."""
    with urllib.request.urlopen(f"http://{daemon.http}/metrics", timeout=5) as response:
        for family in text_string_to_metric_families(response.read().decode()):
            for sample in family.samples:
                if sample.name == "dockzone_dnssec_signatures_total":
                    return sample.value
    raise AssertionError("no dockzone_dnssec_signatures_total in /metrics")
