"""Soak ``dockzone run`` under churn while dnsperf queries stable names (issue #16).

Started here, all on 127.0.0.1 or the private dockerd's own network: a private dockerd
(hack/dockerd), etcd, and ``dockzone run`` with Docker, etcd (as a source and a sink), the
HTTP API and a definitions directory holding ``--stable`` records. For ``--minutes``:

- dnsperf asks for the stable names at a fixed ``--qps`` (``-Q``), the whole time;
- containers are started and removed one after another (each ``docker run -d`` -> its name
  answers -> ``docker rm -f`` -> NXDOMAIN, timed), a definitions file is rewritten with a
  new address every second, an API service is PUT with a new address every second, and
  another writer puts a key in etcd every second (each timed until dockzone answers it);
- the daemon's RSS and open file descriptors are sampled every 5 s.

It prints the figures and exits 1 when a stable query failed (lost, or any rcode but
NOERROR), a churned name did not answer within ``--answer-limit`` seconds, or RSS or file
descriptors grew more than 10% between the end of the warm-up (the first third) and the
end. Every wait is bounded; everything started is stopped, also on Ctrl-C. CI runs a short
one (tests/integration/test_soak.py); ``hack/soak --minutes 30`` gives docs/reliability.md
its figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dockerimage import IMAGE, ensure_image  # noqa: E402
from tests.helpers import service  # noqa: E402
from tests.integration.test_etcd import EtcdServer  # noqa: E402
from tests.servers import Daemon, DockerDaemon  # noqa: E402


@dataclass
class Figures:
    """What one soak measured."""

    seconds: float = 0.0
    qps: int = 0
    sent: int = 0
    lost: int = 0
    noerror: int = 0
    other_rcodes: dict[str, int] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)
    """Churn kind -> seconds from the change until dockzone answered it."""
    late: list[str] = field(default_factory=list)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since start, RSS kB, open fds)."""
    errors: list[str] = field(default_factory=list)

    def growth(self) -> tuple[float, float]:
        """RSS and fd growth from the end of the warm-up (first third) to the end."""
        if len(self.samples) < 3:
            return 0.0, 0.0
        warm = next(s for s in self.samples if s[0] >= self.seconds / 3)
        last = self.samples[-1]
        return (last[1] - warm[1]) / warm[1], (last[2] - warm[2]) / max(1, warm[2])

    def failed(self) -> list[str]:
        problems = []
        if self.lost or self.other_rcodes:
            problems.append(f"stable queries failed: {self.lost} lost, rcodes {self.other_rcodes}")
        if self.noerror == 0:
            problems.append("no stable query answered")
        problems += [f"late: {item}" for item in self.late]
        rss, fds = self.growth()
        if rss > 0.10:
            problems.append(f"RSS grew {rss:.0%} after the warm-up")
        if fds > 0.10:
            problems.append(f"open file descriptors grew {fds:.0%} after the warm-up")
        return problems + self.errors

    def report(self) -> str:
        lines = [
            f"soak: {self.seconds:.0f} s, dnsperf -Q {self.qps} on the stable names: "
            f"{self.sent} sent, {self.lost} lost, NOERROR {self.noerror}, "
            f"other rcodes {self.other_rcodes or 'none'}"
        ]
        for kind, values in sorted(self.latency.items()):
            if values:
                lines.append(
                    f"  {kind}: {len(values)} times, answered after median "
                    f"{statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"
                )
        if self.samples:
            first, last = self.samples[0], self.samples[-1]
            rss, fds = self.growth()
            lines.append(
                f"  RSS {first[1] // 1024} -> {last[1] // 1024} MB, open fds {first[2]} -> "
                f"{last[2]} ({len(self.samples)} samples; after the warm-up: RSS {rss:+.1%}, "
                f"fds {fds:+.1%})"
            )
        problems = self.failed()
        lines.append("  result: " + ("; ".join(problems) if problems else "ok"))
        return "\n".join(lines)


def _answer(port: int, name: str, rdtype: str = "A") -> tuple[int, list[str]]:
    query = dns.message.make_query(name, rdtype)
    try:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return -1, []
    return response.rcode(), sorted(str(rd) for rrset in response.answer for rd in rrset)


