"""DNSSEC test tools: signed zones served by a real DNSService, the trust anchor a
validator needs, BIND's ``delv``, and a UDP relay that can tamper with answers."""

from __future__ import annotations

import base64
import contextlib
import socket
import socketserver
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.rrset

from dnsserver import DNSService, ZoneStore
from dnsserver.dnssec import ECDSAP256SHA256, ZONE_KEY, SigningKey
from dnsserver.signer import Signer
from dnsserver.zonefile import parse_zone_text
from tests.helpers import eventually, require_binary
from tests.servers import answers_soa

FULLY_VALIDATED = "; fully validated"
NEGATIVE_VALIDATED = "; negative response, fully validated"


@dataclass(frozen=True)
class Keys:
    """A zone's keys as `Signer` asks for them (`dnsserver.signer.KeySet`)."""

    published: tuple[SigningKey, ...]
    ksk: tuple[SigningKey, ...]
    zsk: tuple[SigningKey, ...]

    @classmethod
    def make(cls, algorithm: int = ECDSAP256SHA256, *, split: bool = False) -> Keys:
        """One combined signing key (flags 257), or a KSK (257) and a ZSK (256)."""
        ksk = SigningKey.generate(algorithm)
        if not split:
            return cls((ksk,), (ksk,), (ksk,))
        zsk = SigningKey.generate(algorithm, flags=ZONE_KEY)
        return cls((ksk, zsk), (ksk,), (zsk,))

    def trust_anchors(self, origin: str) -> str:
        """A named.conf / delv ``trust-anchors`` statement for the zone's KSKs."""
        return _trust_anchors(origin, ((k.flags, k.algorithm, k.dnskey[4:]) for k in self.ksk))


def _trust_anchors(origin: str, keys: Iterable[tuple[int, int, bytes]]) -> str:
    """A ``trust-anchors`` statement of static keys: (flags, algorithm, public key)."""
    lines = "".join(
        f'    {origin} static-key {flags} 3 {algorithm} "{base64.b64encode(public).decode()}";\n'
        for flags, algorithm, public in keys
    )
    return f"trust-anchors {{\n{lines}}};\n"


SECURE_ENTRY_POINT = 257
"""DNSKEY flags of a KSK or combined key (ZONE and SEP): what a trust anchor names."""


def served_dnskeys(port: int, origin: str) -> dns.rrset.RRset:
    """``origin``'s DNSKEY RRset as 127.0.0.1:``port`` serves it (asked over TCP, DO set)."""
    query = dns.message.make_query(origin, "DNSKEY", want_dnssec=True)
    response = dns.query.tcp(query, "127.0.0.1", port=port, timeout=5)
    return response.find_rrset(response.answer, query.question[0].name, 1, dns.rdatatype.DNSKEY)


def served_trust_anchors(port: int, origin: str) -> str:
    """A ``trust-anchors`` statement for the KSKs (flags 257) that 127.0.0.1:``port``
    serves in ``origin``'s DNSKEY RRset: how a user trusts a zone whose keys a running
    server made."""
    rrset = served_dnskeys(port, origin)
    keys = [(k.flags, k.algorithm, k.key) for k in rrset if k.flags == SECURE_ENTRY_POINT]
    assert keys, rrset.to_text()
    return _trust_anchors(origin, keys)


def delv_lines(output: str) -> list[str]:
    """delv's output, a line each with single spaces."""
    return [" ".join(line.split()) for line in output.splitlines()]


def assert_validated(output: str, *expected: str) -> None:
    """delv's first line is the positive verdict and every ``expected`` line is there."""
    assert output.startswith(FULLY_VALIDATED + "\n"), output
    lines = delv_lines(output)
    for line in expected:
        assert line in lines, output


