"""The response rate limiting options: flags, environment, defaults by listen address, and
the limiter `dockzone run`/`serve` hand their DNS server."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from pathlib import Path

import dns.message
import pytest

from dnsserver import ZoneStore, parse_zone_text
from reconciler.cli import build_parser
from reconciler.config import RRL_DEFAULT_RATE, Settings, resolve, rrl_rate
from reconciler.errors import ConfigError
from reconciler.warm import make_rate_limiter, start_dns


def settings(tmp_path: Path, *argv: str, environ: dict[str, str] | None = None) -> Settings:
    """The settings of ``dockzone serve ARGV`` as the CLI resolves them."""
    args = build_parser().parse_args(["serve", "--zones", str(tmp_path), *argv])
    return resolve(vars(args), environ or {}, None)


DEFAULTS = [
    ("127.0.0.1:5354", 0),
    ("127.0.0.1:5354,[::1]:5354", 0),
    ("127.0.0.53:53", 0),
    (":5354", RRL_DEFAULT_RATE),
    ("192.0.2.1:53", RRL_DEFAULT_RATE),
    ("127.0.0.1:5354,192.0.2.1:53", RRL_DEFAULT_RATE),
    ("[2001:db8::1]:53", RRL_DEFAULT_RATE),
]


@pytest.mark.parametrize(("dns", "rate"), DEFAULTS, ids=[d for d, _ in DEFAULTS])
def test_rrl_is_off_on_loopback_and_on_beyond_it_by_default(
    tmp_path: Path, dns: str, rate: int
) -> None:
    assert rrl_rate(settings(tmp_path, "--dns", dns)) == rate


def test_an_explicit_rrl_wins_over_the_default(tmp_path: Path) -> None:
    assert rrl_rate(settings(tmp_path, "--dns", ":53", "--rrl", "0")) == 0
    assert rrl_rate(settings(tmp_path, "--dns", "127.0.0.1:53", "--rrl", "10")) == 10
    assert rrl_rate(settings(tmp_path, "--dns", ":53", environ={"DOCKZONE_RRL": "auto"})) == 200
    assert rrl_rate(settings(tmp_path, environ={"DOCKZONE_RRL": "7"})) == 7


def test_the_limiter_follows_the_options(tmp_path: Path) -> None:
    given = settings(
        tmp_path,
        "--rrl",
        "10",
        "--rrl-slip",
        "3",
        "--rrl-window",
        "5",
        "--rrl-exempt",
        "10.1.2.3/8",
        "--rrl-exempt",
        "2001:db8::/32",
    )
    limiter = make_rate_limiter(given)
    assert limiter is not None
    assert (limiter.rate, limiter.slip, limiter.window) == (10, 3, 5)
    assert limiter.exempt == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    )


def test_defaults_are_slip_2_window_15_and_nothing_exempt(tmp_path: Path) -> None:
    limiter = make_rate_limiter(settings(tmp_path, "--dns", ":53"))
    assert limiter is not None
    assert (limiter.rate, limiter.slip, limiter.window, limiter.exempt) == (200, 2, 15, ())
    assert make_rate_limiter(settings(tmp_path)) is None


def test_exempt_networks_come_as_a_comma_list_from_the_environment(tmp_path: Path) -> None:
    given = settings(tmp_path, environ={"DOCKZONE_RRL_EXEMPT": "10.0.0.0/8, 192.0.2.7"})
    assert given.rrl_exempt == ("10.0.0.0/8", "192.0.2.7/32")


BAD = [
    (("--rrl", "-1"), "--rrl: must be 0..1000000"),
    (("--rrl", "many"), "--rrl: must be responses per second"),
    (("--rrl-slip", "11"), "--rrl-slip: must be 0..10"),
    (("--rrl-window", "0"), "--rrl-window: must be 1..3600"),
    (("--rrl-exempt", "10.0.0.0/33"), "--rrl-exempt: '10.0.0.0/33' is not a network"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_values_are_config_errors(tmp_path: Path, argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, *argv)


ZONE = """\
$ORIGIN docker.
@ 30 IN SOA ns.dns hostmaster 1 3600 600 86400 30
@ 30 IN NS ns.dns
ns.dns 30 IN A 127.0.0.1
web 30 IN A 10.0.0.7
"""


def _answers(port: int, count: int) -> int:
    """How many of `count` queries for web.docker. A, sent at once, got an answer."""
    got = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for n in range(count):
            message = dns.message.make_query("web.docker.", "A")
            message.id = n
            sock.sendto(message.to_wire(), ("127.0.0.1", port))
        sock.settimeout(0.5)
        with contextlib.suppress(TimeoutError):
            while True:
                got += bool(dns.message.from_wire(sock.recv(65535)).answer)
    return got


@pytest.mark.parametrize(
    ("argv", "answered"), [((), (40, 40)), (("--rrl", "5"), (5, 6))], ids=["default", "rrl-5"]
)
def test_the_server_start_dns_makes_limits_as_configured(
    tmp_path: Path, argv: tuple[str, ...], answered: tuple[int, int]
) -> None:
    """On loopback (the default listen address) a burst is answered whole unless --rrl
    says otherwise."""
    store = ZoneStore()
    store.replace({"docker.": parse_zone_text(ZONE)})
    service = start_dns(settings(tmp_path, "--dns", "127.0.0.1:0", *argv), store)
    assert service is not None
    try:
        low, high = answered
        assert low <= _answers(service.addresses[0][1], 40) <= high
    finally:
        service.stop()
