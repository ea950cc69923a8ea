"""How the UDP loop reads queries and sends answers: `udp_io(sock)`.

Two implementations of one small interface (`UDPIO`):

- `BatchIO`, with the optional C module `dnsserver._udpbatch`: every datagram waiting on the
  socket (up to `BATCH`) is read by one recvmmsg(2), and the answers to a batch leave in
  one sendmmsg(2). Under load this halves the system calls and the wake-ups per query,
  the largest cost of the UDP loop after the answer itself. A peer is the sender's socket
  address as bytes. Its `serve` also answers the queries the loop's answer cache holds,
  in C, so that a cache hit costs no Python.
- `SocketIO`, the stdlib: one recvfrom and one sendto per datagram. A peer is the address
  tuple the socket module gives. Used where the C module was not built (no compiler, not
  Linux) or with `batch=False`.

On a socket bound to every address (0.0.0.0, ::) an answer must leave from the address
the query was sent to, or the client drops it (a host with several addresses, a bridge):
the query's destination comes with the packet (IP_PKTINFO, RFC 3542's IPV6_PKTINFO) and is
handed back as the answer's source, as BIND and Go's miekg/dns do. Both implementations
carry it in the peer.

`receive()` blocks until at least one datagram arrives; an empty datagram or an empty batch
means the socket was shut down (or a client sent nothing): the loop checks whether it is
stopping. `flush(out)` sends a list of (wire, peer) and forgets failures, as a lost UDP
answer is. `send(wire, peer)` sends one at once (the forwarding pool's answers, from other
threads). `host(peer)` is the client's address as text, for the rate limiter, cookies and
network-aware answers.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

_udpbatch: ModuleType | None
try:
    from dnsserver import _udpbatch
except ImportError:  # not built: the stdlib path
    _udpbatch = None

BATCH = 32
"""Datagrams read per recvmmsg call at most (it returns with those waiting, never waits for
more). BIND 9.18 reads through libuv's recvmmsg in batches of 20 to 32."""
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; Python 3.11 lacks the name

Peer = Any
"""Where a query came from and its answer goes: bytes (`BatchIO`) or an address tuple."""
Datagrams = list[tuple[bytes, Peer]]
Send = Callable[[bytes, Peer], None]
"""Sends one answer at once (`UDPIO.send`)."""


Fresh = Callable[[], bool]
Serve = Callable[
    [Fresh, dict[bytes, Any], dict[bytes, Any], list[int], dict[bytes, Any]], Datagrams
]
"""`BatchIO.serve`: receive, answering from the answer cache in C (see `BatchIO`)."""


class UDPIO(Protocol):
    """The UDP loop's I/O (see the module docstring)."""

    serve: Serve | None

    def receive(self) -> Datagrams: ...

    def address(self, peer: Peer) -> bytes: ...

    def flush(self, out: Datagrams) -> None: ...

    def send(self, wire: bytes, peer: Peer) -> None: ...

    def host(self, peer: Peer) -> str: ...


def batching() -> bool:
    """Whether the C module is here, so that `udp_io` reads and sends in batches."""
    return _udpbatch is not None


def udp_io(sock: socket.socket, *, batch: bool = True) -> UDPIO:
    """The I/O for the UDP socket `sock`: in batches when the C module is built and `batch`
    is set, else one datagram per call."""
    wildcard = sock.getsockname()[0] in ("0.0.0.0", "::")
    if wildcard:
        enable_pktinfo(sock)
    if batch and _udpbatch is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        return BatchIO(sock, pktinfo=wildcard)
    return SocketIO(sock, pktinfo=wildcard)


