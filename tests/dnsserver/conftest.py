"""Fixtures for the dnsserver tests: zone files, a running server, upstreams, BIND."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnsserver import DNSService, Forwarder, ZoneDirectory, ZoneStore
from tests.helpers import assert_zone_files_valid, eventually
from tests.servers import NamedServer, free_port, query

DOCKER_ZONE = """\
; hand-written, BIND style: relative names, omitted owners, parentheses, comments
$ORIGIN docker.
$TTL 30
@       IN SOA ns.dns hostmaster (
            2024010101 ; serial
            3600       ; refresh
            600        ; retry
            86400      ; expire
            10 )       ; minimum: the negative TTL
        IN NS  ns.dns
ns.dns  IN A   127.0.0.1
web     IN A   10.0.0.7
web6    IN AAAA fd00::7
dual    IN A   10.0.0.8
        IN AAAA fd00::8
redis   IN A   10.0.1.1
        IN A   10.0.1.2
        IN A   10.0.1.3
redis1.redis 60 IN A 10.0.1.1
redis2.redis 60 IN A 10.0.1.2
redis3.redis 60 IN A 10.0.1.3
_redis._tcp.redis IN SRV 10 100 6379 redis1.redis
                  IN SRV 10 100 6379 redis2.redis
mail    IN MX  10 web
txt     IN TXT "v=spf1 -all" "two strings; with \\"quotes\\""
alias   IN CNAME web
alias2  IN CNAME alias
ext     IN CNAME www.example.test.
deep.a.b.c IN A 10.0.2.1
sub     IN NS  ns.sub          ; a delegation, with glue
ns.sub  IN A   10.0.5.1
*.wild  IN A   10.0.6.1        ; RFC 4592 wildcard records
*.wild  IN TXT "wild"
*.wc    IN CNAME web
many    IN A 10.1.0.1
"""
# 120 addresses at one name: 1.9 KB, over 512 bytes, under 4096.
DOCKER_ZONE += "".join(f"        IN A 10.1.0.{i}\n" for i in range(2, 121))

SKYDNS_ZONE = """\
$ORIGIN skydns.local.
$TTL 3600
@ IN SOA ns.dns.skydns.local. hostmaster.skydns.local. 7 3600 600 86400 60
@ IN NS ns.dns.skydns.local.
ns.dns IN A 127.0.0.1
1.rails.staging.east IN A 10.0.1.125
2.rails.staging.west IN A 10.0.2.125
1.rails.production.east IN A 10.0.3.125
rails.staging.east IN A 10.0.1.125
"""

REVERSE_ZONE = """\
$ORIGIN 0.10.in-addr.arpa.
$TTL 30
@ IN SOA ns.dns.docker. hostmaster.docker. 1 3600 600 86400 30
@ IN NS ns.dns.docker.
7.0 IN PTR web.docker.
8.0 IN PTR dual.docker.
"""

# Zones BIND is not compared on: chains beyond 8 links, loops, and big TXT sets whose
# wildcard union (`*.huge.test. TXT`, ~90 KB) cannot fit in one 64 KiB message.
CHAIN_ZONE = (
    """\
$ORIGIN chain.test.
$TTL 30
@ IN SOA ns hostmaster 1 3600 600 86400 30
@ IN NS ns
ns IN A 127.0.0.1
end IN A 10.9.9.9
loop1 IN CNAME loop2
loop2 IN CNAME loop1
"""
    + "".join(f"c{i} IN CNAME c{i + 1}\n" for i in range(1, 12))
    + "c12 IN CNAME end\n"
)

HUGE_ZONE = """\
$ORIGIN huge.test.
$TTL 30
@ IN SOA ns hostmaster 1 3600 600 86400 30
@ IN NS ns
ns IN A 127.0.0.1
""" + "".join(f'big{n} IN TXT "{n}-{i:04d}{"x" * 240}"\n' for n in (1, 2, 3) for i in range(120))

COMPARED_ZONES = {
    "docker.": DOCKER_ZONE,
    "skydns.local.": SKYDNS_ZONE,
    "0.10.in-addr.arpa.": REVERSE_ZONE,
}
ALL_ZONES = {**COMPARED_ZONES, "chain.test.": CHAIN_ZONE, "huge.test.": HUGE_ZONE}


def write_zones(directory: Path, zones: dict[str, str]) -> Path:
    """Write `db.<origin>` files; each must pass named-checkzone."""
    directory.mkdir(parents=True, exist_ok=True)
    for origin, text in zones.items():
        (directory / f"db.{origin.rstrip('.')}").write_text(text)
    return directory


@dataclass
class Server:
    """A running DNSService and the addresses to query it on."""

    service: DNSService
    store: ZoneStore
    host: str
    port: int

    def query(
        self,
        qname: str,
        qtype: str = "A",
        *,
        tcp: bool = False,
        payload: int | None = None,
        rd: bool = False,
        host: str | None = None,
    ) -> dns.message.Message:
        return query(host or self.host, self.port, qname, qtype, tcp=tcp, payload=payload, rd=rd)


def start_service(store: ZoneStore, **kwargs: object) -> DNSService:
    service = DNSService(store, [("127.0.0.1", 0)], **kwargs)  # type: ignore[arg-type]
    service.start()
    return service


@pytest.fixture(scope="session")
def zone_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test zone directory (checked by named-checkzone once)."""
    directory = write_zones(tmp_path_factory.mktemp("zones"), ALL_ZONES)
    assert assert_zone_files_valid(directory) == len(ALL_ZONES)
    return directory


