"""Benchmark the Docker source (called by ``hack/bench docker``).

1. Start to answer: a private dockerd (hack/dockerd) and ``dockzone run`` on 127.0.0.1;
   for each of N containers, the time from ``docker run -d`` returning until dockzone
   answers its name with the container's address (median and max).
2. A reconcile pass over M running containers, in process: the first pass (every container
   inspected), a pass with nothing changed (no inspect, no write), and a pass after one
   container started.

Traffic stays on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query
import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dnsserver import ZoneStore  # noqa: E402
from reconciler.core.model import ZoneSettings  # noqa: E402
from reconciler.definitions import NameDefaults  # noqa: E402
from reconciler.loop import Reconciler  # noqa: E402
from reconciler.sinks.inprocess import InProcessSink  # noqa: E402
from reconciler.sinks.zonefiles import ZoneFileSink  # noqa: E402
from reconciler.sources.docker import DockerOptions, DockerSource  # noqa: E402
from tests.dockerimage import IMAGE, ensure_image  # noqa: E402
from tests.servers import free_port  # noqa: E402


def answer(port: int, name: str) -> list[str]:
    query = dns.message.make_query(name, "A")
    try:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except Exception:
        return []
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


def start_to_answer(url: str, count: int, workdir: Path) -> list[float]:
    port = free_port()
    definitions = workdir / "definitions"
    definitions.mkdir()
    log = (workdir / "dockzone.log").open("wb")
    process = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "dockzone"),
            "run",
            "--docker",
            url,
            "--dns",
            f"127.0.0.1:{port}",
            "--no-rec",
            "--http",
            "off",
            "--definitions",
            str(definitions),
            "--zones",
            str(workdir / "zones"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = docker.DockerClient(base_url=url, version="auto", timeout=60)
    latencies = []
    try:
        deadline = time.monotonic() + 30
        while not answer(port, "ns.dns.docker.") and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(count):
            name = f"lat{i}"
            container = client.containers.run(IMAGE, detach=True, name=name, network="dzb")
            returned = time.monotonic()
            limit = returned + 5
            while time.monotonic() < limit and not answer(port, f"{name}.busybox.docker."):
                time.sleep(0.001)
            latencies.append(time.monotonic() - returned)
            container.reload()
            address = container.attrs["NetworkSettings"]["Networks"]["dzb"]["IPAddress"]
            if answer(port, f"{name}.busybox.docker.") != [address]:
                raise SystemExit(f"{name}: wrong answer, expected {address}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        for container in client.containers.list(all=True, filters={"name": "lat"}):
            container.remove(force=True)
        client.close()
    return latencies


def pass_over(url: str, count: int, workdir: Path) -> dict[str, float]:
    client = docker.DockerClient(base_url=url, version="auto", timeout=120)
    for i in range(count):
        client.containers.run(IMAGE, detach=True, name=f"many{i}", network="dzb")
    source = DockerSource(DockerOptions(url=url), NameDefaults())
    zonefiles = ZoneFileSink(workdir / "passzones")
    reconciler = Reconciler(
        source, ZoneSettings(), [zonefiles, InProcessSink(ZoneStore(), zonefiles.serial)]
    )
    figures = {}
    try:
        for label in ("first pass (all inspected, all written)", "pass with no change"):
            started = time.perf_counter()
            asyncio.run(reconciler.run_once())
            figures[label] = time.perf_counter() - started
        calls = source.inspect_calls
        client.containers.run(IMAGE, detach=True, name="many-extra", network="dzb")
        started = time.perf_counter()
        asyncio.run(reconciler.run_once())
        figures["pass after one container started"] = time.perf_counter() - started
        figures["inspect calls in that pass"] = source.inspect_calls - calls
    finally:
        for container in client.containers.list(all=True, filters={"name": "many"}):
            container.remove(force=True)
        client.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--containers", type=int, default=20, help="start-to-answer samples")
    parser.add_argument("--pass-containers", type=int, default=200, help="containers in a pass")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dzb-", dir="/tmp"))
    docker_dir = workdir / "d"
    result = subprocess.run(
        [str(ROOT / "hack" / "dockerd"), str(docker_dir)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    url = result.stdout.strip().splitlines()[-1]
    try:
        ensure_image(url)
        client = docker.DockerClient(base_url=url, version="auto")
        if not client.networks.list(names=["dzb"]):
            client.networks.create("dzb", driver="bridge")
        client.close()
        latencies = start_to_answer(url, args.containers, workdir)
        ms = sorted(x * 1000 for x in latencies)
        print(
            f"start to first correct answer over {len(ms)} containers (from docker run returning):"
        )
        print(f"  median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms, min {ms[0]:.1f} ms")
        print(f"reconcile over {args.pass_containers} running containers (in process):")
        for label, value in pass_over(url, args.pass_containers, workdir).items():
            shown = f"{value * 1000:.1f} ms" if "calls" not in label else f"{value:.0f}"
            print(f"  {label}: {shown}")
    finally:
        client = docker.DockerClient(base_url=url, version="auto")
        for container in client.containers.list(all=True):
            container.remove(force=True)
        for network in client.networks.list(names=["dzb"]):
            network.remove()  # bridges outlive dockerd otherwise
        client.close()
        pid = int((docker_dir / "docker.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(600):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
