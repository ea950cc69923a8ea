"""Record data in master-file text form: one canonical spelling per value.

The zone file sink compares rdata text read back from disk with the text built here, so
each function returns exactly what ``render`` writes: lowercase absolute names, compressed
IPv6, TXT as quoted strings of at most 255 bytes with RFC 1035 escapes.
"""

from __future__ import annotations

import socket

from reconciler.core import names

TYPE_ORDER = ("SOA", "NS", "A", "AAAA", "CNAME", "MX", "PTR", "SRV", "TXT")
"""The order RRsets of one name are written in; other types follow alphabetically."""


def type_key(rdtype: str) -> tuple[int, str]:
    """Sort key putting rdtypes in ``TYPE_ORDER``."""
    try:
        return (TYPE_ORDER.index(rdtype), "")
    except ValueError:
        return (len(TYPE_ORDER), rdtype)


def name_key(name: str) -> tuple[str, ...]:
    """Sort key for names in DNSSEC canonical order (RFC 4034 section 6.1): by the
    reversed labels, so a name's subtree follows it."""
    return tuple(reversed(name.rstrip(".").split(".")))


def rdata_key(rdtype: str, rdata: str) -> tuple[int, str]:
    """Sort key for rdatas of one RRset: addresses numerically, the rest as text."""
    family = _FAMILIES.get(rdtype)
    if family is None:
        return (0, rdata)
    try:
        return (int.from_bytes(socket.inet_pton(family, rdata), "big"), "")
    except OSError:
        raise ValueError(f"not an {rdtype} address: {rdata!r}") from None


_FAMILIES = {"A": socket.AF_INET, "AAAA": socket.AF_INET6}


def txt_to_text(strings: tuple[str, ...] | list[str]) -> str:
    """TXT rdata: each string UTF-8 encoded, split into chunks of 255 bytes, quoted, with
    ``"`` and ``\\`` escaped and bytes outside printable ASCII as ``\\DDD``."""
    chunks: list[str] = []
    for text in strings:
        data = text.encode("utf-8")
        pieces = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
        for piece in pieces:
            out = []
            for byte in piece:
                if byte in (0x22, 0x5C):
                    out.append("\\" + chr(byte))
                elif 0x20 <= byte < 0x7F:
                    out.append(chr(byte))
                else:
                    out.append(f"\\{byte:03d}")
            chunks.append('"' + "".join(out) + '"')
    return " ".join(chunks)


def srv_to_text(priority: int, weight: int, port: int, target: str) -> str:
    """SRV rdata (RFC 2782): ``priority weight port target``."""
    return f"{priority} {weight} {port} {target}"


def mx_to_text(preference: int, exchange: str) -> str:
    """MX rdata: ``preference exchange``."""
    return f"{preference} {exchange}"


def address_rdtype(address: names.IPAddress) -> str:
    """``A`` for IPv4, ``AAAA`` for IPv6."""
    return "A" if address.version == 4 else "AAAA"


def _uint16(text: str, what: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"{what} must be a number 0..65535, not {text!r}")
    return int(text)


def _host(text: str) -> str:
    problem = names.address_typo(text) or names.name_problem(text)
    if problem:
        raise ValueError(problem)
    return names.fqdn(text)


def from_target(rdtype: str, target: str) -> str:
    """Canonical rdata text for one ExternalDNS endpoint target of type ``rdtype``.

    Raises ValueError naming what is wrong with the target.
    """
    if rdtype in ("A", "AAAA"):
        address = names.parse_ip(target)
        if address is None or address_rdtype(address) != rdtype:
            family = "IPv4" if rdtype == "A" else "IPv6"
            raise ValueError(f"{target!r} is not an {family} address")
        return str(address)
    if rdtype in ("CNAME", "NS", "PTR"):
        return _host(target)
    if rdtype == "TXT":
        return txt_to_text([target])
    if rdtype == "MX":
        parts = target.split()
        if len(parts) != 2:
            raise ValueError(f"MX target {target!r} must be 'preference host'")
        return mx_to_text(_uint16(parts[0], "MX preference"), _host(parts[1]))
    if rdtype == "SRV":
        parts = target.split()
        if len(parts) != 4:
            raise ValueError(f"SRV target {target!r} must be 'priority weight port host'")
        priority = _uint16(parts[0], "SRV priority")
        weight = _uint16(parts[1], "SRV weight")
        port = _uint16(parts[2], "SRV port")
        return srv_to_text(priority, weight, port, _host(parts[3]))
    raise ValueError(f"record type {rdtype!r} is not supported")
