"""The zones directory fills up, for real: ``dockzone run`` writes its zone files into a
small tmpfs mounted in a mount namespace of its own (``unshare -m``: the host's mounts
never change, and the mount goes when the daemon does). With the filesystem full, each
zone that cannot be written is reported naming its file, the last good file stays, and DNS
answers the new state; once space returns, every zone file is written."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import assert_zone_files_valid, eventually, require_binary, service
from tests.integration.test_incremental import _render, _zone_bodies
from tests.servers import Daemon, dig_answers

TMPFS_SIZE = "256k"


def _mount_namespace_works(directory: Path) -> str:
    """Why a private mount namespace with a tmpfs is not available here ("" if it is)."""
    unshare = require_binary("unshare")
    if os.geteuid() != 0:
        return "mounting a tmpfs in a private mount namespace needs root"
    result = subprocess.run(
        [unshare, "-m", "--propagation", "private", "mount", "-t", "tmpfs", "probe", directory],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return "" if result.returncode == 0 else f"unshare -m / mount: {result.stderr.strip()}"


def _fill(directory: Path) -> int:
    """Write a file until the filesystem is full; returns the bytes written."""
    written = 0
    with (directory / "filler").open("wb", buffering=0) as file:
        for _ in range(100_000):  # far more than any small tmpfs holds
            try:
                written += file.write(b"\0" * 1024)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return written
    raise AssertionError(f"{directory} never filled up")


def _write(definitions: Path, web: str) -> None:
    docs = [service("web", dns_name="web", host=web)] + [
        service(f"s{i}", dns_name=f"s{i}.app", host=f"198.18.6.{i + 1}") for i in range(20)
    ]
    (definitions / "all.yaml").write_text(yaml.safe_dump_all(docs))


def test_a_full_disk_keeps_the_last_good_files_and_dns_and_writes_when_space_returns(
    tmp_path: Path,
) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    reason = _mount_namespace_works(zones)
    if reason:
        pytest.skip(reason)
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    _write(definitions, "198.18.5.5")
    mount = f'mount -t tmpfs -o size={TMPFS_SIZE},mode=0755 dockzone-test "$0" && exec "$@"'
    wrap = ("unshare", "-m", "--propagation", "private", "sh", "-c", mount, str(zones))
    daemon = Daemon.start(tmp_path, definitions, wrap=wrap)
    inside = Path(f"/proc/{daemon.process.pid}/root{zones}")
    try:
        assert (inside / "db.docker").exists()
        assert not any(zones.iterdir()), "the tmpfs is visible outside the daemon"
        good = {path.name: path.read_text() for path in inside.glob("db.*")}
        filled = _fill(inside)

        _write(definitions, "198.18.5.6")
        eventually(
            lambda: dig_answers(daemon.port, "web.docker.") == ["web.docker. 30 IN A 198.18.5.6"],
            timeout=10,
        )
        for zone, name in (
            ("docker.", "db.docker"),
            ("5.18.198.in-addr.arpa.", "db.5.18.198.in-addr.arpa"),
        ):
            line = f"zone {zone} ({zones / name}): No space left on device"
            eventually(lambda line=line: line in daemon.output(), timeout=10)  # type: ignore[misc]
        assert dig_answers(daemon.port, "6.5.18.198.in-addr.arpa.", "PTR") == [
            "6.5.18.198.in-addr.arpa. 30 IN PTR web.docker."
        ]
        # the last good files, whole and valid, and no temporary file left behind
        assert {path.name: path.read_text() for path in inside.glob("db.*")} == good
        assert_zone_files_valid(inside)
        assert not list(inside.glob(".*.tmp"))

        (inside / "filler").unlink()
        rendered = tmp_path / "rendered"
        _render(definitions, rendered, domains=())
        expected = _zone_bodies(rendered)
        eventually(lambda: _zone_bodies(inside) == expected, timeout=15)
        assert_zone_files_valid(inside)
        print(
            f"\ndisk full: tmpfs {TMPFS_SIZE}, filled with {filled} bytes; "
            f"{len(good)} zone files kept, rewritten once space returned"
        )
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert not any(zones.iterdir())
