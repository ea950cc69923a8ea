"""Name rules and serial arithmetic."""

from __future__ import annotations

import ipaddress

import pytest

from reconciler.core import names
from reconciler.core.serials import next_serial, serial_lt


@pytest.mark.parametrize(
    ("name", "origin", "expected"),
    [
        ("web", "docker.", "web.docker."),
        ("Web.Nginx", "docker.", "web.nginx.docker."),
        ("web.example.com.", "docker.", "web.example.com."),
        ("@", "docker.", "docker."),
        ("web", ".", "web."),
    ],
)
def test_absolute(name: str, origin: str, expected: str) -> None:
    assert names.absolute(name, origin) == expected


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("My_App.1", "my_app-1"),
        ("--web--", "web"),
        ("a" * 70, "a" * 63),
        ("...", ""),
    ],
)
def test_dns_safe_label(text: str, label: str) -> None:
    assert names.dns_safe_label(text) == label


def test_ancestors_stop_below_the_apex() -> None:
    assert names.ancestors("1.rails.east.skydns.local.", "skydns.local.") == [
        "rails.east.skydns.local.",
        "east.skydns.local.",
    ]
    assert names.ancestors("web.docker.", "docker.") == []


def test_zone_for_picks_the_longest_suffix() -> None:
    assert names.zone_for("a.b.docker.", ["docker.", "b.docker."]) == "b.docker."
    assert names.zone_for("a.example.", ["docker."]) is None
    assert names.zone_for("xdocker.", ["docker."]) is None


@pytest.mark.parametrize(
    ("address", "v4", "v6", "zone"),
    [
        ("10.0.1.125", 24, 64, "1.0.10.in-addr.arpa."),
        ("10.0.1.125", 16, 64, "0.10.in-addr.arpa."),
        ("10.0.1.125", 8, 64, "10.in-addr.arpa."),
        ("2001:db8::1", 24, 32, "8.b.d.0.1.0.0.2.ip6.arpa."),
    ],
)
def test_reverse_zone(address: str, v4: int, v6: int, zone: str) -> None:
    assert names.reverse_zone(ipaddress.ip_address(address), v4, v6) == zone


def test_mailbox_name() -> None:
    assert names.mailbox_name("", "docker.") == "hostmaster.docker."
    assert names.mailbox_name("john.doe@Example.com", "docker.") == "john\\.doe.example.com."


@pytest.mark.parametrize(
    ("a", "b", "lt"),
    [
        (1, 2, True),
        (2, 1, False),
        (5, 5, False),
        (2**32 - 1, 0, True),  # wraps: 0 comes after the largest serial
        (0, 2**31 + 5, False),  # more than half the space away: "before"
    ],
)
def test_serial_lt_follows_rfc1982(a: int, b: int, lt: bool) -> None:
    assert serial_lt(a, b) is lt


def test_next_serial() -> None:
    assert next_serial(None, 1000) == 1000
    assert next_serial(5, 1000) == 1000
    assert next_serial(1000, 1000) == 1001
    assert next_serial(2000, 1000) == 2001
    assert next_serial(2**32 - 1, 10) == 10


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10.0.0.300", "'10.0.0.300' is not a valid IPv4 address (nor a host name"),
        ("10.0.0.300.", "'10.0.0.300.' is not a valid IPv4 address"),
        ("10.1", "'10.1' is not a valid IPv4 address"),
        ("1.2.3.4.5", "'1.2.3.4.5' is not a valid IPv4 address"),
        ("db.example.com", None),
        ("web1.docker.", None),
        ("10.0.0.1x", None),
        ("3com.net", None),
    ],
    ids=str,
)
def test_an_all_numeric_last_label_is_an_address_typo(text: str, problem: str | None) -> None:
    """RFC 1123 2.1: a host name's last label is never all-numeric."""
    found = names.address_typo(text)
    assert found == problem if problem is None else found and found.startswith(problem)
