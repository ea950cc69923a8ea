"""``dockzone run`` killed with SIGKILL at random instants, for real: definitions are
edited and records created through the API between kills, so the kills land in passes,
in the first pass after a warm start, and between them. After each kill and restart a
user's checks hold: every zone file passes named-checkzone, no serial goes backwards, the
state file and the served-zones snapshot are readable and never vouch for a changed file,
every record the API acknowledged answers exactly once, and the first pass converges to
what a fresh ``dockzone render`` of the same definitions writes.

CI runs a slice (``DOCKZONE_KILLS``, default 16, within ``DOCKZONE_KILL_SECONDS``,
default 45); ``hack/kill --kills N`` runs more. The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
import urllib.request
from pathlib import Path

import yaml

from dnsserver import load_zone_file, snapshot
from dnsserver.rdata import ADDRESS_CNAME
from reconciler.core.serials import serial_lt
from reconciler.sinks.zonefiles import STATE_FILE
from reconciler.warm import SNAPSHOT
from tests.helpers import assert_zone_files_valid, eventually, service
from tests.integration.test_incremental import _put, _render, _zone_bodies
from tests.servers import EXAMPLE_DOMAINS, ROOT, Daemon, dig_answers

KILLS = int(os.environ.get("DOCKZONE_KILLS", "16"))
SECONDS = float(os.environ.get("DOCKZONE_KILL_SECONDS", "45"))
CLEAN_EVERY = 5
"""Every fifth stop is a clean one (SIGTERM), which saves the served-zones snapshot that
later kills leave behind, stale."""


def _big(rng: random.Random) -> list[dict[str, object]]:
    """Forty records over three /24s and four names, different on each call."""
    return [
        service(
            f"s{i}",
            dns_name=f"s{i}.app{rng.randrange(4)}.east",
            host=f"198.18.{rng.randrange(3)}.{i + 1}",
        )
        for i in range(40)
        if rng.random() < 0.9
    ]


def _serial(path: Path) -> int:
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 7 and parts[3] == "SOA":
            return int(parts[6])
    raise AssertionError(f"no SOA in {path}")


def _check_on_disk(zones: Path, high: dict[str, int]) -> int:
    """What a user checks in the zones directory after a kill; returns how many zone files
    were read from the snapshot's point of view (their stamp matched)."""
    assert_zone_files_valid(zones)
    for path in zones.glob("db.*"):
        serial = _serial(path)
        before = high.get(path.name)
        assert before is None or not serial_lt(serial, before), (
            f"{path.name}: serial {serial} after {before}"
        )
        high[path.name] = serial
    state = zones / STATE_FILE
    if state.exists():
        recorded = json.loads(state.read_text())
        assert isinstance(recorded, dict), recorded
        for origin, serial in recorded.items():
            assert isinstance(serial, int), (origin, serial)
            # the state file may lag a file written just before the kill, never lead it
            path = zones / ("db." + (origin.rstrip(".") or "root"))
            if path.exists():
                assert not serial_lt(_serial(path), serial), (origin, serial, _serial(path))
    matching = 0
    saved = zones / SNAPSHOT
    if saved.exists():
        for origin, (stamp, zone) in snapshot.load(saved.read_bytes()).items():
            path = zones / ("db." + (origin.rstrip(".") or "root"))
            if not path.exists():
                continue
            stat = path.stat()
            if stamp == (stat.st_size, stat.st_mtime_ns, stat.st_ino):
                # a warm start serves this zone from the snapshot: it must be the file's
                # (beside the SkyDNS host-name aliases the server derives, #14)
                served = sorted(r for r in zone.rrsets() if r.rdtype != ADDRESS_CNAME)
                assert served == sorted(load_zone_file(path, origin).rrsets()), (
                    f"the snapshot of {origin} is stale for {path}"
                )
                matching += 1
    return matching


