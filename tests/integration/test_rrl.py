"""Response rate limiting in the running daemon: ``dockzone run --rrl 5`` on loopback, a
burst from 127.0.0.1, and what /metrics says about it."""

from __future__ import annotations

import contextlib
import socket
import urllib.request
from pathlib import Path

import dns.flags
import dns.message
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import service
from tests.servers import Daemon

DROPPED = ("dockzone_dns_rrl_count_total", (("action", "dropped"),))
SLIPPED = ("dockzone_dns_rrl_count_total", (("action", "slipped"),))


def metrics(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{daemon.http}/metrics", timeout=15) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_what_rrl_dropped_and_slipped(tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    (definitions / "web.yaml").write_text(
        yaml.safe_dump(service("web", dns_name="web.app", host="198.18.0.5"))
    )
    daemon = Daemon.start(tmp_path, definitions, "--docker", "off", "--rrl", "5")
    try:
        assert "response rate limiting: 5 responses/s per /24 and /56" in daemon.output()
        before = metrics(daemon)
        answers = slips = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for n in range(60):
                message = dns.message.make_query("web.app.docker.", "A")
                message.id = n
                sock.sendto(message.to_wire(), ("127.0.0.1", daemon.port))
            sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                while True:
                    reply = dns.message.from_wire(sock.recv(65535))
                    answers += bool(reply.answer)
                    slips += bool(reply.flags & dns.flags.TC and not reply.answer)
        after = metrics(daemon)
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert 5 <= answers <= 6
    dropped = after[DROPPED] - before[DROPPED]
    slipped = after[SLIPPED] - before[SLIPPED]
    assert dropped + slipped == 60 - answers
    assert slipped == slips == (60 - answers) // 2
