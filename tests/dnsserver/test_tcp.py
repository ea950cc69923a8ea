"""DNS over TCP as RFC 7766 and RFC 7828 want it: pipelined queries answered out of order
when one waits for an upstream, idle timeouts, and the edns-tcp-keepalive option."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import dns.edns
import dns.message
import dns.rcode
import pytest

from dnsserver import (
    DNSService,
    Forwarder,
    RRset,
    Zone,
    ZoneStore,
    parse_zone_text,
    rrset_from_text,
)
from tests.dnsserver.conftest import UPSTREAM_RECORDS, Server, Upstream
from tests.helpers import recv_exact
from tests.servers import answer_text, dig

MakeService = Callable[..., DNSService]

KEEPALIVE = dns.edns.GenericOption(dns.edns.KEEPALIVE, b"")


@pytest.fixture
def slow_upstream() -> Iterator[Upstream]:
    """An upstream on 127.0.0.2 that answers UPSTREAM_RECORDS half a second late."""
    server = Upstream("127.0.0.2", dict(UPSTREAM_RECORDS), delay=0.5).start()
    try:
        yield server
    finally:
        server.stop()


def _connect(port: int, timeout: float = 5) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _framed(message: dns.message.Message) -> bytes:
    wire = message.to_wire()
    return len(wire).to_bytes(2, "big") + wire


def _read_response(conn: socket.socket) -> dns.message.Message:
    length = int.from_bytes(recv_exact(conn, 2), "big")
    return dns.message.from_wire(recv_exact(conn, length))


def _keepalive(response: dns.message.Message) -> list[bytes]:
    """The data of the response's edns-tcp-keepalive options."""
    return [option.to_wire() for option in response.options if option.otype == dns.edns.KEEPALIVE]


# (qname, qtype, rcode, answer) for the pipelining test; repeated to make 20 queries.
PIPELINED = [
    ("web.docker.", "A", dns.rcode.NOERROR, ["web.docker. 30 IN A 10.0.0.7"]),
    ("web6.docker.", "AAAA", dns.rcode.NOERROR, ["web6.docker. 30 IN AAAA fd00::7"]),
    ("nope.docker.", "A", dns.rcode.NXDOMAIN, []),
    ("mail.docker.", "MX", dns.rcode.NOERROR, ["mail.docker. 30 IN MX 10 web.docker."]),
    ("outside.test.", "A", dns.rcode.REFUSED, []),
]


def test_twenty_queries_sent_back_to_back_get_twenty_answers(dockzone_dns: Server) -> None:
    """RFC 7766 6.2.1.1: a client may pipeline; every query gets its own answer."""
    cases = {qid: PIPELINED[qid % len(PIPELINED)] for qid in range(100, 120)}
    with _connect(dockzone_dns.port) as conn:
        conn.sendall(
            b"".join(
                _framed(dns.message.make_query(qname, qtype, id=qid))
                for qid, (qname, qtype, _, _) in cases.items()
            )
        )
        responses = [_read_response(conn) for _ in cases]
    assert sorted(response.id for response in responses) == sorted(cases)
    for response in responses:
        qname, qtype, rcode, answer = cases[response.id]
        assert response.question[0].to_text() == f"{qname} IN {qtype}"
        assert response.rcode() == rcode
        assert answer_text(response) == answer


def test_an_answer_from_upstream_does_not_hold_up_the_answers_behind_it(
    forwarding_store: ZoneStore, slow_upstream: Upstream, make_service: MakeService
) -> None:
    """RFC 7766 7: responses may go out of order; the in-zone answer, asked second, comes
    first while the forwarded one waits for the slow upstream."""
    forwarder = Forwarder([("127.0.0.2", slow_upstream.port)], timeout=5)
    service = make_service(forwarding_store, forwarder=forwarder)
    with _connect(service.addresses[0][1]) as conn:
        conn.sendall(
            _framed(dns.message.make_query("outside.test.", "A", id=1))
            + _framed(dns.message.make_query("web.docker.", "A", id=2))
        )
        first, second = _read_response(conn), _read_response(conn)
    assert (first.id, answer_text(first)) == (2, ["web.docker. 30 IN A 10.0.0.7"])
    assert (second.id, answer_text(second)) == (1, ["outside.test. 300 IN A 192.0.2.1"])


def test_queries_waiting_for_an_upstream_are_bounded_per_connection(
    forwarding_store: ZoneStore, slow_upstream: Upstream, make_service: MakeService
) -> None:
    """With one allowed in flight, the second forwarded query is read only once the first
    is answered, and the in-zone query behind it only then."""
    forwarder = Forwarder([("127.0.0.2", slow_upstream.port)], timeout=5)
    service = make_service(forwarding_store, forwarder=forwarder, max_tcp_in_flight=1)
    with _connect(service.addresses[0][1]) as conn:
        conn.sendall(
            _framed(dns.message.make_query("outside.test.", "A", id=1))
            + _framed(dns.message.make_query("outside.test.", "TXT", id=2))
            + _framed(dns.message.make_query("web.docker.", "A", id=3))
        )
        order = [_read_response(conn).id for _ in range(3)]
    assert order == [1, 3, 2]


