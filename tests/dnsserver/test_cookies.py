"""DNS COOKIE (RFC 7873, server cookies as RFC 9018 lays them out) and NSID (RFC 5001), as
dig and a resolver see them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from dnsserver import DNSService, ZoneStore, parse_zone_text
from dnsserver.cookies import CookieError, Cookies, Verdict
from tests.helpers import require_binary

ZONE = """\
$ORIGIN d.test.
$TTL 30
@ IN SOA ns hostmaster 1 3600 600 86400 30
@ IN NS ns
ns IN A 127.0.0.1
web IN A 10.0.0.1
"""


@pytest.fixture
def service(make_service: Callable[..., DNSService]) -> DNSService:
    return make_service(ZoneStore({"d.test.": parse_zone_text(ZONE, "d.test.")}), nsid=b"dz-1")


def _ask(
    port: int, cookie: bytes | None, name: str = "web.d.test.", source: str = "127.0.0.1"
) -> dns.message.Message:
    options = [] if cookie is None else [dns.edns.GenericOption(dns.edns.COOKIE, cookie)]
    message = dns.message.make_query(name, "A", use_edns=0, options=options)
    return dns.query.udp(message, "127.0.0.1", port=port, timeout=2, source=source)


def _cookie(response: dns.message.Message) -> bytes:
    (option,) = [o for o in response.options if o.otype == dns.edns.COOKIE]
    return option.to_wire()  # type: ignore[no-any-return]


def test_dig_gets_a_good_server_cookie_and_the_nsid(service: DNSService) -> None:
    require_binary("dig")
    port = service.addresses[0][1]
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "web.d.test", "+cookie", "+nsid", "+norec"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert "status: NOERROR" in out
    assert "(good)" in next(line for line in out.splitlines() if "COOKIE:" in line)
    assert '; NSID: 64 7a 2d 31 ("dz-1")' in out


def test_a_server_cookie_is_kept_for_its_client_and_address_only(service: DNSService) -> None:
    port = service.addresses[0][1]
    client = os.urandom(8)
    first = _cookie(_ask(port, client))
    assert len(first) == 24
    assert first[:8] == client
    assert first[8] == 1
    again = _ask(port, first)
    assert again.rcode() == dns.rcode.NOERROR
    assert _cookie(again) == first  # valid, and young: handed back as it is
    elsewhere = _cookie(_ask(port, first, source="127.0.0.2"))
    assert elsewhere[:8] == client
    assert elsewhere != first
    other_client = _cookie(_ask(port, os.urandom(8) + first[8:]))
    assert other_client[8:] != first[8:]


def test_the_answer_cache_serves_every_cookie_its_own(service: DNSService) -> None:
    port = service.addresses[0][1]
    _ask(port, os.urandom(8))
    before = service.stats().cache_misses
    for _ in range(20):
        client = os.urandom(8)
        response = _ask(port, client)
        assert [rr.to_text() for rrset in response.answer for rr in rrset] == ["10.0.0.1"]
        assert _cookie(response)[:8] == client
    assert service.stats().cache_misses == before


def test_a_malformed_cookie_is_formerr(service: DNSService) -> None:
    port = service.addresses[0][1]
    for size in (5, 12, 41):
        assert _ask(port, os.urandom(size)).rcode() == dns.rcode.FORMERR


def test_without_a_valid_server_cookie_udp_gets_badcookie_when_required(
    make_service: Callable[..., DNSService],
) -> None:
    store = ZoneStore({"d.test.": parse_zone_text(ZONE, "d.test.")})
    port = make_service(store, require_cookie=True).addresses[0][1]
    client = os.urandom(8)
    refused = _ask(port, client)
    assert refused.rcode() == dns.rcode.BADCOOKIE
    assert refused.answer == []
    cookie = _cookie(refused)
    assert cookie[:8] == client
    answered = _ask(port, cookie)  # the retry RFC 7873 5.3 asks of a client
    assert answered.rcode() == dns.rcode.NOERROR
    assert [rr.to_text() for rrset in answered.answer for rr in rrset] == ["10.0.0.1"]
    message = dns.message.make_query(
        "web.d.test.", "A", use_edns=0, options=[dns.edns.GenericOption(dns.edns.COOKIE, client)]
    )
    over_tcp = dns.query.tcp(message, "127.0.0.1", port=port, timeout=2)
    assert over_tcp.rcode() == dns.rcode.NOERROR  # TCP proves the address: no BADCOOKIE
    assert _cookie(over_tcp)[:8] == client


def test_without_cookies_the_option_is_ignored(make_service: Callable[..., DNSService]) -> None:
    store = ZoneStore({"d.test.": parse_zone_text(ZONE, "d.test.")})
    port = make_service(store, cookies=False).addresses[0][1]
    response = _ask(port, os.urandom(8))
    assert response.rcode() == dns.rcode.NOERROR
    assert [o for o in response.options if o.otype == dns.edns.COOKIE] == []


def test_cookies_age_out_after_an_hour() -> None:
    now = [1_800_000_000.0]
    cookies = Cookies(b"k" * 16, clock=lambda: now[0])
    option, verdict = cookies.answer(b"c" * 8, "192.0.2.1")
    assert verdict is Verdict.NONE
    presented = option[4:]
    now[0] += 1000
    assert cookies.answer(presented, "192.0.2.1") == (option, Verdict.VALID)
    now[0] += 1000  # over half an hour: still valid, renewed
    renewed, verdict = cookies.answer(presented, "192.0.2.1")
    assert verdict is Verdict.VALID
    assert renewed != option
    now[0] += 2000  # over an hour
    assert cookies.answer(presented, "192.0.2.1")[1] is Verdict.BAD
    assert cookies.answer(presented, "192.0.2.2")[1] is Verdict.BAD
    with pytest.raises(CookieError):
        cookies.answer(b"c" * 7, "192.0.2.1")


def test_the_hash_covers_the_client_address() -> None:
    cookies = Cookies(b"k" * 16, clock=lambda: 1_800_000_000.0)
    v4, _ = cookies.answer(b"c" * 8, "192.0.2.1")
    v6, _ = cookies.answer(b"c" * 8, "2001:db8::1")
    assert v4[:20] == v6[:20]  # the client cookie, version, reserved, timestamp
    assert v4[20:] != v6[20:]
