"""Network-aware answers: a client inside one of the service's networks gets the addresses
in its own network; others get every address. Clients are real sockets bound to different
loopback addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import dns.message
import dns.query
import pytest

from dnsserver import DNSService, Zone, ZoneStore

RECORDS = [
    ("net.test.", "SOA", 30, "ns.net.test. hostmaster.net.test. 1 3600 600 86400 30"),
    ("net.test.", "NS", 30, "ns.net.test."),
    ("ns.net.test.", "A", 30, "127.0.0.1"),
    ("multi.net.test.", "A", 30, "127.0.0.5"),
    ("multi.net.test.", "A", 30, "127.0.0.10"),
    ("multi.net.test.", "A", 30, "10.0.0.1"),
    ("one.net.test.", "A", 30, "10.0.0.2"),
]
NETWORKS = [ipaddress.ip_network("127.0.0.0/29"), ipaddress.ip_network("127.0.0.8/29")]


@pytest.fixture
def service() -> Iterator[DNSService]:
    store = ZoneStore({"net.test.": Zone.from_records("net.test.", RECORDS)})
    running = DNSService(store, [("127.0.0.1", 0)], rotate=False)
    running.networks = NETWORKS
    running.start()
    try:
        yield running
    finally:
        running.stop()


def addresses(service: DNSService, name: str, source: str, *, tcp: bool = False) -> list[str]:
    query = dns.message.make_query(name, "A")
    port = service.addresses[0][1]
    if tcp:
        response = dns.query.tcp(query, "127.0.0.1", port=port, timeout=3, source=source)
    else:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=3, source=source)
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


CASES = [
    ("127.0.0.2", ["127.0.0.5"]),
    ("127.0.0.9", ["127.0.0.10"]),
    ("127.0.0.100", ["10.0.0.1", "127.0.0.10", "127.0.0.5"]),
]


@pytest.mark.parametrize(("source", "expected"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_client_gets_the_address_on_its_own_network(
    service: DNSService, source: str, expected: list[str], tcp: bool
) -> None:
    for _ in range(3):  # the second and third come from the answer cache
        assert addresses(service, "multi.net.test.", source, tcp=tcp) == expected


def test_no_shared_network_means_every_address(service: DNSService) -> None:
    assert addresses(service, "one.net.test.", "127.0.0.2") == ["10.0.0.2"]


def test_changing_the_networks_takes_effect_at_once(service: DNSService) -> None:
    assert addresses(service, "multi.net.test.", "127.0.0.2") == ["127.0.0.5"]
    service.networks = []
    assert addresses(service, "multi.net.test.", "127.0.0.2") == [
        "10.0.0.1",
        "127.0.0.10",
        "127.0.0.5",
    ]
    service.networks = [ipaddress.ip_network("127.0.0.0/24")]
    assert addresses(service, "multi.net.test.", "127.0.0.2") == ["127.0.0.10", "127.0.0.5"]
