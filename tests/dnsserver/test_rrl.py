"""Response rate limiting: the accounting with a clock the test sets, then real bursts of
UDP queries from 127.0.0.1 and 127.0.1.1 (two /24 netblocks) at a real server."""

from __future__ import annotations

import functools
import ipaddress
import select
import socket
import time
from collections.abc import Callable

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from dnsserver import DNSService, ZoneStore
from dnsserver.message import make_query
from dnsserver.rrl import DROP, SEND, SLIP, RateLimiter, slip_response

WEB = make_query(1, "web.docker.", 1)


def verdicts(
    limiter: RateLimiter,
    count: int,
    *,
    now: float = 100.0,
    client: str = "10.0.0.1",
    query: bytes = WEB,
) -> list[int]:
    """`count` checks of the same NOERROR response at one instant."""
    return [limiter.check(client, query, 0, now) for _ in range(count)]


# -- the accounting ----------------------------------------------------------------------------


def test_responses_over_the_rate_are_dropped_and_every_second_one_slips() -> None:
    result = verdicts(RateLimiter(10, slip=2), 20)
    assert result == [SEND] * 10 + [DROP, SLIP] * 5


@pytest.mark.parametrize(
    ("slip", "limited"),
    [(0, [DROP] * 6), (1, [SLIP] * 6), (3, [DROP, DROP, SLIP] * 2)],
    ids=["slip-0-never", "slip-1-always", "slip-3-every-third"],
)
def test_slip_sets_how_many_limited_responses_go_out_truncated(
    slip: int, limited: list[int]
) -> None:
    assert verdicts(RateLimiter(5, slip=slip), 11) == [SEND] * 5 + limited


def test_a_client_at_the_rate_is_never_limited() -> None:
    limiter = RateLimiter(10)
    result = [limiter.check("10.0.0.1", WEB, 0, 100.0 + n * 0.1) for n in range(300)]
    assert set(result) == {SEND}


def test_the_rate_is_earned_per_second() -> None:
    limiter = RateLimiter(10, slip=0)
    assert verdicts(limiter, 10, now=100.0) == [SEND] * 10
    assert verdicts(limiter, 1, now=100.0) == [DROP]  # balance -1
    assert verdicts(limiter, 5, now=100.5) == [SEND] * 4 + [DROP]  # +5 earned


def test_a_flooder_stays_limited_until_the_window_has_passed() -> None:
    """A flood leaves a debt of up to window * rate responses; it is paid off at `rate` per
    second, and an account untouched for a whole window starts afresh (BIND's window)."""
    limiter = RateLimiter(10, slip=0, window=15)
    verdicts(limiter, 1000, now=100.0)
    assert verdicts(limiter, 1, now=105.0) == [DROP]
    assert verdicts(limiter, 1, now=114.0) == [DROP]  # -150 + 10/s: still in debt
    assert verdicts(limiter, 10, now=130.0) == [SEND] * 10


def test_a_netblock_shares_one_account() -> None:
    limiter = RateLimiter(3, slip=0)
    clients = ["10.0.0.1", "10.0.0.200", "10.0.0.99", "10.0.0.7"]
    assert [limiter.check(c, WEB, 0, 100.0) for c in clients] == [SEND] * 3 + [DROP]
    assert verdicts(limiter, 1, client="10.0.1.1") == [SEND]  # another /24
    six = ["2001:db8:0:1::1", "2001:db8:0:ff::2", "2001:db8::3", "2001:db8:0:80::4"]
    assert [limiter.check(c, WEB, 0, 100.0) for c in six] == [SEND] * 3 + [DROP]  # one /56
    assert verdicts(limiter, 1, client="2001:db8:0:100::1") == [SEND]  # the next /56


def test_prefix_lengths_can_be_changed() -> None:
    limiter = RateLimiter(1, slip=0, ipv4_prefix=32)
    assert [limiter.check(c, WEB, 0, 100.0) for c in ("10.0.0.1", "10.0.0.2")] == [SEND, SEND]


def test_answers_are_accounted_per_name_and_type_whatever_the_case() -> None:
    limiter = RateLimiter(2, slip=0)
    assert verdicts(limiter, 2, query=make_query(1, "web.docker.", 1)) == [SEND] * 2
    assert verdicts(limiter, 1, query=make_query(2, "WEB.Docker.", 1)) == [DROP]
    assert verdicts(limiter, 1, query=make_query(3, "web.docker.", 28)) == [SEND]  # AAAA
    assert verdicts(limiter, 1, query=make_query(4, "web2.docker.", 1)) == [SEND]


