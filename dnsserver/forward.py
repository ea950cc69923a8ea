"""Forwarding names outside the served zones to upstream nameservers.

`Forwarder.query(wire)` sends the client's query to each upstream in turn (UDP, then TCP
when the reply is truncated) until one answers within `timeout`, and returns that reply
with the client's id. A refused or silent upstream fails over to the next. Used by `server`
for out-of-zone names and for CNAME targets outside the zones.
"""

from __future__ import annotations

import logging
import secrets
import socket
import struct
import time
from collections.abc import Sequence

from dnsserver.message import TC

log = logging.getLogger(__name__)

RESOLV_CONF = "/etc/resolv.conf"


def parse_hostport(text: str, default_port: int = 53) -> tuple[str, int]:
    """`1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]:5353` -> (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host, port
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        return host, int(port_text)
    return text, default_port


def read_resolv_conf(path: str = RESOLV_CONF) -> list[tuple[str, int]]:
    """The `nameserver` entries of a resolv.conf (only read, never queried here)."""
    servers: list[tuple[str, int]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    servers.append((parts[1].split("%")[0], 53))
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
    return servers


class Forwarder:
    """Sends queries to upstream nameservers, in order, with a per-upstream timeout."""

    def __init__(self, upstreams: Sequence[tuple[str, int]], timeout: float = 2.0) -> None:
        if not upstreams:
            raise ValueError("a forwarder needs at least one upstream")
        self.upstreams = tuple(upstreams)
        self.timeout = timeout

    @classmethod
    def from_resolv_conf(cls, path: str = RESOLV_CONF, timeout: float = 2.0) -> Forwarder | None:
        """A forwarder to the resolv.conf nameservers, or None when it lists none."""
        servers = read_resolv_conf(path)
        return cls(servers, timeout) if servers else None

    def query(self, wire: bytes) -> bytes | None:
        """The first upstream reply to `wire` (with `wire`'s id), or None if all failed."""
        if len(wire) < 12:
            return None
        client_id = wire[:2]
        for host, port in self.upstreams:
            upstream_id = secrets.token_bytes(2)
            message = upstream_id + wire[2:]
            try:
                reply = self._udp(host, port, message)
                if reply is not None and struct.unpack_from("!H", reply, 2)[0] & TC:
                    reply = self._tcp(host, port, message)
            except OSError as exc:
                log.debug("upstream %s:%d failed: %s", host, port, exc)
                continue
            if reply is not None:
                return client_id + reply[2:]
            log.debug("upstream %s:%d timed out", host, port)
        return None

    def _udp(self, host: str, port: int, message: bytes) -> bytes | None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        deadline = time.monotonic() + self.timeout
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((host, port))
            sock.send(message)
            question_end = _question_end(message)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                sock.settimeout(left)
                try:
                    reply = sock.recv(65535)
                except TimeoutError:
                    return None
                # Accept only the reply to this query: same id, same question.
                if (
                    len(reply) >= question_end
                    and reply[:2] == message[:2]
                    and reply[4:6] == message[4:6]
                    and reply[12:question_end].lower() == message[12:question_end].lower()
                ):
                    return reply

    def _tcp(self, host: str, port: int, message: bytes) -> bytes | None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect((host, port))
                sock.sendall(len(message).to_bytes(2, "big") + message)
                length = int.from_bytes(_recv_exact(sock, 2), "big")
                reply = _recv_exact(sock, length)
            except TimeoutError:
                return None
        return reply if reply[:2] == message[:2] else None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-message")
        chunks += chunk
    return bytes(chunks)


def _question_end(message: bytes) -> int:
    """Offset just past the first question (message built by a client; no pointers)."""
    pos = 12
    while pos < len(message) and message[pos]:
        pos += message[pos] + 1
    return pos + 5
