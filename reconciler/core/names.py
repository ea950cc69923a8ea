"""Name rules: validation, absolute vs relative names, wildcard labels, reverse names.

Every name the reconciler keeps is lowercase and absolute (trailing dot). Used by
``definitions`` (and later the Docker source) when reading names, and by ``zonebuild``.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")

WILDCARD_LABELS = frozenset({"*", "any"})
"""Query labels that match any one label (dnsdock and SkyDNS); never valid in a record name."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def name_problem(name: str, *, wildcards: bool = False) -> str | None:
    """Why ``name`` (absolute or relative) is not a usable DNS name, or None when it is.

    Labels are 1-63 characters of letters, digits, ``-`` and ``_`` (service labels like
    ``_http``), not starting or ending with ``-``; the whole name at most 253 characters.
    ``@`` (the origin) is fine. ``wildcards`` allows a leftmost ``*`` label (an RFC 4592
    wildcard, for DNSEndpoint).
    """
    if name == "@":
        return None
    if not name or name == ".":
        return "must not be empty"
    body = name[:-1] if name.endswith(".") else name
    if len(body) > 253:
        return f"{name!r} is longer than 253 characters"
    labels = body.lower().split(".")
    for position, label in enumerate(labels):
        if label == "":
            return f"{name!r} has an empty label"
        if label in WILDCARD_LABELS:
            if wildcards and position == 0 and label == "*":
                continue
            return (
                f"{name!r}: label {label!r} is a query wildcard (it matches any label in "
                "queries), it cannot name a record"
            )
        if len(label) > 63:
            return f"{name!r}: label {label[:20]!r}... is longer than 63 characters"
        if not _LABEL.match(label):
            return (
                f"{name!r}: label {label!r} may hold only letters, digits, '-' and '_', "
                "and may not start or end with '-'"
            )
    return None


def address_typo(text: str, *, host_name: bool = True) -> str | None:
    """Why ``text``, which is not an IP address, looks like a mistyped one (``10.0.0.300``,
    ``10.1``), or None. ``host_name``: where a host name would do too, say why it is not one.

    RFC 1123 section 2.1: a host name's highest-level label is never all-numeric, so such
    a value is an address typo, not a name to publish as a CNAME or SRV target.
    """
    last = text[:-1] if text.endswith(".") else text
    last = last.rpartition(".")[2]
    if not (last.isascii() and last.isdigit()):
        return None
    if host_name:
        return (
            f"{text!r} is not a valid IPv4 address (nor a host name: a host name's last "
            "label is never all-numeric, RFC 1123 2.1)"
        )
    return f"{text!r} is not a valid IPv4 address"


def absolute(name: str, origin: str) -> str:
    """``name`` made absolute against ``origin``: ``web`` + ``docker.`` -> ``web.docker.``.

    A name with a trailing dot is already absolute; ``@`` is the origin itself.
    """
    name = name.lower()
    if name == "@":
        return origin
    if name.endswith("."):
        return name
    return f"{name}.{origin}" if origin != "." else f"{name}."


def fqdn(name: str) -> str:
    """A host name as SkyDNS reads one: always absolute, with or without the trailing dot."""
    name = name.lower()
    return name if name.endswith(".") else name + "."


def is_subdomain(name: str, zone: str) -> bool:
    """True when ``name`` is ``zone`` or below it (both absolute)."""
    return zone in (".", name) or name.endswith("." + zone)


def zone_for(
    name: str, zones: tuple[str, ...] | list[str] | set[str] | frozenset[str]
) -> str | None:
    """The longest of ``zones`` that holds ``name``, or None. With a (frozen)set, a walk up
    ``name``'s suffixes: cost in labels, not in zones."""
    if isinstance(zones, set | frozenset):
        current = name
        while True:
            if current in zones:
                return current
            if current == ".":
                return None
            current = current.partition(".")[2] or "."
    best: str | None = None
    for zone in zones:
        if is_subdomain(name, zone) and (best is None or len(zone) > len(best)):
            best = zone
    return best


def ancestors(name: str, zone: str) -> list[str]:
    """Names strictly between ``name`` and the apex of ``zone``, nearest first.

    ``1.rails.east.skydns.local.`` in ``skydns.local.`` ->
    ``[rails.east.skydns.local., east.skydns.local.]``.
    """
    result: list[str] = []
    current = name
    while True:
        _, _, current = current.partition(".")
        if not current or current == zone or not is_subdomain(current, zone):
            return result
        result.append(current)


def strip_labels(name: str, count: int, zone: str) -> str:
    """SkyDNS TargetStrip: drop ``count`` labels from the left of ``name``.

    When that would reach the zone apex or beyond, the name is kept whole (SkyDNS keeps
    the original when it overshoots; dockzone also keeps the apex free of service data).
    """
    if count <= 0:
        return name
    chain = ancestors(name, zone)
    return chain[count - 1] if count <= len(chain) else name


@lru_cache(maxsize=1 << 16)
def parse_ip(text: str) -> IPAddress | None:
    """The address in ``text``, or None when it is not an IPv4/IPv6 address (cached: the
    zone build asks for the same address several times per record)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@lru_cache(maxsize=1 << 16)
def reverse_name(address: IPAddress) -> str:
    """The PTR owner name: ``10.0.1.125`` -> ``125.1.0.10.in-addr.arpa.`` (cached)."""
    return address.reverse_pointer + "."


def reverse_zone(address: IPAddress, prefix_v4: int, prefix_v6: int) -> str:
    """The reverse zone holding ``address``'s PTR: its /prefix_v4 (multiple of 8) or
    /prefix_v6 (multiple of 4) network. ``10.0.1.125`` with 24 -> ``1.0.10.in-addr.arpa.``."""
    labels = reverse_name(address).split(".")
    if address.version == 4:
        keep = prefix_v4 // 8
        return ".".join(labels[4 - keep :])
    keep = prefix_v6 // 4
    return ".".join(labels[32 - keep :])


def dns_safe_label(text: str) -> str:
    """``text`` as one DNS label: lowercase, other characters as ``-``, at most 63 long.

    ``My_App.1`` -> ``my_app-1``. Returns an empty string when nothing usable is left.
    """
    label = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")
    return label[:63].rstrip("-")


def mailbox_name(hostmaster: str, zone: str) -> str:
    """The SOA RNAME: ``admin@example.com`` -> ``admin.example.com.``; empty means
    ``hostmaster.<zone>``. Dots in the local part are escaped (RFC 1035 section 8)."""
    if not hostmaster:
        return f"hostmaster.{zone}"
    if "@" in hostmaster:
        local, _, domain = hostmaster.partition("@")
        return f"{local.replace('.', chr(92) + '.')}.{fqdn(domain)}".lower()
    return fqdn(hostmaster)
