"""Real servers and clients for the tests: free ports, dig, dnspython queries, and the
``dockzone run`` daemon as a subprocess."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rrset
import docker
import docker.types

from tests.helpers import eventually, require_binary

ROOT = Path(__file__).resolve().parents[1]

EXAMPLE_DOMAINS = ("--domain", "docker.", "--domain", "skydns.local.")
"""The zones manifests/examples uses (hack/run configures the same)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise OSError("no free port")


def query(
    host: str,
    port: int,
    qname: str,
    qtype: str = "A",
    *,
    tcp: bool = False,
    payload: int | None = None,
    rd: bool = False,
    timeout: float = 3.0,
) -> dns.message.Message:
    """One query with dnspython (no EDNS unless ``payload``), RD off unless asked."""
    message = dns.message.make_query(
        qname, qtype, use_edns=payload is not None, payload=payload or 512
    )
    if not rd:
        message.flags &= ~dns.flags.RD
    if tcp:
        return dns.query.tcp(message, host, port=port, timeout=timeout)
    return dns.query.udp(message, host, port=port, timeout=timeout, ignore_trailing=False)


def answer_text(message: dns.message.Message) -> list[str]:
    """The answer section as sorted zone-file lines."""
    return sorted(line for rrset in message.answer for line in rrset.to_text().splitlines())


def dig(port: int, *args: str, host: str = "127.0.0.1") -> str:
    """Run dig against a server (+norec, short timeouts); returns its output."""
    binary = require_binary("dig")
    result = subprocess.run(
        [binary, f"@{host}", "-p", str(port), "+norec", "+time=2", "+tries=1", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return result.stdout + result.stderr


def dig_answers(port: int, name: str, rdtype: str = "A") -> list[str]:
    """dig's answer section as sorted lines with single spaces."""
    out = dig(port, "+noall", "+answer", name, rdtype)
    return sorted(" ".join(line.split()) for line in out.splitlines() if line.strip())


def answers_soa(host: str, port: int, origin: str) -> None:
    """Assert that a server answers ``origin``'s SOA (for ``eventually``)."""
    try:
        response = query(host, port, origin, "SOA", timeout=0.5)
    except (OSError, dns.exception.DNSException) as exc:
        raise AssertionError(str(exc)) from exc
    assert response.rcode() == dns.rcode.NOERROR


@dataclass
class Daemon:
    """``dockzone run`` in a subprocess, DNS on 127.0.0.1:``port``, output in ``log``."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    definitions: Path
    zones: Path
    http: str = ""
    """The HTTP API's ADDR:PORT (a free loopback port unless ``--http`` is in ``args``)."""

    @classmethod
    def start(
        cls,
        workdir: Path,
        definitions: Path,
        *args: str,
        env: dict[str, str] | None = None,
        first_pass: bool = True,
        wrap: tuple[str, ...] = (),
    ) -> Daemon:
        """Start it and wait until it answers DNS and (``first_pass``) its first pass is
        done (/readyz). ``--listen-also=ADDR:PORT,...`` in ``args`` serves DNS there too,
        beside the loopback port the tests query. ``wrap`` is a command that execs the
        rest (``unshare -m ...``), so the process is still the daemon."""
        port = free_port()
        dns = f"127.0.0.1:{port}"
        for arg in args:
            if arg.startswith("--listen-also="):
                dns += "," + arg.split("=", 1)[1]
        args = tuple(arg for arg in args if not arg.startswith("--listen-also="))
        http = next(
            (
                a.split("=", 1)[1] if "=" in a else args[n + 1]
                for n, a in enumerate(args)
                if a.startswith("--http")
            ),
            "",
        )
        if not http:
            http = f"127.0.0.1:{free_port()}"
            args = ("--http", http, *args)
        zones = workdir / "zones"
        command = [
            "run",
            "--definitions",
            str(definitions),
            "--zones",
            str(zones),
            "--dns",
            dns,
            "--no-rec",
            *args,
        ]
        return cls.start_command(
            workdir, command, port=port, http=http, env=env, first_pass=first_pass, wrap=wrap
        )

    @classmethod
    def start_command(
        cls,
        workdir: Path,
        command: list[str],
        *,
        port: int,
        http: str,
        env: dict[str, str] | None = None,
        first_pass: bool = True,
        wrap: tuple[str, ...] = (),
    ) -> Daemon:
        """Start ``dockzone COMMAND...`` exactly as given (it must serve DNS on
        127.0.0.1:``port`` and HTTP on ``http``); definitions and zones where the command
        says, else under ``$XDG_STATE_HOME/dockzone`` (``env``, else ``workdir``). ``wrap``
        is a command that execs the rest (``unshare -m ...``)."""
        log = workdir / "dockzone.log"
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith(("DOCKZONE_", "DOCKER_"))
        }
        environ["XDG_STATE_HOME"] = str(workdir)
        environ.update(env or {})
        state = Path(environ["XDG_STATE_HOME"]) / "dockzone"

        def given(option: str, default: Path) -> Path:
            for number, word in enumerate(command):
                if word.lstrip("-") == option.lstrip("-"):
                    return Path(command[number + 1])
                if word.lstrip("-").startswith(option.lstrip("-") + "="):
                    return Path(word.split("=", 1)[1])
            return default

        definitions = given("--definitions", state / "definitions")
        zones = given("--zones", state / "zones")
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*wrap, sys.executable, "-m", "reconciler", *command],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environ,
                cwd=ROOT,
            )
        daemon = cls(process, port, log, definitions, zones, http)
        try:
            eventually(daemon.answers, timeout=20)
            if first_pass and http != "off":
                eventually(daemon.ready, timeout=20)
        except BaseException:
            stop_process(process)  # a daemon that did not come up is not left running
            raise
        return daemon

    def answers(self) -> None:
        """DNS is up (with a warm start, before the first pass)."""
        assert self.process.poll() is None, self.log.read_text()
        answers_soa("127.0.0.1", self.port, "docker.")

    def ready(self) -> None:
        """The first pass is done: /readyz says so."""
        assert self.process.poll() is None, self.log.read_text()
        try:
            with urllib.request.urlopen(f"http://{self.http}/readyz", timeout=2) as response:
                assert response.status == 200
        except OSError as exc:  # not listening yet, or 503 before the first pass
            raise AssertionError(f"/readyz: {exc}") from exc

    def output(self) -> str:
        return self.log.read_text()

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def again(self, workdir: Path, *args: str, definitions: Path | None = None) -> Daemon:
        """``dockzone run`` started anew (after `stop`) on this one's DNS port and zones, with
        ``args``; a new HTTP port (the old one may linger in TIME_WAIT)."""
        http = f"127.0.0.1:{free_port()}"
        command = [
            "run",
            "--definitions",
            str(definitions or self.definitions),
            "--zones",
            str(self.zones),
            "--dns",
            f"127.0.0.1:{self.port}",
            "--no-rec",
            "--http",
            http,
            *args,
        ]
        return Daemon.start_command(workdir, command, port=self.port, http=http)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise


