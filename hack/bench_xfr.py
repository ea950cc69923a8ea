"""Benchmark zone transfers out of dockzone (called by ``hack/bench xfr``; issue #12).

Two claims under test:

1. **AXFR time.** A generated zone of ``--records`` records (20,000: A for every name, some
   AAAA, TXT and SRV) is served from the same file by ``dockzone serve --zones DIR
   --allow-transfer 127.0.0.1`` and by BIND (``named -n 1``, the file as a primary with
   ``allow-transfer { 127.0.0.1; }``), each pinned to one core (all its threads) as
   ``hack/bench dns`` does. ``dig AXFR`` (``+noall +stats``: the records are not printed),
   pinned to the other core, transfers the zone from each server in turn, one warm-up
   each and then ``--rounds`` times. Per server: the median and best wall time of a
   transfer (dig's start-up included, the same for both), the server's CPU time per
   transfer (utime + stime of all its threads from /proc/<pid>/stat, over all rounds),
   and dig's count of messages and bytes; then the ratios dockzone/BIND (target <= 1.0).

2. **A change reaching a secondary.** ``dockzone run`` over ``--services`` ServiceRecord
   definitions (10,000; the data set of ``hack/bench publish``: files of 100 documents,
   names ``svc-<i>.app-<k>.<region>.docker.``, IPv4 hosts so reverse zones exist), with
   ``--transfer-key``, ``--allow-transfer <key>`` and ``--also-notify`` to a BIND secondary
   configured as docs/secondaries.md shows (TSIG, one ``zone`` statement per zone file
   dockzone wrote). Once BIND holds ``docker.`` at dockzone's serial, ``--changes`` times:
   one record moves to a new address by rewriting its file (atomic rename), and the time
   from the rename to BIND answering the new address (a dnspython UDP query every 2 ms)
   is taken. Printed: each change, the median and max (target <= 1 s), the size of each
   transfer of ``docker.`` from BIND's log (``Transfer completed: N messages, M records,
   B bytes``), and the change in dockzone's ``dockzone_dns_transfer_count_total`` on
   ``/metrics`` by result: ``ixfr_journal`` counts the incremental transfers.

Traffic goes only to 127.0.0.1 (free ports). Every wait is bounded (``--timeout``); the
servers are stopped and the temporary directory removed at the end, also on Ctrl-C or
SIGTERM. ``--quick``: 2,000 records, 3 rounds, 2,000 services, 2 changes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import dns.exception
import dns.message
import dns.query
from bench_dns import cpu_seconds, free_port, pin, sbin
from bench_publish import Service, address, make_services, stop
from bench_publish import wait_for as publish_wait_for

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402 (the repository root is on the path only now)

ORIGIN = "bench.test."
ZONE = "docker."
KEY_NAME = "dockzone-xfr"
SECRET = "ZG9ja3pvbmUgYmVuY2htYXJrIHhmciBrZXkgMzIgYnl0ZXM="  # 32 bytes, loopback only
PER_FILE = 100
POLL = 0.002
TARGET_RATIO = 1.0
TARGET_CHANGE_S = 1.0
XFR_SIZE = re.compile(r"XFR size: (\d+) records \(messages (\d+), bytes (\d+)\)")
PASS_LINE = re.compile(r"\bpass \d+\b:?.*?\([0-9.]+ ?s\)\s*$", re.M)
TRANSFER_LINE = re.compile(
    r"transfer of '(?P<zone>[^/]+)/IN' from [^:]+: Transfer completed: (?P<messages>\d+) "
    r"messages, (?P<records>\d+) records, (?P<bytes>\d+) bytes"
)


def fail(message: str) -> None:
    raise SystemExit(f"bench xfr: {message}")


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """bench_publish's `wait_for`, its message this benchmark's."""
    publish_wait_for(check, timeout, what, interval, bench="bench xfr")


def soa_serial(port: int, origin: str, timeout: float = 0.5) -> int | None:
    """The serial a server on 127.0.0.1:port answers for ``origin``, or None."""
    query = dns.message.make_query(origin, "SOA")
    try:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)
    except (OSError, dns.exception.DNSException):
        return None
    for rrset in response.answer:
        for rdata in rrset:
            return int(rdata.serial)
    return None


def addresses(port: int, name: str, timeout: float = 0.2) -> set[str]:
    query = dns.message.make_query(name, "A")
    response = dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)
    return {rd.to_text() for rrset in response.answer for rd in rrset}


@contextmanager
def process(
    argv: list[str], log: Path, *, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` with its output in ``log``; stop it (SIGTERM, then SIGKILL) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    try:
        yield proc
    finally:
        stop(proc)


def alive(proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    if proc.poll() is not None:
        fail(f"{what} exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")


def dockzone_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKZONE_", "DOCKER_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["XDG_STATE_HOME"] = str(workdir / "state")
    return env


def named_options(workdir: Path, port: int) -> str:
    """tests/servers.py's private ``named`` options, with the SOA-check pacing
    docs/secondaries.md advises against turned up."""
    return servers.named_options(
        workdir,
        port,
        "    serial-query-rate 1000;  // as docs/secondaries.md advises: no half-second pacing\n",
    )


# --- 1. AXFR time -------------------------------------------------------------------------


def write_zone(directory: Path, records: int) -> Path:
    """``records`` records under ORIGIN besides SOA, NS and the NS address: an A for every
    name, an AAAA for every fourth, a TXT for every fifth, an SRV for every tenth."""
    lines = [
        f"$ORIGIN {ORIGIN}",
        "$TTL 30",
        "@ IN SOA ns hostmaster 1 3600 600 86400 30",
        "@ IN NS ns",
        "ns IN A 127.0.0.1",
    ]
    count = i = 0
    while count < records:
        rows = [f"h{i} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"]
        if i % 4 == 0:
            rows.append(f"h{i} IN AAAA 2001:db8::{i >> 16 & 0xFFFF:x}:{i & 0xFFFF:x}")
        if i % 5 == 0:
            rows.append(f'h{i} IN TXT "owner=team-{i % 17} instance={i}"')
        if i % 10 == 0:
            rows.append(f"_http._tcp.h{i} IN SRV 10 100 {8000 + i % 100} h{i}")
        rows = rows[: records - count]
        lines += rows
        count += len(rows)
        i += 1
    path = directory / f"db.{ORIGIN.rstrip('.')}"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Transfers:
    """One server's transfers: wall seconds each, CPU seconds over all, dig's counts."""

    name: str
    wall: list[float] = field(default_factory=list)
    cpu: float = 0.0
    records: int = 0
    messages: int = 0
    size: int = 0

    def cpu_per_transfer(self) -> float:
        return self.cpu / len(self.wall) if self.wall else float("nan")


def dig_axfr(port: int, core: str, timeout: float) -> tuple[float, int, int, int]:
    """One ``dig AXFR`` pinned to ``core``: wall seconds, records, messages, bytes."""
    argv = ["taskset", "-c", core, "dig", "@127.0.0.1", "-p", str(port), "+noall", "+stats"]
    argv += [f"+time={max(1, int(timeout))}", "+tries=1", ORIGIN, "AXFR"]
    started = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    wall = time.perf_counter() - started
    found = XFR_SIZE.search(out.stdout)
    if out.returncode != 0 or found is None or "Transfer failed" in out.stdout:
        fail(f"dig AXFR from port {port} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    assert found is not None
    return wall, int(found.group(1)), int(found.group(2)), int(found.group(3))


def bench_axfr(args: argparse.Namespace, workdir: Path, stack: ExitStack) -> list[Transfers]:
    directory = workdir / "axfr"
    zones = directory / "zones"
    zones.mkdir(parents=True)
    zone = write_zone(zones, args.records)
    named = sbin("named")
    assert named is not None
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}

    dockzone_port = free_port()
    log = directory / "dockzone.log"
    command = [sys.executable, "-m", "reconciler", "serve", "--zones", str(zones)]
    command += ["--dns", f"127.0.0.1:{dockzone_port}", "--no-rec"]
    command += ["--allow-transfer", "127.0.0.1", "--log-level", "WARNING"]
    proc = stack.enter_context(
        process(["taskset", "-c", args.server_core, *command], log, env=dockzone_env(directory))
    )
    servers["dockzone"] = (proc, dockzone_port)

    bind_port = free_port()
    conf = directory / "named.conf"
    conf.write_text(
        named_options(directory, bind_port)
        + f'zone "{ORIGIN.rstrip(".")}" {{ type primary; file "{zone}"; '
        "allow-transfer { 127.0.0.1; }; };\n"
    )
    log_bind = directory / "named.log"
    argv = ["taskset", "-c", args.server_core, named, "-g", "-n", "1", "-c", str(conf)]
    servers["bind"] = (stack.enter_context(process(argv, log_bind)), bind_port)

    logs = {"dockzone": log, "bind": log_bind}
    for name, (proc, port) in servers.items():
        deadline = time.monotonic() + args.timeout
        while soa_serial(port, ORIGIN) != 1:
            alive(proc, logs[name], name)
            if time.monotonic() > deadline:
                fail(f"{name} not serving {ORIGIN} within {args.timeout:g}s")
            time.sleep(0.05)
        pin(proc.pid, args.server_core)

    results = {name: Transfers(name) for name in servers}
    for round_ in range(args.rounds + 1):  # round 0 warms up, uncounted
        for name, (proc, port) in servers.items():
            before = cpu_seconds(proc.pid)
            wall, records, messages, size = dig_axfr(port, args.client_core, args.timeout)
            used = cpu_seconds(proc.pid) - before
            if round_ == 0:
                continue
            result = results[name]
            result.wall.append(wall)
            result.cpu += used
            result.records, result.messages, result.size = records, messages, size
    return list(results.values())


def show_axfr(args: argparse.Namespace, results: list[Transfers]) -> None:
    print(
        f"AXFR of {ORIGIN} ({args.records} records + SOA, NS, glue): dig +noall on core "
        f"{args.client_core}, servers on core {args.server_core}; {args.rounds} rounds "
        "after one warm-up, servers alternating"
    )
    print(
        f"  {'server':9} {'median ms':>10} {'best ms':>9} {'CPU ms/xfr':>11} "
        f"{'records':>8} {'messages':>9} {'bytes':>10}"
    )
    for r in results:
        print(
            f"  {r.name:9} {statistics.median(r.wall) * 1000:10.1f} {min(r.wall) * 1000:9.1f} "
            f"{r.cpu_per_transfer() * 1000:11.1f} {r.records:8d} {r.messages:9d} {r.size:10d}"
        )
    ours, bind = results[0], results[1]
    ratios = {
        "median": statistics.median(ours.wall) / statistics.median(bind.wall),
        "best": min(ours.wall) / min(bind.wall),
        "CPU": ours.cpu_per_transfer() / bind.cpu_per_transfer() if bind.cpu > 0 else float("nan"),
    }
    verdict = "meets" if ratios["median"] <= TARGET_RATIO else "misses"
    print(
        "  dockzone/BIND: "
        + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
        + f" (target median <= {TARGET_RATIO:.1f}: {verdict})"
    )


# --- 2. a change reaching a secondary -----------------------------------------------------


@dataclass
class Change:
    seconds: float | None
    transfers: list[tuple[int, int, int]]  # (messages, records, bytes) of each docker. transfer


def write_definitions(
    definitions: Path, staging: Path, services: list[Service]
) -> dict[str, list[Service]]:
    files: dict[str, list[Service]] = {}
    for service in services:
        files.setdefault(f"svc-{service.index // PER_FILE:04d}.yaml", []).append(service)
    for name in files:
        rewrite(definitions, staging, files, name)
    return files


def rewrite(definitions: Path, staging: Path, files: dict[str, list[Service]], name: str) -> None:
    """Write one definitions file aside, then rename it into place (atomic for watchers)."""
    staged = staging / name
    staged.write_text("---\n".join(s.document() for s in files[name]))
    os.replace(staged, definitions / name)


def transfer_counts(http: str) -> dict[str, float]:
    """dockzone_dns_transfer_count_total by result, from /metrics."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = r'^dockzone_dns_transfer_count_total\{result="(\w+)"\} ([0-9.e+]+)$'
    return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, text, re.M)}