def enable_pktinfo(sock: socket.socket) -> None:
    """Ask the kernel for each datagram's destination (on a wildcard-bound socket)."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)


class BatchIO:
    """recvmmsg/sendmmsg through `dnsserver._udpbatch`. The socket's descriptor is read on
    every call, so a closed socket gives OSError (EBADF), never another socket's data.

    `serve(fresh, cache, negatives, outcomes, prefixes)` is `receive` that also answers,
    in C, what the UDP loop would answer from its answer cache, and returns the rest: when
    ``fresh()`` (called once per batch) says the cache belongs to the zones and networks
    served now, a query whose client's IP address (`address`) is in ``prefixes`` with a
    bytes value is looked up by that value plus the query after its id in ``cache``, then
    ``negatives``; a hit (cycle, slot) sends the query's id plus ``next(cycle)`` and adds
    one to ``outcomes[slot]``. The loop puts a client in ``prefixes`` once it has answered
    it from the cache: its network's key prefix, or a non-bytes value for a client it must
    rate-limit (the limiter's bookkeeping stays in Python). A cache hit then costs no Python
    at all."""

    __slots__ = ("address", "flush", "host", "receive", "send", "serve")

    def __init__(self, sock: socket.socket, *, pktinfo: bool) -> None:
        assert _udpbatch is not None
        module = _udpbatch
        receiver = module.Receiver(BATCH, 65535, pktinfo)
        recv, answer = receiver.recv, receiver.serve
        send = module.send
        fileno = sock.fileno
        self.receive: Callable[[], Datagrams] = lambda: recv(fileno())
        self.serve: Serve | None = lambda *cache: answer(fileno(), *cache)
        self.host: Callable[[Peer], str] = module.host
        self.address: Callable[[Peer], bytes] = module.address

        def flush(out: Datagrams) -> None:
            try:  # noqa: SIM105 (once per batch: try costs less than contextlib.suppress)
                send(fileno(), out)
            except OSError:  # closed: the loop is stopping
                pass

        def send_one(wire: bytes, peer: Peer) -> None:
            send(fileno(), [(wire, peer)])

        self.flush = flush
        self.send = send_one


class SocketIO:
    """One recvfrom/sendto per datagram (recvmsg/sendmsg with the destination on a
    wildcard-bound socket). A peer is (host, port[, flowinfo, scope], pktinfo)."""

    __slots__ = ("_sendto", "receive")

    serve: Serve | None = None  # every query goes through the loop

    def __init__(self, sock: socket.socket, *, pktinfo: bool) -> None:
        if not pktinfo:
            recvfrom = sock.recvfrom
            self.receive: Callable[[], Datagrams] = lambda: [recvfrom(65535)]
            self._sendto: Callable[[bytes, Peer], object] = sock.sendto
            return
        ipv6 = sock.family == socket.AF_INET6
        level, kind = (
            (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO) if ipv6 else (socket.IPPROTO_IP, IP_PKTINFO)
        )
        recvmsg, sendmsg, sendto = sock.recvmsg, sock.sendmsg, sock.sendto
        space = socket.CMSG_SPACE(20)

        def receive() -> Datagrams:
            data, ancillary, _, addr = recvmsg(65535, space)
            for cmsg_level, cmsg_type, value in ancillary:
                if cmsg_level == level and cmsg_type == kind:
                    # in_pktinfo is (ifindex, spec_dst, addr): the answer goes out from addr.
                    source = value if ipv6 else bytes(4) + value[8:12] + bytes(4)
                    return [(data, (*addr, source))]
            return [(data, addr)]

        def send_with_source(wire: bytes, peer: Peer) -> object:
            if len(peer) in (3, 5):  # with the destination receive added
                return sendmsg([wire], [(level, kind, peer[-1])], 0, peer[:-1])
            return sendto(wire, peer)

        self.receive = receive
        self._sendto = send_with_source

    def flush(self, out: Datagrams) -> None:
        sendto = self._sendto
        for wire, peer in out:
            try:  # noqa: SIM105 (per answer: try costs less than contextlib.suppress)
                sendto(wire, peer)
            except OSError:
                pass

    def send(self, wire: bytes, peer: Peer) -> None:
        self._sendto(wire, peer)

    @staticmethod
    def host(peer: Peer) -> str:
        return str(peer[0]) if peer else ""

    @staticmethod
    def address(peer: Peer) -> bytes:
        return str(peer[0]).encode() if peer else b""