def _until(check: Callable[[], bool], limit: float) -> float | None:
    """Seconds until ``check()`` holds (polled every 2 ms), None after ``limit``."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if check():
            return time.monotonic() - started
        time.sleep(0.002)
    return None


class Churn(threading.Thread):
    """One kind of change, repeated until ``stop``, each timed until dockzone answers."""

    def __init__(
        self,
        kind: str,
        step: Callable[[int], tuple[str, Callable[[], bool]]],
        *,
        every: float,
        figures: Figures,
        stop: threading.Event,
        limit: float,
    ) -> None:
        super().__init__(daemon=True, name=kind)
        self.kind, self.step, self.every = kind, step, every
        self.figures, self.stop, self.limit = figures, stop, limit

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                what, check = self.step(n)
                took = _until(check, self.limit)
            except Exception as exc:  # reported, the soak goes on
                self.figures.errors.append(f"{self.kind} #{n}: {exc!r}")
                took, what = None, ""
            if took is None:
                if what:
                    self.figures.late.append(f"{self.kind} #{n} {what}: not within {self.limit} s")
            else:
                self.figures.latency.setdefault(self.kind, []).append(took)
            self.stop.wait(max(0.0, self.every - (time.monotonic() - started)))


def soak(  # noqa: PLR0917 - the command line's knobs, in its order
    minutes: float, qps: int, stable: int, limit: float, workdir: Path, names: int = 5
) -> Figures:
    """The soak (see the module docstring); containers cycle through ``names`` names (a
    name comes back 2.5 s after its last container went), every one new with 0."""
    figures = Figures(qps=qps)
    dockerd = DockerDaemon.start_new()
    etcd_dir = workdir / "etcd"
    etcd_dir.mkdir()
    etcd = EtcdServer.start(etcd_dir)
    daemon = None
    stop = threading.Event()
    try:
        ensure_image(dockerd.url)
        definitions = workdir / "definitions"
        definitions.mkdir()
        (definitions / "stable.yaml").write_text(
            yaml.safe_dump_all(
                [service(f"s{n}", host=f"10.1.{n // 250}.{n % 250 + 1}") for n in range(stable)]
            )
        )
        daemon = Daemon.start(
            workdir,
            definitions,
            "--docker",
            dockerd.url,
            "--etcd",
            etcd.url,
            "--instance-id",
            "soak",
            "--host-address",
            "127.0.0.1",
        )
        port = daemon.port
        queries = workdir / "queries.txt"
        queries.write_text("".join(f"s{n}.docker. A\n" for n in range(stable)))
        client = dockerd.client()
        etcd_client = etcd.client()
        churn_file = definitions / "churn.yaml"

        def container(n: int) -> tuple[str, Callable[[], bool]]:
            name = f"churn{n % names}" if names else f"churn{n}"
            box = client.containers.run(IMAGE, detach=True, name=name, network=dockerd.network)
            box.reload()
            ip = box.attrs["NetworkSettings"]["Networks"][dockerd.network]["IPAddress"]
            fqdn = f"{name}.{IMAGE.split(':')[0].split('/')[-1]}.docker."
            took = _until(lambda: _answer(port, fqdn)[1] == [ip], limit)
            if took is None:
                figures.late.append(f"container start {fqdn}: not within {limit} s")
            else:
                figures.latency.setdefault("docker run -> answer", []).append(took)
            box.remove(force=True)
            return f"rm {fqdn}", lambda: _answer(port, fqdn)[0] == dns.rcode.NXDOMAIN

        def definition(n: int) -> tuple[str, Callable[[], bool]]:
            ip = f"10.2.0.{n % 250 + 1}"
            temp = definitions / ".churn.tmp"
            temp.write_text(yaml.safe_dump(service("churn", host=ip)))
            os.replace(temp, churn_file)
            return "churn.docker.", lambda: _answer(port, "churn.docker.")[1] == [ip]

        def api(n: int) -> tuple[str, Callable[[], bool]]:
            ip = f"10.3.0.{n % 250 + 1}"
            body = json.dumps({"name": "apichurn", "image": "soak", "ip": ip, "ttl": 30})
            request = urllib.request.Request(
                f"http://{daemon.http}/services/apichurn", data=body.encode(), method="PUT"
            )
            with urllib.request.urlopen(request, timeout=10):
                pass
            name = "apichurn.soak.docker."
            return name, lambda: _answer(port, name)[1] == [ip]

        def peer(n: int) -> tuple[str, Callable[[], bool]]:
            ip = f"10.4.0.{n % 250 + 1}"
            etcd_client.put("/skydns/docker/peer/x1", json.dumps({"host": ip}))
            return "peer.docker.", lambda: _answer(port, "peer.docker.")[1] == [ip]

        seconds = minutes * 60
        churners = [
            Churn(kind, step, every=every, figures=figures, stop=stop, limit=limit)
            for kind, step, every in (
                ("docker rm -> NXDOMAIN", container, 0.5),
                ("definitions edit -> answer", definition, 1.0),
                ("API PUT -> answer", api, 1.0),
                ("etcd peer put -> answer", peer, 1.0),
            )
        ]
        started = time.monotonic()
        perf = subprocess.Popen(
            [
                *("dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries)),
                *("-Q", str(qps), "-l", str(int(seconds)), "-t", "2", "-c", "4", "-q", "500"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for churner in churners:
            churner.start()
        pid = daemon.process.pid
        while perf.poll() is None and time.monotonic() - started < seconds + 60:
            with contextlib.suppress(OSError, ValueError, IndexError):
                rss = int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0])
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                figures.samples.append((time.monotonic() - started, rss, fds))

            time.sleep(5)
        stop.set()
        for churner in churners:
            churner.join(timeout=limit + 10)
        try:
            out, _ = perf.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            perf.kill()
            out, _ = perf.communicate()
            figures.errors.append("dnsperf did not end")
        figures.seconds = time.monotonic() - started
        _read_dnsperf(out, figures)
        client.close()
    finally:
        stop.set()
        if daemon is not None:
            daemon.stop()
        etcd.stop()
        dockerd.remove()
    return figures


def _read_dnsperf(out: str, figures: Figures) -> None:
    sent = re.search(r"Queries sent:\s+(\d+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if sent is None or lost is None:
        figures.errors.append("cannot read dnsperf's output:\n" + out)
        return
    figures.sent, figures.lost = int(sent[1]), int(lost[1])
    codes = re.search(r"Response codes:\s+(.*)", out)
    for name, count in re.findall(r"([A-Z]+) (\d+) \(", codes[1] if codes else ""):
        if name == "NOERROR":
            figures.noerror = int(count)
        else:
            figures.other_rcodes[name] = int(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="how long (default 2)")
    parser.add_argument("--qps", type=int, default=20000, help="dnsperf -Q (default 20000)")
    parser.add_argument("--stable", type=int, default=200, help="stable names (default 200)")
    parser.add_argument(
        "--answer-limit", type=float, default=5.0, help="seconds a churned name may take"
    )
    parser.add_argument(
        "--names",
        type=int,
        default=5,
        help="container names the churn cycles through (default 5; 0: a new name each time)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dz-soak-") as directory:
        figures = soak(
            args.minutes, args.qps, args.stable, args.answer_limit, Path(directory), args.names
        )
    print(figures.report())
    return 1 if figures.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
