"""The UDP loop's I/O (dnsserver/udpio.py): in batches through the C module
dnsserver._udpbatch (recvmmsg/sendmmsg), and one datagram per call without it. Both must
answer alike: every query of a burst from several clients, each answer to its own client,
forwarded answers, and on a wildcard listener an answer from the address asked."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from dnsserver import DNSService, Forwarder, ZoneDirectory, ZoneStore, udpio
from tests.dnsserver.conftest import Upstream
from tests.servers import answer_text, query


def test_the_batched_io_is_built() -> None:
    assert udpio.batching(), (
        "dnsserver._udpbatch is not built: hack/deps installs gcc and the Python headers, "
        "and hack/venv builds it (pip install -e .)"
    )


@pytest.fixture(scope="module")
def store(zone_files: Path) -> ZoneStore:
    store = ZoneStore()
    ZoneDirectory(zone_files, store).rescan()
    return store


@pytest.fixture(params=[True, False], ids=["batched", "one-by-one"])
def batch(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def service(store: ZoneStore, batch: bool) -> Iterator[DNSService]:
    upstream = Upstream(
        "127.0.0.1", {("www.example.test.", "A"): ["www.example.test. 60 IN A 192.0.2.80"]}
    )
    upstream.start()
    service = DNSService(
        store,
        [("127.0.0.1", 0)],
        forwarder=Forwarder([("127.0.0.1", upstream.port)]),
        udp_batch=batch,
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()
        upstream.stop()


# A name that exists (rotated), a missing one (a template), an SRV with additionals, one
# that goes to the upstream.
QUESTIONS = [
    ("web.docker.", "A"),
    ("nothing-here.docker.", "A"),
    ("_redis._tcp.redis.docker.", "SRV"),
    ("www.example.test.", "A"),
    ("dual.docker.", "AAAA"),
]


def test_a_burst_from_several_clients_gets_every_answer_back_to_its_client(
    service: DNSService,
) -> None:
    port = service.addresses[0][1]
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        asked: dict[tuple[int, int], tuple[str, str]] = {}
        for client in clients:
            client.bind(("127.0.0.1", 0))
            client.settimeout(5)
        # 3 clients x 100 queries sent before any answer is read: they wait on the
        # server's socket together and are read in batches.
        for number in range(100):
            for which, client in enumerate(clients):
                qname, qtype = QUESTIONS[(number + which) % len(QUESTIONS)]
                message = dns.message.make_query(qname, qtype)
                message.id = number * 3 + which
                asked[(which, message.id)] = (qname, qtype)
                client.sendto(message.to_wire(), ("127.0.0.1", port))
        for which, client in enumerate(clients):
            for _ in range(100):
                response = dns.message.from_wire(client.recv(65535))
                qname, qtype = asked.pop((which, response.id))  # ours, asked once
                assert response.question[0].name.to_text() == qname
                expected = dns.rcode.NXDOMAIN if qname.startswith("nothing") else dns.rcode.NOERROR
                assert response.rcode() == expected, (qname, qtype)
                if expected == dns.rcode.NOERROR:
                    assert response.answer, (qname, qtype)
        assert not asked
    finally:
        for client in clients:
            client.close()


def test_answers_match_one_by_one_and_batched(service: DNSService, store: ZoneStore) -> None:
    port = service.addresses[0][1]
    with DNSService(store, [("127.0.0.1", 0)], udp_batch=False) as plain:
        for qname, qtype in QUESTIONS[:3]:
            ours = query("127.0.0.1", port, qname, qtype, payload=1232)
            theirs = query("127.0.0.1", plain.addresses[0][1], qname, qtype, payload=1232)
            assert ours.rcode() == theirs.rcode()
            assert [r.to_text() for r in ours.authority] == [r.to_text() for r in theirs.authority]
            if qtype != "A":  # A answers rotate
                assert answer_text(ours) == answer_text(theirs)


@pytest.mark.parametrize(
    ("listen", "hosts"),
    [("", ("127.0.0.1", "127.0.0.2", "::1")), ("0.0.0.0", ("127.0.0.2",))],
    ids=["every-address", "0.0.0.0"],
)
def test_a_wildcard_listener_answers_from_the_address_asked(
    store: ZoneStore, batch: bool, listen: str, hosts: tuple[str, ...]
) -> None:
    # 127.0.0.2 is this host too; a reply chosen by the routing table would leave from
    # 127.0.0.1, and dnspython (like any resolver) drops a reply from the wrong address.
    with DNSService(store, [(listen, 0)], udp_batch=batch) as wildcard:
        port = wildcard.addresses[0][1]
        for host in hosts:
            message = dns.message.make_query("web.docker.", "A")
            response = dns.query.udp(message, host, port=port, timeout=3)
            assert response.rcode() == dns.rcode.NOERROR
            assert response.answer


def test_the_c_module_rejects_what_it_cannot_send() -> None:
    module = udpio._udpbatch
    assert module is not None
    peer = module.peer("127.0.0.1", 53)
    assert module.host(peer) == "127.0.0.1"
    assert module.host(module.peer("fd00::7", 53)) == "fd00::7"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(TypeError, match="pairs"):
            module.send(sock.fileno(), [("text", peer)])
        with pytest.raises(ValueError, match="sockaddr"):
            module.send(sock.fileno(), [(b"x", b"\x00")])
    with pytest.raises(ValueError, match="not an IP address: web"):
        module.peer("web", 53)
    with pytest.raises(ValueError, match="count must be 1 to 1024"):
        module.Receiver(0)
    with pytest.raises(OSError, match="not an open socket"):  # a closed socket's fileno()
        module.Receiver(1, 512).recv(-1)


def _raw(port: int, wire: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(3)
        client.sendto(wire, ("127.0.0.1", port))
        return client.recv(65535)


@pytest.mark.parametrize(
    ("qname", "qtype", "edns"),
    [
        ("web.docker.", "A", False),  # an answer pointing to the question
        ("dual.docker.", "MX", True),  # NODATA: the SOA's owner points into the question
        ("_redis._tcp.redis.docker.", "SRV", True),  # additionals, names of their own
        ("alias2.docker.", "A", False),  # a CNAME chain
        ("1.rails.staging.east.skydns.local.", "A", True),
    ],
)
def test_case_randomised_queries_are_answered_from_the_cache_in_the_case_asked(
    store: ZoneStore, batch: bool, qname: str, qtype: str, edns: bool
) -> None:
    # Resolvers that randomise the case of every query (0x20) make every query's bytes
    # new: the cache is looked up by the lowercased name, and the answer must carry the
    # question as asked, byte for byte what the general path renders for it.
    variants = [
        qname.upper(),
        qname,
        "".join(c.upper() if i % 2 else c for i, c in enumerate(qname)),
    ]
    with DNSService(store, [("127.0.0.1", 0)], rotate=False, udp_batch=batch) as service:
        port = service.addresses[0][1]
        general = DNSService(store, [], rotate=False)
        for round_ in range(2):  # the first asks each case once, the second from the cache
            for variant in variants:
                message = dns.message.make_query(variant, qtype, use_edns=0 if edns else -1)
                message.id = 4242
                wire = message.to_wire()
                assert _raw(port, wire) == general._answer(wire, store.snapshot(), True).wire, (
                    round_,
                    variant,
                )
        # One answer was built (for the first case asked); every other came from the cache.
        assert service.stats().cache_misses == 1


def test_the_c_module_answers_cache_hits_for_known_clients_while_the_cache_is_fresh() -> None:
    module = udpio._udpbatch
    assert module is not None
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        server.bind(("127.0.0.1", 0))
        client.bind(("127.0.0.1", 0))
        client.settimeout(2)
        receiver = module.Receiver(8, 512)
        query = b"\x12\x34" + b"a question"  # a header's length
        kept = b"-kept answer"
        cache = {b"a question": (itertools.cycle([kept + b"1", kept + b"2"]), 1)}
        outcomes = [0, 0]
        client_address = module.address(module.peer("127.0.0.1", 0))

        def serve(fresh: bool, prefixes: dict[bytes, object]) -> list[tuple[bytes, bytes]]:
            client.sendto(query, server.getsockname())
            return receiver.serve(server.fileno(), lambda: fresh, cache, {}, outcomes, prefixes)

        # A client the loop has not answered yet: returned to the loop, nothing sent.
        assert [data for data, _ in serve(True, {})] == [query]
        # A client it must rate-limit: returned too.
        assert [data for data, _ in serve(True, {client_address: 0})] == [query]
        # The cache is not the current zones': returned.
        assert [data for data, _ in serve(False, {client_address: b""})] == [query]
        assert outcomes == [0, 0]
        # A known client, a fresh cache: answered here, rotating, counted.
        assert serve(True, {client_address: b""}) == []
        assert client.recv(512) == b"\x12\x34" + kept + b"1"
        assert serve(True, {client_address: b""}) == []
        assert client.recv(512) == b"\x12\x34" + kept + b"2"
        assert outcomes == [0, 2]
        # A client in a network: looked up with its network's prefix.
        assert [data for data, _ in serve(True, {client_address: b"\x00\x01\xff"})] == [query]
        cache[b"\x00\x01\xffa question"] = (itertools.repeat(b"-for the network"), 0)
        assert serve(True, {client_address: b"\x00\x01\xff"}) == []
        assert client.recv(512) == b"\x12\x34-for the network"
        assert outcomes == [1, 2]
