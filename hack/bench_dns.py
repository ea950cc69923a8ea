"""Benchmark dockzone's DNS server against BIND with dnsperf (called by hack/bench).

Both servers serve the same generated zone file and get the same query file, one after
the other, each pinned to one core with dnsperf pinned to the other. Two runs per server:
dnsperf's maximum rate (QPS, average latency), then a fixed offered load (`-Q`) with the
server's CPU time per query read from /proc/<pid>/stat. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ORIGIN = "bench.test."


def write_zone(directory: Path, names: int) -> Path:
    lines = [
        f"$ORIGIN {ORIGIN}",
        "$TTL 30",
        "@ IN SOA ns.dns hostmaster 1 3600 600 86400 30",
        "@ IN NS ns.dns",
        "ns.dns IN A 127.0.0.1",
    ]
    for i in range(names):
        lines.append(f"svc{i} IN A 10.0.{i // 250}.{i % 250 + 1}")
        if i % 4 == 0:
            lines.append(f"svc{i} IN A 10.1.{i // 250}.{i % 250 + 1}")
        if i % 10 == 0:
            lines.append(f"_http._tcp.svc{i} IN SRV 10 100 80 svc{i}")
    path = directory / f"db.{ORIGIN.rstrip('.')}"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_queries(directory: Path, names: int) -> Path:
    """Mostly positive A answers, plus NODATA, NXDOMAIN and SRV (with additional data)."""
    queries = [f"svc{i}.{ORIGIN} A" for i in range(names)]
    queries += [f"svc{i}.{ORIGIN} AAAA" for i in range(0, names, 5)]
    queries += [f"missing{i}.{ORIGIN} A" for i in range(0, names, 5)]
    queries += [f"_http._tcp.svc{i}.{ORIGIN} SRV" for i in range(0, names, 10)]
    path = directory / "queries.txt"
    path.write_text("\n".join(queries) + "\n")
    return path


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise SystemExit("no free port on 127.0.0.1")


def answers(port: int) -> bool:
    """True when a server on 127.0.0.1:port answers an SOA query."""
    query = (
        b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        + b"".join(bytes([len(p)]) + p.encode() for p in ORIGIN.rstrip(".").split("."))
        + b"\x00\x00\x06\x00\x01"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(query, ("127.0.0.1", port))
            return sock.recv(512)[:2] == b"\x12\x34"
        except OSError:
            return False


@contextmanager
def running(argv: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(argv)} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    qps: float
    latency_ms: float
    lost: float
    cpu_us_per_query: float
    cpu_percent: float


def dnsperf(
    port: int, queries: Path, *, seconds: int, core: str, pid: int, rate: int | None
) -> Result:
    argv = ["taskset", "-c", core, "dnsperf", "-s", "127.0.0.1", "-p", str(port)]
    argv += ["-d", str(queries), "-l", str(seconds), "-q", "200"]
    if rate:
        argv += ["-Q", str(rate)]
    before = cpu_seconds(pid)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    used = cpu_seconds(pid) - before

    def number(label: str) -> float:
        match = re.search(rf"{label}\s*([\d.]+)", out.stdout)
        if match is None:
            raise SystemExit(f"cannot find {label!r} in dnsperf output:\n{out.stdout}")
        return float(match.group(1))

    completed = number(r"Queries completed:")
    qps = number(r"Queries per second:")
    return Result(
        qps=qps,
        latency_ms=number(r"Average Latency \(s\):") * 1000,
        lost=number(r"Queries lost:"),
        cpu_us_per_query=used / completed * 1e6 if completed else float("nan"),
        # dnsperf's own run time (it also waits for lost queries after -l ends).
        cpu_percent=used / (completed / qps) * 100 if completed else float("nan"),
    )


def named_conf(workdir: Path, zone: Path, port: int) -> Path:
    conf = workdir / "named.conf"
    conf.write_text(
        f"""options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    session-keyfile "{workdir}/session.key";
    managed-keys-directory "{workdir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
