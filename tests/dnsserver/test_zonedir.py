"""ZoneDirectory: reload changed files only, keep the last good zone, drop removed files."""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import pytest

from dnsserver import ZoneDirectory, ZoneStore
from dnsserver.rdata import A
from dnsserver.zonedir import origin_for

GOOD = """$ORIGIN docker.
$TTL 30
@ IN SOA ns.dns hostmaster {serial} 3600 600 86400 30
@ IN NS ns.dns
ns.dns IN A 127.0.0.1
web IN A {address}
"""


_TICKS = itertools.count(1)


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    # Make every write visible to the mtime/size/inode check, even within one clock tick.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000 * next(_TICKS)))


def _address(store: ZoneStore) -> str | None:
    zone = store.snapshot().find("web.docker.")
    rrset = zone.get("web.docker.", A) if zone else None
    return ".".join(str(b) for b in rrset.rdatas[0]) if rrset else None


def test_load_change_break_and_remove(zones_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    zones_dir.mkdir()
    store = ZoneStore()
    directory = ZoneDirectory(zones_dir, store)
    path = zones_dir / "db.docker"
    _write(path, GOOD.format(serial=1, address="10.0.0.1"))

    first = directory.rescan()
    assert first.loaded == ("docker.",)
    assert _address(store) == "10.0.0.1"

    index = store.snapshot()
    assert not directory.rescan().changed  # nothing changed: no reload, no swap
    assert store.snapshot() is index

    _write(path, GOOD.format(serial=2, address="10.0.0.2"))
    assert directory.rescan().loaded == ("docker.",)
    assert _address(store) == "10.0.0.2"

    caplog.set_level(logging.WARNING, logger="dnsserver.zonedir")
    _write(path, GOOD.format(serial=3, address="10.0.0.3") + "web IN CNAME other\n")
    broken = directory.rescan()
    assert not broken.changed
    (error,) = broken.failed
    assert error.line == 7
    assert _address(store) == "10.0.0.2"  # the last good zone keeps serving
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{path}:7: CNAME beside other data at web.docker." in warnings[0].getMessage()
    assert not directory.rescan().failed  # not retried (nor logged) until the file changes
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1

    _write(path, GOOD.format(serial=4, address="10.0.0.4"))
    assert directory.rescan().loaded == ("docker.",)
    assert _address(store) == "10.0.0.4"

    path.unlink()
    assert directory.rescan().removed == ("docker.",)
    assert store.snapshot().find("web.docker.") is None


def test_only_changed_files_are_parsed(zones_dir: Path) -> None:
    zones_dir.mkdir()
    for origin in ("a", "b"):
        _write(
            zones_dir / f"db.{origin}",
            GOOD.replace("docker.", f"{origin}.").format(serial=1, address="10.0.0.1"),
        )
    directory = ZoneDirectory(zones_dir, ZoneStore())
    assert sorted(directory.rescan().loaded) == ["a.", "b."]
    _write(zones_dir / "db.b", GOOD.replace("docker.", "b.").format(serial=2, address="10.0.0.2"))
    assert directory.rescan().loaded == ("b.",)


@pytest.mark.parametrize(
    ("filename", "origin"),
    [
        ("db.docker", "docker."),
        ("db.skydns.local", "skydns.local."),
        ("db.0.10.in-addr.arpa", "0.10.in-addr.arpa."),
        ("db.docker~", None),
        ("db.docker.swp", None),
        ("db.docker.jnl", None),
        ("db.docker.tmp", None),
        (".db.docker.tmp123", None),
        ("docker.zone", None),
        ("db.", None),
    ],
)
def test_origin_for(filename: str, origin: str | None) -> None:
    assert origin_for(filename) == origin
