"""The UDP/TCP DNS service: `DNSService(store, listen=...)`, `start()`, `stop()`.

Each UDP socket is served by one thread running a blocking loop: it reads every query
waiting (recvmmsg where the C module `dnsserver._udpbatch` is built, else recvfrom; see
`dnsserver.udpio`), answers them, and sends the answers together. Its hot path answers
from a response cache (looked up in C, `udpio.BatchIO.serve`, for clients it has answered
from it before, where the module is built): the full wire response keyed by the query's bytes
after the id (flags, counts, question as sent, OPT record), with the client's id patched
in. The cache belongs to one `ZoneIndex`, so a cached answer is never older than the zones
it came from. When the index is swapped for a patch of it (`ZoneStore.patch`), the loop
drops only the answers made from a changed name: beside the cache it keeps, per name, the
keys of the cached answers made from it (`Resolution.depends`), built only when an answer
is cached. Any other swap (a reload, zones added or removed, patches the loop missed, new
`networks`) starts a new cache. Negative
answers (NXDOMAIN, NODATA) and REFUSED are cached like positive ones; rotated A/AAAA
answers are cached as a cycle of pre-rendered rotations. A miss goes through
`message.parse_query` and `answer.resolve`. Forwarded questions never touch the cache and
run on a small thread pool, so a slow upstream cannot stall the socket. TCP: one reading
thread per connection, messages up to 64 KiB, a bounded number of connections. Pipelined
queries (RFC 7766 6.2.1.1) are answered as they are read; one that needs an upstream runs
on the same pool and its response is written when done, so the answers behind it are not
held up (out of order, RFC 7766 7). Idle connections close after `tcp_idle_timeout` (RFC
7766 6.2.3), which responses announce in an edns-tcp-keepalive option (RFC 7828) when the
query carried one.
With `rrl` set, every UDP response, cached or built, passes `RateLimiter.check` just
before it is sent (`dnsserver.rrl`).

Statistics (`stats()`) are plain integers: each UDP thread owns its `Counters`; a cached
answer carries its outcome slot, so a hit costs one list increment and is not timed; only
answers that are built (cache misses, TCP, forwarding) are timed with `perf_counter_ns`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import ipaddress
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dnsserver.answer import resolve
from dnsserver.cookies import COOKIE, CookieError, Cookies, Verdict
from dnsserver.errors import MessageError
from dnsserver.forward import Forwarder
from dnsserver.forwardcache import ForwardCache
from dnsserver.message import (
    BADVERS,
    CLASS_ANY,
    CLASS_IN,
    FORMERR,
    NOTIMP,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    TCP_KEEPALIVE,
    Query,
    add_edns_option,
    edns_option,
    make_query,
    parse_query,
    parse_response,
    render_bare,
    render_error,
    render_response,
)
from dnsserver.name import reverse_network
from dnsserver.negative import NegativeAnswers
from dnsserver.notify import Notifier
from dnsserver.proof import add_proofs
from dnsserver.rdata import AAAA, PTR, A
from dnsserver.rrl import SLIP, RateLimiter, slip_response
from dnsserver.stats import Counters, DNSStats
from dnsserver.transfer import Transfers, is_transfer, signed_at
from dnsserver.udpio import Datagrams, Peer, Send, udp_io
from dnsserver.zone import RRset
from dnsserver.zonestore import ZoneIndex, ZoneStore

log = logging.getLogger(__name__)

MAX_ROTATIONS = 16
NO_RECORDS = b"\x00\x00"
NEGATIVE_CACHE_SIZE = 10_000
"""NXDOMAIN answers kept per UDP socket, apart from the answer cache (`NegativeAnswers`)."""
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TCP_MAX_MESSAGE = 65535
TCP_READ_SIZE = 65536
"""Bytes read from a TCP connection at a time: pipelined queries arrive together."""


@dataclass(slots=True)
class _Reply:
    wire: bytes | None = None  # None: drop the query
    variants: tuple[bytes, ...] = ()  # cacheable renderings (rotations), wire == variants[0]
    deferred: Callable[[], bytes | None] | None = None  # needs an upstream: run off-thread
    depends: Iterable[str] = ()  # names the answer was made from (Resolution.depends)
    cookie: bytes = b""
    """The COOKIE option of this query's response, when the query's OPT held only a
    COOKIE: ``variants`` are then rendered without it (cached by the query without its
    cookie, `_cookie_size`) and ``wire`` has it spliced in (`_with_option`)."""


NSID = 3
"""The EDNS option code of the name server identifier (RFC 5001)."""
BADCOOKIE = 23
"""The extended RCODE of RFC 7873 5.2.3."""
_COOKIE_TAILS = (
    (12, b"\x00\x0a\x00\x08", (12).to_bytes(2, "big")),  # a client cookie alone
    (28, b"\x00\x0a\x00\x18", (28).to_bytes(2, "big")),  # with a 16-byte server cookie
)


def _cookie_size(data: bytes) -> int:
    """The length of the COOKIE option (code and length included) that ends ``data``
    when it is the only option of an OPT record ending the message, else 0. Ours are the
    only server cookies that can be valid, so only their length (16) is looked for."""
    size = len(data)
    for length, head, rdlen in _COOKIE_TAILS:
        start = size - length
        if (
            start > 23
            and data[start : start + 4] == head
            and data[start - 2 : start] == rdlen
            and data[start - 11 : start - 8] == b"\x00\x00\x29"
        ):
            return length
    return 0


def _with_option(wire: bytes, option: bytes) -> bytes:
    """``wire`` (whose last RR is an OPT record without options) with ``option`` in its
    OPT record."""
    return wire[:-2] + len(option).to_bytes(2, "big") + option


class DNSService:
    """An authoritative DNS server for the zones in `store`, on UDP and TCP.

    `listen` is a list of (address, port); port 0 picks a free port (the same for UDP and
    TCP), see `addresses`. `forwarder` None answers REFUSED for names outside the zones
    (`no_rec`). `rotate` turns round-robin A/AAAA rotation on.

    `networks` (settable at any time, e.g. the subnets of Docker networks) makes answers
    network-aware: a client whose address lies in one of them gets, of an A/AAAA RRset, only
    the addresses in that same network, when there are any; otherwise every address.

    TCP (RFC 7766, as BIND): a connection that sent no query for `tcp_idle_timeout` seconds
    (BIND's tcp-idle-timeout, 30 s) with none in flight is closed; a new one gets
    `tcp_initial_timeout` (BIND's tcp-initial-timeout; None: the idle timeout) for its first.
    At most `max_tcp_in_flight` queries of one connection wait for an upstream at a time;
    beyond that the connection is not read until one is answered. All settable at any time.

    `reverse_authority` (settable at any time) limits what the reverse zones speak for, as
    SkyDNS does: None (the default) answers every name of every served zone itself; a
    tuple of networks makes a PTR question about an address outside all of them, which
    the served reverse zone has no answer for, go to the forwarder instead of getting
    NXDOMAIN (a LAN host beside a published address keeps its upstream name).

    `rrl` (set before `start`) rate-limits UDP responses (`dnsserver.rrl`); clients inside
    `networks` (the Docker networks dockzone watches) are never limited.
    `udp_batch` False reads one datagram per system call even where the C module that reads
    them in batches is built (`dnsserver.udpio`).
    `transfers` answers AXFR, IXFR and TSIG-signed queries (`dnsserver.transfer`; the
    default refuses every transfer); `notifier` (`dnsserver.notify`) sends NOTIFY to
    secondaries from `start()` to `stop()`.
    """

    def __init__(
        self,
        store: ZoneStore,
        listen: Sequence[tuple[str, int]] = (("127.0.0.1", 5354),),
        *,
        forwarder: Forwarder | None = None,
        rotate: bool = True,
        max_udp_size: int = 4096,
        tcp_idle_timeout: float = 30.0,
        tcp_initial_timeout: float | None = None,
        max_tcp_clients: int = 128,
        max_tcp_in_flight: int = 32,
        cache_size: int = 100_000,
        forward_workers: int = 16,
        cookies: bool = True,
        require_cookie: bool = False,
        nsid: bytes = b"",
        rrl: RateLimiter | None = None,
        transfers: Transfers | None = None,
        notifier: Notifier | None = None,
        udp_batch: bool = True,
    ) -> None:
        self.store = store
        self.udp_batch = udp_batch
        self.transfers = transfers or Transfers()
        self.notifier = notifier
        self.cookies = Cookies() if cookies else None
        self.require_cookie = require_cookie and cookies
        self.nsid = nsid
        self.listen = list(listen)
        self.forwarder = forwarder
        self.rotate = rotate
        self.max_udp_size = max(512, min(max_udp_size, 65535))
        self.tcp_idle_timeout = tcp_idle_timeout
        self.tcp_initial_timeout = tcp_initial_timeout
        self.max_tcp_clients = max_tcp_clients
        self.max_tcp_in_flight = max_tcp_in_flight
        self.cache_size = cache_size
        self.rrl = rrl
        self._forward_workers = forward_workers
        self._max_pending = forward_workers * 16
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._stopping = threading.Event()
        self._udp: list[socket.socket] = []
        self._tcp: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.addresses: list[tuple[str, int]] = []
        self._networks: tuple[IPNetwork, ...] = ()
        self._reverse_authority: tuple[IPNetwork, ...] | None = None
        self._client_network: dict[str, int] = {}
        self._counters: list[Counters] = []
        self._tcp_counters = Counters("tcp", shared=True)
        self._forward_answers: tuple[
            ZoneIndex | None, tuple[IPNetwork, ...] | None, ForwardCache
        ] = (None, None, ForwardCache())
        self._tcp_answers: tuple[
            ZoneIndex | None,
            tuple[IPNetwork, ...],
            tuple[IPNetwork, ...] | None,
            dict[bytes, Iterator[bytes]],
        ] = (None, (), None, {})
        self._forward_counters = Counters("udp", shared=True)

    def stats(self) -> DNSStats:
        """Every query counted so far, summed over the serving threads."""
        result = DNSStats()
        for counters in [*self._counters, self._tcp_counters, self._forward_counters]:
            result.add(counters)
        result.transfers = dataclasses.asdict(self.transfers.counts)
        if self.notifier is not None:
            result.notifies = dataclasses.asdict(self.notifier.counts)
        return result

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        return self._networks

    @networks.setter
    def networks(self, networks: Sequence[IPNetwork]) -> None:
        new = tuple(networks)
        if new != self._networks:
            self._client_network = {}  # replaced, not cleared: readers keep a consistent map
            self._networks = new

    @property
    def reverse_authority(self) -> tuple[IPNetwork, ...] | None:
        return self._reverse_authority

    @reverse_authority.setter
    def reverse_authority(self, networks: Sequence[IPNetwork] | None) -> None:
        new = None if networks is None else tuple(networks)
        if new != self._reverse_authority:
            self._reverse_authority = new  # a new object: the UDP threads drop their caches

    def network_of(self, client: str) -> int:
        """The index of the first of `networks` holding `client`, or -1."""
        cache = self._client_network
        found = cache.get(client)
        if found is None:
            found = -1
            try:
                address = ipaddress.ip_address(client.split("%", 1)[0])
            except ValueError:
                address = None
            for number, network in enumerate(self._networks):
                if address is not None and address in network:
                    found = number
                    break
            if len(cache) < 65536:
                cache[client] = found
        return found

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind every listen address and start serving; raises OSError when a bind fails."""
        self._stopping.clear()
        self._executor = ThreadPoolExecutor(self._forward_workers, thread_name_prefix="dns-fwd")
        try:
            for host, port in self.listen:
                for udp, tcp in _bind_pairs(host, port):
                    self._udp.append(udp)
                    self._tcp.append(tcp)
                    self.addresses.append((udp.getsockname()[0], udp.getsockname()[1]))
        except OSError:
            self._close_sockets()
            raise
        for udp in self._udp:
            self._spawn(self._serve_udp, udp, "dns-udp")
        for tcp in self._tcp:
            self._spawn(self._serve_tcp, tcp, "dns-tcp")
        log.info("DNS listening on %s", ", ".join(f"{h}:{p}" for h, p in self.addresses))
        if self.notifier is not None:
            self.notifier.start()

    def stop(self) -> None:
        """Stop serving and close every socket; returns when the server threads ended."""
        self._stopping.set()
        if self.notifier is not None:
            self.notifier.stop()
        for sock in self._udp + self._tcp:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._clients_lock:
            for conn in self._clients:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        self._close_sockets()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._threads.clear()
        self.addresses.clear()

    def __enter__(self) -> DNSService:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _spawn(
        self, target: Callable[[socket.socket], None], sock: socket.socket, name: str
    ) -> None:
        thread = threading.Thread(target=target, args=(sock,), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _close_sockets(self) -> None:
        for sock in self._udp + self._tcp:
            sock.close()
        self._udp.clear()
        self._tcp.clear()

    # -- answering -------------------------------------------------------------------------

    def answer(self, data: bytes, udp: bool = True, client: str = "") -> bytes | None:
        """The response to one query message from `client` (forwarding inline), or None to
        drop it."""
        network = self.network_of(client) if client and self._networks else -1
        reply = self._answer(data, self.store.snapshot(), udp, network, client)
        if reply.deferred is not None:
            return reply.deferred()
        return reply.wire

    def _answer(
        self, data: bytes, index: ZoneIndex, udp: bool, network: int = -1, client: str = ""
    ) -> _Reply:
        if len(data) < 12 or data[2] & 0x80:
            return _Reply()  # no header, or a response: never answer (no reflection loops)
        if data[2] & 0x78:  # an OPCODE other than QUERY, with or without a question
            return _Reply(render_bare(data, NOTIMP))
        try:
            query = parse_query(data)
        except MessageError:
            return _Reply(render_bare(data, FORMERR))
        if is_transfer(query) or data[10] or data[11] > query.edns:
            tsig_at = signed_at(data, query)
            if tsig_at is not None or is_transfer(query):
                return self._transfer_udp(
                    data, query, index, udp=udp, network=network, client=client, tsig_at=tsig_at
                )
        if query.edns and query.edns_version != 0:
            return _Reply(render_response(query, BADVERS, aa=False, ra=False))
        ra = self.forwarder is not None
        cookie = options = b""
        if query.options:
            try:
                cookie, options, bad_cookie = self._edns_options(query, client)
            except CookieError:
                return _Reply(render_error(data, FORMERR, query))
            if bad_cookie and udp and self.require_cookie:
                return _Reply(render_response(query, BADCOOKIE, aa=False, ra=ra, options=cookie))
        # A lone COOKIE: the answer is cached without it and the cookie spliced in per query.
        # Any other option leaves the answer as it is for the same bytes (NSID is fixed).
        lone = bool(cookie) and len(query.options) == 1 and _cookie_size(data) > 0
        cacheable = lone or not cookie  # the transport keeps them: UDP and TCP caches
        extra = options if lone else cookie + options

        def reply(variants: tuple[bytes, ...], depends: Iterable[str] = ()) -> _Reply:
            wire = variants[0]
            if lone:
                wire = _with_option(wire, cookie)
            return _Reply(
                wire,
                variants if cacheable and wire else (),
                depends=depends,
                cookie=cookie if lone else b"",
            )

        if query.qclass not in (CLASS_IN, CLASS_ANY):  # transfers went to _transfer_udp
            return _Reply(render_error(data, REFUSED, query, cookie + options))
        limit = min(query.udp_size, self.max_udp_size) if udp else TCP_MAX_MESSAGE
        result = resolve(index, query.qname, query.qtype, query.do)
        if query.do and result.in_zone and index.signed:
            add_proofs(index, result)  # signatures cover whole RRsets: no network subset
        elif network >= 0 and result.answer:
            result.answer = _same_network(result.answer, self._networks[network])
        forwarder = self.forwarder
        if (
            query.qtype == PTR
            and not result.answer
            and forwarder is not None
            and self.reverse_authority is not None
            and not self._speaks_for(query.qname)
        ):
            return _Reply(deferred=lambda: self._forward(data, query, udp, index))
        if not result.in_zone:
            if forwarder is None:
                refused = render_error(data, REFUSED, query, extra)
                return reply((refused,)) if refused else _Reply()
            return _Reply(deferred=lambda: self._forward(data, query, udp, index))
        if result.external is not None and forwarder is not None:
            external = result.external

            def chase() -> bytes | None:
                links, rcode = self._chase(external, query.qtype)
                return render_response(
                    query,
                    rcode if rcode is not None else result.rcode,
                    aa=True,
                    ra=ra,
                    answer=result.answer + links,
                    authority=result.authority if rcode is None else [],
                    limit=limit,
                    udp=udp,
                    edns_size=self.max_udp_size,
                    options=cookie + options,
                )

            return _Reply(deferred=chase)
        rotations = 1
        if self.rotate:
            for rrset in result.answer:
                if rrset.rdtype in (A, AAAA):
                    rotations = max(rotations, min(len(rrset.rdatas), MAX_ROTATIONS))
        variants = tuple(
            render_response(
                query,
                result.rcode,
                aa=result.aa,
                ra=ra,
                answer=result.answer,
                authority=result.authority,
                additional=result.additional,
                owner=result.owner,
                limit=limit - len(cookie) if lone else limit,
                udp=udp,
                edns_size=self.max_udp_size,
                rotation=k,
                options=extra,
            )
            for k in range(rotations)
        )
        return reply(variants, result.depends)

    def _edns_options(self, query: Query, client: str) -> tuple[bytes, bytes, bool]:
        """The response's COOKIE option, its other options (NSID), and whether the query's
        server cookie was missing or bad. Raises CookieError for a malformed COOKIE."""
        cookie = options = b""
        bad = False
        for code, value in query.options:
            if code == COOKIE and self.cookies is not None and not cookie:
                cookie, verdict = self.cookies.answer(value, client)
                bad = verdict is not Verdict.VALID
            elif code == NSID and self.nsid and not value:
                options += edns_option(NSID, self.nsid)
        return cookie, options, bad

    def _forwarded(self, index: ZoneIndex) -> ForwardCache:
        """The upstream answers kept for ``index`` (a new zone index, or a new reverse
        authority, starts afresh: a name forwarded before may be answered here now)."""
        made, authority, cache = self._forward_answers
        if made is not index or authority is not self._reverse_authority:
            cache = ForwardCache()
            self._forward_answers = (index, self._reverse_authority, cache)
        return cache

    def _speaks_for(self, qname: str) -> bool:
        """Whether a PTR name stands for an address of `reverse_authority` (or for no
        address at all: a zone apex, a name of another form)."""
        network = reverse_network(qname)
        if network is None or network.num_addresses != 1:
            return True
        address = network.network_address
        return any(address in owned for owned in self.reverse_authority or ())

    def _forward(
        self, data: bytes, query: Query, udp: bool, index: ZoneIndex | None = None
    ) -> bytes | None:
        assert self.forwarder is not None
        reply = self.forwarder.query(data)
        if reply is None:
            return render_error(data, SERVFAIL, query)
        limit = min(query.udp_size, self.max_udp_size) if udp else TCP_MAX_MESSAGE
        if udp and index is not None and len(reply) <= limit:
            made, authority, cache = self._forward_answers
            if made is index and authority is self._reverse_authority:
                cache.put(data, reply)  # for the UDP threads' next miss (`_forwarded`)
        if len(reply) > limit:
            try:
                response = parse_response(reply)
            except MessageError:
                return render_error(data, SERVFAIL, query)
            return render_response(
                query, response.rcode, aa=False, ra=True, answer=response.answer, limit=limit
            )
        return reply

    def _chase(self, target: str, qtype: int) -> tuple[list[RRset], int | None]:
        """Resolve a CNAME target outside the zones upstream: (answer RRs, rcode or None)."""
        assert self.forwarder is not None
        reply = self.forwarder.query(make_query(0, target, qtype))
        if reply is None:
            return [], None
        try:
            response = parse_response(reply)
        except MessageError:
            return [], None
        if response.rcode == NXDOMAIN:
            return list(response.answer), NXDOMAIN
        return list(response.answer), None

    # -- UDP -------------------------------------------------------------------------------

    def _serve_udp(self, sock: socket.socket) -> None:
        io = udp_io(sock, batch=self.udp_batch)
        receive, flush, host, address, serve = io.receive, io.flush, io.host, io.address, io.serve
        out: Datagrams = []  # the answers to one batch of queries, sent together
        queue = out.append
        snapshot = self.store.snapshot
        stopping = self._stopping.is_set
        answer = self._answer
        cache_size = self.cache_size
        counters = Counters("udp")
        self._counters.append(counters)
        outcomes = counters.outcomes
        slot = counters.slot
        clock = time.perf_counter_ns
        cookies = self.cookies
        require_cookie = self.require_cookie
        forwarder = self.forwarder
        rrl = self.rrl
        monotonic = time.monotonic

        def send(wire: bytes, query: bytes, peer: Peer, network: int) -> None:
            """Queue a response made off the answer cache, through the rate limiter
            (clients in the served networks are exempt). The cache hit path does the same
            inline."""
            if rrl is not None and network < 0:
                verdict = rrl.check(host(peer), query, wire[3] & 15, monotonic())
                if verdict:
                    _limit(verdict, query, peer, queue, counters)
                    return
            queue((wire, peer))

        cache: dict[bytes, tuple[Iterator[bytes], int]] = {}
        # Answers to queries whose OPT held a lone COOKIE, by the query without that option,
        # rendered without it up to the OPT's RDLENGTH: the cookie made for this query ends it.
        cookied: dict[bytes, tuple[Iterator[bytes], int]] = {}
        negative: NegativeAnswers | None = None  # NXDOMAIN from templates, per index
        # Its answers, by query: apart from `cache`, and smaller, so that a flood of random
        # names cannot push the answers of names that exist out.
        negatives: dict[bytes, tuple[Iterator[bytes], int]] = {}
        # name -> keys of the cached answers made from it. Keys of answers dropped or
        # replaced since stay listed (dropping one again is harmless); `listed` counts them
        # all, so the lists cannot outgrow the cache for long.
        users: dict[str, list[bytes]] = {}
        listed = 0
        cache_index: ZoneIndex | None = None
        cache_networks: tuple[IPNetwork, ...] = ()
        cache_authority: tuple[IPNetwork, ...] | None = None
        # With `serve` (BatchIO), the C module answers cache hits itself (udpio.BatchIO):
        # for the clients in `prefixes` (IP address -> key prefix; a non-bytes value: rate-
        # limited, left to this loop), put there by their first hit that reached this loop,
        # and only while `fresh()` says the cache is current.
        prefixes: dict[bytes, bytes | int] = {}

        def fresh() -> bool:
            return (
                snapshot() is cache_index
                and self._networks is cache_networks
                and self._reverse_authority is cache_authority
            )

        while True:
            if out:
                flush(out)
                out.clear()
            try:
                if serve is None:
                    batch = receive()
                else:
                    batch = serve(fresh, cache, negatives, outcomes, prefixes)
            except OSError:
                if stopping():
                    return
                continue
            if not batch and stopping():
                return
            # Once per batch: the zones or networks may have changed since the last.
            index = snapshot()
            networks = self._networks
            authority = self._reverse_authority
            if (
                index is not cache_index
                or networks is not cache_networks
                or authority is not cache_authority
            ):
                changed = index.changed_names
                if (
                    changed is not None
                    and cache_index is not None
                    and index.base == cache_index.generation
                    and networks is cache_networks
                    and authority is cache_authority
                ):
                    for name in changed:  # a patch: drop the answers made from changed names
                        keys = users.pop(name, None)
                        if keys is not None:
                            listed -= len(keys)
                            for stale in keys:
                                cache.pop(stale, None)
                                cookied.pop(stale, None)
                    if any(origin in changed for origin in index.zones):
                        negatives = {}  # names came or went, or a new SOA
                else:  # new zones or new networks: every cached answer may differ
                    cache = {}
                    cookied = {}
                    negatives = {}
                    users = {}
                    listed = 0
                    prefixes = {}
                negative = None
                cache_index = index
                cache_networks = networks
                cache_authority = authority
            for data, peer in batch:
                key = data[2:]
                network = -1
                prefix = b""
                if networks and peer:
                    network = self.network_of(host(peer))
                    if network >= 0:
                        prefix = network.to_bytes(2, "big") + b"\xff"
                        key = prefix + key
                hit = cache.get(key)
                if hit is None:
                    hit = negatives.get(key)
                if hit is not None:
                    if serve is not None:  # the C module may answer its next hits itself
                        if len(prefixes) >= 65536:
                            prefixes.clear()
                        prefixes[address(peer)] = prefix if rrl is None or network >= 0 else 0
                    cycle, number = hit
                    outcomes[number] += 1
                    wire = next(cycle)
                    if rrl is not None and network < 0:
                        verdict = rrl.check(host(peer), data, wire[1] & 15, monotonic())
                        if verdict:
                            _limit(verdict, data, peer, queue, counters)
                            continue
                    queue((data[:2] + wire, peer))
                    continue
                if not data:
                    if stopping():
                        return
                    continue
                counters.misses += 1
                # A question name with capitals (a resolver's 0x20 case randomisation makes
                # every query new) is looked up by its lowercased form. What is kept under
                # that has the name in lowercase; the name as asked is put back, and the
                # answer's names that point into the question take its case, as the general
                # path renders them. `end`: the first zero byte, at most the name's end
                # (label lengths are below 64, capitals 65 to 90: only the name's bytes change).
                asked = lowered = b""
                end = data.find(0, 12)
                if end > 12:
                    question = data[12:end]
                    lowered = question.lower()
                    if lowered != question:
                        asked = question
                        key = key[: len(key) - len(data) + 12] + lowered + data[end:]
                        hit = cache.get(key)
                        if hit is not None:
                            cycle, number = hit
                            outcomes[number] += 1
                            counters.misses -= 1
                            wire = next(cycle)
                            send(
                                data[:2] + wire[:10] + asked + wire[end - 2 :], data, peer, network
                            )
                            continue
                # A COOKIE needs an OPT record: no additional records, no cookie to look for.
                cut = _cookie_size(data) if cookies is not None and data[10:12] != NO_RECORDS else 0
                option = b""
                if cut:  # a lone COOKIE: the answer without it may be cached
                    assert cookies is not None
                    option, judged = cookies.answer(data[len(data) - cut + 4 :], host(peer))
                    if require_cookie and judged is not Verdict.VALID:
                        cut = 0  # BADCOOKIE, from the general path
                    else:
                        hit = cookied.get(key[:-cut])
                        if hit is not None:
                            cycle, number = hit
                            outcomes[number] += 1
                            counters.misses -= 1
                            wire = next(cycle)
                            if asked:
                                wire = wire[:10] + asked + wire[end - 2 :]
                            send(data[:2] + wire + option, data, peer, network)
                            continue
                if negative is None:
                    negative = NegativeAnswers(
                        index, ra=self.forwarder is not None, edns_size=self.max_udp_size
                    )
                made = negative.answer(data, option if cut else b"")
                if made is not None:
                    number = slot(made)
                    if not cut:
                        if len(negatives) >= NEGATIVE_CACHE_SIZE:
                            negatives.clear()
                        negatives[key] = (itertools.repeat(made[2:]), number)
                    outcomes[number] += 1
                    send(made, data, peer, network)
                    continue
                if forwarder is not None:
                    kept = self._forwarded(index).get(data)
                    if kept is not None:
                        outcomes[slot(kept)] += 1
                        send(kept, data, peer, network)
                        continue
                started = clock()
                try:
                    reply = answer(data, index, True, network, host(peer))
                except Exception:
                    log.exception("failed to answer a UDP query")
                    reply = _Reply(render_error(data, SERVFAIL))
                if reply.deferred is not None:
                    self._defer(reply.deferred, io.send, peer)
                    continue
                # (Answers echo the question as asked; one that did not is not kept.)
                if reply.variants and (not asked or reply.variants[0][12:end] == asked):
                    if len(cache) + len(cookied) >= cache_size or listed >= 4 * cache_size:
                        cache.clear()
                        cookied.clear()
                        users.clear()
                        listed = 0
                    if reply.cookie:
                        rdlen = len(reply.cookie).to_bytes(2, "big")
                        heads = [variant[2:-2] + rdlen for variant in reply.variants]
                        key = key[:-cut]
                        store = cookied
                    else:
                        heads = [variant[2:] for variant in reply.variants]
                        store = cache
                    if asked:  # kept by the lowercased name: kept with it (see above)
                        heads = [head[:10] + lowered + head[end - 2 :] for head in heads]
                    cycle = itertools.cycle(heads)
                    if len(heads) > 1:
                        next(cycle)  # the first variant goes out right now
                    store[key] = (cycle, slot(reply.wire or reply.variants[0]))
                    for name in reply.depends:
                        keys = users.get(name)
                        if keys is None:
                            users[name] = [key]
                        else:
                            keys.append(key)
                        listed += 1
                if reply.wire is not None:
                    send(data[:2] + reply.wire[2:], data, peer, network)
                counters.answered(reply.wire, clock() - started)

    def _defer(self, job: Callable[[], bytes | None], send: Send, peer: Peer) -> None:
        with self._pending_lock:
            if self._pending >= self._max_pending or self._executor is None:
                return  # overloaded: drop, the client retries
            self._pending += 1
        try:
            self._executor.submit(self._run_deferred, job, send, peer)
        except RuntimeError:  # shutting down
            with self._pending_lock:
                self._pending -= 1

    def _run_deferred(self, job: Callable[[], bytes | None], send: Send, peer: Peer) -> None:
        started = time.perf_counter_ns()
        wire = None
        try:
            wire = job()
            if wire is not None:
                send(wire, peer)
        except Exception:
            log.exception("failed to forward a query")
        finally:
            self._forward_counters.answered_locked(wire, time.perf_counter_ns() - started)
            with self._pending_lock:
                self._pending -= 1

    # -- TCP -------------------------------------------------------------------------------

    def _serve_tcp(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                conn, peer = listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            with self._clients_lock:
                if len(self._clients) >= self.max_tcp_clients:
                    conn.close()
                    continue
                self._clients.add(conn)
            threading.Thread(
                target=self._serve_connection,
                args=(conn, str(peer[0])),
                name="dns-tcp-conn",
                daemon=True,
            ).start()

    def _serve_connection(self, conn: socket.socket, client: str = "") -> None:
        connection = _Connection(conn, self.max_tcp_in_flight)
        stopping = self._stopping.is_set
        try:
            while not stopping():
                messages = self._read_queries(connection)
                if messages is None:
                    return
                network = self.network_of(client) if client and self._networks else -1
                out: list[bytes] = []
                for data in messages:
                    self._answer_tcp(connection, data, client, network, out)
                if out:
                    connection.send_many(out)
        except OSError:
            pass  # timeouts, resets: the client is gone
        finally:
            # A client may send its queries and close its side: answer what is in flight
            # (a forward ends within the forwarder's timeouts; this wait is only a bound).
            connection.wait_idle(stopping, self.tcp_idle_timeout)
            with self._clients_lock:
                self._clients.discard(conn)
            conn.close()

    def _read_queries(self, connection: _Connection) -> list[bytes] | None:
        """The messages that have arrived whole on a connection (at least one: a client
        that pipelines gets its queries read in one go); None when the client closed it,
        sent a zero length, stalled inside a message, or was idle too long: no query for the
        idle timeout and none in flight (RFC 7766 6.2.3), or for the initial timeout before
        its first query."""
        conn = connection.sock
        buffer = connection.buffer
        while True:
            messages = _split_messages(buffer)
            if messages is None:
                return None
            if messages:
                connection.queries += len(messages)
                connection.last_active = time.monotonic()
                return messages
            if buffer:  # within a message: it must keep coming
                conn.settimeout(self.tcp_idle_timeout)
            else:
                timeout = self.tcp_idle_timeout
                if not connection.queries and self.tcp_initial_timeout is not None:
                    timeout = self.tcp_initial_timeout
                left = timeout - (time.monotonic() - connection.last_active)
                if left <= 0 and connection.in_flight == 0:
                    return None
                conn.settimeout(max(left, 0.05) if connection.in_flight == 0 else timeout)
            try:
                chunk = conn.recv(TCP_READ_SIZE)
            except TimeoutError:
                if buffer:
                    return None
                continue  # idle long enough? (a response written since then resets it)
            if not chunk:
                return None
            buffer += chunk

    def _answer_tcp(
        self, connection: _Connection, data: bytes, client: str, network: int, out: list[bytes]
    ) -> None:
        """Answer one query read from a connection: from the TCP answer cache, or built
        (appended to ``out``, written with the rest of its batch), or on the executor when
        it needs an upstream (waiting while `max_tcp_in_flight` of the connection's are
        there). A transfer writes its messages itself, after what ``out`` holds."""
        started = time.perf_counter_ns()
        index = self.store.snapshot()
        cache = self._tcp_cache(index)
        key = data[2:] if network < 0 else network.to_bytes(2, "big") + b"\xff" + data[2:]
        hit = cache.get(key)
        if hit is not None:
            wire = data[:2] + next(hit)
            self._tcp_counters.answered_locked(wire, time.perf_counter_ns() - started)
            out.append(len(wire).to_bytes(2, "big") + wire)
            return
        counters = self._tcp_counters
        assert counters.lock is not None
        with counters.lock:
            counters.misses += 1
        keepalive = b""
        try:
            query: Query | None = parse_query(data)
        except MessageError:
            query = None  # `_answer` says FORMERR or drops it
        if query is not None and query.edns:
            for code, value in query.options:
                if code == TCP_KEEPALIVE:
                    if value:  # RFC 7828 3.2.1: the client MUST send it empty
                        self._tcp_respond(out, render_error(data, FORMERR, query), b"", started)
                        return
                    ticks = min(int(self.tcp_idle_timeout * 10), 0xFFFF)  # 100 ms units
                    keepalive = edns_option(TCP_KEEPALIVE, ticks.to_bytes(2, "big"))
        if query is not None and query.opcode == 0:
            tsig_at = signed_at(data, query)
            if tsig_at is not None or is_transfer(query):
                if out:
                    connection.send_many(out)
                    out.clear()
                self._transfer_tcp(
                    connection,
                    data,
                    query,
                    network=network,
                    client=client,
                    tsig_at=tsig_at,
                    started=started,
                )
                return
        try:
            reply = self._answer(data, index, False, network, client)
        except Exception:
            log.exception("failed to answer a TCP query")
            reply = _Reply(render_error(data, SERVFAIL))
        if reply.deferred is not None:
            executor = self._executor
            if executor is not None and connection.begin(self._stopping.is_set):
                try:
                    executor.submit(
                        self._run_tcp_deferred, connection, reply.deferred, keepalive, started
                    )
                    return
                except RuntimeError:  # shutting down
                    connection.end()
            return
        sent = self._tcp_respond(out, reply.wire, keepalive, started)
        if sent is not None and reply.variants and not reply.cookie:
            if len(cache) >= self.cache_size:  # as many as the UDP cache holds
                cache.clear()
            bodies = [sent[2:]]
            bodies += [_keepalive(variant, keepalive)[2:] for variant in reply.variants[1:]]
            cycle = itertools.cycle(bodies)
            next(cycle)  # the first went out now
            cache[key] = cycle

    def _tcp_cache(self, index: ZoneIndex) -> dict[bytes, Iterator[bytes]]:
        """The answers built over TCP for ``index`` and the current networks, by query
        (shared by the connections; a new zone index or new networks start it afresh)."""
        made, networks, authority, cache = self._tcp_answers
        if (
            made is not index
            or networks is not self._networks
            or authority is not self._reverse_authority
        ):
            cache = {}
            self._tcp_answers = (index, self._networks, self._reverse_authority, cache)
        return cache

    def _transfer_tcp(
        self,
        connection: _Connection,
        data: bytes,
        query: Query,
        *,
        network: int,
        client: str,
        tsig_at: int | None,
        started: int,
    ) -> None:
        """A transfer or a signed query on TCP: every message written on this thread (a
        transfer holds up the queries pipelined behind it, as in BIND)."""
        index = self.store.snapshot()
        first: bytes | None = None
        try:
            for wire in self.transfers.respond(
                data,
                query,
                index,
                client,
                tcp=True,
                plain=lambda unsigned: self._answer_now(unsigned, index, False, network, client),
                tsig_at=tsig_at,
            ):
                if first is None:
                    first = wire
                connection.send(wire)
        except OSError:
            raise
        except Exception:
            log.exception("failed to answer a zone transfer or signed query over TCP")
            first = render_error(data, SERVFAIL, query)
            if first is not None:
                connection.send(first)
        self._tcp_counters.answered_locked(first, time.perf_counter_ns() - started)

    def _transfer_udp(
        self,
        data: bytes,
        query: Query,
        index: ZoneIndex,
        *,
        udp: bool,
        network: int,
        client: str,
        tsig_at: int | None,
    ) -> _Reply:
        """A transfer or signed query on UDP: answered on the forwarding pool (dnspython
        parses and signs it), never cached; only one message goes back."""

        def job() -> bytes | None:
            return next(
                self.transfers.respond(
                    data,
                    query,
                    index,
                    client,
                    tcp=not udp,
                    plain=lambda unsigned: self._answer_now(unsigned, index, udp, network, client),
                    tsig_at=tsig_at,
                ),
                None,
            )

        return _Reply(deferred=job)

    def _answer_now(
        self, data: bytes, index: ZoneIndex, udp: bool, network: int, client: str
    ) -> bytes | None:
        """`_answer`, forwarding inline when it must (off the serving threads only)."""
        reply = self._answer(data, index, udp, network, client)
        if reply.deferred is not None:
            return reply.deferred()
        return reply.wire

    def _run_tcp_deferred(
        self,
        connection: _Connection,
        job: Callable[[], bytes | None],
        keepalive: bytes,
        started: int,
    ) -> None:
        try:
            try:
                wire = job()
            except Exception:
                log.exception("failed to forward a TCP query")
                wire = None
            out: list[bytes] = []
            self._tcp_respond(out, wire, keepalive, started)
            if out:
                connection.send_many(out)
        except OSError:
            connection.close()  # the client is gone: wake the reader
        finally:
            connection.end()

    def _tcp_respond(
        self, out: list[bytes], wire: bytes | None, keepalive: bytes, started: int
    ) -> bytes | None:
        """Count a TCP response and append it to ``out``, length first, with the
        edns-tcp-keepalive option when the query carried one; the response as sent."""
        if wire is not None:
            wire = _keepalive(wire, keepalive)
            out.append(len(wire).to_bytes(2, "big") + wire)
        self._tcp_counters.answered_locked(wire, time.perf_counter_ns() - started)
        return wire


class _Connection:
    """One TCP client, shared by its reading thread and the executor's: responses are
    written whole under `_write`; `in_flight` counts its queries waiting for an upstream."""

    __slots__ = (
        "_state",
        "_write",
        "buffer",
        "in_flight",
        "last_active",
        "limit",
        "queries",
        "sock",
    )

    def __init__(self, sock: socket.socket, limit: int = 32) -> None:
        self.sock = sock
        self.buffer = bytearray()  # read, not yet a whole message
        self.limit = limit
        self.queries = 0
        self.in_flight = 0
        self.last_active = time.monotonic()
        self._write = threading.Lock()
        self._state = threading.Condition()

    def send(self, wire: bytes) -> None:
        """Write one response (length prefix and message, never interleaved); raises
        OSError."""
        self.send_many([len(wire).to_bytes(2, "big") + wire])

    def send_many(self, framed: list[bytes]) -> None:
        """Write responses already prefixed with their length, in one write (never
        interleaved with another thread's); raises OSError."""
        with self._write:
            self.sock.sendall(b"".join(framed))
            self.last_active = time.monotonic()

    def begin(self, stopping: Callable[[], bool]) -> bool:
        """Count one more query in flight, waiting while `limit` are; False when stopping."""
        with self._state:
            while self.in_flight >= self.limit:
                if stopping():
                    return False
                self._state.wait(0.5)
            self.in_flight += 1
            return True

    def end(self) -> None:
        with self._state:
            self.in_flight -= 1
            self._state.notify_all()

    def wait_idle(self, stopping: Callable[[], bool], timeout: float) -> None:
        """Wait until no query is in flight (at most `timeout` seconds, or until stopping)."""
        deadline = time.monotonic() + timeout
        with self._state:
            while self.in_flight and not stopping():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._state.wait(min(left, 0.5))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


def _limit(
    verdict: int,
    query: bytes,
    peer: Peer,
    queue: Callable[[tuple[bytes, Peer]], None],
    counters: Counters,
) -> None:
    """Count a response RRL dropped or slipped, and queue the slip's truncated reply."""
    counters.limited[verdict] += 1
    if verdict == SLIP:
        queue((slip_response(query), peer))


def _same_network(answer: list[RRset], network: IPNetwork) -> list[RRset]:
    """The answer with each A/AAAA RRset cut to the addresses inside `network`, for the
    RRsets that have any there (the others are left whole)."""
    result = []
    for rrset in answer:
        kept = rrset
        if rrset.rdtype in (A, AAAA):
            inside = tuple(
                rdata for rdata in rrset.rdatas if ipaddress.ip_address(rdata) in network
            )
            if inside and len(inside) < len(rrset.rdatas):
                kept = RRset(rrset.name, rrset.rdtype, rrset.ttl, inside)
        result.append(kept)
    return result


def _split_messages(buffer: bytearray) -> list[bytes] | None:
    """Take the whole length-prefixed messages off the front of ``buffer``; None at a zero
    length (the client is done)."""
    messages = []
    pos = 0
    size = len(buffer)
    while size - pos >= 2:
        length = int.from_bytes(buffer[pos : pos + 2], "big")
        if not length:
            return None
        if size - pos - 2 < length:
            break
        messages.append(bytes(buffer[pos + 2 : pos + 2 + length]))
        pos += 2 + length
    del buffer[:pos]
    return messages


def _keepalive(wire: bytes, keepalive: bytes) -> bytes:
    """``wire`` with the edns-tcp-keepalive option ``keepalive`` (when not empty) in its OPT
    record; a response cut to 64 KiB goes without it."""
    if not keepalive:
        return wire
    with_option = add_edns_option(wire, keepalive)
    return with_option if len(with_option) <= TCP_MAX_MESSAGE else wire


def _bind_pairs(host: str, port: int) -> list[tuple[socket.socket, socket.socket]]:
    """The sockets for one listen address. ``""`` is every address, as Go's ``:53``:
    0.0.0.0, then :: on the same port unless this machine has no IPv6."""
    if host:
        return [_bind_pair(host, port)]
    pairs = [_bind_pair("0.0.0.0", port)]
    try:
        pairs.append(_bind_pair("::", pairs[0][0].getsockname()[1]))
    except OSError as exc:
        if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
            for sock in pairs[0]:
                sock.close()
            raise
    return pairs


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same address and port (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    attempts = 20 if port == 0 else 1
    for attempt in range(attempts):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            udp.bind((host, port))
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(128)
        except OSError:
            udp.close()
            tcp.close()
            if attempt + 1 == attempts:
                raise
            continue
        return udp, tcp
    raise OSError(f"cannot bind {host}:{port}")  # unreachable: the loop raises or returns
