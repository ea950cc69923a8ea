"""The incremental daemon against the full recompute, for real: after a run of edits
(files added, changed, broken, moved, removed; API writes), ``dockzone run``'s zone files
equal a fresh ``dockzone render`` of the same definitions, a forced full pass finds
nothing to repair, and a restart answers from the last zone files before its first pass
ends."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from tests.helpers import assert_zone_files_valid, eventually, service
from tests.servers import EXAMPLE_DOMAINS, ROOT, Daemon, dig_answers


def _zone_bodies(directory: Path) -> dict[str, list[str]]:
    """Each zone file's records without the SOA line (serials differ by design)."""
    return {
        path.name: [line for line in path.read_text().splitlines() if " SOA " not in line]
        for path in sorted(directory.glob("db.*"))
    }


def _render(definitions: Path, zones: Path, domains: tuple[str, ...] = EXAMPLE_DOMAINS) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "render",
            "--definitions",
            str(definitions),
            "--zones",
            str(zones),
            *domains,
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )


def _passes(daemon: Daemon) -> int:
    return len(re.findall(r" pass \d+", daemon.output()))


def _put(daemon: Daemon, service_id: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"http://{daemon.http}/services/{service_id}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201)


def _metric(daemon: Daemon, name: str) -> list[str]:
    with urllib.request.urlopen(f"http://{daemon.http}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [line for line in text.splitlines() if line.startswith(name)]


def test_zone_files_equal_a_fresh_render_after_edits(tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    shutil.copytree(ROOT / "manifests" / "examples", definitions)
    daemon = Daemon.start(tmp_path, definitions, "--log-level", "DEBUG", *EXAMPLE_DOMAINS)
    try:
        big = definitions / "big.yaml"
        docs = [
            service(f"s{i}", dns_name=f"s{i}.app{i % 5}.east", host=f"198.18.{i % 3}.{i + 1}")
            for i in range(60)
        ]
        steps = [
            lambda: big.write_text(yaml.safe_dump_all(docs)),
            lambda: big.write_text(
                yaml.safe_dump_all(
                    [*docs[:10], service("s10", dns_name="moved.west", port=80), *docs[11:]]
                )
            ),
            lambda: (definitions / "one.yaml").write_text(
                yaml.safe_dump(service("one", dns_name="one", host="198.18.9.1", aliases=["db"]))
            ),
            lambda: (definitions / "dup.yaml").write_text(
                yaml.safe_dump(service("one", dns_name="other", host="198.18.9.2"))
            ),
            (definitions / "one.yaml").unlink,
            lambda: (definitions / "broken.yaml").write_text("kind: [unclosed\n"),
            lambda: _put(daemon, "api1", {"Name": "api1", "Image": "web", "IPs": ["198.18.4.4"]}),
            lambda: big.write_text(yaml.safe_dump_all(docs[::2])),
            (definitions / "broken.yaml").unlink,
            lambda: _put(daemon, "api1", {"Name": "api1", "Image": "web", "IPs": ["198.18.4.5"]}),
        ]
        for step in steps:
            before = _passes(daemon)
            step()
            eventually(lambda before=before: _more_passes(daemon, before), timeout=10)
        eventually(lambda: _answers(daemon, "api1.web.docker.", "198.18.4.5"), timeout=10)
        rendered = tmp_path / "rendered"
        _render(definitions, rendered)
        expected = _zone_bodies(rendered)
        eventually(lambda: _same(_zone_bodies(daemon.zones), expected), timeout=10)
        # A full pass (SIGHUP) recomputes everything and compares: nothing to repair.
        before = _passes(daemon)
        daemon.signal(signal.SIGHUP)
        eventually(lambda: _more_passes(daemon, before), timeout=10)
        assert "differed from a full recompute" not in daemon.output()
        for line in _metric(daemon, "dockzone_resync_repairs_total{"):
            assert line.endswith(" 0.0"), line
        assert _zone_bodies(daemon.zones) == expected
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert_zone_files_valid(daemon.zones)


def test_warm_start_answers_before_the_first_pass_ends(tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    (definitions / "web.yaml").write_text(
        yaml.safe_dump(service("web", dns_name="web", host="198.18.5.5"))
    )
    daemon = Daemon.start(tmp_path, definitions)
    assert daemon.stop() == 0
    # etcd at a loopback port that accepts connections and never answers: the first pass
    # waits for its request timeout (5 s), while the last zone files are already served.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        port = silent.getsockname()[1]
        log = tmp_path / "dockzone.log"
        log.write_text("")
        daemon = Daemon.start(
            tmp_path, definitions, "--etcd", f"http://127.0.0.1:{port}", first_pass=False
        )
        try:
            assert dig_answers(daemon.port, "web.docker.") == ["web.docker. 30 IN A 198.18.5.5"]
            output = daemon.output()
            assert "warm start: serving" in output
            assert " pass 1" not in output
        finally:
            daemon.stop()
    finally:
        silent.close()


def _same(found: object, expected: object) -> None:
    assert found == expected


def _more_passes(daemon: Daemon, before: int) -> None:
    assert _passes(daemon) > before


def _answers(daemon: Daemon, name: str, address: str) -> None:
    assert dig_answers(daemon.port, name) == [f"{name} 30 IN A {address}"]


def test_warm_start_takes_saved_zones_only_while_their_files_are_unchanged(
    tmp_path: Path,
) -> None:
    """A clean stop saves the served zones; a zone file rewritten while the daemon is
    stopped is served from the file, the unchanged ones from what was saved."""
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    web = definitions / "web.yaml"
    web.write_text(yaml.safe_dump(service("web", dns_name="web", host="198.18.5.5")))
    (definitions / "db.yaml").write_text(
        yaml.safe_dump(service("db", dns_name="db", host="198.18.7.7"))
    )
    daemon = Daemon.start(tmp_path, definitions)
    assert daemon.stop() == 0
    zones = tmp_path / "zones"
    assert (zones / ".dockzone-served").exists()
    # while stopped, web moves within its /24 and `dockzone render` rewrites db.docker and
    # that reverse zone; the reverse zone of db stays as it was saved
    web.write_text(yaml.safe_dump(service("web", dns_name="web", host="198.18.5.6")))
    _render(definitions, zones, domains=())  # the daemon's settings: the default domain
    (tmp_path / "dockzone.log").write_text("")
    daemon = Daemon.start(tmp_path, definitions, first_pass=False)
    try:
        found = re.search(r"warm start: serving (\d+) zones .*, (\d+) as saved", daemon.output())
        assert found is not None, daemon.output()
        assert int(found[2]) == int(found[1]) - 2
        assert dig_answers(daemon.port, "web.docker.") == ["web.docker. 30 IN A 198.18.5.6"]
        assert dig_answers(daemon.port, "6.5.18.198.in-addr.arpa.", "PTR") == [
            "6.5.18.198.in-addr.arpa. 30 IN PTR web.docker."
        ]
        assert dig_answers(daemon.port, "7.7.18.198.in-addr.arpa.", "PTR") == [
            "7.7.18.198.in-addr.arpa. 30 IN PTR db.docker."
        ]
    finally:
        daemon.stop()
