"""The running server, queried over the network with dnspython and dig (CoreDNS-style tables)."""

from __future__ import annotations

import random
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnsserver import DNSService, Zone, ZoneStore
from tests.dnsserver.conftest import DOCKER_ZONE, SKYDNS_ZONE, Server, write_zones
from tests.helpers import eventually, recv_exact
from tests.servers import answer_text, dig, free_port, query

SOA_DOCKER = "docker. 10 IN SOA ns.dns.docker. hostmaster.docker. 2024010101 3600 600 86400 10"

# (qname, qtype, rcode, answer lines, authority lines)
CASES = [
    ("web.docker.", "A", "NOERROR", ["web.docker. 30 IN A 10.0.0.7"], []),
    ("WEB.Docker.", "A", "NOERROR", ["WEB.Docker. 30 IN A 10.0.0.7"], []),
    ("web6.docker.", "AAAA", "NOERROR", ["web6.docker. 30 IN AAAA fd00::7"], []),
    ("dual.docker.", "AAAA", "NOERROR", ["dual.docker. 30 IN AAAA fd00::8"], []),
    ("alias.docker.", "CNAME", "NOERROR", ["alias.docker. 30 IN CNAME web.docker."], []),
    (
        "alias.docker.",
        "A",
        "NOERROR",
        ["alias.docker. 30 IN CNAME web.docker.", "web.docker. 30 IN A 10.0.0.7"],
        [],
    ),
    (
        "alias2.docker.",
        "A",
        "NOERROR",
        [
            "alias.docker. 30 IN CNAME web.docker.",
            "alias2.docker. 30 IN CNAME alias.docker.",
            "web.docker. 30 IN A 10.0.0.7",
        ],
        [],
    ),
    (
        "_redis._tcp.redis.docker.",
        "SRV",
        "NOERROR",
        [
            "_redis._tcp.redis.docker. 30 IN SRV 10 100 6379 redis1.redis.docker.",
            "_redis._tcp.redis.docker. 30 IN SRV 10 100 6379 redis2.redis.docker.",
        ],
        [],
    ),
    ("mail.docker.", "MX", "NOERROR", ["mail.docker. 30 IN MX 10 web.docker."], []),
    (
        "txt.docker.",
        "TXT",
        "NOERROR",
        ['txt.docker. 30 IN TXT "v=spf1 -all" "two strings; with \\"quotes\\""'],
        [],
    ),
    ("docker.", "NS", "NOERROR", ["docker. 30 IN NS ns.dns.docker."], []),
    ("docker.", "SOA", "NOERROR", [SOA_DOCKER.replace(" 10 IN", " 30 IN")], []),
    (
        "7.0.0.10.in-addr.arpa.",
        "PTR",
        "NOERROR",
        ["7.0.0.10.in-addr.arpa. 30 IN PTR web.docker."],
        [],
    ),
    ("web.docker.", "AAAA", "NOERROR", [], [SOA_DOCKER]),  # NODATA: name has other types
    ("dns.docker.", "A", "NOERROR", [], [SOA_DOCKER]),  # NODATA: empty non-terminal
    ("a.b.c.docker.", "A", "NOERROR", [], [SOA_DOCKER]),  # ENT three levels down
    ("nope.docker.", "A", "NXDOMAIN", [], [SOA_DOCKER]),
    ("x.web.docker.", "A", "NXDOMAIN", [], [SOA_DOCKER]),
    (
        "redis.*.docker.",
        "A",
        "NXDOMAIN",
        [],
        [SOA_DOCKER],
    ),
    (
        "*.redis.docker.",
        "A",
        "NOERROR",
        [
            "*.redis.docker. 60 IN A 10.0.1.1",
            "*.redis.docker. 60 IN A 10.0.1.2",
            "*.redis.docker. 60 IN A 10.0.1.3",
        ],
        [],
    ),
    ("redis1.*.docker.", "A", "NOERROR", ["redis1.*.docker. 60 IN A 10.0.1.1"], []),
    ("redis1.any.docker.", "A", "NOERROR", ["redis1.any.docker. 60 IN A 10.0.1.1"], []),
    ("*.*.docker.", "AAAA", "NOERROR", [], [SOA_DOCKER]),  # matches, none has AAAA
    (
        "1.rails.*.any.skydns.local.",
        "A",
        "NOERROR",
        [
            "1.rails.*.any.skydns.local. 3600 IN A 10.0.1.125",
            "1.rails.*.any.skydns.local. 3600 IN A 10.0.3.125",
        ],
        [],
    ),
    (
        "any.rails.staging.any.skydns.local.",
        "A",
        "NOERROR",
        [
            "any.rails.staging.any.skydns.local. 3600 IN A 10.0.1.125",
            "any.rails.staging.any.skydns.local. 3600 IN A 10.0.2.125",
        ],
        [],
    ),
    ("x.wild.docker.", "A", "NOERROR", ["x.wild.docker. 30 IN A 10.0.6.1"], []),
    ("a.b.wild.docker.", "TXT", "NOERROR", ['a.b.wild.docker. 30 IN TXT "wild"'], []),
    ("x.wild.docker.", "AAAA", "NOERROR", [], [SOA_DOCKER]),
    (
        "x.wc.docker.",
        "A",
        "NOERROR",
        ["web.docker. 30 IN A 10.0.0.7", "x.wc.docker. 30 IN CNAME web.docker."],
        [],
    ),
    ("c1.chain.test.", "CNAME", "NOERROR", ["c1.chain.test. 30 IN CNAME c2.chain.test."], []),
    ("example.com.", "A", "REFUSED", [], []),  # outside the zones, no forwarder
]


