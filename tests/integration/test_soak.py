"""A bounded soak (issue #16): hack/soak for two minutes (SOAK_MINUTES to change it) with
dnsperf at 20k QPS on stable names while containers, definitions, API services and an etcd
peer churn. No stable query may fail, every churned name must answer within 5 s, RSS and
open file descriptors must stay flat after the warm-up. ``hack/soak --minutes 30`` is the
long run (docs/reliability.md)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from tests.helpers import require_binary
from tests.servers import ROOT

sys.path.insert(0, str(ROOT / "hack"))

import soak


def test_a_bounded_soak_fails_no_query_and_stays_flat() -> None:
    require_binary("dnsperf")
    require_binary("dockerd")
    minutes = float(os.environ.get("SOAK_MINUTES", "2"))
    with tempfile.TemporaryDirectory(prefix="dz-soak-") as directory:
        # five container names in turn, as hack/soak does: a name comes back 2.5 s after
        # its last container went (the reuse that found the deletion-budget bug, #16)
        figures = soak.soak(minutes, 20000, 200, 5.0, Path(directory))
    report = figures.report()
    print(report)
    assert figures.sent > 0, report
    assert figures.failed() == [], report
    for kind in ("docker run -> answer", "docker rm -> NXDOMAIN", "definitions edit -> answer"):
        assert figures.latency.get(kind), report