def test_dig_keepalive_over_tcp_shows_the_idle_timeout(dockzone_dns: Server) -> None:
    """RFC 7828: the TIMEOUT is in units of 100 ms; 30 s by default, as BIND."""
    out = dig(dockzone_dns.port, "+tcp", "+keepalive", "web.docker.", "A")
    assert "status: NOERROR" in out
    assert "TCP KEEPALIVE: 30.0 secs" in out


def test_tcp_keepalive_timeout_follows_the_servers_setting(make_service: MakeService) -> None:
    service = make_service(ZoneStore(), tcp_idle_timeout=12.5)
    out = dig(service.addresses[0][1], "+tcp", "+keepalive", "x.", "A")
    assert "status: REFUSED" in out  # error responses carry it too
    assert "TCP KEEPALIVE: 12.5 secs" in out


def test_tcp_queries_without_the_option_get_none(dockzone_dns: Server) -> None:
    out = dig(dockzone_dns.port, "+tcp", "web.docker.", "A")
    assert "status: NOERROR" in out
    assert "KEEPALIVE" not in out


@pytest.mark.parametrize("data", [b"", b"\x01\x2c"], ids=["empty", "with-timeout"])
def test_udp_queries_with_keepalive_get_no_option_back(dockzone_dns: Server, data: bytes) -> None:
    """RFC 7828 3.3.1: over UDP the option is ignored, even a malformed one."""
    query = dns.message.make_query(
        "web.docker.", "A", use_edns=0, options=[dns.edns.GenericOption(dns.edns.KEEPALIVE, data)]
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query.to_wire(), ("127.0.0.1", dockzone_dns.port))
        response = dns.message.from_wire(sock.recv(65535))
    assert response.rcode() == dns.rcode.NOERROR
    assert answer_text(response) == ["web.docker. 30 IN A 10.0.0.7"]
    assert response.edns == 0
    assert _keepalive(response) == []


def test_tcp_keepalive_with_a_timeout_in_the_query_is_formerr(dockzone_dns: Server) -> None:
    """RFC 7828 3.2.1: a client sends the option empty."""
    option = dns.edns.GenericOption(dns.edns.KEEPALIVE, b"\x01\x2c")
    query = dns.message.make_query("web.docker.", "A", use_edns=0, options=[option])
    with _connect(dockzone_dns.port) as conn:
        conn.sendall(_framed(query))
        response = _read_response(conn)
    assert response.rcode() == dns.rcode.FORMERR
    assert _keepalive(response) == []


def test_forwarded_tcp_answers_carry_the_keepalive_option(
    forwarding_store: ZoneStore, upstream: Upstream, make_service: MakeService
) -> None:
    service = make_service(
        forwarding_store, forwarder=Forwarder([("127.0.0.2", upstream.port)]), tcp_idle_timeout=7
    )
    query = dns.message.make_query("outside.test.", "A", use_edns=0, options=[KEEPALIVE])
    with _connect(service.addresses[0][1]) as conn:
        conn.sendall(_framed(query))
        response = _read_response(conn)
    assert answer_text(response) == ["outside.test. 300 IN A 192.0.2.1"]
    assert _keepalive(response) == [(70).to_bytes(2, "big")]


def test_a_connection_that_sent_nothing_is_closed_after_the_initial_timeout(
    make_service: MakeService,
) -> None:
    service = make_service(ZoneStore())
    service.tcp_initial_timeout = 0.3  # the idle timeout stays at 30 s
    with _connect(service.addresses[0][1], timeout=5) as conn:
        assert conn.recv(10) == b""  # closed by the server, well before our 5 s timeout


def test_an_idle_connection_is_closed_after_the_idle_timeout(make_service: MakeService) -> None:
    service = make_service(ZoneStore())
    service.tcp_idle_timeout = 1.0
    with _connect(service.addresses[0][1], timeout=10) as conn:
        for qid in (1, 2):  # the connection stays open for more queries
            conn.sendall(_framed(dns.message.make_query("x.", "A", id=qid)))
            assert _read_response(conn).id == qid
        assert conn.recv(10) == b""  # then, idle, it is closed (before our 10 s timeout)


