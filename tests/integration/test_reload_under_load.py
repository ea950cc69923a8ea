"""Reload under load: a client queries the daemon for 20 s while the definitions change 50
times. No query fails or times out, and every answer is one whole state, old or new."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dns.exception
import dns.rcode
import yaml

from tests.helpers import eventually, service
from tests.servers import Daemon, answer_text, query

CHANGES = 50
SECONDS = 20.0


def state(k: int) -> list[dict[str, object]]:
    """State k: one pool name with two addresses, and a per-state TXT."""
    return [
        service("pool-a", dns_name="1.pool", host=f"10.99.{k}.1"),
        service("pool-b", dns_name="2.pool", host=f"10.99.{k}.2"),
    ]


def expected(k: int) -> list[str]:
    return [f"pool.docker. 30 IN A 10.99.{k}.1", f"pool.docker. 30 IN A 10.99.{k}.2"]


def test_no_query_fails_and_every_answer_is_a_whole_state(tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    path = definitions / "pool.yaml"
    path.write_text(yaml.safe_dump_all(state(0)))
    daemon = Daemon.start(tmp_path, definitions)
    valid = {tuple(expected(k)): k for k in range(CHANGES + 1)}
    seen: list[int] = []
    failures: list[str] = []
    done = threading.Event()

    def client() -> None:
        deadline = time.monotonic() + SECONDS + 5
        while not done.is_set() and time.monotonic() < deadline and len(seen) < 500_000:
            try:
                response = query("127.0.0.1", daemon.port, "pool.docker.", "A", timeout=1.0)
            except (OSError, dns.exception.DNSException) as exc:
                failures.append(f"query failed: {exc!r}")
                continue
            answer = tuple(sorted(line.replace("\n", " ") for line in answer_text(response)))
            if response.rcode() != dns.rcode.NOERROR or answer not in valid:
                failures.append(f"rcode {dns.rcode.to_text(response.rcode())}, answer {answer}")
            else:
                seen.append(valid[answer])

    thread = threading.Thread(target=client)
    try:
        eventually(lambda: _answers(daemon, 0), timeout=10)
        thread.start()
        started = time.monotonic()
        for k in range(1, CHANGES + 1):
            time.sleep(SECONDS / CHANGES)  # the pace of the edits, not a wait for an effect
            path.write_text(yaml.safe_dump_all(state(k)))
        eventually(lambda: _answers(daemon, CHANGES), timeout=10)
        while time.monotonic() - started < SECONDS:
            time.sleep(0.1)
    finally:
        done.set()
        thread.join(timeout=30)
        assert daemon.stop() == 0
    assert failures == [], failures[:10]
    assert len(seen) > 1000
    assert seen == sorted(seen), "an answer went back to an older state"
    assert len(set(seen)) > CHANGES // 2, "the client saw too few of the states"
    assert seen[-1] == CHANGES


def _answers(daemon: Daemon, k: int) -> None:
    response = query("127.0.0.1", daemon.port, "pool.docker.", "A")
    assert sorted(line.replace("\n", " ") for line in answer_text(response)) == expected(k)
