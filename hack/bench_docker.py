"""Benchmark the Docker source (called by ``hack/bench docker``).

A private dockerd (hack/dockerd: vfs, no iptables) with the busybox test image; containers
run ``sleep``. Then:

1. Background: ``--background N`` containers started first (``docker run -d`` calls in
   ``--parallel`` threads, spread over networks of at most 500 containers: a Linux bridge
   takes 1024 ports), and ``--definitions M`` ServiceRecord definitions written as YAML
   (100 documents a file) into the definitions directory ``dockzone run`` gets.
2. Start to answer and rm to NXDOMAIN: ``dockzone run`` on 127.0.0.1 (DNS only); once it
   answers and is idle (its first pass over everything logged, then a second without CPU),
   for each of ``--containers`` probe containers
   in turn: the time from ``docker run -d`` returning (create + start) until dockzone
   answers its name with its address, then from ``docker rm -f`` returning until the name
   is NXDOMAIN (median and max). ``--tree DIR`` (repeatable) runs ``dockzone run`` from
   other checkouts instead of this working tree (``git archive REV | tar -x -C DIR``, and
   REV in DIR/REVISION to label it; with this repository's .venv; the script links
   DIR/reconciler/templates to DIR/templates), each in turn over the same background, to
   compare commits.
3. A reconcile pass in process, with this checkout's code, over every running container
   (the background plus ``--pass-containers``): the first pass (every container
   inspected), a pass with nothing changed, and the pass after one more container started
   (with the source's event watcher running, as in the daemon), with the inspect and list
   calls it made.

Traffic goes only to 127.0.0.1 and the private dockerd's socket. Every loop is bounded in
count and time (``--timeout`` per probe, ``--ready-timeout`` for the first answer). The
script removes its containers and networks and stops the dockerd it started, also on
Ctrl-C. The machine's load average is printed: other work on the machine shows up in the
latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import docker
import docker.errors
import docker.types

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dockerimage import IMAGE, ensure_image  # noqa: E402
from tests.servers import free_port  # noqa: E402

PROBE_NETWORK = "dzb"
PER_NETWORK = 500
"""Background containers per network (a Linux bridge takes at most 1024 ports)."""
SUBNET_BASE = "198.19"
"""Networks get /22s of 198.19.0.0/16 (the test dockerds use /24s of 198.18.0.0/16)."""


def subnet(k: int) -> docker.types.IPAMConfig:
    """The k-th /22 of the benchmark range: 1022 addresses."""
    third = 4 * k
    pool = docker.types.IPAMPool(
        subnet=f"{SUBNET_BASE}.{third}.0/22", gateway=f"{SUBNET_BASE}.{third}.1"
    )
    return docker.types.IPAMConfig(pool_configs=[pool])


def query(port: int, name: str) -> dns.message.Message | None:
    try:
        return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=0.5)
    except Exception:
        return None


def answer(port: int, name: str) -> list[str]:
    response = query(port, name)
    if response is None:
        return []
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


class Poller:
    """Asks one name over and over, cheaply (a prebuilt query, the header read by hand):
    the benchmark must not take the CPU the daemon needs. ``answered()``: NOERROR with an
    answer; ``nxdomain()``: NXDOMAIN."""

    def __init__(self, port: int, name: str) -> None:
        self.address = ("127.0.0.1", port)
        self.query = dns.message.make_query(name, "A").to_wire()
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.settimeout(0.5)

    def header(self) -> tuple[int, int] | None:
        """(rcode, answer count) of the response, None on a timeout."""
        self.socket.sendto(self.query, self.address)
        while True:
            try:
                data = self.socket.recv(4096)
            except TimeoutError:
                return None
            if len(data) >= 12 and data[:2] == self.query[:2]:  # the same id
                return data[3] & 0x0F, int.from_bytes(data[6:8], "big")

    def answered(self) -> bool:
        found = self.header()
        return found is not None and found[0] == dns.rcode.NOERROR and found[1] > 0

    def nxdomain(self) -> bool:
        found = self.header()
        return found is not None and found[0] == dns.rcode.NXDOMAIN

    def close(self) -> None:
        self.socket.close()


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.001) -> float | None:
    """Seconds until ``check()`` held, None when ``timeout`` passed first."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(interval)