def test_a_query_waiting_for_an_upstream_keeps_its_connection_open(
    forwarding_store: ZoneStore, make_service: MakeService
) -> None:
    """RFC 7766 6.2.3: a connection is idle only with no query outstanding. The upstream
    takes longer than the idle timeout; the answer still arrives, then the connection
    closes."""
    upstream = Upstream("127.0.0.2", dict(UPSTREAM_RECORDS), delay=1.0).start()
    try:
        forwarder = Forwarder([("127.0.0.2", upstream.port)], timeout=5)
        service = make_service(forwarding_store, forwarder=forwarder)
        service.tcp_idle_timeout = 0.3
        with _connect(service.addresses[0][1], timeout=10) as conn:
            conn.sendall(_framed(dns.message.make_query("outside.test.", "A", id=9)))
            response = _read_response(conn)
            assert answer_text(response) == ["outside.test. 300 IN A 192.0.2.1"]
            assert conn.recv(10) == b""
    finally:
        upstream.stop()


def test_a_client_that_closes_its_side_still_gets_pending_answers(
    forwarding_store: ZoneStore, slow_upstream: Upstream, make_service: MakeService
) -> None:
    """A client may send its queries and shut down writing; the forwarded answer still
    comes before the server closes."""
    forwarder = Forwarder([("127.0.0.2", slow_upstream.port)], timeout=5)
    service = make_service(forwarding_store, forwarder=forwarder)
    with _connect(service.addresses[0][1]) as conn:
        conn.sendall(_framed(dns.message.make_query("outside.test.", "A", id=5)))
        conn.shutdown(socket.SHUT_WR)
        assert _read_response(conn).id == 5
        assert conn.recv(10) == b""


def test_answers_over_tcp_follow_a_patch_at_once(make_service: MakeService) -> None:
    """Answers built over TCP are kept for the next connection asking the same, until the
    zones change: then the new data at once, on old and new connections."""
    zone = parse_zone_text(
        "$ORIGIN t.test.\n$TTL 30\n@ IN SOA ns h 1 3600 600 86400 30\n@ IN NS ns\n"
        "ns IN A 127.0.0.1\nweb IN A 10.0.0.1\n",
        "t.test.",
    )
    store = ZoneStore({"t.test.": zone})
    port = make_service(store).addresses[0][1]
    question = dns.message.make_query("web.t.test.", "A")
    with _connect(port) as conn:
        for _ in range(3):
            conn.sendall(_framed(question))
            assert _addresses(_read_response(conn)) == ["10.0.0.1"]
        store.patch({"t.test.": {("web.t.test.", "A"): _a("web.t.test.", "10.0.0.2")}})
        conn.sendall(_framed(question))
        assert _addresses(_read_response(conn)) == ["10.0.0.2"]
    with _connect(port) as conn:
        conn.sendall(_framed(question) * 2)
        assert [_addresses(_read_response(conn)) for _ in range(2)] == [["10.0.0.2"]] * 2


def test_a_message_split_across_writes_is_read_whole(dockzone_dns: Server) -> None:
    """A client may write a query a byte at a time; pipelined queries that share a write
    with the start of the next are answered too."""
    one = _framed(dns.message.make_query("web.docker.", "A"))
    two = _framed(dns.message.make_query("web6.docker.", "AAAA"))
    with _connect(dockzone_dns.port) as conn:
        for byte in one + two[:5]:
            conn.sendall(bytes([byte]))
        conn.sendall(two[5:])
        assert _addresses(_read_response(conn)) == ["10.0.0.7"]
        assert _addresses(_read_response(conn)) == ["fd00::7"]


def _a(name: str, address: str) -> RRset:
    return rrset_from_text("t.test.", name, "A", 30, [address])


def _addresses(response: dns.message.Message) -> list[str]:
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset)


def test_the_tcp_answer_cache_holds_as_many_answers_as_the_udp_cache() -> None:
    """A client cycling through 12,000 questions on TCP (dnsperf's workload has 14,000)
    gets them from the cache the second time round: the cache held 10,000 once, was
    cleared when full, and every TCP answer was built again."""
    names = 12_000
    records = [("@", "SOA", 30, "ns hostmaster 1 3600 600 86400 30"), ("ns", "A", 30, "127.0.0.1")]
    records += [(f"svc{n}", "A", 30, f"10.0.{n // 250}.{n % 250 + 1}") for n in range(names)]
    store = ZoneStore({"bench.test.": Zone.from_records("bench.test.", records)})
    with DNSService(store, [("127.0.0.1", 0)]) as service:
        port = service.addresses[0][1]
        queries = [
            _framed(dns.message.make_query(f"svc{n}.bench.test.", "A")) for n in range(names)
        ]
        with _connect(port, timeout=30) as conn:
            for round_ in range(2):
                conn.sendall(b"".join(queries))
                for n in range(names):
                    response = _read_response(conn)
                    expected = f"svc{n}.bench.test. 30 IN A 10.0.{n // 250}.{n % 250 + 1}"
                    assert answer_text(response) == [expected], n
                if round_ == 0:
                    built = service.stats().cache_misses
        assert built >= names  # the first round built every answer
        assert service.stats().cache_misses == built  # the second came from the cache
