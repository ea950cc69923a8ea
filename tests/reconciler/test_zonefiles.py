"""The zone file sink against the disk: atomic, idempotent, serials that never go back, and
every file accepted by BIND's named-checkzone (the zones_dir fixture runs it)."""

from __future__ import annotations

import asyncio
import difflib
import json
import os
from pathlib import Path

import pytest
import yaml

from reconciler.core import plan
from reconciler.core.index import build
from reconciler.core.model import ZoneSet, ZoneSettings
from reconciler.definitions import NameDefaults, load_definitions, parse_definitions
from reconciler.sinks.zonefiles import ZoneFileSink, load_zone_files, parse_zone_text
from tests.helpers import named_checkzone, service

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
EXAMPLE_DOMAINS = ("docker.", "skydns.local.")


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def zones_for(docs: list[dict[str, object]], **settings: object) -> ZoneSet:
    found = parse_definitions(yaml.safe_dump_all(docs), "defs.yaml", NameDefaults())
    assert not found.errors
    return build(found.records, ZoneSettings(**settings)).zones  # type: ignore[arg-type]


def sync(sink: ZoneFileSink, desired: ZoneSet) -> tuple[plan.Changes, list[Path]]:
    changes = plan.calculate(asyncio.run(sink.current()), desired)
    report = asyncio.run(sink.apply(changes))
    assert report.errors == []
    return changes, report.written


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in directory.iterdir()}


def serials(directory: Path) -> dict[str, int | None]:
    return {origin: f.serial for origin, f in load_zone_files(directory).items()}


WEB = [service("web", host="10.0.0.7", port=80), service("db", host="10.0.0.8")]


def test_second_pass_writes_no_file_and_keeps_every_serial(zones_dir: Path) -> None:
    sink = ZoneFileSink(zones_dir, Clock(1_700_000_000))
    _, written = sync(sink, zones_for(WEB))
    assert sorted(p.name for p in written) == ["db.0.0.10.in-addr.arpa", "db.docker"]
    before = snapshot(zones_dir)
    sink.clock = Clock(1_700_000_999)
    changes, written = sync(sink, zones_for(WEB))
    assert changes.is_empty
    assert written == []
    assert snapshot(zones_dir) == before


def test_a_change_rewrites_only_that_zone_with_a_higher_serial(zones_dir: Path) -> None:
    sink = ZoneFileSink(zones_dir, Clock(1_700_000_000))
    sync(sink, zones_for(WEB))
    first = serials(zones_dir)
    reverse_bytes = (zones_dir / "db.0.0.10.in-addr.arpa").read_bytes()
    changed = [service("web", host="10.0.0.7", port=81), service("db", host="10.0.0.8")]
    _, written = sync(sink, zones_for(changed))  # the clock has not moved: serial + 1
    assert [p.name for p in written] == ["db.docker"]
    assert serials(zones_dir)["docker."] == first["docker."] + 1  # type: ignore[operator]
    assert (zones_dir / "db.0.0.10.in-addr.arpa").read_bytes() == reverse_bytes


def test_serial_follows_the_clock_when_it_is_ahead(zones_dir: Path) -> None:
    sink = ZoneFileSink(zones_dir, Clock(1_700_000_000))
    sync(sink, zones_for(WEB))
    sink.clock = Clock(1_800_000_000)
    sync(sink, zones_for(WEB[:1]))
    assert serials(zones_dir)["docker."] == 1_800_000_000


def test_serial_never_goes_back_across_restarts_and_clock_jumps(zones_dir: Path) -> None:
    sync(ZoneFileSink(zones_dir, Clock(1_700_000_000)), zones_for(WEB))
    # A new process whose clock is behind (or reset): the file's serial still rules.
    sync(ZoneFileSink(zones_dir, Clock(1_000)), zones_for(WEB[:1]))
    assert serials(zones_dir)["docker."] == 1_700_000_001


def test_serial_survives_a_deleted_zone_file(zones_dir: Path) -> None:
    sink = ZoneFileSink(zones_dir, Clock(1_700_000_000))
    sync(sink, zones_for(WEB))
    sync(sink, zones_for(WEB[:1]))
    (zones_dir / "db.docker").unlink()
    sink.clock = Clock(5)
    sync(sink, zones_for(WEB))
    assert serials(zones_dir)["docker."] == 1_700_000_002
    state = json.loads((zones_dir / ".dockzone-serials.json").read_text())
    assert state["docker."] == 1_700_000_002


def test_zones_no_longer_wanted_are_deleted(zones_dir: Path) -> None:
    sink = ZoneFileSink(zones_dir, Clock(1_700_000_000))
    sync(sink, zones_for(WEB))
    changes = plan.calculate(asyncio.run(sink.current()), zones_for(WEB, reverse=False))
    assert [(z.origin, z.action) for z in changes.zones] == [("0.0.10.in-addr.arpa.", "delete")]
    report = asyncio.run(sink.apply(changes))
    assert [p.name for p in report.deleted] == ["db.0.0.10.in-addr.arpa"]
    assert not (zones_dir / "db.0.0.10.in-addr.arpa").exists()


