"""Record types and rdata: master-file text to wire form, and names inside rdata.

A, AAAA, CNAME, NS, PTR, MX, SRV, TXT and SOA are encoded here directly (about 1 us per
record; dnslib's `RR.fromZone` costs ~40 us). Other types go through dnslib, and any type
accepts the RFC 3597 generic form `\\# <length> <hex>`.
"""

from __future__ import annotations

import re
import socket
import struct
from types import MappingProxyType

from dnsserver.name import name_to_wire, parse_name, read_name

A = 1
NS = 2
CNAME = 5
SOA = 6
PTR = 12
MX = 15
TXT = 16
AAAA = 28
SRV = 33
OPT = 41
IXFR = 251
AXFR = 252
ANY = 255
ADDRESS_CNAME = 65281
"""dockzone's own type, from RFC 6895's private-use range: a CNAME that answers only A and
AAAA questions, so it may stand beside other data. SkyDNS answers an address question at a
service whose host is a name with a CNAME to that host, even when the name holds the
service's SRV; a zone file cannot say that (a CNAME stands alone), the in-process server
can. Its rdata is a CNAME's; it is never sent, and questions for its type see nothing."""

_TYPES = {
    "A": A,
    "NS": NS,
    "CNAME": CNAME,
    "SOA": SOA,
    "PTR": PTR,
    "HINFO": 13,
    "MX": MX,
    "TXT": TXT,
    "RP": 17,
    "AAAA": AAAA,
    "LOC": 29,
    "SRV": SRV,
    "NAPTR": 35,
    "DS": 43,
    "SSHFP": 44,
    "RRSIG": 46,
    "NSEC": 47,
    "DNSKEY": 48,
    "TLSA": 52,
    "SPF": 99,
    "IXFR": IXFR,
    "AXFR": AXFR,
    "ANY": ANY,
    "CAA": 257,
    "OPT": OPT,
    "SVCB": 64,
    "HTTPS": 65,
}
_NAMES = {value: key for key, value in _TYPES.items()}
TYPES = MappingProxyType(_TYPES)
"""Numeric types by upper-case mnemonic."""

# Types whose rdata holds a name whose A/AAAA belong in the additional section (RFC 1035
# §3.3.9, RFC 2782), with the offset of that name inside the rdata.
_TARGET_OFFSET = {NS: 0, CNAME: 0, PTR: 0, MX: 2, SRV: 6, ADDRESS_CNAME: 0}
ADDITIONAL_TYPES = frozenset({NS, MX, SRV})

_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TTL_RE = re.compile(r"(?:\d+[smhdw])+\Z")


def rdtype_from_text(text: str) -> int:
    """Numeric type for a mnemonic (`A`, `srv`) or `TYPEnnn`; raises ValueError."""
    upper = text.upper()
    value = _TYPES.get(upper)
    if value is not None:
        return value
    if upper.startswith("TYPE") and upper[4:].isdigit():
        number = int(upper[4:])
        if 0 < number < 65536:
            return number
    raise ValueError(f"unknown record type {text!r}")


def rdtype_to_text(rdtype: int) -> str:
    """Mnemonic for a numeric type, `TYPEnnn` when unknown."""
    return _NAMES.get(rdtype, f"TYPE{rdtype}")


def is_rdtype(text: str) -> bool:
    """True when `text` names a record type."""
    try:
        rdtype_from_text(text)
    except ValueError:
        return False
    return True


def parse_ttl(text: str) -> int:
    """A TTL in seconds: `300`, or BIND units like `1h30m`; raises ValueError."""
    if text.isdigit():
        value = int(text)
    elif _TTL_RE.match(text.lower()):
        value = sum(
            int(num) * _TTL_UNITS[unit] for num, unit in re.findall(r"(\d+)([smhdw])", text.lower())
        )
    else:
        raise ValueError(f"bad TTL {text!r}")
    if value > 0xFFFFFFFF:
        raise ValueError(f"TTL out of range: {text!r}")
    return value


def split_rdata(text: str) -> list[str]:
    """Split rdata text on white space, keeping quoted strings (with their quotes) whole."""
    if '"' not in text:
        return text.split()
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        start = i
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            if i >= n:
                raise ValueError("unterminated quoted string")
            i += 1
        else:
            while i < n and not text[i].isspace():
                i += 2 if text[i] == "\\" else 1
        tokens.append(text[start:i])
    return tokens


def character_string(token: str) -> bytes:
    """One <character-string>: quotes removed, `\\X` and `\\DDD` escapes decoded."""
    if len(token) >= 2 and token[0] == '"' and token[-1] == '"':
        token = token[1:-1]
    if "\\" not in token:
        raw = token.encode("utf-8")
    else:
        out = bytearray()
        i, n = 0, len(token)
        while i < n:
            c = token[i]
            if c == "\\" and i + 1 < n:
                digits = token[i + 1 : i + 4]
                if len(digits) == 3 and digits.isdigit():
                    if int(digits) > 255:
                        raise ValueError(f"bad escape in {token!r}")
                    out.append(int(digits))
                    i += 4
                    continue
                out.extend(token[i + 1].encode("utf-8"))
                i += 2
                continue
            out.extend(c.encode("utf-8"))
            i += 1
        raw = bytes(out)
    if len(raw) > 255:
        raise ValueError("character-string longer than 255 bytes")
    return bytes([len(raw)]) + raw