def assert_denial_validated(output: str, name: str, rdtype: str, kind: str) -> None:
    """delv validated a negative answer of ``kind`` (NXDOMAIN, or NXRRSET for NODATA):
    ``; web6.docker. 10 IN \\-AAAA ;-$NXRRSET`` (any TTL)."""
    assert output.startswith(NEGATIVE_VALIDATED + "\n"), output
    prefix = f"; {name} "
    suffix = f" IN \\-{'ANY' if kind == 'NXDOMAIN' else rdtype} ;-${kind}"
    assert any(line.startswith(prefix) and line.endswith(suffix) for line in delv_lines(output)), (
        output
    )


@dataclass
class SignedServer:
    """A DNSService on 127.0.0.1 serving one signed zone, and a delv anchor file for it."""

    service: DNSService
    store: ZoneStore
    keys: Keys
    origin: str
    anchor: Path

    @property
    def port(self) -> int:
        return int(self.service.addresses[0][1])

    def delv(self, name: str, rdtype: str = "A", *, port: int | None = None) -> str:
        """delv against this server (or another ``port`` in front of it)."""
        return delv(port or self.port, self.anchor, self.origin, name, rdtype)


@contextlib.contextmanager
def signed_server(
    zone_text: str, origin: str, keys: Keys, workdir: Path, **service_args: object
) -> Iterator[SignedServer]:
    """Serve ``zone_text`` signed with ``keys`` until the block ends."""
    signer = Signer(lambda _origin: keys)
    store = ZoneStore({origin: parse_zone_text(zone_text, origin)}, signer=signer)
    anchor = workdir / "anchor.conf"
    anchor.write_text(keys.trust_anchors(origin))
    service = DNSService(store, [("127.0.0.1", 0)], **service_args)  # type: ignore[arg-type]
    service.start()
    try:
        server = SignedServer(service, store, keys, origin, anchor)
        eventually(lambda: answers_soa("127.0.0.1", server.port, origin), timeout=5)
        yield server
    finally:
        service.stop()


def delv(port: int, anchor: Path, origin: str, name: str, rdtype: str = "A") -> str:
    """Run ``delv`` against 127.0.0.1:``port`` with ``origin`` as the root of trust; its
    stdout and stderr (the verdict comes first: ``; fully validated``...)."""
    binary = require_binary("delv")
    result = subprocess.run(
        [binary, "@127.0.0.1", "-p", str(port), "-a", str(anchor), f"+root={origin}", name, rdtype],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return result.stdout + result.stderr


class Relay(socketserver.ThreadingUDPServer):
    """A UDP relay on 127.0.0.1 in front of a server; ``tamper`` rewrites each response
    (a test double for a man in the middle). A thread per query, 2 s per upstream reply."""

    daemon_threads = True

    def __init__(self, upstream: tuple[str, int], tamper: Callable[[bytes], bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.upstream = upstream
        self.tamper = tamper

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _RelayHandler(socketserver.BaseRequestHandler):
    server: Relay

    def handle(self) -> None:
        query, reply_socket = self.request
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            out.settimeout(2)
            try:
                out.sendto(query, self.server.upstream)
                reply = out.recv(65535)
            except OSError:  # also a timeout: the client retries
                return
        with contextlib.suppress(OSError):
            reply_socket.sendto(self.server.tamper(reply), self.client_address)


@contextlib.contextmanager
def relay(upstream_port: int, tamper: Callable[[bytes], bytes] | None = None) -> Iterator[Relay]:
    """A running `Relay` to 127.0.0.1:``upstream_port`` until the block ends."""
    with Relay(("127.0.0.1", upstream_port), tamper or (lambda wire: wire)) as running:
        thread = threading.Thread(target=running.serve_forever, args=(0.1,), daemon=True)
        thread.start()
        try:
            yield running
        finally:
            running.shutdown()
            thread.join(timeout=5)


def replace_address(old: str, new: str) -> Callable[[bytes], bytes]:
    """A ``tamper`` that rewrites every A rdata ``old`` to ``new`` (4 bytes after an A
    record's RDLENGTH of 4); other bytes pass unchanged."""
    before = b"\x00\x04" + socket.inet_aton(old)
    after = b"\x00\x04" + socket.inet_aton(new)

    def tamper(wire: bytes) -> bytes:
        return wire.replace(before, after)

    return tamper