def docker_transfers(log: Path, start: int) -> tuple[list[tuple[int, int, int]], int]:
    """The transfers of docker. in BIND's log after byte ``start``, and the log's end."""
    data = log.read_bytes()
    found = [
        (int(m["messages"]), int(m["records"]), int(m["bytes"]))
        for m in TRANSFER_LINE.finditer(data[start:].decode(errors="replace"))
        if m["zone"] == ZONE.rstrip(".")
    ]
    return found, len(data)


@dataclass
class ChangeResult:
    services: int
    zones: int
    first_s: float = 0.0
    changes: list[Change] = field(default_factory=list)
    counts_before: dict[str, float] = field(default_factory=dict)
    counts_after: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def bench_change(args: argparse.Namespace, workdir: Path, stack: ExitStack) -> ChangeResult:
    directory = workdir / "change"
    definitions, staging, zones = (
        directory / "definitions",
        directory / "staging",
        directory / "zones",
    )
    for path in (definitions, staging, zones):
        path.mkdir(parents=True)
    services = make_services(args.services)
    files = write_definitions(definitions, staging, services)
    where = {s.index: name for name, members in files.items() for s in members}
    key = directory / "xfr.key"
    key.write_text(f'key "{KEY_NAME}" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n')
    named = sbin("named")
    assert named is not None

    dns_port, http_port, named_port = free_port(), free_port(), free_port()
    http = f"127.0.0.1:{http_port}"
    command = [sys.executable, "-m", "reconciler", "run", "--definitions", str(definitions)]
    command += ["--zones", str(zones), "--dns", f"127.0.0.1:{dns_port}", "--http", http]
    command += ["--no-rec", "--docker", "off", "--resync", "86400", "--log-level", "INFO"]
    command += ["--transfer-key", str(key), "--allow-transfer", KEY_NAME]
    command += ["--also-notify", f"127.0.0.1:{named_port}"]
    log = directory / "dockzone.log"
    started = time.monotonic()
    daemon = stack.enter_context(process(command, log, env=dockzone_env(directory)))
    probe = services[-1]

    def first_pass() -> bool:
        alive(daemon, log, "dockzone run")
        return addresses(dns_port, probe.name) == {probe.host}

    wait_for(first_pass, args.timeout, f"dockzone run answering {probe.name}")
    # The zone files are written after the DNS server has the zones: the pass's log line
    # comes once they are all on disk.
    wait_for(
        lambda: PASS_LINE.search(log.read_text(errors="replace")) is not None,
        args.timeout,
        "dockzone run's first pass writing the zone files",
    )
    origins = sorted(path.name[3:] + "." for path in zones.glob("db.*") if path.name != "db.root")
    if ZONE not in origins:
        fail(f"no zone file for {ZONE} in {zones}: {origins}")
    result = ChangeResult(args.services, len(origins))

    # The secondary: docs/secondaries.md's configuration, one zone statement per zone file.
    secondary = directory / "named"
    secondary.mkdir()
    statements = "".join(
        f'zone "{origin}" {{\n    type secondary;\n'
        f'    primaries {{ 127.0.0.1 port {dns_port} key "{KEY_NAME}"; }};\n'
        f'    allow-transfer {{ key "{KEY_NAME}"; }};\n}};\n'
        for origin in origins
    )
    conf = secondary / "named.conf"
    conf.write_text(f'include "{key}";\n' + named_options(secondary, named_port) + statements)
    named_log = secondary / "named.log"
    bind = stack.enter_context(process([named, "-g", "-n", "1", "-c", str(conf)], named_log))

    def loaded() -> bool:
        alive(bind, named_log, "named (secondary)")
        alive(daemon, log, "dockzone run")
        serial = soa_serial(dns_port, ZONE)
        return serial is not None and soa_serial(named_port, ZONE) == serial

    wait_for(loaded, args.timeout, f"BIND holding {ZONE} at dockzone's serial")
    wait_for(
        lambda: addresses(named_port, probe.name) == {probe.host},
        args.timeout,
        f"BIND answering {probe.name}",
    )
    result.first_s = time.monotonic() - started
    settle(args, dns_port, named_port, origins)
    # The other zones' first transfers (BIND takes two at a time from one primary) and the
    # NOTIFYs dockzone sent before BIND was up (retried for seconds) keep BIND refreshing
    # for a while; a change meanwhile waits for that ("refresh in progress, refresh check
    # queued"). Start once BIND's log has been quiet for two seconds.
    quiet(named_log, 2.0, args.timeout)
    result.counts_before = transfer_counts(http)
    _, offset = docker_transfers(named_log, 0)

    for k in range(args.changes):
        service = services[(k * 7919 + 13) % len(services)]
        service.moved += 1
        service.host = address(service.index, service.moved)
        name = where[service.index]
        staged = staging / name
        staged.write_text("---\n".join(s.document() for s in files[name]))
        landed = time.monotonic()
        os.replace(staged, definitions / name)
        seconds: float | None = None
        deadline = landed + args.timeout
        while time.monotonic() < deadline:
            with suppress(OSError, dns.exception.DNSException):
                if addresses(named_port, service.name) == {service.host}:
                    seconds = time.monotonic() - landed
                    break
            time.sleep(POLL)
        alive(daemon, log, "dockzone run")
        alive(bind, named_log, "named (secondary)")
        settle(args, dns_port, named_port, origins)
        transfers, offset = docker_transfers(named_log, offset)
        result.changes.append(Change(seconds, transfers))
        if seconds is None:
            result.notes.append(f"change {k + 1}: BIND did not answer within {args.timeout:g}s")
    result.counts_after = transfer_counts(http)
    errors = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if " ERROR " in line or "Traceback" in line
    ]
    if errors:
        result.notes.append(f"{len(errors)} error lines from dockzone, first: {errors[0][:300]}")
    return result