def test_files_dockzone_did_not_write_are_left_alone(zones_dir: Path) -> None:
    zones_dir.mkdir()
    foreign = "$ORIGIN docker.\n@ 60 IN SOA ns.docker. h.docker. 7 1 1 1 1\n@ 60 IN NS ns.docker.\nns 60 IN A 10.9.9.9\n"
    (zones_dir / "db.docker").write_text(foreign)
    sink = ZoneFileSink(zones_dir, Clock(1_700_000_000))
    changes = plan.calculate(asyncio.run(sink.current()), zones_for(WEB))
    report = asyncio.run(sink.apply(changes))
    assert [str(e) for e in report.errors] == [
        f"zone docker. ({zones_dir}/db.docker): the file exists and was not written by dockzone; left alone"
    ]
    assert (zones_dir / "db.docker").read_text() == foreign
    assert [p.name for p in report.written] == ["db.0.0.10.in-addr.arpa"]


def test_a_hand_edited_file_is_rewritten_with_a_higher_serial(zones_dir: Path) -> None:
    sink = ZoneFileSink(zones_dir, Clock(1_700_000_000))
    sync(sink, zones_for(WEB))
    path = zones_dir / "db.docker"
    path.write_text(path.read_text() + "intruder.docker. 30 IN A 10.6.6.6\n")
    changes, _ = sync(sink, zones_for(WEB))
    [zone] = changes.zones
    assert [(c.name, c.action) for c in zone.rrsets] == [("intruder.docker.", "removed")]
    assert "intruder" not in path.read_text()
    assert serials(zones_dir)["docker."] == 1_700_000_001


def test_writes_leave_no_temporary_files(zones_dir: Path) -> None:
    sink = ZoneFileSink(zones_dir, Clock(1_700_000_000))
    for port in range(80, 85):
        sync(sink, zones_for([service("web", host="10.0.0.7", port=port)]))
    assert sorted(os.listdir(zones_dir)) == [
        ".dockzone-serials.json",
        "db.0.0.10.in-addr.arpa",
        "db.docker",
    ]


def test_rendered_text_reads_back_to_the_same_zone(zones_dir: Path) -> None:
    sink = ZoneFileSink(zones_dir, Clock(1_700_000_000))
    docs = [
        service("t", text=['quote " backslash \\ tab \t', "ünïcode"], host="10.0.0.1", mail=True),
        service("v6", host="2001:db8::1", port=1, aliases=["six.docker."]),
    ]
    desired = zones_for(docs)
    sync(sink, desired)
    for origin, zone in desired.items():
        content, serial = parse_zone_text((zones_dir / f"db.{origin.rstrip('.')}").read_text())
        assert content == zone
        assert serial == 1_700_000_000


def test_example_definitions_match_golden_files_and_pass_named_checkzone(zones_dir: Path) -> None:
    found = load_definitions(ROOT / "manifests" / "examples", NameDefaults(EXAMPLE_DOMAINS))
    assert found.errors == ()
    result = build(found.records, ZoneSettings(domains=EXAMPLE_DOMAINS))
    sync(ZoneFileSink(zones_dir, Clock(1_700_000_000)), result.zones)
    files = sorted(p.name for p in zones_dir.glob("db.*"))
    if os.environ.get("DOCKZONE_UPDATE_GOLDEN") == "1":
        for old in GOLDEN.glob("db.*"):
            old.unlink()
        for name in files:
            (GOLDEN / name).write_bytes((zones_dir / name).read_bytes())
    assert files == sorted(p.name for p in GOLDEN.glob("db.*"))
    for name in files:
        got = (zones_dir / name).read_text()
        want = (GOLDEN / name).read_text()
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(True), got.splitlines(True), f"golden/{name}", name
            )
        )
        assert got == want, (
            f"rendered zone differs from tests/golden (DOCKZONE_UPDATE_GOLDEN=1 updates it):\n{diff}"
        )
        result_check = named_checkzone(name[3:] + ".", zones_dir / name)
        assert result_check.returncode == 0, result_check.stdout


@pytest.mark.parametrize("name", ["bad zone", "no soa"])
def test_named_checkzone_really_rejects_bad_zones(tmp_path: Path, name: str) -> None:
    """The check the other tests rely on can fail: BIND rejects a CNAME beside data."""
    text = {
        "bad zone": "$ORIGIN docker.\n@ 30 IN SOA ns.dns.docker. h.docker. 1 1 1 1 1\n@ 30 IN NS ns.dns.docker.\n"
        "ns.dns 30 IN A 127.0.0.1\nweb 30 IN A 10.0.0.1\nweb 30 IN CNAME x.example.\n",
        "no soa": "$ORIGIN docker.\n@ 30 IN NS ns.dns.docker.\n",
    }[name]
    path = tmp_path / "db.docker"
    path.write_text(text)
    assert named_checkzone("docker.", path).returncode != 0


def test_temporary_files_of_interrupted_writes_are_removed_at_start(zones_dir: Path) -> None:
    """A process killed between writing a temporary copy and renaming it leaves the copy;
    the next start removes dockzone's own and nothing else."""
    zones_dir.mkdir(exist_ok=True)
    ours = [".db.docker.k3j4l5m6.tmp", "..dockzone-serials.json.a1b2c3d4.tmp"]
    for name in [*ours, ".someone-else.tmp"]:
        (zones_dir / name).write_text("partial")
    asyncio.run(ZoneFileSink(zones_dir).current())
    assert sorted(p.name for p in zones_dir.iterdir()) == [".someone-else.tmp"]