def _api_answers(daemon: Daemon, acknowledged: dict[str, str]) -> None:
    """Every record the API acknowledged answers once, with its last address, and the API
    lists each once."""
    for service_id, address in acknowledged.items():
        name = f"{service_id}.api.docker."
        assert dig_answers(daemon.port, name) == [f"{name} 30 IN A {address}"]
    with urllib.request.urlopen(f"http://{daemon.http}/services", timeout=10) as response:
        listed = json.load(response)
    ids = [key for key in listed if key.startswith("k")]
    assert sorted(ids) == sorted(acknowledged), listed


def _converged(daemon: Daemon, definitions: Path, rendered: Path) -> None:
    shutil.rmtree(rendered, ignore_errors=True)
    _render(definitions, rendered)
    expected = _zone_bodies(rendered)
    eventually(lambda: _zone_bodies(daemon.zones) == expected, timeout=10)


def test_killed_at_random_instants_it_restarts_valid_and_converged(tmp_path: Path) -> None:
    seed = int(os.environ.get("DOCKZONE_KILL_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    definitions = tmp_path / "definitions"
    shutil.copytree(ROOT / "manifests" / "examples", definitions)
    big = definitions / "big.yaml"
    big.write_text(yaml.safe_dump_all(_big(rng)))
    zones = tmp_path / "zones"
    rendered = tmp_path / "rendered"
    acknowledged: dict[str, str] = {}
    high: dict[str, int] = {}
    kills = clean = early = snapshot_zones = interrupted = 0
    started = time.monotonic()
    while kills < KILLS and time.monotonic() - started < SECONDS:
        snapshot_zones += _check_on_disk(zones, high) if zones.exists() else 0
        interrupted += len(list(zones.glob(".*.tmp")))
        in_first_pass = rng.random() < 0.25
        daemon = Daemon.start(tmp_path, definitions, *EXAMPLE_DOMAINS, first_pass=False)
        try:
            if in_first_pass:
                early += 1
            else:
                eventually(daemon.ready, timeout=20)
                _converged(daemon, definitions, rendered)
                _api_answers(daemon, acknowledged)
                big.write_text(yaml.safe_dump_all(_big(rng)))
                service_id = f"k{rng.randrange(8)}"
                address = f"198.18.7.{rng.randrange(1, 250)}"
                _put(daemon, service_id, {"Name": service_id, "Image": "api", "IPs": [address]})
                acknowledged[service_id] = address
                big.write_text(yaml.safe_dump_all(_big(rng)))
            time.sleep(rng.uniform(0, 0.3))  # a random instant: in a pass, or between
            if (kills + clean + 1) % CLEAN_EVERY == 0:
                assert daemon.stop() == 0, daemon.output()
                clean += 1
            else:
                daemon.process.send_signal(signal.SIGKILL)
                daemon.process.wait(timeout=10)
                kills += 1
        finally:
            if daemon.process.poll() is None:
                daemon.stop()
    seconds = time.monotonic() - started
    snapshot_zones += _check_on_disk(zones, high)
    daemon = Daemon.start(tmp_path, definitions, *EXAMPLE_DOMAINS)
    try:
        _converged(daemon, definitions, rendered)
        _api_answers(daemon, acknowledged)
    finally:
        assert daemon.stop() == 0, daemon.output()
    print(
        f"\nkill: seed {seed}: {kills} SIGKILLs survived ({early} during the first pass), "
        f"{clean} clean stops, {seconds:.0f} s; zone files checked with named-checkzone "
        f"{len(high)} zones, snapshot zones vouched for and verified {snapshot_zones}, "
        f"API records {len(acknowledged)}; temporary files of interrupted writes found "
        f"{interrupted}, all removed at the next start"
    )
    assert not list(zones.glob(".*.tmp")), "a start leaves no temporary file behind"
    assert kills >= min(KILLS, 5), f"only {kills} kills in {seconds:.0f} s"