def _u16(token: str) -> int:
    value = int(token)
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"value out of range: {token}")
    return value


def rdata_from_tokens(rdtype: int, tokens: list[str], origin: str | None) -> bytes:
    """Wire rdata for master-file tokens of one record; raises ValueError."""
    if tokens and tokens[0] == "\\#":
        return _generic(tokens)
    try:
        if rdtype == A:
            (text,) = tokens
            if text.count(".") != 3:
                raise ValueError
            return socket.inet_pton(socket.AF_INET, text)
        if rdtype == AAAA:
            (text,) = tokens
            return socket.inet_pton(socket.AF_INET6, text)
        if rdtype in (CNAME, NS, PTR, ADDRESS_CNAME):
            (text,) = tokens
            return name_to_wire(parse_name(text, origin))
        if rdtype == MX:
            pref, host = tokens
            return struct.pack("!H", _u16(pref)) + name_to_wire(parse_name(host, origin))
        if rdtype == SRV:
            prio, weight, port, target = tokens
            return struct.pack("!HHH", _u16(prio), _u16(weight), _u16(port)) + name_to_wire(
                parse_name(target, origin)
            )
        if rdtype in (TXT, 99):
            if not tokens:
                raise ValueError
            return b"".join(character_string(token) for token in tokens)
        if rdtype == SOA:
            mname, rname, serial, *timers = tokens
            if len(timers) != 4:
                raise ValueError
            serial_value = int(serial)
            if not 0 <= serial_value <= 0xFFFFFFFF:
                raise ValueError
            return (
                name_to_wire(parse_name(mname, origin))
                + name_to_wire(parse_name(rname, origin))
                + struct.pack("!IIIII", serial_value, *(parse_ttl(t) for t in timers))
            )
    except (ValueError, OSError, struct.error) as exc:
        detail = f": {exc}" if str(exc) else ""
        raise ValueError(
            f"bad {rdtype_to_text(rdtype)} rdata {' '.join(tokens)!r}{detail}"
        ) from None
    return _via_dnslib(rdtype, tokens, origin)


def rdata_from_text(rdtype: int, text: str, origin: str | None = None) -> bytes:
    """Wire rdata for the rdata part of a master-file line (`10 5 80 web.docker.`)."""
    return rdata_from_tokens(rdtype, split_rdata(text), origin)


def _generic(tokens: list[str]) -> bytes:
    """RFC 3597 §5: `\\# <length> <hex words>`."""
    if len(tokens) < 2 or not tokens[1].isdigit():
        raise ValueError("bad generic rdata")
    data = bytes.fromhex("".join(tokens[2:]))
    if len(data) != int(tokens[1]):
        raise ValueError("generic rdata length does not match its data")
    return data


def _via_dnslib(rdtype: int, tokens: list[str], origin: str | None) -> bytes:
    from dnslib import RDMAP, DNSBuffer, DNSLabel  # noqa: PLC0415 (rare path, slow import)

    cls = RDMAP.get(rdtype_to_text(rdtype))
    if cls is None:
        raise ValueError(f"record type {rdtype_to_text(rdtype)} is not supported")
    try:
        rd = cls.fromZone(tokens, DNSLabel(origin or "."))
        buf = DNSBuffer()
        rd.pack(buf)
    except Exception as exc:  # dnslib raises anything from IndexError to its own errors
        raise ValueError(f"bad {rdtype_to_text(rdtype)} rdata {' '.join(tokens)!r}") from exc
    return bytes(buf.data)


def rdata_target(rdtype: int, rdata: bytes) -> str | None:
    """The name inside NS/CNAME/PTR/MX/SRV rdata (uncompressed), else None."""
    offset = _TARGET_OFFSET.get(rdtype)
    if offset is None:
        return None
    return read_name(rdata, offset, allow_pointers=False)[0]


def soa_minimum(rdata: bytes) -> int:
    """The SOA MINIMUM field (RFC 2308: the negative-caching TTL)."""
    return int(struct.unpack("!I", rdata[-4:])[0])


def soa_serial(rdata: bytes) -> int:
    """The SOA SERIAL field."""
    return int(struct.unpack("!I", rdata[-20:-16])[0])


def decompress_rdata(rdtype: int, msg: bytes, offset: int, length: int) -> bytes:
    """Rdata of an RR read from a message, with names inside it expanded (no pointers)."""
    end = offset + length
    if rdtype in (CNAME, NS, PTR, MX, SRV):
        skip = _TARGET_OFFSET[rdtype]
        name, _ = read_name(msg, offset + skip)
        return msg[offset : offset + skip] + name_to_wire(name)
    if rdtype == SOA:
        mname, pos = read_name(msg, offset)
        rname, pos = read_name(msg, pos)
        if end - pos != 20:
            raise ValueError("bad SOA rdata")
        return name_to_wire(mname) + name_to_wire(rname) + msg[pos:end]
    return msg[offset:end]