def test_nxdomain_and_errors_each_share_one_account_per_netblock() -> None:
    """A random-subdomain flood gets NXDOMAIN for a new name each time: one account."""
    limiter = RateLimiter(3, slip=0)
    nx = [limiter.check("10.0.0.1", make_query(n, f"r{n}.docker.", 1), 3, 1.0) for n in range(5)]
    assert nx == [SEND] * 3 + [DROP] * 2
    refused = [limiter.check("10.0.0.1", make_query(n, f"x{n}.test.", 1), 5, 1.0) for n in range(5)]
    assert refused == [SEND] * 3 + [DROP] * 2
    assert limiter.check("10.0.0.1", WEB, 0, 1.0) == SEND  # answers have their own


def test_exempt_networks_are_never_limited() -> None:
    limiter = RateLimiter(1, exempt=[ipaddress.ip_network("10.0.0.0/8")])
    assert set(verdicts(limiter, 50, client="10.200.0.1")) == {SEND}
    assert verdicts(limiter, 2, client="192.0.2.1") == [SEND, DROP]
    assert len(limiter) == 1


def test_loopback_is_limited_unless_listed() -> None:
    assert verdicts(RateLimiter(1, slip=0), 2, client="127.0.0.1") == [SEND, DROP]


def test_the_table_is_bounded_and_forgets_idle_accounts() -> None:
    limiter = RateLimiter(1, window=15, max_entries=100)
    for n in range(1000):  # all at once: none idle, so the table starts over when full
        limiter.check("10.0.0.1", make_query(1, f"n{n}.docker.", 1), 0, 100.0)
        assert len(limiter) <= 100
    for n in range(60):
        limiter.check("10.0.0.1", make_query(1, f"old{n}.docker.", 1), 0, 200.0)
    for n in range(60):  # 20 s later the 60 old accounts are idle: swept, not everything
        limiter.check("10.0.0.1", make_query(1, f"new{n}.docker.", 1), 0, 220.0)
    assert len(limiter) == 60


def test_a_slip_is_the_question_with_tc_and_nothing_else() -> None:
    query = dns.message.make_query("web.docker.", "A", use_edns=0)
    query.id = 4242
    reply = dns.message.from_wire(slip_response(query.to_wire()))
    assert reply.id == 4242
    assert reply.flags & dns.flags.QR
    assert reply.flags & dns.flags.TC
    assert reply.flags & dns.flags.RD
    assert reply.rcode() == dns.rcode.NOERROR
    assert [q.to_text() for q in reply.question] == ["web.docker. IN A"]
    assert reply.answer == reply.authority == reply.additional == []
    assert query.is_response(reply)


# -- real bursts ---------------------------------------------------------------------------


def web_query(n: int, *, edns_option: bool = False) -> bytes:
    """A query for web.docker. A with id `n`; with a client COOKIE beside another option
    it is never answered from the cache (each query gets its own cookie)."""
    option = (
        [dns.edns.GenericOption(65001, b"rrl-test"), dns.edns.GenericOption(10, b"c" * 8)]
        if edns_option
        else []
    )
    message = dns.message.make_query(
        "web.docker.", "A", use_edns=0 if option else False, options=option
    )
    message.id = n
    return message.to_wire()


def burst(
    port: int,
    count: int,
    seconds: float,
    *,
    source: str = "127.0.0.1",
    make: Callable[[int], bytes] = web_query,
) -> tuple[list[dns.message.Message], float]:
    """Send `count` queries (`make(n)`), evenly spread over `seconds`, from `source`;
    every response that arrived by 0.5 s of silence after the last, and the seconds taken."""
    replies: list[dns.message.Message] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.setblocking(False)

        def receive(until: float) -> bool:
            got = False
            while (wait := until - time.monotonic()) > 0:
                if not select.select([sock], [], [], wait)[0]:
                    break
                replies.append(dns.message.from_wire(sock.recv(65535)))
                got = True
            return got

        started = time.monotonic()
        for n in range(count):
            sock.sendto(make(n), ("127.0.0.1", port))
            receive(started + (n + 1) * seconds / count)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 3
        while receive(time.monotonic() + 0.5) and time.monotonic() < deadline:
            pass
    return replies, elapsed