@pytest.mark.parametrize(
    ("qname", "qtype", "rcode", "answer", "authority"),
    CASES,
    ids=[f"{c[0]}/{c[1]}" for c in CASES],
)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_answers(
    *,
    dockzone_dns: Server,
    transport: str,
    qname: str,
    qtype: str,
    rcode: str,
    answer: list[str],
    authority: list[str],
) -> None:
    response = dockzone_dns.query(qname, qtype, tcp=transport == "tcp", payload=4096)
    assert dns.rcode.to_text(response.rcode()) == rcode
    assert answer_text(response) == sorted(answer)
    assert sorted(r.to_text() for r in response.authority) == sorted(authority)
    authoritative = rcode != "REFUSED"
    assert bool(response.flags & dns.flags.AA) == authoritative


def test_names_below_a_delegation_get_a_referral(dockzone_dns: Server) -> None:
    response = dockzone_dns.query("host.sub.docker.", "A", payload=1232)
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.flags & dns.flags.AA
    assert response.answer == []
    assert [r.to_text() for r in response.authority] == ["sub.docker. 30 IN NS ns.sub.docker."]
    assert [r.to_text() for r in response.additional] == ["ns.sub.docker. 30 IN A 10.0.5.1"]


def test_negative_answers_carry_the_soa_with_the_negative_ttl(dockzone_dns: Server) -> None:
    """RFC 2308: TTL = min(SOA TTL 30, SOA MINIMUM 10)."""
    for qname in ("nope.docker.", "web.docker."):
        response = dockzone_dns.query(qname, "TXT")
        (soa,) = response.authority
        assert soa.rdtype == dns.rdatatype.SOA
        assert soa.ttl == 10


def test_additional_section_holds_in_zone_srv_targets(dockzone_dns: Server) -> None:
    response = dockzone_dns.query("_redis._tcp.redis.docker.", "SRV", payload=1232)
    extra = sorted(line for r in response.additional for line in r.to_text().splitlines())
    assert extra == [
        "redis1.redis.docker. 60 IN A 10.0.1.1",
        "redis2.redis.docker. 60 IN A 10.0.1.2",
    ]


def test_query_wildcard_srv_answers_carry_target_addresses(dockzone_dns: Server) -> None:
    response = dockzone_dns.query("_redis.*.redis.docker.", "SRV", payload=1232)
    assert len(response.answer[0]) == 2
    assert {r.name.to_text() for r in response.additional} == {
        "redis1.redis.docker.",
        "redis2.redis.docker.",
    }