logging {{ category default {{ null; }}; }};
zone "{ORIGIN.rstrip(".")}" {{ type primary; file "{zone}"; }};
"""
    )
    return conf


def build_time(records: int) -> float:
    """Seconds for Zone.from_records on `records` A records (the reconciler's hand-over)."""
    from dnsserver import Zone  # noqa: PLC0415 (only this step needs the package)

    soa = (ORIGIN, "SOA", 30, f"ns.{ORIGIN} hostmaster.{ORIGIN} 1 3600 600 86400 30")
    rows = [soa] + [
        (f"c{i}.{ORIGIN}", "A", 30, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        for i in range(records)
    ]
    started = time.perf_counter()
    Zone.from_records(ORIGIN, rows)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="dnsperf -l per run")
    parser.add_argument("--names", type=int, default=100, help="names in the zone")
    parser.add_argument("--rate", type=int, default=40000, help="fixed offered load (-Q)")
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate the servers N times; report the best"
    )
    args = parser.parse_args()
    for tool in ("dnsperf", "named", "taskset"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            raise SystemExit(f"{tool} is not installed (hack/deps installs it)")
    named = shutil.which("named", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    assert named is not None
    results: dict[str, list[tuple[Result, Result]]] = {"dockzone": [], "bind": []}
    with tempfile.TemporaryDirectory(prefix="dockzone-bench-") as tmp:
        work = Path(tmp)
        zones = work / "zones"
        zones.mkdir()
        zone = write_zone(zones, args.names)
        queries = write_queries(work, args.names)
        servers: dict[str, Callable[[int], list[str]]] = {
            "dockzone": lambda port: [
                sys.executable,
                "-m",
                "dnsserver",
                "--zones",
                str(zones),
                "--listen",
                f"127.0.0.1:{port}",
                "--no-rec",
            ],
            "bind": lambda port: [named, "-g", "-n", "1", "-c", str(named_conf(work, zone, port))],
        }
        for _ in range(args.rounds):
            for name, argv in servers.items():
                port = free_port()
                command = ["taskset", "-c", args.server_core, *argv(port)]
                with running(command, port, work / f"{name}.log") as proc:
                    run = {"seconds": args.seconds, "core": args.client_core, "pid": proc.pid}
                    top = dnsperf(port, queries, rate=None, **run)
                    fixed = dnsperf(port, queries, rate=args.rate, **run)
                results[name].append((top, fixed))
    print(
        f"zone: {args.names} names; dnsperf -l {args.seconds}; server on core "
        f"{args.server_core}, dnsperf on core {args.client_core}"
    )
    print(
        f"{'server':10} {'max QPS':>10} {'avg ms':>8} {'lost':>6} | "
        f"{'@' + str(args.rate) + ' QPS':>10} {'CPU %':>6} {'us/query':>9}"
    )
    best: dict[str, tuple[Result, Result]] = {}
    for name, runs in results.items():
        for top, fixed in runs:
            print(
                f"{name:10} {top.qps:10.0f} {top.latency_ms:8.3f} {top.lost:6.0f} | "
                f"{fixed.qps:10.0f} {fixed.cpu_percent:6.1f} {fixed.cpu_us_per_query:9.2f}"
            )
        # Best of the rounds: noise from other processes only ever slows a server down.
        best[name] = (
            max((r[0] for r in runs), key=lambda r: r.qps),
            min((r[1] for r in runs), key=lambda r: r.cpu_us_per_query),
        )
    ours, bind = best["dockzone"], best["bind"]
    print(f"QPS ratio dockzone/bind: {ours[0].qps / bind[0].qps:.2f}")
    print(
        f"CPU per query ratio dockzone/bind at {args.rate} QPS: "
        f"{ours[1].cpu_us_per_query / bind[1].cpu_us_per_query:.2f}"
    )
    print(f"Zone.from_records, 40000 records: {build_time(40_000):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