def answered(replies: list[dns.message.Message]) -> int:
    return sum(1 for r in replies if r.answer and not r.flags & dns.flags.TC)


def truncated(replies: list[dns.message.Message]) -> int:
    return sum(1 for r in replies if r.flags & dns.flags.TC and not r.answer)


@pytest.mark.parametrize("built", [False, True], ids=["cached-answers", "built-answers"])
def test_a_burst_gets_about_the_rate_and_every_second_limited_response_slips(
    forwarding_store: ZoneStore, make_service: Callable[..., DNSService], built: bool
) -> None:
    """500 queries in 1.5 s at --rrl 10: about 10 answers per second; the rest limited,
    every second of them a truncated reply. `built` queries are never answered from the
    cache, and cover the other path."""
    service = make_service(forwarding_store, rrl=RateLimiter(10, slip=2))
    make = functools.partial(web_query, edns_option=built)
    replies, elapsed = burst(service.addresses[0][1], 500, 1.5, make=make)
    stats = service.stats()
    assert stats.requests["udp"] == 500
    assert stats.cache_misses == (500 if built else 1)
    assert 10 <= answered(replies) <= 10 * (elapsed + 1)
    limited = 500 - answered(replies)
    assert stats.rrl_dropped + stats.rrl_slipped == limited
    assert stats.rrl_slipped == limited // 2
    assert truncated(replies) == stats.rrl_slipped
    assert len(replies) == answered(replies) + truncated(replies)


def test_nxdomain_for_random_names_is_limited_as_one(
    forwarding_store: ZoneStore, make_service: Callable[..., DNSService]
) -> None:
    service = make_service(forwarding_store, rrl=RateLimiter(10, slip=0))
    replies, elapsed = burst(
        service.addresses[0][1], 100, 0.5, make=lambda n: make_query(n, f"random{n}.docker.", 1)
    )
    assert {reply.rcode() for reply in replies} == {dns.rcode.NXDOMAIN}
    assert 10 <= len(replies) <= 10 * (elapsed + 1)
    stats = service.stats()
    assert stats.cache_misses == 100
    assert stats.rrl_dropped == 100 - len(replies)


def test_another_netblock_is_not_limited_by_a_flooding_one(
    forwarding_store: ZoneStore, make_service: Callable[..., DNSService]
) -> None:
    service = make_service(forwarding_store, rrl=RateLimiter(10, slip=2))
    port = service.addresses[0][1]
    flood, _ = burst(port, 200, 0.3)
    assert answered(flood) < 20
    other, _ = burst(port, 8, 0.2, source="127.0.1.1")
    assert answered(other) == 8
    again, _ = burst(port, 4, 0.1)  # the flooder is still limited
    assert answered(again) == 0


def test_an_exempt_network_is_never_limited(
    forwarding_store: ZoneStore, make_service: Callable[..., DNSService]
) -> None:
    exempt = [ipaddress.ip_network("127.0.0.0/24")]
    service = make_service(forwarding_store, rrl=RateLimiter(10, exempt=exempt))
    replies, _ = burst(service.addresses[0][1], 200, 0.4)
    assert answered(replies) == 200
    stats = service.stats()
    assert stats.rrl_dropped == stats.rrl_slipped == 0
    limited, _ = burst(service.addresses[0][1], 50, 0.2, source="127.0.1.1")
    assert answered(limited) < 50


def test_clients_on_the_served_networks_are_never_limited(
    forwarding_store: ZoneStore, make_service: Callable[..., DNSService]
) -> None:
    """The Docker networks dockzone watches (`DNSService.networks`): containers behind one
    bridge share a /24."""
    service = make_service(forwarding_store, rrl=RateLimiter(10))
    service.networks = [ipaddress.ip_network("127.0.0.0/24")]
    replies, _ = burst(service.addresses[0][1], 200, 0.4)
    assert answered(replies) == 200
    limited, _ = burst(service.addresses[0][1], 50, 0.2, source="127.0.1.1")
    assert answered(limited) < 50


def test_without_rrl_a_burst_is_answered_whole(
    forwarding_store: ZoneStore, make_service: Callable[..., DNSService]
) -> None:
    service = make_service(forwarding_store)
    replies, _ = burst(service.addresses[0][1], 200, 0.4)
    assert answered(replies) == 200