@pytest.fixture(scope="session")
def dockzone_dns(zone_files: Path) -> Iterator[Server]:
    """dockzone's server on 127.0.0.1 and ::1 (free ports), serving `zone_files`, no_rec."""
    store = ZoneStore()
    ZoneDirectory(zone_files, store).rescan()
    service = DNSService(store, [("127.0.0.1", 0), ("::1", 0)], rotate=True)
    service.start()
    try:
        server = Server(service, store, "127.0.0.1", service.addresses[0][1])
        eventually(lambda: _answers(server), timeout=5)
        yield server
    finally:
        service.stop()


def _answers(server: Server) -> None:
    try:
        response = server.query("docker.", "SOA")
    except OSError as exc:  # also dns.exception.Timeout's relatives
        raise AssertionError(str(exc)) from exc
    except dns.exception.Timeout as exc:
        raise AssertionError("timeout") from exc
    assert response.rcode() == dns.rcode.NOERROR


@dataclass
class Upstream:
    """A tiny DNS server on loopback standing in for an upstream resolver.

    Answers from `records` ({(name, type): [zone-file lines]}), NXDOMAIN otherwise; counts
    the questions it saw. With `delay`, each reply leaves that many seconds after its query
    (a slow upstream; queries in the meantime are read and delayed alike).
    """

    host: str
    records: dict[tuple[str, str], list[str]]
    seen: list[tuple[str, str]] = field(default_factory=list)
    sock: socket.socket | None = None
    thread: threading.Thread | None = None
    delay: float = 0.0

    @property
    def port(self) -> int:
        assert self.sock is not None
        return int(self.sock.getsockname()[1])

    def start(self) -> Upstream:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                return
            if not data:
                return
            request = dns.message.from_wire(data)
            question = request.question[0]
            key = (question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype))
            self.seen.append(key)
            response = dns.message.make_response(request)
            response.flags |= dns.flags.RA
            lines = self.records.get(key)
            if lines is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                for line in lines:
                    name, ttl, rdclass, rdtype, rdata = line.split(maxsplit=4)
                    rrset = dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata)
                    response.answer.append(rrset)
            if self.delay:
                timer = threading.Timer(self.delay, self._send, (response.to_wire(), addr))
                timer.daemon = True
                timer.start()
            else:
                self._send(response.to_wire(), addr)

    def _send(self, wire: bytes, addr: tuple[str, int]) -> None:
        assert self.sock is not None
        with contextlib.suppress(OSError):  # stopped meanwhile
            self.sock.sendto(wire, addr)

    def stop(self) -> None:
        if self.sock is not None:
            # Linux wakes the blocked recvfrom even though an unconnected UDP socket
            # reports ENOTCONN here.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        if self.thread is not None:
            self.thread.join(timeout=5)
        if self.sock is not None:
            self.sock.close()


UPSTREAM_RECORDS = {
    ("www.example.test.", "A"): ["www.example.test. 300 IN A 192.0.2.80"],
    ("outside.test.", "A"): ["outside.test. 300 IN A 192.0.2.1"],
    ("outside.test.", "TXT"): ['outside.test. 300 IN TXT "from upstream"'],
}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """An upstream on 127.0.0.2 answering UPSTREAM_RECORDS."""
    server = Upstream("127.0.0.2", dict(UPSTREAM_RECORDS)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dead_port() -> int:
    """A UDP port on 127.0.0.3 nobody listens on (queries get ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.3", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_service() -> Iterator[Callable[..., DNSService]]:
    """Start extra DNSService instances on 127.0.0.1:0; stopped after the test."""
    started: list[DNSService] = []

    def make(store: ZoneStore, **kwargs: object) -> DNSService:
        service = start_service(store, **kwargs)
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()


@pytest.fixture
def forwarding_store(zone_files: Path) -> ZoneStore:
    store = ZoneStore()
    ZoneDirectory(zone_files, store).rescan()
    return store


__all__ = ["Forwarder"]


@pytest.fixture(scope="session")
def compared_zone_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zones dockzone and BIND are compared on."""
    directory = write_zones(tmp_path_factory.mktemp("compared"), COMPARED_ZONES)
    assert_zone_files_valid(directory)
    return directory


@pytest.fixture(scope="session")
def named(
    tmp_path_factory: pytest.TempPathFactory, compared_zone_files: Path
) -> Iterator[NamedServer]:
    server = NamedServer.start(tmp_path_factory.mktemp("named"), compared_zone_files, free_port())
    try:
        for origin in COMPARED_ZONES:

            def loaded(origin: str = origin) -> None:
                server.answers_soa(origin)

            eventually(loaded, timeout=15)
        yield server
    finally:
        server.stop()
