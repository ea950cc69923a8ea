"""``--allow-transfer``, ``--transfer-key``, ``--also-notify`` and ``--journal-size`` as a
user gives them: to ``dockzone serve`` over a zone directory, and the errors of bad
values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import eventually
from tests.reconciler.test_cli import dockzone
from tests.servers import Daemon, dig, free_port

ZONE = """; a hand-written zone
$ORIGIN docker.
$TTL 30
@    IN SOA ns.dns hostmaster 7 3600 600 86400 10
     IN NS  ns.dns
ns.dns IN A 127.0.0.1
web  IN A 10.0.0.7
"""
SECRET = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def _serve(tmp_path: Path, *args: str) -> Daemon:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "db.docker").write_text(ZONE)
    port = free_port()
    command = ["serve", "--zones", str(zones), "--dns", f"127.0.0.1:{port}", "--no-rec", *args]
    return Daemon.start_command(tmp_path, command, port=port, http="off")


def test_serve_transfers_to_an_allowed_network(tmp_path: Path) -> None:
    daemon = _serve(tmp_path, "--allow-transfer", "127.0.0.0/8")
    try:
        allowed = dig(daemon.port, "docker.", "AXFR")
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert "web.docker.\t\t30\tIN\tA\t10.0.0.7" in allowed
    assert allowed.count("\tSOA\t") == 2


def test_serve_refuses_transfers_by_default_and_takes_a_key(tmp_path: Path) -> None:
    key = tmp_path / "xfr.key"
    key.write_text(f'key "xfr" {{ secret "{SECRET}"; }};\n')
    daemon = _serve(tmp_path, "--transfer-key", str(key), "--allow-transfer", "xfr")
    try:
        unsigned = dig(daemon.port, "docker.", "AXFR")
        signed = dig(daemon.port, "-y", f"hmac-sha256:xfr:{SECRET}", "docker.", "AXFR")
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert "Transfer failed" in unsigned
    assert signed.count("\tSOA\t") == 2
    assert "zone transfer of docker. refused to 127.0.0.1 (unsigned)" in daemon.output()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--allow-transfer", "nokey"], "--allow-transfer nokey.: no --transfer-key has this name"),
        (["--allow-transfer", "10.0.0.0/33"], "is neither an address, a network nor a key name"),
        (["--also-notify", "secondary:53"], "--also-notify: 'secondary' is not an IP address"),
        (["--transfer-key", "/nonexistent.key"], "cannot read TSIG key file"),
        (["--journal-size", "-1"], "--journal-size: must be 0..100000000 records"),
    ],
    ids=["unknown key", "bad network", "notify name", "missing key file", "journal size"],
)
def test_bad_transfer_options_name_the_problem(args: list[str], message: str) -> None:
    result = dockzone("serve", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def _ixfr(port: int, serial: int) -> list[str]:
    out = dig(port, "+noall", "+answer", "docker.", f"IXFR={serial}")
    return [" ".join(line.split()) for line in out.splitlines() if line.strip()]


def test_serve_answers_ixfr_with_the_difference_of_a_reloaded_file(tmp_path: Path) -> None:
    """A zone file edited under ``serve``: the reload is diffed into the journal, IXFR from
    the old serial gets only the difference, the journal file survives a restart."""
    daemon = _serve(tmp_path, "--allow-transfer", "127.0.0.0/8")
    zone_file = tmp_path / "zones" / "db.docker"
    try:
        zone_file.write_text(
            ZONE.replace(" 7 3600", " 8 3600").replace("10.0.0.7", "10.0.0.8")
            + "api IN A 10.0.0.9\n"
        )
        eventually(lambda: len(_ixfr(daemon.port, 7)) == 7, timeout=10)
        lines = _ixfr(daemon.port, 7)
    finally:
        assert daemon.stop() == 0, daemon.output()
    soa = "docker. 30 IN SOA ns.dns.docker. hostmaster.docker. {} 3600 600 86400 10"
    assert lines[:4] == [
        soa.format(8),
        soa.format(7),
        "web.docker. 30 IN A 10.0.0.7",
        soa.format(8),
    ]
    assert sorted(lines[4:6]) == ["api.docker. 30 IN A 10.0.0.9", "web.docker. 30 IN A 10.0.0.8"]
    assert lines[6:] == [soa.format(8)]
    assert (tmp_path / "zones" / ".dockzone-journal.docker").exists()
    port = free_port()
    command = [
        "serve",
        "--zones",
        str(tmp_path / "zones"),
        "--dns",
        f"127.0.0.1:{port}",
        "--no-rec",
        "--allow-transfer",
        "127.0.0.0/8",
        "--log-level",
        "INFO",
    ]
    again = Daemon.start_command(tmp_path, command, port=port, http="off")
    try:
        assert _ixfr(again.port, 7) == lines
    finally:
        assert again.stop() == 0, again.output()
    assert "journal of docker. loaded: serials 7..8" in again.output()