class Docker:
    """A low-level API client per thread (docker-py sessions are not shared by threads)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()

    @property
    def api(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = docker.APIClient(base_url=self.url, version="auto", timeout=300)
            self._local.client = client
        return client

    def run(self, name: str, network: str) -> str:
        """``docker run -d``: create and start; returns the id once start returned."""
        api = self.api
        config = api.create_host_config(network_mode=network)
        cid = str(api.create_container(IMAGE, name=name, host_config=config)["Id"])
        api.start(cid)
        return cid

    def address(self, cid: str, network: str) -> str:
        return str(
            self.api.inspect_container(cid)["NetworkSettings"]["Networks"][network]["IPAddress"]
        )

    def remove(self, cid: str) -> None:
        self.api.remove_container(cid, force=True)

    def many(self, names: list[tuple[str, str]], parallel: int, action: str = "run") -> float:
        """Start (``run``) or remove (``remove``, by name) many containers in threads;
        the seconds it took."""
        started = time.monotonic()

        def one(item: tuple[str, str]) -> None:
            if action == "run":
                self.run(*item)
            else:
                with contextlib.suppress(docker.errors.NotFound):
                    self.remove(item[0])

        with ThreadPoolExecutor(max(1, parallel)) as pool:
            list(pool.map(one, names))
        return time.monotonic() - started


def write_definitions(directory: Path, count: int) -> None:
    """``count`` ServiceRecord definitions, 100 documents a file."""
    directory.mkdir(parents=True, exist_ok=True)
    for start in range(0, count, 100):
        documents = []
        for i in range(start, min(start + 100, count)):
            documents.append(
                "apiVersion: dockzone.dev/v1alpha1\n"
                "kind: ServiceRecord\n"
                f"metadata:\n  name: def-{i}\n"
                f"spec:\n  name: def-{i}.defs\n"
                f"  host: 10.77.{i // 250 % 250}.{i % 250 + 1}\n"
            )
        (directory / f"defs-{start // 100:05d}.yaml").write_text("---\n".join(documents))


@dataclass
class Probes:
    tree: str
    ready: float | None = None
    start: list[float] = field(default_factory=list)
    remove: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    passes: list[float] = field(default_factory=list)
    """The durations of the daemon's passes during the probes (from its log)."""
    idle: float | None = None
    """Seconds from the first answer until the daemon was idle."""


