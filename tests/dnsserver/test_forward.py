"""Forwarding names outside the zones to upstreams the tests start on 127.0.0.x."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from dnsserver import (
    ADDRESS_CNAME,
    DNSService,
    Forwarder,
    Zone,
    ZoneStore,
    read_resolv_conf,
    rrset_from_text,
)
from dnsserver.forward import parse_hostport
from dnsserver.forwardcache import ForwardCache
from tests.dnsserver.conftest import Upstream
from tests.servers import answer_text, query

MakeService = Callable[..., DNSService]


def _port(service: DNSService) -> int:
    return service.addresses[0][1]


def test_names_outside_the_zones_are_forwarded(
    forwarding_store: ZoneStore, upstream: Upstream, make_service: MakeService
) -> None:
    service = make_service(forwarding_store, forwarder=Forwarder([("127.0.0.2", upstream.port)]))
    response = query("127.0.0.1", _port(service), "outside.test.", "TXT", rd=True)
    assert answer_text(response) == ['outside.test. 300 IN TXT "from upstream"']
    assert response.flags & dns.flags.RA
    assert not response.flags & dns.flags.AA
    response = query("127.0.0.1", _port(service), "missing.test.", rd=True, tcp=True)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert upstream.seen == [("outside.test.", "TXT"), ("missing.test.", "A")]


def test_names_inside_the_zones_are_never_forwarded(
    forwarding_store: ZoneStore, upstream: Upstream, make_service: MakeService
) -> None:
    service = make_service(forwarding_store, forwarder=Forwarder([("127.0.0.2", upstream.port)]))
    for qname in ("nope.docker.", "web.docker.", "x.y.skydns.local."):
        response = query("127.0.0.1", _port(service), qname, "A", rd=True)
        assert response.flags & dns.flags.AA
    assert upstream.seen == []


def test_failover_to_the_next_upstream_when_the_first_is_dead(
    forwarding_store: ZoneStore, upstream: Upstream, dead_port: int, make_service: MakeService
) -> None:
    forwarder = Forwarder([("127.0.0.3", dead_port), ("127.0.0.2", upstream.port)], timeout=1)
    service = make_service(forwarding_store, forwarder=forwarder)
    response = query("127.0.0.1", _port(service), "outside.test.", "A", rd=True)
    assert answer_text(response) == ["outside.test. 300 IN A 192.0.2.1"]


def test_failover_when_the_first_upstream_is_silent(
    forwarding_store: ZoneStore, upstream: Upstream, make_service: MakeService
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.4", 0))
        forwarder = Forwarder(
            [("127.0.0.4", silent.getsockname()[1]), ("127.0.0.2", upstream.port)], timeout=0.3
        )
        service = make_service(forwarding_store, forwarder=forwarder)
        response = query("127.0.0.1", _port(service), "outside.test.", "A", rd=True)
    assert answer_text(response) == ["outside.test. 300 IN A 192.0.2.1"]


def test_a_silent_upstream_does_not_stall_local_answers(
    forwarding_store: ZoneStore, make_service: MakeService
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.4", 0))
        forwarder = Forwarder([("127.0.0.4", silent.getsockname()[1])], timeout=3)
        service = make_service(forwarding_store, forwarder=forwarder)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            for i in range(100):  # more than the forwarding pool's workers
                wire = dns.message.make_query(f"n{i}.outside.test.", "A").to_wire()
                client.sendto(wire, ("127.0.0.1", _port(service)))
        started = time.monotonic()
        response = query("127.0.0.1", _port(service), "web.docker.", timeout=1)
        assert time.monotonic() - started < 1
    assert answer_text(response) == ["web.docker. 30 IN A 10.0.0.7"]


def test_all_upstreams_failing_gives_servfail(
    forwarding_store: ZoneStore, dead_port: int, make_service: MakeService
) -> None:
    service = make_service(forwarding_store, forwarder=Forwarder([("127.0.0.3", dead_port)]))
    response = query("127.0.0.1", _port(service), "outside.test.", "A", rd=True)
    assert response.rcode() == dns.rcode.SERVFAIL


def test_no_rec_refuses_names_outside_the_zones(
    forwarding_store: ZoneStore, upstream: Upstream, make_service: MakeService
) -> None:
    service = make_service(forwarding_store, forwarder=None)
    response = query("127.0.0.1", _port(service), "outside.test.", "A", rd=True)
    assert response.rcode() == dns.rcode.REFUSED
    assert upstream.seen == []


def test_external_cname_targets_are_resolved_upstream(
    forwarding_store: ZoneStore, upstream: Upstream, make_service: MakeService
) -> None:
    service = make_service(forwarding_store, forwarder=Forwarder([("127.0.0.2", upstream.port)]))
    for tcp in (False, True):
        response = query("127.0.0.1", _port(service), "ext.docker.", "A", tcp=tcp)
        assert response.flags & dns.flags.AA
        assert answer_text(response) == [
            "ext.docker. 30 IN CNAME www.example.test.",
            "www.example.test. 300 IN A 192.0.2.80",
        ]


def test_resolv_conf_nameservers_are_read(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver 127.0.0.9\nnameserver fe80::1%eth0\n")
    assert read_resolv_conf(str(conf)) == [("127.0.0.9", 53), ("fe80::1", 53)]
    assert Forwarder.from_resolv_conf(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


def test_address_cname_answers_address_questions_only(
    upstream: Upstream, make_service: MakeService
) -> None:
    """SkyDNS: a service whose host is a name holds its SRV, and A/AAAA questions there get
    a CNAME to the host, chased in the zones or upstream; nothing else sees it."""
    zone = Zone.from_records(
        "skydns.local.",
        [
            ("skydns.local.", "SOA", 30, "ns.skydns.local. h.skydns.local. 1 3600 600 86400 30"),
            ("svc.skydns.local.", "SRV", 30, "10 100 8080 www.example.test."),
            ("svc.skydns.local.", f"TYPE{ADDRESS_CNAME}", 30, "www.example.test."),
            ("inner.skydns.local.", "SRV", 30, "10 100 8080 svc.skydns.local."),
            ("inner.skydns.local.", f"TYPE{ADDRESS_CNAME}", 30, "svc.skydns.local."),
        ],
    )
    service = make_service(
        ZoneStore({"skydns.local.": zone}), forwarder=Forwarder([("127.0.0.2", upstream.port)])
    )
    port = _port(service)
    response = query("127.0.0.1", port, "inner.skydns.local.", "A", rd=True)
    assert answer_text(response) == [
        "inner.skydns.local. 30 IN CNAME svc.skydns.local.",
        "svc.skydns.local. 30 IN CNAME www.example.test.",
        "www.example.test. 300 IN A 192.0.2.80",
    ]
    assert response.flags & dns.flags.AA
    assert answer_text(query("127.0.0.1", port, "svc.skydns.local.", "SRV")) == [
        "svc.skydns.local. 30 IN SRV 10 100 8080 www.example.test."
    ]
    assert answer_text(query("127.0.0.1", port, "svc.skydns.local.", "ANY")) == [
        "svc.skydns.local. 30 IN SRV 10 100 8080 www.example.test."
    ]
    for qtype in ("CNAME", "TXT", f"TYPE{ADDRESS_CNAME}"):
        response = query("127.0.0.1", port, "svc.skydns.local.", qtype)
        assert (response.rcode(), response.answer) == (dns.rcode.NOERROR, []), qtype
    assert query("127.0.0.1", port, "*.skydns.local.", "ANY").answer[0].rdtype == 33


def test_ptr_misses_outside_the_reverse_authority_go_upstream(
    upstream: Upstream, make_service: MakeService
) -> None:
    """SkyDNS: a PTR question the reverse zone has no record for is forwarded, except for
    addresses of the networks the zone speaks for (and with no limit set, for every one)."""
    upstream.records[("126.1.0.10.in-addr.arpa.", "PTR")] = [
        "126.1.0.10.in-addr.arpa. 300 IN PTR lan-host.example.test."
    ]
    upstream.records[("121.1.0.10.in-addr.arpa.", "PTR")] = [
        "121.1.0.10.in-addr.arpa. 300 IN PTR shadowed.example.test."
    ]
    zone = Zone.from_records(
        "1.0.10.in-addr.arpa.",
        [
            ("1.0.10.in-addr.arpa.", "SOA", 30, "ns.docker. h.docker. 1 3600 600 86400 30"),
            ("125.1.0.10.in-addr.arpa.", "PTR", 30, "web.docker."),
        ],
    )
    service = make_service(
        ZoneStore({"1.0.10.in-addr.arpa.": zone}),
        forwarder=Forwarder([("127.0.0.2", upstream.port)]),
    )
    port = _port(service)

    def ptr(address: str, qtype: str = "PTR") -> dns.message.Message:
        name = ".".join(reversed(address.split("."))) + ".in-addr.arpa."
        return query("127.0.0.1", port, name, qtype, rd=True)

    assert ptr("10.0.1.126").rcode() == dns.rcode.NXDOMAIN  # the default: authoritative
    service.reverse_authority = (ipaddress.ip_network("10.0.1.120/30"),)
    response = ptr("10.0.1.126")
    assert answer_text(response) == ["126.1.0.10.in-addr.arpa. 300 IN PTR lan-host.example.test."]
    assert not response.flags & dns.flags.AA
    response = ptr("10.0.1.125")
    assert answer_text(response) == ["125.1.0.10.in-addr.arpa. 30 IN PTR web.docker."]
    assert response.flags & dns.flags.AA
    response = ptr("10.0.1.121")  # inside the authority: ours, though upstream knows it
    assert (response.rcode(), bool(response.flags & dns.flags.AA)) == (dns.rcode.NXDOMAIN, True)
    response = ptr("10.0.1.126", "A")  # only PTR questions go upstream
    assert (response.rcode(), bool(response.flags & dns.flags.AA)) == (dns.rcode.NXDOMAIN, True)
    assert ("121.1.0.10.in-addr.arpa.", "PTR") not in upstream.seen


def test_an_upstream_answer_is_kept_until_the_zones_change(
    forwarding_store: ZoneStore, upstream: Upstream, make_service: MakeService
) -> None:
    """A name outside the zones asked again is answered from what upstream said, until its
    TTL runs out or the zones change (a forwarded name may be in a zone now)."""
    service = make_service(forwarding_store, forwarder=Forwarder([("127.0.0.2", upstream.port)]))
    answers = [
        answer_text(query("127.0.0.1", _port(service), "outside.test.", "TXT", rd=True))
        for _ in range(3)
    ]
    assert answers == [['outside.test. 300 IN TXT "from upstream"']] * 3
    assert upstream.seen == [("outside.test.", "TXT")]
    added = rrset_from_text("docker.", "new.docker.", "A", 30, ["10.0.9.9"])
    forwarding_store.patch({"docker.": {("new.docker.", "A"): added}})
    query("127.0.0.1", _port(service), "outside.test.", "TXT", rd=True)
    assert upstream.seen == [("outside.test.", "TXT")] * 2


def _upstream_answer(rcode: int = 0, ttl: int = 30, truncated: bool = False) -> tuple[bytes, bytes]:
    request = dns.message.make_query("outside.test.", "A")
    response = dns.message.make_response(request)
    response.set_rcode(rcode)
    if truncated:
        response.flags |= dns.flags.TC
    if ttl >= 0:
        response.answer.append(
            dns.rrset.from_text("outside.test.", ttl, "IN", "A", "192.0.2.1", "192.0.2.2")
        )
    return request.to_wire(), response.to_wire()


def test_kept_answers_count_their_ttls_down_and_expire() -> None:
    now = [100.0]
    cache = ForwardCache(clock=lambda: now[0])
    request, wire = _upstream_answer(ttl=30)
    cache.put(request, wire)
    now[0] += 10.5
    again = bytearray(request)
    again[:2] = b"\x12\x34"
    kept = cache.get(bytes(again))
    assert kept is not None
    message = dns.message.from_wire(kept)
    assert message.id == 0x1234
    assert [rrset.ttl for rrset in message.answer] == [20]
    now[0] += 20
    assert cache.get(request) is None


@pytest.mark.parametrize(
    ("rcode", "ttl", "truncated"),
    [
        (dns.rcode.SERVFAIL, 30, False),
        (0, 30, True),
        (dns.rcode.NXDOMAIN, -1, False),
        (0, 0, False),
    ],
    ids=["servfail", "truncated", "no-record", "ttl-0"],
)
def test_errors_truncated_and_timeless_answers_are_not_kept(
    rcode: int, ttl: int, truncated: bool
) -> None:
    cache = ForwardCache()
    request, wire = _upstream_answer(rcode, ttl, truncated)
    cache.put(request, wire)
    assert cache.get(request) is None
    assert len(cache) == 0
