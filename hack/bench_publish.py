"""Benchmark publishing to shared backends (called by ``hack/bench publish``; issue #10).

The claim under test: at 10,000 services, a one-record change reaches BIND (RFC 2136
dynamic updates signed with TSIG) and etcd (SkyDNS layout) within 100 ms of the pass
starting, because between full passes the sinks send exactly the dirty names of the plan
instead of reading the whole backend (an AXFR, a range over the prefix) and recomputing.

The script starts its own ``named`` (one dynamic zone ``docker.``, updates and transfers
allowed for one TSIG key, ``max-records-per-type 0`` because aggregated names hold more
than BIND's default of 100 records) and its own one-member ``etcd``, both on free
127.0.0.1 ports with their data in a temporary directory, then:

``--mode inprocess`` (the default): builds the ``Reconciler`` in this process with an
in-memory source of N ServiceRecords and the two sinks ``dockzone run`` would make for
``--rfc2136-server`` and ``--etcd`` (no zone files, no DNS server), runs the first (full)
pass, then changes one record's address K times; each change wakes one incremental pass.
While the pass runs, two threads poll BIND (a dnspython UDP query on 127.0.0.1) and etcd
(a range request) until they hold the new address: the time from the pass starting to
each, and the pass time from its report. A last full pass (a resync) must find nothing to
repair. ``--tree DIR`` imports ``reconciler`` from another checkout (``git archive``), to
compare commits.

``--mode daemon``: the real ``dockzone run`` (zone files, DNS server, the files source)
over N ServiceRecord definitions in files of 100 documents; a change rewrites one file
(atomic rename); the times are from the rename to BIND / etcd holding the new address,
the pass time from the daemon's ``pass N: ... (Xs)`` log line.

The data set: names ``svc-<i>.app-<k>.<region>.docker.`` in four regions (so each region
name aggregates a quarter of the services), unique IPv4 hosts, every fifth record with a
port (SRV), every tenth with a TXT. A change moves one record to another address in the
same /24.

Every wait is bounded (``--timeout``), traffic goes only to 127.0.0.1, the servers are
stopped and the temporary directory removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402 (the repository root is on the path only now)

ZONE = "docker."
REGIONS = ("east", "west", "north", "south")
KEY_NAME = "dockzone-bench"
SECRET = base64.b64encode(bytes(range(1, 33))).decode()
PREFIX = "/skydns"
INSTANCE = "bench"
TARGET_MS = 100.0


# --- the data set -------------------------------------------------------------------------


@dataclass
class Service:
    index: int
    name: str  # absolute
    host: str
    port: int | None
    text: str | None
    moved: int = 0

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "host": self.host}
        if self.port is not None:
            spec["port"] = self.port
        if self.text is not None:
            spec["text"] = self.text
        return spec

    def document(self) -> str:
        lines = [
            "apiVersion: dockzone.dev/v1alpha1",
            "kind: ServiceRecord",
            "metadata:",
            f"  name: svc-{self.index:06d}",
            "spec:",
            f"  name: {self.name}",
            f"  host: {self.host}",
        ]
        if self.port is not None:
            lines.append(f"  port: {self.port}")
        if self.text is not None:
            lines.append(f'  text: "{self.text}"')
        return "\n".join(lines) + "\n"


def address(index: int, moved: int) -> str:
    """127 services per /24 (.1-.127); a move goes to .128-.254 and back."""
    block, offset = divmod(index, 127)
    return f"10.{100 + block // 256}.{block % 256}.{offset + 1 + (127 if moved % 2 else 0)}"


def make_services(size: int) -> list[Service]:
    apps = max(4, size // 50)
    result = []
    for i in range(size):
        region = REGIONS[i % len(REGIONS)]
        name = f"svc-{i}.app-{(i // len(REGIONS)) % apps}.{region}.{ZONE}"
        result.append(
            Service(
                index=i,
                name=name,
                host=address(i, 0),
                port=8000 + i % 100 if i % 5 == 0 else None,
                text=f"owner=team-{i % 17}" if i % 10 == 3 else None,
            )
        )
    return result


# --- servers ------------------------------------------------------------------------------


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
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
    raise OSError("no free port")


def binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        sys.exit(f"bench publish: {name} is not installed (hack/deps installs it)")
    return path


def wait_for(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.05,
    *,
    bench: str = "bench publish",
) -> None:
    """Poll ``check`` until it returns True (exceptions count as not yet); at the deadline
    stop the benchmark ``bench`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):
            if check():
                return
        time.sleep(interval)
    raise SystemExit(f"{bench}: {what} not ready within {timeout:g}s")


@dataclass
class Named:
    process: subprocess.Popen[bytes]
    port: int
    key: Path
    log: Path

    @classmethod
    def start(cls, workdir: Path, timeout: float) -> Named:
        workdir.mkdir()
        port = free_port()
        key = workdir / "bench.key"
        key.write_text(
            f'key "{KEY_NAME}" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'
        )
        (workdir / "db.docker").write_text(
            "$TTL 300\n@ IN SOA ns.docker. hostmaster.docker. 1 3600 600 86400 30\n"
            "@ IN NS ns.docker.\nns IN A 127.0.0.1\n"
        )
        options = servers.named_options(workdir, port, "    max-types-per-name 0;\n")
        (workdir / "named.conf").write_text(
            f"""include "{key}";
{options}zone "docker" {{
    type primary;
    file "{workdir}/db.docker";
    update-policy {{ grant {KEY_NAME} zonesub ANY; }};
    allow-transfer {{ key {KEY_NAME}; }};
}};
"""
        )
        log = workdir / "named.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [binary("named"), "-g", "-c", str(workdir / "named.conf"), "-n", "1"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = cls(process, port, key, log)
        wait_for(server.ready, timeout, "named")
        return server

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"bench publish: named exited:\n{self.log.read_text()[-2000:]}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            pass
        return bool(self.addresses(ZONE, "SOA"))

    def addresses(self, name: str, rdtype: str = "A") -> set[str]:
        query = dns.message.make_query(name, rdtype)
        response = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=1.0)
        return {rd.to_text() for rrset in response.answer for rd in rrset}

    def stop(self) -> None:
        stop(self.process)


@dataclass
class Etcd:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @classmethod
    def start(cls, workdir: Path, timeout: float) -> Etcd:
        workdir.mkdir()
        client, peer = free_port(), free_port()
        url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        log = workdir / "etcd.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    binary("etcd"),
                    "--name",
                    "bench",
                    "--data-dir",
                    str(workdir / "data"),
                    "--listen-client-urls",
                    url,
                    "--advertise-client-urls",
                    url,
                    "--listen-peer-urls",
                    peer_url,
                    "--initial-advertise-peer-urls",
                    peer_url,
                    "--initial-cluster",
                    f"bench={peer_url}",
                    "--unsafe-no-fsync",  # a benchmark of dockzone, not of the disk
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = cls(process, url, log)
        wait_for(server.ready, timeout, "etcd", 0.2)
        return server

    def call(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        import urllib.request  # noqa: PLC0415

        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            answer = json.loads(response.read().decode() or "{}")
        return answer if isinstance(answer, dict) else {}

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"bench publish: etcd exited:\n{self.log.read_text()[-2000:]}")
        self.call("/v3/kv/range", {"key": _b64("/")})
        return True

    def values(self, prefix: str) -> list[str]:
        """The values of every key under ``prefix`` (one range request)."""
        end = bytearray(prefix.encode())
        end[-1] += 1
        answer = self.call(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": base64.b64encode(end).decode()}
        )
        return [base64.b64decode(kv.get("value", "")).decode() for kv in answer.get("kvs", [])]

    def count(self, prefix: str) -> int:
        end = bytearray(prefix.encode())
        end[-1] += 1
        answer = self.call(
            "/v3/kv/range",
            {"key": _b64(prefix), "range_end": base64.b64encode(end).decode(), "count_only": True},
        )
        return int(answer.get("count", 0))

    def stop(self) -> None:
        stop(self.process)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def key_path(name: str) -> str:
    return "/".join([PREFIX, *reversed(name.rstrip(".").split("."))]) + "/"


# --- watching the backends ----------------------------------------------------------------


@dataclass
class Arrival:
    """When BIND and etcd first held the new address (monotonic), or None."""

    bind: float | None = None
    etcd: float | None = None


def watch(
    named: Named, etcd: Etcd, service: Service, deadline: float, stop_event: threading.Event
) -> tuple[Arrival, list[threading.Thread]]:
    """Poll BIND and etcd (each in a thread, about every millisecond) until each holds
    ``service``'s current address, ``deadline`` passes or ``stop_event`` is set."""
    arrival = Arrival()
    host, name = service.host, service.name

    def bind() -> None:
        while time.monotonic() < deadline and not stop_event.is_set():
            with suppress(OSError, dns.exception.DNSException):
                if named.addresses(name) == {host}:
                    arrival.bind = time.monotonic()
                    return
            time.sleep(0.001)

    def etcd_poll() -> None:
        path = key_path(name)
        while time.monotonic() < deadline and not stop_event.is_set():
            with suppress(OSError, ValueError):
                if any(json.loads(v).get("host") == host for v in etcd.values(path)):
                    arrival.etcd = time.monotonic()
                    return
            time.sleep(0.001)

    threads = [threading.Thread(target=f, daemon=True) for f in (bind, etcd_poll)]
    for thread in threads:
        thread.start()
    return arrival, threads


# --- in process ---------------------------------------------------------------------------


@dataclass
class Change:
    pass_s: float | None
    bind_ms: float | None
    etcd_ms: float | None


@dataclass
class Result:
    mode: str
    services: int
    first_pass_s: float = 0.0
    first_published_s: float = 0.0
    changes: list[Change] = field(default_factory=list)
    resync_s: float | None = None
    resync_changed: bool | None = None
    notes: list[str] = field(default_factory=list)


def run_inprocess(args: argparse.Namespace, named: Named, etcd: Etcd) -> Result:
    from reconciler.core.model import Owner, ServiceRecord, ZoneSettings  # noqa: PLC0415
    from reconciler.etcdclient import EtcdClient, EtcdOptions  # noqa: PLC0415
    from reconciler.loop import Reconciler  # noqa: PLC0415
    from reconciler.sinks.etcd import EtcdSink, EtcdSinkConfig  # noqa: PLC0415
    from reconciler.sinks.rfc2136 import Rfc2136Config, Rfc2136Sink  # noqa: PLC0415
    from reconciler.sources import Snapshot  # noqa: PLC0415
    from reconciler.tsig import parse_key_file  # noqa: PLC0415

    services = make_services(args.services)

    def record(service: Service) -> ServiceRecord:
        return ServiceRecord(
            name=service.name,
            zone=ZONE,
            owner=Owner("file", f"servicerecord/svc-{service.index:06d}", "bench"),
            host=service.host,
            port=service.port,
            text=(service.text,) if service.text else (),
        )

    class MemorySource:
        """Every service as its own group; a load returns the groups changed since the
        previous load (all of them when ``full``)."""

        name = "memory"

        def __init__(self) -> None:
            self.groups = {f"svc-{s.index}": (record(s),) for s in services}
            self.changed: set[str] = set(self.groups)

        def set(self, service: Service) -> None:
            self.groups[f"svc-{service.index}"] = (record(service),)
            self.changed.add(f"svc-{service.index}")

        def load(self, full: bool = False) -> Snapshot:
            keys = set(self.groups) if full else self.changed
            self.changed = set()
            return Snapshot({k: self.groups[k] for k in keys}, complete=full)

        async def watch(self, wakeup: object, stop: asyncio.Event) -> None:
            await stop.wait()

    key = parse_key_file(named.key.read_text(), str(named.key))
    rfc = Rfc2136Sink(Rfc2136Config(("127.0.0.1", named.port), (ZONE,), key, INSTANCE, 10.0))
    client = EtcdClient(EtcdOptions((etcd.url,), timeout=10.0))
    sink = EtcdSink(client, EtcdSinkConfig(PREFIX, INSTANCE, 60))
    source = MemorySource()
    reconciler = Reconciler(source, ZoneSettings(), [rfc, sink])
    result = Result("inprocess", args.services)

    async def main() -> None:
        started = time.monotonic()
        report = await reconciler.run_once()
        result.first_pass_s = report.seconds
        if report.errors:
            result.notes.append("first pass errors: " + "; ".join(report.errors)[:500])
        probe = services[-1]
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            with suppress(Exception):
                if named.addresses(probe.name) == {probe.host} and etcd.values(
                    key_path(probe.name)
                ):
                    break
            await asyncio.sleep(0.05)
        result.first_published_s = time.monotonic() - started
        for k in range(args.changes):
            service = services[(k * 7919 + 13) % len(services)]
            service.moved += 1
            service.host = address(service.index, service.moved)
            source.set(service)
            stop_event = threading.Event()
            started = time.monotonic()
            arrival, threads = watch(named, etcd, service, started + args.timeout, stop_event)
            report = await reconciler.run_once()
            await asyncio.to_thread(_join, threads, started + args.timeout)
            stop_event.set()
            if report.errors:
                result.notes.append(f"change {k + 1}: " + "; ".join(report.errors)[:500])
            result.changes.append(
                Change(
                    report.seconds,
                    None if arrival.bind is None else (arrival.bind - started) * 1000,
                    None if arrival.etcd is None else (arrival.etcd - started) * 1000,
                )
            )
            await asyncio.sleep(args.pause)
        report = await reconciler.run_once(full=True, reasons=("resync",))
        result.resync_s = report.seconds
        result.resync_changed = report.changed or bool(report.errors)
        if report.changed:
            what = [
                line
                for c in report.changes.values()
                for z in c.zones
                for r in z.rrsets
                for line in r.lines()
            ]
            result.notes.append(f"the resync repaired: {what[:5]}")

    asyncio.run(main())
    return result


def _join(threads: list[threading.Thread], deadline: float) -> None:
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


# --- the daemon ---------------------------------------------------------------------------

PASS_LINE = re.compile(r"\bpass (\d+)\b:?(.*?)\(([0-9.]+) ?s\)\s*$")
PER_FILE = 100


def run_daemon(args: argparse.Namespace, named: Named, etcd: Etcd, workdir: Path) -> Result:
    services = make_services(args.services)
    definitions = workdir / "definitions"
    staging = workdir / "staging"
    definitions.mkdir()
    staging.mkdir()
    files: dict[str, list[Service]] = {}
    for service in services:
        files.setdefault(f"svc-{service.index // PER_FILE:04d}.yaml", []).append(service)
    where = {s.index: name for name, members in files.items() for s in members}

    def write(name: str) -> None:
        staged = staging / name
        staged.write_text("---\n".join(s.document() for s in files[name]))
        os.replace(staged, definitions / name)

    for name in files:
        write(name)
    dns_port, http_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "reconciler",
        "run",
        "--definitions",
        str(definitions),
        "--zones",
        str(workdir / "zones"),
        "--dns",
        f"127.0.0.1:{dns_port}",
        "--http",
        f"127.0.0.1:{http_port}",
        "--no-rec",
        "--docker",
        "off",
        "--rfc2136-server",
        f"127.0.0.1:{named.port}",
        "--tsig-key-file",
        str(named.key),
        "--etcd",
        etcd.url,
        "--instance-id",
        INSTANCE,
        "--resync",
        "86400",  # the full pass comes when the benchmark asks for it (SIGHUP), not midway
        "--log-level",
        args.log_level,
        *args.daemon_arg,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKZONE_", "DOCKER_"))}
    env["PYTHONPATH"] = str(args.tree or ROOT)
    log_path = workdir / "dockzone.log"
    lines: list[tuple[float, str]] = []
    result = Result("daemon", args.services)
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )

    def read() -> None:
        assert process.stderr is not None
        with log_path.open("w", encoding="utf-8") as log:
            for raw in process.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                lines.append((time.monotonic(), line))
                log.write(line + "\n")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def passes(after: float) -> list[float]:
        found = []
        for seen, line in list(lines):
            match = PASS_LINE.search(line)
            if match and seen > after:
                found.append(float(match.group(3)))
        return found

    try:
        probe = services[-1]
        deadline = started + args.timeout
        while time.monotonic() < deadline and process.poll() is None:
            with suppress(Exception):
                if named.addresses(probe.name) == {probe.host} and etcd.values(
                    key_path(probe.name)
                ):
                    break
            time.sleep(0.05)
        else:
            result.notes.append("the first publication did not complete in time")
        result.first_published_s = time.monotonic() - started
        deadline = time.monotonic() + args.timeout
        while not passes(0.0) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)  # its line comes once every sink is done
        first = passes(0.0)
        result.first_pass_s = first[0] if first else 0.0
        _quiet(lines, process, 1.0, time.monotonic() + args.timeout)
        for k in range(args.changes):
            service = services[(k * 7919 + 13) % len(services)]
            service.moved += 1
            service.host = address(service.index, service.moved)
            stop_event = threading.Event()
            before = time.monotonic()
            files_name = where[service.index]
            staged = staging / files_name
            staged.write_text("---\n".join(s.document() for s in files[files_name]))
            landed = time.monotonic()
            os.replace(staged, definitions / files_name)
            arrival, threads = watch(named, etcd, service, landed + args.timeout, stop_event)
            _join(threads, landed + args.timeout)
            stop_event.set()
            _quiet(lines, process, 0.5, time.monotonic() + args.timeout)
            seen = passes(before)
            result.changes.append(
                Change(
                    sum(seen) if seen else None,
                    None if arrival.bind is None else (arrival.bind - landed) * 1000,
                    None if arrival.etcd is None else (arrival.etcd - landed) * 1000,
                )
            )
            if len(seen) > 1:
                result.notes.append(f"change {k + 1} took {len(seen)} passes")
            time.sleep(args.pause)
        _quiet(lines, process, 1.0, time.monotonic() + args.timeout)
        before = time.monotonic()
        process.send_signal(signal.SIGHUP)

        def full_pass() -> re.Match[str] | None:
            """The first pass that started after the SIGHUP (its line gives its length)."""
            for seen, line in list(lines):
                match = PASS_LINE.search(line)
                if match and seen - float(match.group(3)) >= before - 0.05:
                    return match
            return None

        deadline = time.monotonic() + args.timeout
        while (found := full_pass()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if found is not None:
            result.resync_s = float(found.group(3))
            result.resync_changed = "no changes" not in found.group(0)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        reader.join(5)
    errors = [line for _, line in lines if " ERROR " in line or "Traceback" in line]
    if errors:
        result.notes.append(f"{len(errors)} error lines, first: {errors[0][:300]}")
    return result


def _quiet(
    lines: list[tuple[float, str]], process: subprocess.Popen[bytes], quiet: float, deadline: float
) -> None:
    """Until the daemon has logged nothing for ``quiet`` seconds (bounded)."""
    while time.monotonic() < deadline and process.poll() is None:
        count = len(lines)
        time.sleep(quiet)
        if len(lines) == count:
            return


# --- the report ---------------------------------------------------------------------------


def median(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def show(result: Result, as_json: bool) -> None:
    bind = median([c.bind_ms for c in result.changes])
    etcd = median([c.etcd_ms for c in result.changes])
    passes = median([c.pass_s for c in result.changes])
    figures = {
        "mode": result.mode,
        "services": result.services,
        "first_pass_s": round(result.first_pass_s, 3),
        "first_published_s": round(result.first_published_s, 3),
        "changes": len(result.changes),
        "change_to_bind_ms": None if bind is None else round(bind, 1),
        "change_to_etcd_ms": None if etcd is None else round(etcd, 1),
        "change_pass_ms": None if passes is None else round(passes * 1000, 1),
        "each_change": [
            {
                "pass_ms": None if c.pass_s is None else round(c.pass_s * 1000, 1),
                "bind_ms": None if c.bind_ms is None else round(c.bind_ms, 1),
                "etcd_ms": None if c.etcd_ms is None else round(c.etcd_ms, 1),
            }
            for c in result.changes
        ],
        "resync_s": None if result.resync_s is None else round(result.resync_s, 3),
        "resync_changed": result.resync_changed,
        "target_ms": TARGET_MS,
        "notes": result.notes,
    }
    if as_json:
        print(json.dumps(figures, indent=2))
        return
    since = "the pass starting" if result.mode == "inprocess" else "the file landing"
    print(f"publish benchmark ({result.mode}), {result.services} services, zone {ZONE}")
    print(f"  first pass                 {result.first_pass_s:8.3f} s")
    print(f"  first publication complete {result.first_published_s:8.3f} s")

    def ms(value: float | None) -> str:
        return "   (none)" if value is None else f"{value:8.1f} ms"

    verdict = (
        "meets"
        if bind is not None and etcd is not None and max(bind, etcd) <= TARGET_MS
        else "misses"
    )
    print(f"  one-record change, median of {len(result.changes)} (from {since}):")
    print(f"    pass                     {ms(None if passes is None else passes * 1000)}")
    print(f"    BIND answers (RFC 2136)  {ms(bind)}")
    print(f"    etcd holds the key       {ms(etcd)}")
    print(f"    target                   <= {TARGET_MS:.0f} ms at 10,000 services: {verdict}")
    for n, change in enumerate(result.changes, 1):
        print(
            f"      change {n}: pass {ms(None if change.pass_s is None else change.pass_s * 1000)}"
            f", BIND {ms(change.bind_ms)}, etcd {ms(change.etcd_ms)}"
        )
    if result.resync_s is not None:
        repaired = "repaired something" if result.resync_changed else "nothing to repair"
        print(f"  resync (full pass)         {result.resync_s:8.3f} s, {repaired}")
    for note in result.notes:
        print(f"  note: {note}")


@contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockzone-bench-publish-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path} (logs, zone files, server data)", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="hack/bench publish", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=5, help="one-record changes measured")
    parser.add_argument("--mode", choices=("inprocess", "daemon"), default="inprocess")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on every wait (s)")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between changes")
    parser.add_argument("--tree", type=Path, help="import reconciler from this checkout")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--log-level",
        default="DEBUG",
        help="the daemon's --log-level (--mode daemon; below DEBUG a pass with no changes "
        "logs nothing, so the resync is not seen)",
    )
    parser.add_argument(
        "--daemon-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for dockzone run (repeatable), e.g. --daemon-arg=--no-etcd-source",
    )
    args = parser.parse_args()
    if args.tree is not None:
        args.tree = args.tree.resolve()
        sys.path.insert(0, str(args.tree))
    else:
        sys.path.insert(0, str(ROOT))
    with workspace(args.keep) as workdir:
        logging.basicConfig(
            filename=str(workdir / "bench.log"),
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        named = etcd = None
        try:
            named = Named.start(workdir / "named", 30)
            etcd = Etcd.start(workdir / "etcd", 30)
            if args.mode == "inprocess":
                result = run_inprocess(args, named, etcd)
            else:
                result = run_daemon(args, named, etcd, workdir)
        finally:
            for server in (named, etcd):
                if server is not None:
                    server.stop()
    show(result, args.json)


if __name__ == "__main__":
    main()
