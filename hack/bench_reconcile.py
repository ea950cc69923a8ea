"""Benchmark the reconcile loop end to end (called by ``hack/bench reconcile``; issue #10).

The claim under test: a pass costs what changed, not what exists. Black box: for each size
N the script writes N ServiceRecord definitions, starts the real daemon (``dockzone run``
with Docker, HTTP and forwarding off, DNS on a free 127.0.0.1 port, a private zones and
state directory) and measures from outside:

1. cold start: empty zones directory; pass 1's time (from its ``pass 1: ... (Xs)`` log
   line) and process start -> first correct DNS answer;
2. warm start: SIGTERM, start again over the zone files just written; start -> first
   correct answer, pass 1's time, and how many zone files that pass rewrote (should be 0);
3. a no-op: one definitions file rewritten with identical bytes; the pass (if any) and the
   zone files it rewrote (should be 0);
4. changes: K records get a new address, by editing K small files (K <= 10) or K documents
   inside the big multi-document file (K >= 100; both kinds for K = 1); for each, the
   time from the file landing (atomic rename) until every changed name answers its new
   address over DNS, the pass time(s) from the log and how far into the pass the DNS
   server answered (its ``DNS after`` figure: the zone files are written after that), and
   the zone files rewritten;
5. RSS (VmRSS, VmHWM from /proc/PID/status) after the cold pass and at the end, a final
   correctness probe (A, PTR, an aggregated name over TCP) and, as a peer, the time BIND's
   ``named-checkzone`` takes to load the largest zone file dockzone wrote.

The data set: 80% of the records in one multi-document file, the rest one per small file
under a few sub-directories; names 2-4 labels deep under ``docker.`` in four regions
(``web-17.blue.app-3.east.docker.``); unique IPv4 hosts, 127 per /24 (so there are
reverse zones; a changed record moves to the other half of its /24, so no zone appears or
disappears); some SRV (port), TXT (text), aliases, TTLs and CNAMEs (a host name).

Traffic goes only to 127.0.0.1. Every wait is bounded (``--timeout``): a size that does not
converge is reported as such. Temporary directories are removed and the daemons stopped,
also on Ctrl-C. ``--tree DIR`` runs the daemon from another checkout (``git worktree`` or
``git archive``) with this repository's .venv, to compare commits.
"""

from __future__ import annotations

import argparse
import json
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
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename

ROOT = Path(__file__).resolve().parents[1]
ZONE = "docker."
REGIONS = ("east", "west", "north", "south")
ROLES = ("web", "api", "db", "cache", "worker", "queue")
PER_BLOCK = 127
"""Addresses used per /24: .1-.127; a changed record moves to .128-.254 and back."""

TARGETS = {
    # metric key: (limit, unit, the size it applies to, text)
    "cold_pass_s": (1.0, "s", 10_000, "<= 1.0 s at 10k"),
    "warm_first_answer_s": (0.5, "s", 10_000, "<= 0.5 s at 10k"),
    "small_1_answer_ms": (150.0, "ms", None, "<= 150 ms"),
    "big_1_answer_ms": (300.0, "ms", 10_000, "<= 300 ms (8,000-doc file)"),
    "rss_end_mb": (150.0, "MB", 10_000, "<= 150 MB at 10k"),
}


# --- the data set -------------------------------------------------------------------------


@dataclass
class Record:
    """One ServiceRecord definition and where it lives."""

    index: int
    name: str  # relative to the zone
    ip: bool  # host is an address (else a host name: CNAME)
    host: str
    port: int | None
    text: str | None
    ttl: int | None
    aliases: tuple[str, ...]
    file: str  # relative path under the definitions directory
    moved: bool = False

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{ZONE}"

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
        if self.ttl is not None:
            lines.append(f"  ttl: {self.ttl}")
        if self.aliases:
            lines.append(f"  aliases: [{', '.join(self.aliases)}]")
        return "\n".join(lines) + "\n"


def address(index: int, moved: bool) -> str:
    block, offset = divmod(index, PER_BLOCK)
    return f"10.{100 + block // 256}.{block % 256}.{offset + 1 + (PER_BLOCK if moved else 0)}"


BIG_FILE = "services.yaml"


