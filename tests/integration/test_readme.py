"""The README's first command, run as written: it starts the daemon on the built-in
default, and the dig line the README shows answers."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.helpers import eventually
from tests.servers import ROOT, dig_answers, free_port


def test_readme_main_command_serves_the_examples(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "dig @127.0.0.1 -p 5354 redis.docker" in readme
    port = free_port()
    env = {**os.environ, "DOCKZONE_DEMO_DIR": str(tmp_path / "state")}
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(ROOT / "hack" / "run"),
                "--dns",
                f"127.0.0.1:{port}",
                "--no-rec",
                "--http",
                f"127.0.0.1:{free_port()}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:

        def answers() -> None:
            assert process.poll() is None, log.read_text()
            assert dig_answers(port, "redis.docker") == [
                "redis.docker. 30 IN A 172.17.0.2",
                "redis.docker. 30 IN A 172.17.0.3",
            ]
            # hack/run configures the examples' second zone (a definition cannot add one)
            assert dig_answers(port, "6.rails.staging.east.skydns.local", "AAAA") == [
                "6.rails.staging.east.skydns.local. 30 IN AAAA 2003::8:1"
            ]

        eventually(answers, timeout=60)
        # the server answers first, the zone files are written right after
        eventually(lambda: _exists(tmp_path / "state" / "zones" / "db.docker"), timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, log.read_text()


def _exists(path: Path) -> None:
    assert path.exists()