def probe(
    client: Docker,
    *,
    tree: Path,
    label: str,
    workdir: Path,
    definitions: Path,
    args: argparse.Namespace,
    ready_name: str,
) -> Probes:
    """``dockzone run`` from ``tree``; start-to-answer and rm-to-NXDOMAIN probes."""
    result = Probes(label)
    port = free_port()
    run_dir = workdir / f"run-{label.replace('/', '_')}"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKZONE_", "DOCKER_"))}
    env["PYTHONPATH"] = str(tree)
    env["XDG_STATE_HOME"] = str(run_dir / "state")
    command = [
        str(ROOT / ".venv" / "bin" / "python"),
        "-m",
        "reconciler",
        "run",
        "--docker",
        client.url,
        "--dns",
        f"127.0.0.1:{port}",
        "--no-rec",
        *(["--log-level", args.log_level] if args.log_level else []),
        "--http",
        "off",
        "--definitions",
        str(definitions),
        "--zones",
        str(run_dir / "zones"),
    ]
    with (run_dir / "dockzone.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=run_dir,  # not a checkout: `python -m` puts the working directory first
            start_new_session=True,
        )
    try:
        result.ready = wait_until(
            lambda: bool(answer(port, ready_name)) or process.poll() is not None,
            args.ready_timeout,
            interval=0.05,
        )
        if process.poll() is not None:
            result.ready = None
            tail = (run_dir / "dockzone.log").read_text(errors="replace").splitlines()[-5:]
            result.failures.append("dockzone exited:\n    " + "\n    ".join(tail))
            return result
        if result.ready is None:
            result.failures.append(f"no answer for {ready_name} in {args.ready_timeout:.0f}s")
            return result
        # Answers come before the first pass ends (the zone files are written after the
        # in-process server has its zones): measure the steady state, not that tail.
        result.idle = wait_until(
            partial(idle, process.pid, run_dir / "dockzone.log"), args.ready_timeout, 0.0
        )
        logged = len(read_passes(run_dir / "dockzone.log"))
        for i in range(args.containers):
            if i:
                time.sleep(args.gap)
            name = f"p{i}-{os.getpid()}-{len(label)}-{int(time.time() * 1000) % 100000}"
            fqdn = f"{name}.busybox.docker."
            cid = client.run(name, PROBE_NETWORK)
            poller = Poller(port, fqdn)
            took = wait_until(poller.answered, args.timeout)
            if took is None:
                result.failures.append(f"{name}: no answer in {args.timeout}s")
                client.remove(cid)
                poller.close()
                continue
            result.start.append(took)
            expected = client.address(cid, PROBE_NETWORK)
            if answer(port, fqdn) != [expected]:
                result.failures.append(f"{name}: answered {answer(port, fqdn)}, not {expected}")
            client.remove(cid)
            took = wait_until(poller.nxdomain, args.timeout)
            poller.close()
            if took is None:
                result.failures.append(f"{name}: no NXDOMAIN {args.timeout}s after rm -f")
            else:
                result.remove.append(took)
        result.passes = read_passes(run_dir / "dockzone.log")[logged:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        if args.logs is not None:
            args.logs.mkdir(parents=True, exist_ok=True)
            kept = args.logs / f"dockzone-{run_dir.name[4:]}.log"
            shutil.copyfile(run_dir / "dockzone.log", kept)
    return result


def cpu_ticks(pid: int) -> int:
    """CPU the process used so far (user + system, in clock ticks)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


def idle(pid: int, log: Path) -> bool:
    """Whether the daemon finished its first pass and used almost no CPU for a second."""
    if not read_passes(log):
        time.sleep(0.1)
        return False
    before = cpu_ticks(pid)
    time.sleep(1.0)
    return cpu_ticks(pid) - before <= 2


PASS_LINE = re.compile(r"pass \d+: .*\(([0-9.]+)s\)$")


def read_passes(log: Path) -> list[float]:
    """The durations of the passes ``dockzone run`` logged (at INFO: passes that changed
    something)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [float(m.group(1)) for m in map(PASS_LINE.search, lines) if m]


def pass_over(
    client: Docker, extra: int, parallel: int, workdir: Path
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """The in-process passes (this checkout's code) over every running container."""
    from dnsserver import ZoneStore  # noqa: PLC0415
    from reconciler.core.model import ZoneSettings  # noqa: PLC0415
    from reconciler.core.triggers import Wakeup  # noqa: PLC0415
    from reconciler.definitions import NameDefaults  # noqa: PLC0415
    from reconciler.loop import Reconciler  # noqa: PLC0415
    from reconciler.sinks.inprocess import InProcessSink  # noqa: PLC0415
    from reconciler.sinks.zonefiles import ZoneFileSink  # noqa: PLC0415
    from reconciler.sources.docker import DockerOptions, DockerSource  # noqa: PLC0415

    client.many([(f"many{i}", PROBE_NETWORK) for i in range(extra)], parallel)
    source = DockerSource(DockerOptions(url=client.url), NameDefaults())
    zonefiles = ZoneFileSink(workdir / "passzones")
    reconciler = Reconciler(
        source, ZoneSettings(), [InProcessSink(ZoneStore(), zonefiles.serial), zonefiles]
    )
    figures: dict[str, float] = {}

    async def passes() -> None:
        started = time.perf_counter()
        await reconciler.run_once()
        figures["first pass (all inspected, all written)"] = time.perf_counter() - started
        started = time.perf_counter()
        await reconciler.run_once()
        figures["pass with no change"] = time.perf_counter() - started
        wakeup, stop = TimedWakeup(), asyncio.Event()
        watcher = asyncio.create_task(source.watch(wakeup, stop))
        try:
            await asyncio.sleep(2)  # subscribed; replayed events handled
            with contextlib.suppress(TimeoutError):  # drop the wakeups of the replay
                await asyncio.wait_for(wakeup.wait(), 0.5)
            await reconciler.run_once()
            inspects, lists = source.inspect_calls, getattr(source, "list_calls", None)
            await asyncio.to_thread(client.run, "many-extra", PROBE_NETWORK)
            await asyncio.wait_for(wakeup.wait(), 30)
            started = time.perf_counter()
            await reconciler.run_once()
            figures["pass after one container started"] = time.perf_counter() - started
            figures["inspect calls in that pass"] = source.inspect_calls - inspects
            if lists is not None:
                figures["list calls in that pass"] = source.list_calls - lists
            for i in range(5):  # the source's share: from the call returning to the wakeup
                cid = await sample(wakeup, "start", client.run, f"many-s{i}", PROBE_NETWORK)
                await reconciler.run_once()
                await asyncio.sleep(0.3)  # the events after it (none expected) land
                await sample(wakeup, "rm", client.remove, cid)
                await reconciler.run_once()
                await asyncio.sleep(0.3)  # the die, disconnect, destroy after the kill
        finally:
            stop.set()
            await asyncio.wait_for(watcher, 10)

    def timed(action: Callable[..., Any], *args: Any) -> tuple[Any, float]:
        result = action(*args)
        return result, time.monotonic()

    async def sample(wakeup: Any, key: str, action: Callable[..., Any], *args: Any) -> Any:
        """Run ``action`` (a Docker call); note when the events thread woke the loop,
        relative to the call returning."""
        wakeup.times.clear()
        result, returned = await asyncio.to_thread(timed, action, *args)
        deadline = returned + 30
        while not wakeup.times and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        if wakeup.times:
            shares[key].append(wakeup.times[0] - returned)
        return result

    class TimedWakeup(Wakeup):
        """Notes when the events thread wakes the loop."""

        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def set_threadsafe(self, loop: asyncio.AbstractEventLoop, reason: str) -> None:
            self.times.append(time.monotonic())
            super().set_threadsafe(loop, reason)

    shares: dict[str, list[float]] = {"start": [], "rm": []}
    asyncio.run(passes())
    return figures, shares


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label}: no sample"
    ms = sorted(v * 1000 for v in values)
    return (
        f"  {label}: median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms, "
        f"min {ms[0]:.1f} ms ({len(ms)} samples)"
    )


def describe(tree: Path) -> str:
    if not (tree / ".git").exists():
        with contextlib.suppress(OSError):  # `git archive` trees: write the revision there
            return "revision " + (tree / "REVISION").read_text().strip()
        return "not a git checkout"
    try:
        out = subprocess.run(
            ["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return "working tree on " + out.stdout.strip()[:80]
    except (OSError, subprocess.SubprocessError):
        return str(tree)


@contextlib.contextmanager
def private_dockerd(workdir: Path) -> Iterator[str]:
    """hack/dockerd in ``workdir``; on the way out every container and network goes and
    dockerd is stopped (bridges outlive dockerd otherwise)."""
    directory = workdir / "d"
    result = subprocess.run(
        [str(ROOT / "hack" / "dockerd"), str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
        cwd=ROOT,
    )
    url = result.stdout.strip().splitlines()[-1]
    try:
        yield url
    finally:
        print("cleaning up: removing containers and networks, stopping dockerd", flush=True)
        client = Docker(url)
        bridges: list[str] = []
        try:
            names = [(c["Id"], "") for c in client.api.containers(all=True)]
            client.many(names, 8, action="remove")
            for network in client.api.networks():
                if network["Name"] not in ("bridge", "host", "none"):
                    bridges.append("br-" + network["Id"][:12])
                    remove_network(client, network["Id"])
        finally:
            # stops dockerd, waits for it, deletes the default bridge hack/dockerd made
            subprocess.run(
                [str(ROOT / "hack" / "dockerd"), "--stop", str(directory)],
                check=False,
                timeout=90,
                cwd=ROOT,
            )
            for bridge in bridges:  # left behind when dockerd kept a stale endpoint
                if Path(f"/sys/class/net/{bridge}").exists():
                    subprocess.run(["ip", "link", "delete", bridge], check=False, timeout=30)


def remove_network(client: Docker, network: str) -> None:
    """Remove a network; dockerd can hold on to endpoints of removed containers for a while
    (under load): force them off and try again (a few times, a second apart)."""
    for attempt in range(10):
        try:
            client.api.remove_network(network)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if attempt == 9:
                print(f"  network {network[:12]} stays: {exc}; its bridge goes after dockerd")
                return
        with contextlib.suppress(docker.errors.APIError):
            attached = client.api.inspect_network(network).get("Containers") or {}
            for endpoint in attached:
                client.api.disconnect_container_from_network(endpoint, network, force=True)
        time.sleep(1)


def interrupt(*_: object) -> None:
    """SIGTERM: clean up as on Ctrl-C."""
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--containers", type=int, default=20, help="probe containers (default 20)")
    parser.add_argument(
        "--background",
        type=int,
        default=0,
        help="containers running beside the probes (e.g. 1000; default 0)",
    )
    parser.add_argument(
        "--definitions",
        type=int,
        default=0,
        help="ServiceRecord definitions in dockzone's definitions directory (default 0)",
    )
    parser.add_argument(
        "--pass-containers",
        type=int,
        default=200,
        help="containers added to the background for the in-process passes (default 200)",
    )
    parser.add_argument(
        "--no-pass", action="store_true", help="skip the in-process pass measurement"
    )
    parser.add_argument(
        "--parallel", type=int, default=4, help="concurrent docker run calls (default 4)"
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=0.0,
        help="seconds between one probe's NXDOMAIN and the next docker run (default 0: "
        "the next start may wait for the tail of the rm's pass)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds one probe may wait (default 5)"
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=180.0,
        help="seconds for dockzone's first answer (default 180)",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep each dockzone run's log in DIR",
    )
    parser.add_argument(
        "--log-level",
        default="",
        choices=["", "DEBUG", "INFO", "WARNING"],
        help="dockzone run's --log-level (default: its own)",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="run dockzone from checkout DIR instead of this working tree (repeatable: "
        "each in turn, over the same background)",
    )
    args = parser.parse_args()
    limit = 2 * PER_NETWORK
    if args.containers + 1 + args.pass_containers + 1 > limit:
        parser.error(f"--containers + --pass-containers must stay under {limit - 2}")
    if args.background > 60 * PER_NETWORK:
        parser.error(f"--background is limited to {60 * PER_NETWORK}")
    trees = [(t.resolve(), str(t)) for t in args.tree] or [(ROOT, "this checkout")]
    for tree, _ in trees:
        if not (tree / "reconciler" / "__main__.py").exists():
            parser.error(f"{tree}: not a dockzone checkout")
        templates = tree / "reconciler" / "templates"
        if tree != ROOT and not templates.exists() and (tree / "templates").is_dir():
            # The editable install maps reconciler.templates to this checkout's templates/;
            # a tree on PYTHONPATH must bring its own (as a wheel installs them).
            templates.symlink_to("../templates")
            print(f"{tree}: linked reconciler/templates to its templates/", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="dzb-", dir="/tmp"))
    previous = signal.signal(signal.SIGTERM, interrupt)
    print(
        f"hack/bench docker: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the start",
        flush=True,
    )
    try:
        with private_dockerd(workdir) as url:
            ensure_image(url)
            client = Docker(url)
            client.api.create_network(PROBE_NETWORK, driver="bridge", ipam=subnet(0))
            networks = (args.background + PER_NETWORK - 1) // PER_NETWORK
            for k in range(networks):
                client.api.create_network(f"dzbg{k}", driver="bridge", ipam=subnet(k + 1))
            background = [(f"bg{i}", f"dzbg{i // PER_NETWORK}") for i in range(args.background)]
            if background:
                print(
                    f"starting {len(background)} background containers "
                    f"({args.parallel} in parallel)...",
                    flush=True,
                )
                took = client.many(background, args.parallel)
                print(
                    f"  {len(background)} containers started in {took:.1f} s "
                    f"({took / len(background) * 1000:.0f} ms each)",
                    flush=True,
                )
            definitions = workdir / "definitions"
            write_definitions(definitions, args.definitions)
            ready_name = "bg0.busybox.docker." if background else "ns.dns.docker."
            print(
                f"start to answer, rm to NXDOMAIN: {args.containers} probes, "
                f"{args.background} containers and {args.definitions} definitions beside them "
                f"(from docker run -d / docker rm -f returning; {args.gap:g} s between probes)",
                flush=True,
            )
            for tree, label in trees:
                load = os.getloadavg()[0]
                result = probe(
                    client,
                    tree=tree,
                    label=label,
                    workdir=workdir,
                    definitions=definitions,
                    args=args,
                    ready_name=ready_name,
                )
                ready = "never" if result.ready is None else f"{result.ready:.1f} s"
                if result.idle is not None:
                    ready += f" (idle {result.idle:.1f} s later)"
                print(
                    f"{label} ({describe(tree)}): first answer after {ready}; "
                    f"load {load:.1f} before, {os.getloadavg()[0]:.1f} after",
                    flush=True,
                )
                print(summary("start to answer", result.start), flush=True)
                print(summary("rm -f to NXDOMAIN", result.remove), flush=True)
                print(summary("the daemon's passes meanwhile (its log)", result.passes), flush=True)
                for failure in result.failures:
                    print(f"  FAILED {failure}", flush=True)
            if not args.no_pass:
                figures, shares = pass_over(client, args.pass_containers, args.parallel, workdir)
                running = args.background + args.pass_containers
                print(f"reconcile over {running} running containers (in process):")
                for label, value in figures.items():
                    shown = f"{value * 1000:.1f} ms" if "calls" not in label else f"{value:.0f}"
                    print(f"  {label}: {shown}")
                print("the source's share: the events thread wakes the loop (negative: before")
                print("the call returned), with the change queued for the next load:")
                print(summary("after docker run -d returned", shares["start"]))
                print(summary("after docker rm -f returned", shares["rm"]))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