def named_options(workdir: Path, port: int, extra: str = "", *, resolver: bool = False) -> str:
    """The ``options`` and ``controls`` of a private ``named``: its files in ``workdir``,
    127.0.0.1:``port`` only, no recursion, no NOTIFY, no transfers unless a zone allows
    them; ``extra`` statements go inside ``options``. With ``resolver``: recursion for
    127.0.0.1 and DNSSEC validation with the configured trust anchors only."""
    if resolver:
        recursion = """recursion yes;
    allow-recursion { 127.0.0.1; };
    dnssec-validation yes;"""
    else:
        recursion = """recursion no;
    dnssec-validation no;"""
    return f"""options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    session-keyfile "{workdir}/session.key";
    managed-keys-directory "{workdir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    {recursion}
    notify no;
    allow-transfer {{ none; }};
    max-records-per-type 0;  // 9.18.28+ caps RRsets at 100 records by default
{extra}}};
controls {{ }};
"""


def start_named(
    workdir: Path, port: int, zones: str, *, include: str = "", resolver: bool = False
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``named -g`` on 127.0.0.1:``port`` (no recursion unless ``resolver``, no
    transfers unless a zone allows them) with the ``zone`` statements in ``zones``; returns
    it and its log file."""
    binary = require_binary("named")
    conf = workdir / "named.conf"
    conf.write_text(f"{include}\n{named_options(workdir, port, resolver=resolver)}{zones}")
    log = workdir / "named.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-g", "-c", str(conf), "-n", "1"], stdout=out, stderr=subprocess.STDOUT
        )
    return process, log


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s; waits for it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def summary(response: dns.message.Message) -> tuple[object, ...]:
    """What two servers must agree on: rcode, AA, the answer RRsets (ignoring order, with
    TTLs) and, for negative answers, the authority section (the SOA)."""

    def rrsets(section: list[dns.rrset.RRset]) -> set[tuple[str, int, int, frozenset[str]]]:
        return {
            (r.name.to_text().lower(), r.rdtype, r.ttl, frozenset(rd.to_text() for rd in r))
            for r in section
        }

    negative = not response.answer
    return (
        dns.rcode.to_text(response.rcode()),
        bool(response.flags & dns.flags.AA),
        rrsets(response.answer),
        rrsets(response.authority) if negative else None,
    )


@dataclass
class NamedServer:
    """A real BIND ``named`` serving a zone directory on 127.0.0.1 (no recursion)."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @classmethod
    def start(cls, workdir: Path, zones: Path, port: int) -> NamedServer:
        zone_clauses = "".join(
            f'zone "{path.name[3:]}" {{ type primary; file "{path}"; }};\n'
            for path in sorted(zones.glob("db.*"))
        )
        process, log = start_named(workdir, port, zone_clauses)
        return cls(process, port, log)

    def answers_soa(self, origin: str) -> None:
        assert self.process.poll() is None, self.log.read_text()
        answers_soa("127.0.0.1", self.port, origin)

    def stop(self) -> None:
        stop_process(self.process)


_SUBNETS = itertools.count(os.getpid() % 50 * 4)


@dataclass
class DockerDaemon:
    """A private dockerd started by ``hack/dockerd`` in ``directory``, with the busybox
    test image and a test network ``network`` on a /24 of 198.18.0.0/15 (a benchmarking
    range) that no other DockerDaemon of this process uses."""

    directory: Path
    url: str
    network: str = "dzt"
    block: int = 0
    netns: str = ""
    """The named network namespace (``ip netns``) dockerd runs in; "" for the machine's."""

    def subnet(self, k: int = 0) -> str:
        """The k-th /24 reserved for this daemon's networks (k < 4)."""
        return f"198.18.{(self.block * 4 + k) % 250 + 1}.0/24"

    def gateway(self, k: int = 0) -> str:
        return self.subnet(k).replace(".0/24", ".1")

    @classmethod
    def start_new(cls, *dockerd_args: str) -> DockerDaemon:
        """Start one in a new short directory under /tmp: containerd's socket lives in it,
        and a unix socket path may not exceed 107 bytes (pytest's tmp paths can)."""
        return cls.start(Path(tempfile.mkdtemp(prefix="dzd-", dir="/tmp")), *dockerd_args)

    @classmethod
    def start(cls, directory: Path, *dockerd_args: str, netns: str = "") -> DockerDaemon:
        require_binary("dockerd")
        url = _hack_dockerd(netns, str(directory), *dockerd_args).splitlines()[-1]
        daemon = cls(directory, url, block=next(_SUBNETS), netns=netns)
        client = daemon.client()
        try:
            existing = client.networks.list(names=[daemon.network])
            if existing:  # a restart: keep the network and the block it was made with
                subnet = existing[0].attrs["IPAM"]["Config"][0]["Subnet"]
                daemon.block = (int(subnet.split(".")[2]) - 1) // 4
            else:
                client.networks.create(daemon.network, driver="bridge", ipam=daemon.ipam())
        finally:
            client.close()
        return daemon

    def ipam(self, k: int = 0) -> docker.types.IPAMConfig:
        pool = docker.types.IPAMPool(subnet=self.subnet(k), gateway=self.gateway(k))
        return docker.types.IPAMConfig(pool_configs=[pool])

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version="auto", timeout=30)

    def pid(self) -> int:
        return int((self.directory / "docker.pid").read_text())

    def stop(self) -> None:
        """Stop dockerd and wait until it is gone (containers live on: live-restore);
        ``hack/dockerd --stop`` also deletes the default bridge it made for it."""
        pid = self.pid()
        _hack_dockerd(self.netns, "--stop", str(self.directory))

        def gone() -> None:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid)

        eventually(gone, timeout=10)

    def remove(self) -> None:
        """Remove every container and network (bridges outlive dockerd otherwise), stop
        dockerd and delete its directory."""
        client = self.client()
        try:
            for container in client.containers.list(all=True):
                container.remove(force=True)
            for network in client.networks.list():
                if network.name not in ("bridge", "host", "none"):
                    network.remove()
        finally:
            client.close()
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _hack_dockerd(netns: str, *args: str) -> str:
    """Run ``hack/dockerd`` (in the named network namespace ``netns``, if any: nsenter
    enters only the network; ``ip netns exec`` would remount /sys and hide the cgroups);
    returns its output."""
    prefix = [require_binary("nsenter"), f"--net=/run/netns/{netns}"] if netns else []
    result = subprocess.run(
        [*prefix, str(ROOT / "hack" / "dockerd"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl.

    The server certificate is good for client authentication too: etcd's JSON gateway
    connects to etcd's own gRPC port with it when client certificates are required."""
    openssl = require_binary("openssl")
    directory.mkdir(parents=True, exist_ok=True)

    def run_openssl(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True, timeout=60)

    run_openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=dockzone test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    )
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        run_openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={who}",
            "-keyout",
            f"{who}-key.pem",
            "-out",
            f"{who}.csr",
        )
        run_openssl(
            "x509",
            "-req",
            "-in",
            f"{who}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{who}.ext",
            "-out",
            f"{who}-cert.pem",
        )
    # DOCKER_CERT_PATH's file names.
    (directory / "cert.pem").write_bytes((directory / "client-cert.pem").read_bytes())
    (directory / "key.pem").write_bytes((directory / "client-key.pem").read_bytes())
    return {
        name: directory / f"{name}.pem"
        for name in ("ca", "server-cert", "server-key", "cert", "key")
    }