def test_any_returns_every_rrset_at_the_name(dockzone_dns: Server) -> None:
    response = dockzone_dns.query("dual.docker.", "ANY")
    assert answer_text(response) == [
        "dual.docker. 30 IN A 10.0.0.8",
        "dual.docker. 30 IN AAAA fd00::8",
    ]


def test_a_answers_rotate_round_robin(dockzone_dns: Server) -> None:
    firsts = {dockzone_dns.query("redis.docker.", "A").answer[0][0].to_text() for _ in range(6)}
    assert firsts == {"10.0.1.1", "10.0.1.2", "10.0.1.3"}


def test_rotation_can_be_turned_off(dockzone_dns: Server, make_service: object) -> None:
    service = make_service(dockzone_dns.store, rotate=False)  # type: ignore[operator]
    firsts = {
        query("127.0.0.1", service.addresses[0][1], "redis.docker.").answer[0][0].to_text()
        for _ in range(4)
    }
    assert firsts == {"10.0.1.1"}


def test_cname_loop_stops(dockzone_dns: Server) -> None:
    response = dockzone_dns.query("loop1.chain.test.", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert answer_text(response) == [
        "loop1.chain.test. 30 IN CNAME loop2.chain.test.",
        "loop2.chain.test. 30 IN CNAME loop1.chain.test.",
    ]


def test_cname_chain_is_followed_for_at_most_8_links(dockzone_dns: Server) -> None:
    response = dockzone_dns.query("c1.chain.test.", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert [r.rdtype for r in response.answer] == [dns.rdatatype.CNAME] * 8
    short = dockzone_dns.query("c6.chain.test.", "A")  # 7 links, then the address
    assert answer_text(short)[-1] == "end.chain.test. 30 IN A 10.9.9.9"


def test_external_cname_target_without_forwarder_returns_the_cname(dockzone_dns: Server) -> None:
    response = dockzone_dns.query("ext.docker.", "A")
    assert answer_text(response) == ["ext.docker. 30 IN CNAME www.example.test."]


def test_ipv6_listener_answers(dockzone_dns: Server) -> None:
    port6 = dockzone_dns.service.addresses[1][1]
    assert query("::1", port6, "web.docker.").answer[0][0].to_text() == "10.0.0.7"
    assert query("::1", port6, "web.docker.", tcp=True).answer[0][0].to_text() == "10.0.0.7"


# -- EDNS0 and truncation ------------------------------------------------------------------

EDNS_CASES = [
    (None, True),  # no OPT: 512 bytes
    (512, True),
    (1232, True),
    (4096, False),  # the 1.9 KB answer fits
]


@pytest.mark.parametrize(("payload", "truncated"), EDNS_CASES, ids=str)
def test_udp_honours_the_client_buffer_size(
    dockzone_dns: Server, payload: int | None, truncated: bool
) -> None:
    response = dockzone_dns.query("many.docker.", "A", payload=payload)
    assert bool(response.flags & dns.flags.TC) == truncated
    if truncated:
        assert response.answer == []
    else:
        assert len(response.answer[0]) == 120
    assert (response.edns >= 0) == (payload is not None)


def test_truncated_answer_is_complete_over_tcp(dockzone_dns: Server) -> None:
    response = dockzone_dns.query("many.docker.", "A", tcp=True)
    assert not response.flags & dns.flags.TC
    assert len(response.answer[0]) == 120


def test_dig_retries_over_tcp_after_tc(dockzone_dns: Server) -> None:
    out = dig(dockzone_dns.port, "+noedns", "+ignore", "many.docker.", "A")
    assert "flags: qr aa tc" in out
    out = dig(dockzone_dns.port, "+noedns", "many.docker.", "A")  # dig follows TC to TCP
    assert "Truncated, retrying in TCP mode" in out
    assert out.count("IN\tA\t10.1.0.") == 120


def test_answer_over_64k_is_cut_to_whole_records(dockzone_dns: Server) -> None:
    response = dockzone_dns.query("*.huge.test.", "TXT", tcp=True)
    assert response.flags & dns.flags.TC
    count = sum(len(r) for r in response.answer)
    assert 200 < count < 360
    wire = response.to_wire()
    assert len(wire) <= 65535


def test_edns_version_other_than_0_gets_badvers(dockzone_dns: Server) -> None:
    message = dns.message.make_query("web.docker.", "A", use_edns=1)
    response = dns.query.udp(message, "127.0.0.1", port=dockzone_dns.port, timeout=3)
    assert response.rcode() == dns.rcode.BADVERS


def test_response_echoes_rd_and_sets_no_ra_without_forwarder(dockzone_dns: Server) -> None:
    response = dockzone_dns.query("web.docker.", rd=True)
    assert response.flags & dns.flags.RD
    assert not response.flags & dns.flags.RA


# -- dig, the tool users run ---------------------------------------------------------------

DIG_CASES = [
    (["web.docker.", "A", "+short"], "10.0.0.7"),
    (["alias.docker.", "A", "+short"], "web.docker.\n10.0.0.7"),
    (["_redis._tcp.redis.docker.", "SRV", "+short"], "10 100 6379 redis1.redis.docker."),
    (["-x", "10.0.0.7", "+short"], "web.docker."),
    (["txt.docker.", "TXT", "+short"], '"v=spf1 -all"'),
    (["nope.docker.", "A"], "status: NXDOMAIN"),
    (["web.docker.", "A"], "flags: qr aa;"),
    (["web.docker.", "A", "+tcp", "+short"], "10.0.0.7"),
]


@pytest.mark.parametrize(("args", "expected"), DIG_CASES, ids=[" ".join(c[0]) for c in DIG_CASES])
def test_dig(dockzone_dns: Server, args: list[str], expected: str) -> None:
    assert expected in dig(dockzone_dns.port, *args)


# -- malformed input -----------------------------------------------------------------------


def _raw_udp(port: int, payload: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, ("127.0.0.1", port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


GOOD_QUERY = dns.message.make_query("web.docker.", "A", id=0x4242).to_wire()

FORMERR_CASES = [
    ("cut-in-name", GOOD_QUERY[:16]),
    ("cut-in-type", GOOD_QUERY[:-3]),
    ("label-past-end", GOOD_QUERY[:12] + b"\x3fweb"),
    ("two-questions", GOOD_QUERY[:4] + b"\x00\x02" + GOOD_QUERY[6:]),
    ("no-question", GOOD_QUERY[:4] + b"\x00\x00" + GOOD_QUERY[6:12]),
    ("pointer-in-question", GOOD_QUERY[:12] + b"\xc0\x0c\x00\x01\x00\x01"),
    ("bad-label-type", GOOD_QUERY[:12] + b"\x80abc\x00\x00\x01\x00\x01"),
    ("trailing-garbage", GOOD_QUERY + b"\x00\x01\x02"),
    ("arcount-without-records", GOOD_QUERY[:10] + b"\x00\x01" + GOOD_QUERY[12:]),
    ("garbage", b"\x42\x42" + bytes(range(0x10, 0x40))),
]


@pytest.mark.parametrize(
    "payload", [c[1] for c in FORMERR_CASES], ids=[c[0] for c in FORMERR_CASES]
)
def test_malformed_queries_get_formerr(dockzone_dns: Server, payload: bytes) -> None:
    reply = _raw_udp(dockzone_dns.port, payload)
    assert reply is not None
    qid, flags = struct.unpack("!HH", reply[:4])
    assert qid == 0x4242
    assert flags & 0x8000
    assert flags & 0xF == dns.rcode.FORMERR


@pytest.mark.parametrize(
    "payload", [b"", b"\x01", b"\x42" * 11], ids=["empty", "1-byte", "11-bytes"]
)
def test_packets_without_a_header_are_dropped(dockzone_dns: Server, payload: bytes) -> None:
    assert _raw_udp(dockzone_dns.port, payload, timeout=0.3) is None
    assert dockzone_dns.query("web.docker.").rcode() == dns.rcode.NOERROR


def test_responses_are_never_answered(dockzone_dns: Server) -> None:
    response = bytearray(GOOD_QUERY)
    response[2] |= 0x80
    assert _raw_udp(dockzone_dns.port, bytes(response), timeout=0.3) is None


NO_QUESTION = GOOD_QUERY[:4] + b"\x00\x00" + GOOD_QUERY[6:12]
OPT_DO = b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"  # EDNS 0, DO, no options


@pytest.mark.parametrize(
    ("payload", "opt"),
    [
        (GOOD_QUERY, b""),
        (NO_QUESTION, b""),
        (GOOD_QUERY[:11] + b"\x01" + GOOD_QUERY[12:] + OPT_DO, OPT_DO),
        (NO_QUESTION[:11] + b"\x01" + OPT_DO, OPT_DO),
    ],
    ids=["question", "no-question", "question-edns", "no-question-edns"],
)
def test_other_opcodes_get_notimp_as_bind_answers(
    dockzone_dns: Server, payload: bytes, opt: bytes
) -> None:
    """A bare header (no question, RD not copied, the opcode kept) and the OPT record with
    DO copied when the query had one; it was FORMERR without a question (issue 11)."""
    message = bytearray(payload)
    message[2] |= 2 << 3  # STATUS
    reply = _raw_udp(dockzone_dns.port, bytes(message))
    assert reply is not None
    assert reply[:4] == b"\x42\x42\x90" + bytes([dns.rcode.NOTIMP])
    assert reply[4:12] == bytes([0, 0, 0, 0, 0, 0, 0, 1 if opt else 0])
    assert reply[12:] == opt


def test_edns_version_other_than_0_gets_badvers_also_without_a_question(
    dockzone_dns: Server,
) -> None:
    message = NO_QUESTION[:11] + b"\x01" + OPT_DO[:5] + b"\x00\x01" + OPT_DO[7:]  # version 1
    reply = _raw_udp(dockzone_dns.port, message)
    assert reply is not None
    response = dns.message.from_wire(reply)
    assert response.rcode() == dns.rcode.BADVERS
    assert (len(response.question), response.edns) == (0, 0)
    assert response.ednsflags & dns.flags.DO


@pytest.mark.parametrize("rcode", ["NOERROR", "NXDOMAIN", "BADVERS"])
def test_the_do_bit_is_copied_into_the_response(dockzone_dns: Server, rcode: str) -> None:
    """RFC 3225 §3: the DO bit of the query MUST be copied in the response."""
    name = {"NOERROR": "web.docker.", "NXDOMAIN": "nope.docker.", "BADVERS": "web.docker."}
    message = dns.message.make_query(
        name[rcode], "A", use_edns=1 if rcode == "BADVERS" else 0, want_dnssec=True
    )
    response = dns.query.udp(message, "127.0.0.1", port=dockzone_dns.port, timeout=3)
    assert dns.rcode.to_text(response.rcode()) == rcode
    assert response.ednsflags & dns.flags.DO


def test_random_garbage_never_stops_the_server(dockzone_dns: Server) -> None:
    """Bounded fuzz: 2000 mutated and random packets, then a normal query still answers."""
    rng = random.Random(1234)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(2000):
            if i % 2:
                data = bytearray(GOOD_QUERY)
                for _ in range(rng.randint(1, 6)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                payload = bytes(data[: rng.randint(0, len(data))])
            else:
                payload = rng.randbytes(rng.randint(0, 80))
            sock.sendto(payload, ("127.0.0.1", dockzone_dns.port))
    assert dockzone_dns.query("web.docker.").answer[0][0].to_text() == "10.0.0.7"
    assert dockzone_dns.query("web.docker.", tcp=True).answer[0][0].to_text() == "10.0.0.7"


def test_tcp_garbage_and_pipelining(dockzone_dns: Server) -> None:
    with socket.create_connection(("127.0.0.1", dockzone_dns.port), timeout=3) as conn:
        # Two queries back to back on one connection, then a garbage message.
        for qid in (1, 2):
            wire = dns.message.make_query("web.docker.", "A", id=qid).to_wire()
            conn.sendall(len(wire).to_bytes(2, "big") + wire)
        for qid in (1, 2):
            length = int.from_bytes(recv_exact(conn, 2), "big")
            reply = dns.message.from_wire(recv_exact(conn, length))
            assert reply.id == qid
        garbage = b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fabc"
        conn.sendall(len(garbage).to_bytes(2, "big") + garbage)
        length = int.from_bytes(recv_exact(conn, 2), "big")
        assert recv_exact(conn, length)[3] & 0xF == dns.rcode.FORMERR


def test_idle_tcp_connections_are_closed(make_service: object) -> None:
    service: DNSService = make_service(ZoneStore(), tcp_idle_timeout=0.3)  # type: ignore[operator]
    with socket.create_connection(("127.0.0.1", service.addresses[0][1]), timeout=5) as conn:
        conn.sendall(b"\x00")  # half a length prefix, then silence
        assert conn.recv(10) == b""  # closed by the server, well before our 5 s timeout


def test_replace_invalidates_cached_answers(make_service: Callable[..., DNSService]) -> None:
    def zones(address: str) -> dict[str, Zone]:
        return {
            "docker.": Zone.from_records(
                "docker.",
                [
                    ("docker.", "SOA", 30, "ns.docker. h.docker. 1 3600 600 86400 30"),
                    ("web.docker.", "A", 30, address),
                ],
            )
        }

    store = ZoneStore(zones("10.0.0.1"))
    port = make_service(store).addresses[0][1]
    for _ in range(3):  # the second and third come from the response cache
        assert query("127.0.0.1", port, "web.docker.").answer[0][0].to_text() == "10.0.0.1"
    store.replace(zones("10.0.0.2"))
    assert query("127.0.0.1", port, "web.docker.").answer[0][0].to_text() == "10.0.0.2"


def test_tcp_connections_beyond_the_limit_are_closed(
    make_service: Callable[..., DNSService],
) -> None:
    service = make_service(ZoneStore(), max_tcp_clients=4, tcp_idle_timeout=5)
    address = ("127.0.0.1", service.addresses[0][1])
    held = [socket.create_connection(address, timeout=5) for _ in range(4)]
    try:
        # The server counts a connection once its accept loop took it: retry until full.
        def refused() -> None:
            with socket.create_connection(address, timeout=5) as extra:
                try:
                    extra.sendall(b"\x00")
                    assert extra.recv(10) == b""
                except ConnectionResetError:
                    pass  # closed with our byte unread: a reset, just as good

        eventually(refused, timeout=5)
    finally:
        for conn in held:
            conn.close()

    def answers_again() -> None:
        # Until the server has seen the held connections close, a new one is still over
        # the limit and closed at once (EOF or a reset): not yet.
        try:
            response = query("127.0.0.1", address[1], "x.", tcp=True)
        except (EOFError, ConnectionError) as exc:
            raise AssertionError(f"still over the limit: {exc!r}") from exc
        assert response.rcode() == dns.rcode.REFUSED

    eventually(answers_again, timeout=5)


def test_python_m_dnsserver_serves_a_directory_and_reloads(tmp_path: Path) -> None:
    write_zones(tmp_path, {"docker.": DOCKER_ZONE})
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dnsserver",
            "--zones",
            str(tmp_path),
            "--interval",
            "0.1",
            "--listen",
            f"127.0.0.1:{port}",
            "--no-rec",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> None:
            try:
                response = query("127.0.0.1", port, "web.docker.", timeout=0.5)
            except Exception as exc:
                raise AssertionError(str(exc)) from exc
            assert answer_text(response) == ["web.docker. 30 IN A 10.0.0.7"]

        eventually(answers, timeout=10)
        write_zones(tmp_path, {"skydns.local.": SKYDNS_ZONE})

        def reloaded() -> None:
            try:
                response = query("127.0.0.1", port, "rails.staging.east.skydns.local.", timeout=0.5)
            except Exception as exc:
                raise AssertionError(str(exc)) from exc
            assert answer_text(response) == [
                "rails.staging.east.skydns.local. 3600 IN A 10.0.1.125"
            ]

        eventually(reloaded, timeout=10)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