def make_records(size: int) -> list[Record]:
    """``size`` records: a deterministic, realistic mix (see the module docstring)."""
    apps = max(4, size // 50)
    records: list[Record] = []
    for i in range(size):
        role, app = ROLES[(i // 7) % len(ROLES)], i % apps
        region = REGIONS[(i // apps) % len(REGIONS)]
        depth = i % 3
        if depth == 0:
            name = f"{role}-{i}.app-{app}.{region}"
        elif depth == 1:
            name = f"{role}-{i}.{('blue', 'green')[i % 2]}.app-{app}.{region}"
        else:
            name = f"{role}-{i}.{region}"
        ip = i % 20 != 7
        host = address(i, False) if ip else records[i - 1].fqdn
        records.append(
            Record(
                index=i,
                name=name,
                ip=ip,
                host=host,
                port=8000 + i % 100 if i % 5 == 0 else None,
                text=f"owner=team-{i % 17}" if i % 10 == 3 else None,
                ttl=(30, 60)[i % 2] if i % 4 == 1 else None,
                aliases=(f"alias-{i}.{ZONE}",) if ip and i % 25 == 11 else (),
                file=BIG_FILE if i % 5 != 4 else f"team-{i % 20:02d}/svc-{i:06d}.yaml",
            )
        )
    return records


class Definitions:
    """The definitions directory: written atomically (staged outside it, then renamed in,
    so the watcher never sees a half-written file)."""

    def __init__(self, directory: Path, staging: Path, records: list[Record]) -> None:
        self.directory = directory
        self.staging = staging
        self.records = records
        self.by_file: dict[str, list[Record]] = {}
        for record in records:
            self.by_file.setdefault(record.file, []).append(record)
        self._docs = {r.index: r.document() for r in records}

    def write_all(self) -> None:
        for name in self.by_file:
            self.write(name)

    def content(self, name: str) -> str:
        return "---\n".join(self._docs[r.index] for r in self.by_file[name])

    def write(self, name: str, content: str | None = None) -> None:
        """Stage ``name``; ``land`` renames staged files in."""
        self.stage(name, content)
        self.land([name])

    def stage(self, name: str, content: str | None = None) -> None:
        staged = self.staging / name.replace("/", "__")
        staged.write_text(self.content(name) if content is None else content)

    def land(self, names: list[str]) -> None:
        for name in names:
            target = self.directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.staging / name.replace("/", "__"), target)

    def move(self, record: Record) -> None:
        """Give ``record`` the other address of its pair (same /24, same reverse zone)."""
        record.moved = not record.moved
        record.host = address(record.index, record.moved)
        self._docs[record.index] = record.document()

    def big_docs(self) -> int:
        return len(self.by_file.get(BIG_FILE, []))

    def small_files(self) -> int:
        return len(self.by_file) - (1 if BIG_FILE in self.by_file else 0)


# --- the daemon ---------------------------------------------------------------------------


TICKS = os.sysconf("SC_CLK_TCK")
PASS_LINE = re.compile(r"\bpass (\d+)\b:?(.*?)\(([0-9.]+) ?s\)\s*$")
SERVED = re.compile(r"DNS after ([0-9.]+)s")


@dataclass
class Pass:
    number: int
    seconds: float
    text: str
    seen: float  # monotonic time the line was read

    @property
    def served(self) -> float | None:
        """Seconds into the pass when the DNS server answered with its changes."""
        found = SERVED.search(self.text)
        return float(found.group(1)) if found else None


@dataclass
class Daemon:
    """``dockzone run`` as a subprocess; its stderr read line by line in a thread."""

    command: list[str]
    env: dict[str, str]
    log_path: Path
    started: float = 0.0
    process: subprocess.Popen[bytes] | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start(self) -> None:
        self.lines = []
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.log_path.parent,  # not the repository: `python -m` puts cwd first
            start_new_session=True,  # Ctrl-C reaches the benchmark, which stops it in order
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"--- started {self.command}\n")
            for raw in self.process.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append((time.monotonic(), line))
                log.write(line + "\n")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def passes(self) -> list[Pass]:
        found = []
        for seen, line in list(self.lines):
            match = PASS_LINE.search(line)
            if match:
                text = match.group(2).strip().rstrip(",")
                found.append(Pass(int(match.group(1)), float(match.group(3)), text, seen))
        return found

    def wait_pass(self, after: float, deadline: float, unless_idle: bool = False) -> Pass | None:
        """The first pass line read after monotonic time ``after``, waiting until
        ``deadline`` or, with ``unless_idle``, until the daemon has used no CPU for a
        second (then no pass is coming)."""
        cpu, since = self.cpu(), time.monotonic()
        while True:
            for item in self.passes():
                if item.seen > after:
                    return item
            now = time.monotonic()
            if now > deadline or not self.alive():
                return None
            if unless_idle and now - since >= 1.0:
                if self.cpu() - cpu <= 0.02:
                    return None
                cpu, since = self.cpu(), now
            time.sleep(0.005)

    def cpu(self) -> float:
        """Seconds of CPU the daemon has used (user + system, all threads)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / TICKS

    def running(self) -> bool:
        """True when any of the daemon's threads is running or waiting for a CPU (state R):
        on a loaded machine a busy daemon may get no CPU for a while, yet it is not idle."""
        for stat in Path(f"/proc/{self.pid}/task").glob("*/stat"):
            with suppress(OSError, IndexError):
                if stat.read_text().rsplit(")", 1)[1].split()[0] == "R":
                    return True
        return False

    def wait_idle(self, quiet: float, deadline: float) -> None:
        """Until the daemon has logged nothing, used (almost) no CPU and had no runnable
        thread for ``quiet`` seconds: no pass is running or about to start (bounded by
        ``deadline``)."""
        while time.monotonic() < deadline and self.alive():
            lines, cpu, end = len(self.lines), self.cpu(), time.monotonic() + quiet
            busy = False
            while time.monotonic() < end and not busy:
                busy = self.running()
                time.sleep(0.01)
            if not busy and len(self.lines) == lines and self.cpu() - cpu <= 0.02:
                return

    def exit_status(self) -> int | None:
        """The daemon's exit status once it has exited, else None."""
        return None if self.process is None else self.process.poll()

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM in MB."""
        figures = {}
        with suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    figures[key] = int(value.split()[0]) / 1024
        return figures

    def stop(self, timeout: float = 30) -> float | None:
        """SIGTERM, wait (bounded), then SIGKILL. Seconds the stop took, None if killed."""
        if self.process is None:
            return None
        started = time.monotonic()
        took: float | None = None
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
                took = time.monotonic() - started
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.process = None
        return took

    def tail(self, count: int = 15) -> str:
        return "\n".join(line for _, line in self.lines[-count:])


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


# --- DNS ----------------------------------------------------------------------------------


def lookup(port: int, name: str, rdtype: str = "A", tcp: bool = False) -> set[str] | None:
    """The answer's rdata for (name, rdtype) on 127.0.0.1:port; None on no answer."""
    query = dns.message.make_query(name, rdtype)
    try:
        if tcp:
            response = dns.query.tcp(query, "127.0.0.1", port=port, timeout=2.0)
        else:
            response = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
    except (dns.exception.DNSException, OSError):
        return None
    if response.rcode() != dns.rcode.NOERROR:
        return set()
    wanted = dns.rdatatype.from_text(rdtype)
    return {rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset}


def lookup_many(port: int, names: list[str], timeout: float = 0.5) -> dict[str, set[str]]:
    """A answers for many names at once: every query sent on one UDP socket, then the
    responses read until all arrived or ``timeout``; names without a response are left
    out. Checking 1,000 names one round trip after another would measure the client."""
    wanted: dict[int, str] = {}
    answers: dict[str, set[str]] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(timeout)
        for number, name in enumerate(names):
            query = dns.message.make_query(name, "A", id=number % 65536)
            wanted[query.id] = name
            with suppress(OSError):
                sock.send(query.to_wire())
        limit = time.monotonic() + timeout
        while len(answers) < len(wanted) and time.monotonic() < limit:
            try:
                response = dns.message.from_wire(sock.recv(65535))
            except (OSError, dns.exception.DNSException):
                break
            asked = wanted.get(response.id)
            if asked is None:
                continue
            answers[asked] = (
                {rd.to_text() for r in response.answer if r.rdtype == dns.rdatatype.A for rd in r}
                if response.rcode() == dns.rcode.NOERROR
                else set()
            )
    return answers


def wait_answers(
    daemon: Daemon, port: int, expected: list[tuple[str, set[str]]], deadline: float
) -> float | None:
    """Poll until every (name -> A set) answers as expected; the monotonic time the last
    one did, or None at ``deadline``. Only the first pending name is polled (cheap for a
    daemon busy with its pass); once it is right, the rest are checked in one batch and
    the names still wrong stay pending."""
    pending = dict(expected)
    polls = 0
    while pending:
        head = next(iter(pending))
        if lookup(port, head) == pending[head]:
            got = lookup_many(port, list(pending)) if len(pending) > 1 else {head: pending[head]}
            for name in [n for n, want in pending.items() if got.get(n) == want]:
                del pending[name]
            if not pending:
                break
        polls += 1
        if time.monotonic() > deadline or polls > 1_000_000 or not daemon.alive():
            return None
        time.sleep(0.002)
    return time.monotonic()


# --- zone files ---------------------------------------------------------------------------


def zone_stats(zones: Path) -> dict[str, tuple[int, int]]:
    """db.* file -> (mtime_ns, size)."""
    stats = {}
    for path in zones.glob("db.*"):
        with suppress(OSError):
            info = path.stat()
            stats[path.name] = (info.st_mtime_ns, info.st_size)
    return stats


def written(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> int:
    """Zone files created, rewritten or removed between two ``zone_stats``."""
    return sum(1 for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def checkzone(zones: Path) -> dict[str, Any]:
    """named-checkzone on the largest zone file: BIND's loader as a peer."""
    files = sorted(zones.glob("db.*"), key=lambda p: p.stat().st_size)
    binary = shutil.which("named-checkzone") or "/usr/bin/named-checkzone"
    if not files or not Path(binary).exists():
        return {"error": "no zone file" if not files else "named-checkzone not installed"}
    largest = files[-1]
    origin = largest.name.removeprefix("db.") + "."
    started = time.perf_counter()
    try:
        result = subprocess.run(
            [binary, origin, str(largest)],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        return {"error": "named-checkzone timed out", "file": largest.name}
    seconds = time.perf_counter() - started
    rrs = sum(1 for line in largest.read_text().splitlines() if line and line[0] not in ";$")
    return {
        "file": largest.name,
        "bytes": largest.stat().st_size,
        "lines": rrs,
        "seconds": seconds,
        "ok": result.returncode == 0,
        "output": (result.stdout + result.stderr).strip()[:500],
    }


# --- measurements -------------------------------------------------------------------------


@dataclass
class Bench:
    """One size's run: directories, data, daemon."""

    size: int
    workdir: Path
    command: list[str]
    env: dict[str, str]
    timeout: float
    port: int = 0
    defs: Definitions = field(init=False)
    daemon: Daemon = field(init=False)

    def __post_init__(self) -> None:
        for sub in ("definitions", "staging", "zones", "state"):
            (self.workdir / sub).mkdir(parents=True)
        self.defs = Definitions(
            self.workdir / "definitions", self.workdir / "staging", make_records(self.size)
        )
        self.port = free_port()
        env = dict(self.env, XDG_STATE_HOME=str(self.workdir / "state"))
        command = [
            *self.command,
            "run",
            "--docker=off",
            "--http=off",
            f"--dns=127.0.0.1:{self.port}",
            "--no-rec",
            "--nameserver=127.0.0.1:9",  # never used with --no-rec; never the host's resolver
            "--definitions",
            str(self.workdir / "definitions"),
            "--zones",
            str(self.zones),
            "--resync=86400",  # no periodic full pass inside a measurement
            "--log-level=DEBUG",  # "pass N: no changes" is logged at DEBUG
        ]
        self.daemon = Daemon(command, env, self.workdir / "dockzone.log")

    @property
    def zones(self) -> Path:
        return self.workdir / "zones"

    def deadline(self) -> float:
        return time.monotonic() + self.timeout

    def probes(self) -> list[tuple[str, set[str]]]:
        """A few names across the files whose answer proves the data set is loaded."""
        ips = [r for r in self.defs.records if r.ip]
        picks = [ips[0], ips[len(ips) // 2], ips[-1]]
        small = [r for r in ips if r.file != BIG_FILE]
        if small:
            picks.append(small[-1])
        return [(r.fqdn, {r.host}) for r in picks]

    def start_to_answer(self) -> dict[str, Any]:
        """Start the daemon; start -> first correct answer, and pass 1 from the log."""
        before = zone_stats(self.zones)
        self.daemon.start()
        arrived = wait_answers(self.daemon, self.port, self.probes(), self.deadline())
        figures: dict[str, Any] = {
            "first_answer_s": None if arrived is None else arrived - self.daemon.started,
            "first_answer_cpu_s": self.daemon.cpu(),
        }
        first = self.daemon.wait_pass(self.daemon.started, self.deadline())
        if first is not None:
            figures["pass1_s"] = first.seconds
            figures["pass1_log"] = first.text
        self.daemon.wait_idle(0.3, self.deadline())
        figures["files_written"] = written(before, zone_stats(self.zones))
        figures["memory"] = self.daemon.memory()
        if arrived is None:
            code = self.daemon.exit_status()
            figures["error"] = (
                "no correct answer within the timeout"
                if code is None
                else f"the daemon exited with status {code}"
            )
            figures["log_tail"] = self.daemon.tail()
        return figures

    def noop(self) -> dict[str, Any]:
        """Rewrite one file with identical bytes: a pass, if any, must write nothing."""
        name = next((n for n in self.defs.by_file if n != BIG_FILE), BIG_FILE)
        before, cpu = zone_stats(self.zones), self.daemon.cpu()
        self.defs.stage(name)
        landed = time.monotonic()
        self.defs.land([name])
        seen = self.daemon.wait_pass(landed, self.deadline(), unless_idle=True)
        self.daemon.wait_idle(0.3, self.deadline())
        return {
            "pass_s": None if seen is None else seen.seconds,
            "pass_log": None if seen is None else seen.text,
            "cpu_ms": (self.daemon.cpu() - cpu) * 1000,
            "files_written": written(before, zone_stats(self.zones)),
        }

    def pick(self, kind: str, count: int, round_: int) -> list[Record] | None:
        """``count`` address records to change: in small files or in the big file, spread
        over it, different ones each round."""
        pool = [r for r in self.defs.records if r.ip and (r.file == BIG_FILE) == (kind == "big")]
        if count > len(pool):
            return None
        if count == 1:
            return [pool[(len(pool) // 2 + round_ * 7919) % len(pool)]]
        step = len(pool) // count
        return [pool[(j * step + round_) % len(pool)] for j in range(count)]

    def change(self, kind: str, count: int, round_: int) -> dict[str, Any]:
        """Move ``count`` records to new addresses; write -> every new answer over DNS."""
        picked = self.pick(kind, count, round_)
        if picked is None:
            return {"skipped": f"fewer than {count} address records in the {kind} file(s)"}
        for record in picked:
            self.defs.move(record)
        files = sorted({r.file for r in picked})
        for name in files:
            self.defs.stage(name)
        before, cpu = zone_stats(self.zones), self.daemon.cpu()
        landed = time.monotonic()
        self.defs.land(files)
        arrived = wait_answers(
            self.daemon, self.port, [(r.fqdn, {r.host}) for r in picked], self.deadline()
        )
        self.daemon.wait_pass(landed, self.deadline())
        self.daemon.wait_idle(0.3, self.deadline())
        passes = [p for p in self.daemon.passes() if p.seen > landed]
        figures: dict[str, Any] = {
            "answer_ms": None if arrived is None else (arrived - landed) * 1000,
            "pass_ms": sum(p.seconds for p in passes) * 1000 if passes else None,
            # the last pass with a change for the DNS server: its time until it answered
            "served_ms": next(
                (
                    (sum(p.seconds for p in passes[:n]) + (p.served or 0)) * 1000
                    for n, p in reversed(list(enumerate(passes)))
                    if p.served is not None
                ),
                None,
            ),
            "cpu_ms": (self.daemon.cpu() - cpu) * 1000,  # includes answering the polls
            "passes": len(passes),
            "pass_log": [p.text for p in passes],
            "files_written": written(before, zone_stats(self.zones)),
        }
        if arrived is None:
            figures["error"] = "new answers not all visible within the timeout"
        return figures

    def verify(self) -> dict[str, Any]:
        """Spot-check answers against the model: A and PTR of sampled records, and the
        aggregated A set of one app name (over TCP: it may not fit in UDP)."""
        wrong: list[str] = []
        ips = [r for r in self.defs.records if r.ip]
        sample = ips[:: max(1, len(ips) // 40)] + [r for r in ips if r.moved][:20]
        for record in sample:
            got = lookup(self.port, record.fqdn)
            if got != {record.host}:
                wrong.append(f"{record.fqdn} A {sorted(got or [])} != {record.host}")
            ptr = dns.reversename.from_address(record.host).to_text()
            got = lookup(self.port, ptr, "PTR")
            if got != {record.fqdn}:
                wrong.append(f"{ptr} PTR {sorted(got or [])} != {record.fqdn}")
        labels = next(r for r in ips[len(ips) // 2 :] if ".app-" in r.fqdn).fqdn.split(".")
        app = ".".join(labels[[label[:4] for label in labels].index("app-") :])
        want = {r.host for r in ips if r.fqdn.endswith("." + app)}
        got = lookup(self.port, app, tcp=True)
        if got != want:
            wrong.append(f"{app} A: {len(got or [])} addresses, expected {len(want)}")
        return {"checked": 2 * len(sample) + 1, "wrong": wrong}


def change_steps(changes: list[int]) -> list[tuple[str, str, int]]:
    """(key, kind, K): K small files for K <= 10, K documents of the big file for K >= 100,
    both for K = 1."""
    steps = []
    for count in changes:
        if count == 1:
            steps += [("small_1", "small", 1), ("big_1", "big", 1)]
        elif count <= 10:
            steps.append((f"small_{count}", "small", count))
        else:
            steps.append((f"big_{count}", "big", count))
    return steps


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present and len(present) == len(values) else None


def run_size(bench: Bench, changes: list[int], rounds: int, log: Any) -> dict[str, Any]:
    """Every measurement for one size, in order; the daemon is stopped at the end."""
    result: dict[str, Any] = {
        "size": bench.size,
        "big_file_docs": bench.defs.big_docs(),
        "small_files": bench.defs.small_files(),
    }
    started = time.perf_counter()
    bench.defs.write_all()
    result["generate_s"] = time.perf_counter() - started
    log(f"[{bench.size}] cold start")
    cold = bench.start_to_answer()
    result["cold"] = cold
    result["zone_files"] = len(zone_stats(bench.zones))
    result["zone_bytes"] = sum(size for _, size in zone_stats(bench.zones).values())
    if "error" in cold:
        bench.daemon.stop()
        return result
    log(f"[{bench.size}] warm start")
    result["stop_s"] = bench.daemon.stop()
    result["warm"] = bench.start_to_answer()
    if "error" in result["warm"]:
        bench.daemon.stop()
        return result
    log(f"[{bench.size}] no-op rewrite")
    result["noop"] = bench.noop()
    result["changes"] = {}
    for key, kind, count in change_steps(changes):
        log(f"[{bench.size}] {count} change(s) in the {kind} file(s), {rounds} round(s)")
        samples = [bench.change(kind, count, r) for r in range(rounds)]
        entry: dict[str, Any] = {"kind": kind, "count": count, "samples": samples}
        if all("skipped" not in s for s in samples):
            entry["answer_ms"] = median([s["answer_ms"] for s in samples])
            entry["pass_ms"] = median([s["pass_ms"] for s in samples])
            entry["served_ms"] = median([s["served_ms"] for s in samples])
            entry["cpu_ms"] = median([s["cpu_ms"] for s in samples])
            entry["files_written"] = max(s["files_written"] for s in samples)
            entry["passes"] = max(s["passes"] for s in samples)
        else:
            entry["skipped"] = samples[0]["skipped"]
        result["changes"][key] = entry
        if any("error" in s for s in samples):
            log(f"[{bench.size}] {key}: did not converge; stopping this size here")
            break
    result["verify"] = bench.verify()
    result["memory_end"] = bench.daemon.memory()
    bench.daemon.stop()
    log(f"[{bench.size}] named-checkzone")
    result["checkzone"] = checkzone(bench.zones)
    return result


# --- report -------------------------------------------------------------------------------


def fmt(value: Any, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def verdict(key: str, size: int, value: float | None) -> str:
    limit, _, applies, _ = TARGETS[key]
    if value is None or (applies is not None and applies != size):
        return ""
    return " ok" if value <= limit else " MISS"


def rows(results: list[dict[str, Any]]) -> list[tuple[str, list[str], str]]:
    """(label, one cell per size, target) for the table."""

    def cell(fn: Any) -> list[str]:
        out = []
        for result in results:
            try:
                out.append(fn(result))
            except (KeyError, TypeError):
                out.append("-")
        return out

    def mark(key: str, value_of: Any, unit: str, digits: int) -> Any:
        def show(r: dict[str, Any]) -> str:
            value = value_of(r)
            return fmt(value, unit, digits) + verdict(key, r["size"], value)

        return show

    table = [
        (
            "definitions (big-file docs / small files)",
            cell(lambda r: f"{r['big_file_docs']}/{r['small_files']}"),
            "",
        ),
        (
            "zone files written (total MB)",
            cell(lambda r: f"{r['zone_files']} ({r['zone_bytes'] / 1e6:.1f})"),
            "",
        ),
        (
            "cold: pass 1 (s)",
            cell(mark("cold_pass_s", lambda r: r["cold"].get("pass1_s"), "", 3)),
            TARGETS["cold_pass_s"][3],
        ),
        (
            "cold: start -> first answer (s) / daemon CPU",
            cell(
                lambda r: (
                    f"{fmt(r['cold']['first_answer_s'])} / "
                    f"{fmt(r['cold']['first_answer_cpu_s'], '', 2)}"
                )
            ),
            "",
        ),
        (
            "cold: RSS / HWM after pass 1 (MB)",
            cell(
                lambda r: f"{r['cold']['memory']['VmRSS']:.0f} / {r['cold']['memory']['VmHWM']:.0f}"
            ),
            "",
        ),
        ("stop (SIGTERM -> exit, s)", cell(lambda r: fmt(r["stop_s"])), ""),
        (
            "warm: start -> first answer (s)",
            cell(mark("warm_first_answer_s", lambda r: r["warm"]["first_answer_s"], "", 3)),
            TARGETS["warm_first_answer_s"][3],
        ),
        (
            "warm: pass 1 (s) / zone files rewritten",
            cell(lambda r: f"{fmt(r['warm'].get('pass1_s'))} / {r['warm']['files_written']}"),
            "0 files",
        ),
        (
            "no-op rewrite: pass (s) / files rewritten",
            cell(lambda r: f"{fmt(r['noop']['pass_s'])} / {r['noop']['files_written']}"),
            "0 files",
        ),
    ]
    labels = {"small": "small file(s) edited", "big": "doc(s) in the big file"}
    keys: list[str] = []
    for result in results:
        keys += [k for k in result.get("changes", {}) if k not in keys]
    for key in keys:
        kind, count = key.split("_")
        target_key = f"{key}_answer_ms" if f"{key}_answer_ms" in TARGETS else None

        def answer(r: dict[str, Any], key: str = key, target_key: str | None = target_key) -> str:
            entry = r["changes"][key]
            if "skipped" in entry:
                return "n/a"
            shown = fmt(entry["answer_ms"], "", 0)
            return shown + (
                verdict(target_key, r["size"], entry["answer_ms"]) if target_key else ""
            )

        def passed(r: dict[str, Any], key: str = key) -> str:
            entry = r["changes"][key]
            if "skipped" in entry:
                return "n/a"
            return (
                f"{fmt(entry['pass_ms'], '', 0)} / {fmt(entry.get('served_ms'), '', 0)}"
                f" / {fmt(entry['cpu_ms'], '', 0)} / {entry['passes']} / {entry['files_written']}"
            )

        label = f"{count} {labels[kind]}"
        target = TARGETS[target_key][3] if target_key else ""
        table.append((f"{label}: write -> answer (ms)", cell(answer), target))
        table.append(
            (f"{label}: pass ms / DNS after ms / CPU ms / passes / files", cell(passed), "")
        )
    table += [
        (
            "end: RSS (MB)",
            cell(mark("rss_end_mb", lambda r: r["memory_end"]["VmRSS"], "", 0)),
            TARGETS["rss_end_mb"][3],
        ),
        ("end: HWM (MB)", cell(lambda r: fmt(r["memory_end"]["VmHWM"], "", 0)), ""),
        (
            "answers checked / wrong",
            cell(lambda r: f"{r['verify']['checked']} / {len(r['verify']['wrong'])}"),
            "0 wrong",
        ),
        (
            "named-checkzone largest zone (s)",
            cell(
                lambda r: (
                    f"{fmt(r['checkzone']['seconds'])} ({r['checkzone']['lines']} RRs"
                    f"{'' if r['checkzone']['ok'] else ', FAILED'})"
                )
            ),
            "",
        ),
        (
            "cold pass 1 / named-checkzone",
            cell(lambda r: f"{r['cold']['pass1_s'] / r['checkzone']['seconds']:.1f}x"),
            "",
        ),
    ]
    return table


def ratios(results: list[dict[str, Any]]) -> dict[str, float]:
    """One-change pass time (and answer time) at each size over the smallest size."""
    base = results[0]
    out = {}
    for result in results[1:]:
        for key in ("small_1", "big_1"):
            for metric in ("pass_ms", "served_ms", "cpu_ms", "answer_ms"):
                try:
                    value = result["changes"][key][metric] / base["changes"][key][metric]
                except (KeyError, TypeError, ZeroDivisionError):
                    continue
                out[f"{key} {metric} {result['size']}/{base['size']}"] = value
    return out


def report(results: list[dict[str, Any]], header: str) -> str:
    table = rows(results)
    width = max(len(label) for label, _, _ in table)
    cells = max(12, *(len(c) for _, row, _ in table for c in row))
    lines = [header, ""]
    head = "".join(f"{r['size']:>{cells + 2},}" for r in results)
    lines.append(f"{'':<{width}}{head}  target")
    for label, row, target in table:
        lines.append(
            f"{label:<{width}}"
            + "".join(f"{c:>{cells + 2}}" for c in row)
            + (f"  {target}" if target else "")
        )
    found = ratios(results)
    if found:
        lines += [
            "",
            "one change: pass, DNS-after (the pass until the server answered, zone files "
            "after it), daemon CPU and answer time over the smallest size "
            "(flat = a pass costs what changed, not what exists):",
        ]
        for key, value in found.items():
            lines.append(f"  {key}: {value:.2f}x")
    odd = []
    for r in results:
        for problem in r.get("verify", {}).get("wrong", [])[:5]:
            odd.append(f"  [{r['size']}] wrong answer: {problem}")
        for stage in ("cold", "warm"):
            if "error" in r.get(stage, {}):
                odd.append(f"  [{r['size']}] {stage}: {r[stage]['error']}")
                tail = r[stage].get("log_tail", "").splitlines()[-5:]
                odd += [f"    | {line}" for line in tail]
        if r.get("noop", {}).get("files_written"):
            odd.append(f"  [{r['size']}] the no-op rewrite rewrote zone files")
        if r.get("warm", {}).get("files_written"):
            odd.append(f"  [{r['size']}] warm start rewrote zone files")
        for key, entry in r.get("changes", {}).items():
            for s in entry.get("samples", []):
                if "error" in s:
                    odd.append(f"  [{r['size']}] {key}: {s['error']}")
                idle = [t for t in s.get("pass_log", []) if "no change" in t]
                if idle:
                    odd.append(
                        f"  [{r['size']}] {key}: {len(s['pass_log'])} passes, "
                        f"{len(idle)} of them with no changes"
                    )
        if r.get("checkzone", {}).get("ok") is False:
            odd.append(f"  [{r['size']}] named-checkzone: {r['checkzone']['output'][:200]}")
    if odd:
        lines += ["", "problems:", *odd]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------


def integers(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: the finally blocks stop daemons and remove files."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def describe(tree: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(tree)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=integers,
        default=[1000, 10000],
        help="numbers of definitions (default 1000,10000; 100000 takes minutes)",
    )
    parser.add_argument(
        "--changes",
        type=integers,
        default=[1, 10, 100, 1000],
        help="records changed per step (default 1,10,100,1000)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="samples per change step")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sizes 1000, changes 1,10, 2 rounds (CI; under a minute)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=0,
        help="seconds any one wait may take (default 30 + size/250)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the results as JSON on stdout (the table goes to stderr)",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        default=None,
        help="run the daemon from this checkout (PYTHONPATH) with .venv's python",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.changes, args.rounds = [1000], [1, 10], 2
    args.sizes = sorted(set(args.sizes))  # ratios are over the smallest size
    if args.tree is not None:
        tree = args.tree.resolve()
        command = [str(ROOT / ".venv" / "bin" / "python"), "-m", "reconciler"]
        env_extra = {"PYTHONPATH": str(tree)}
    else:
        tree = ROOT
        command = [str(ROOT / ".venv" / "bin" / "dockzone")]
        env_extra = {}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCKZONE_") and not k.startswith("DOCKER_")
    }
    env.update(env_extra)
    out = sys.stderr if args.json else sys.stdout

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    header = (
        f"hack/bench reconcile: {describe(tree)}; rounds {args.rounds}; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the start; medians; "
        "times from the file landing (atomic rename)"
    )
    results = []
    workdir = Path(tempfile.mkdtemp(prefix="dz-bench-reconcile-", dir="/tmp"))
    benches: list[Bench] = []
    try:
        with interruptible():
            for size in args.sizes:
                timeout = args.timeout or 30 + size / 250
                bench = Bench(size, workdir / str(size), command, env, timeout)
                benches.append(bench)
                results.append(run_size(bench, args.changes, args.rounds, log))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        for bench in benches:
            bench.daemon.stop(timeout=10)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(results, header), file=out)
    if args.json:
        print(
            json.dumps(
                {
                    "header": header,
                    "targets": {k: v[3] for k, v in TARGETS.items()},
                    "results": results,
                    "ratios": ratios(results),
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