def settle(args: argparse.Namespace, dns_port: int, named_port: int, origins: list[str]) -> None:
    """Until BIND holds every zone at dockzone's serial and a pause has passed (bounded)."""

    def same() -> bool:
        for origin in origins:
            ours = soa_serial(dns_port, origin)
            if ours is None or soa_serial(named_port, origin) != ours:
                return False
        return True

    wait_for(same, args.timeout, "BIND holding every zone at dockzone's serial", 0.02)
    time.sleep(args.pause)  # the pass's zone files and journal writes finish meanwhile


def quiet(log: Path, seconds: float, timeout: float) -> None:
    """Until ``log`` has not grown for ``seconds`` (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    size, since = log.stat().st_size, time.monotonic()
    while time.monotonic() - since < seconds:
        if time.monotonic() > deadline:
            fail(f"{log} still growing after {timeout:g}s")
        time.sleep(0.1)
        if (now := log.stat().st_size) != size:
            size, since = now, time.monotonic()


def show_change(result: ChangeResult) -> None:
    print(
        f"change -> secondary: dockzone run over {result.services} definitions, "
        f"BIND secondary of {result.zones} zones (TSIG, NOTIFY to it)"
    )
    print(f"  start -> BIND holds {ZONE} (first pass, whole zone) {result.first_s:8.2f} s")
    for n, change in enumerate(result.changes, 1):
        took = "not answered" if change.seconds is None else f"{change.seconds * 1000:8.1f} ms"
        sizes = "; ".join(f"{m} messages, {r} records, {b} bytes" for m, r, b in change.transfers)
        print(f"  change {n}: rename -> BIND answers {took}; {ZONE} transfer(s): {sizes or 'none'}")
    times = [c.seconds for c in result.changes if c.seconds is not None]
    if times:
        verdict = (
            "meets"
            if len(times) == len(result.changes) and max(times) <= TARGET_CHANGE_S
            else "misses"
        )
        print(
            f"  rename -> BIND answers: median {statistics.median(times) * 1000:.1f} ms, "
            f"max {max(times) * 1000:.1f} ms (target <= {TARGET_CHANGE_S:g} s: {verdict})"
        )
    sizes = [b for c in result.changes for _, _, b in c.transfers]
    records = [r for c in result.changes for _, r, _ in c.transfers]
    if sizes:
        print(
            f"  transfer of {ZONE} per change: median {statistics.median(sizes):.0f} bytes, "
            f"{statistics.median(records):.0f} records (BIND's log)"
        )
    delta = {
        k: result.counts_after.get(k, 0) - result.counts_before.get(k, 0)
        for k in sorted(set(result.counts_after) | set(result.counts_before))
    }
    shown = ", ".join(f"{k} +{v:.0f}" for k, v in delta.items() if v) or "none"
    incremental = delta.get("ixfr_journal", 0) > 0 and delta.get("axfr", 0) == 0
    incremental = incremental and delta.get("ixfr", 0) == 0
    print(
        f"  dockzone /metrics, transfers during the changes: {shown} "
        f"({'incremental, from the journal' if incremental else 'NOT all incremental'})"
    )
    for note in result.notes:
        print(f"  note: {note}")


# --- main ---------------------------------------------------------------------------------


def interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="hack/bench xfr",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=20_000, help="records in the AXFR zone")
    parser.add_argument("--rounds", type=int, default=5, help="transfers per server")
    parser.add_argument("--services", type=int, default=10_000, help="definitions for part 2")
    parser.add_argument("--changes", type=int, default=5, help="one-record changes timed")
    parser.add_argument("--part", choices=("all", "axfr", "change"), default="all")
    parser.add_argument("--timeout", type=float, default=120.0, help="bound on every wait (s)")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between changes")
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.quick:
        args.records, args.rounds, args.services, args.changes = 2_000, 3, 2_000, 2
    for tool in ("named", "dig", "taskset"):
        if not sbin(tool):
            fail(f"{tool} is not installed (hack/deps installs it)")
    # Also SIGINT: a shell's background job inherits it ignored, and Ctrl-C must still clean up.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="dockzone-bench-xfr-"))
    try:
        if args.part in ("all", "axfr"):
            with ExitStack() as stack:
                transfers = bench_axfr(args, workdir, stack)
            show_axfr(args, transfers)
        if args.part in ("all", "change"):
            with ExitStack() as stack:
                change = bench_change(args, workdir, stack)
            show_change(change)
    finally:
        if args.keep:
            print(f"kept {workdir} (logs, zone files, configurations)", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
