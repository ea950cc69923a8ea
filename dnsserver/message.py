"""DNS messages on the wire: parse queries, render responses, read upstream answers.

Hand-written rather than dnslib: the server parses every query that misses its response
cache, and this module does in a few microseconds what dnslib's DNSRecord.parse + pack
does in hundreds. Used by `server` and `forward`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from dnsserver.errors import MessageError
from dnsserver.name import name_to_wire, read_name
from dnsserver.rdata import AAAA, OPT, A, decompress_rdata
from dnsserver.zone import RRset

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
NOTAUTH = 9
BADVERS = 16

QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
CD = 0x0010
DO = 0x8000  # in the OPT record's TTL field (RFC 3225)

CLASS_IN = 1
CLASS_ANY = 255

HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")
_ROTATED = (A, AAAA)


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: what the server needs to answer it."""

    id: int
    flags: int
    qname: str
    qtype: int
    qclass: int
    question: bytes  # the question section exactly as the client sent it
    edns: bool
    udp_size: int  # 512 without EDNS (RFC 6891 §6.2.5: never below 512)
    edns_version: int
    options: tuple[tuple[int, bytes], ...]  # the OPT record's options: (code, data)
    do: bool

    @property
    def edns_options(self) -> bool:
        """Whether the OPT record carried options (cookies, ECS, ...)."""
        return bool(self.options)

    @property
    def opcode(self) -> int:
        """The header's OPCODE."""
        return (self.flags >> 11) & 0xF


def read_record_header(data: bytes, pos: int) -> tuple[str, int, int, int, int, int]:
    """The owner name, type, class, TTL and rdata length of the record at ``pos``, and the
    offset of its rdata. Raises ValueError when the record or its rdata runs past the end."""
    name, pos = read_name(data, pos)
    if pos + 10 > len(data):
        raise ValueError("record runs past the end of the message")
    rdtype, rdclass, ttl, rdlen = RR_FIXED.unpack_from(data, pos)
    pos += 10
    if pos + rdlen > len(data):
        raise ValueError("rdata runs past the end of the message")
    return name, rdtype, rdclass, ttl, rdlen, pos


def parse_query(data: bytes) -> Query:
    """Parse a query; raises MessageError (`header` False when not even 12 bytes)."""
    if len(data) < 12:
        raise MessageError("shorter than a DNS header", header=False)
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if qdcount != 1:
        raise MessageError(f"{qdcount} questions (exactly one is supported)")
    try:
        qname, pos = read_name(data, 12, allow_pointers=False)
    except ValueError as exc:
        raise MessageError(f"bad question name: {exc}") from None
    if pos + 4 > len(data):
        raise MessageError("question runs past the end of the message")
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    question = data[12 : pos + 4]
    pos += 4
    edns = False
    udp_size = 512
    version = 0
    options: list[tuple[int, bytes]] = []
    do = False
    try:
        for index in range(ancount + nscount + arcount):
            rrname, rdtype, rdclass, ttl, rdlen, pos = read_record_header(data, pos)
            if rdtype == OPT:
                if edns or index < ancount + nscount or rrname != ".":
                    raise ValueError("misplaced or repeated OPT record")
                edns = True
                udp_size = max(512, rdclass)
                version = (ttl >> 16) & 0xFF
                do = bool(ttl & 0x8000)
                opt = pos
                while opt < pos + rdlen:
                    if opt + 4 > pos + rdlen:
                        raise ValueError("truncated EDNS option")
                    code = int.from_bytes(data[opt : opt + 2], "big")
                    end = opt + 4 + int.from_bytes(data[opt + 2 : opt + 4], "big")
                    options.append((code, data[opt + 4 : end]))
                    opt = end
                if opt != pos + rdlen:
                    raise ValueError("EDNS option runs past its record")
            pos += rdlen
    except ValueError as exc:
        raise MessageError(str(exc)) from None
    if pos != len(data):
        raise MessageError("trailing bytes after the last record")
    return Query(
        qid, flags, qname, qtype, qclass, question, edns, udp_size, version, tuple(options), do
    )


class _Writer:
    """Appends RRs to a message with owner-name compression (RFC 1035 §4.1.4)."""

    __slots__ = ("buf", "names")

    def __init__(self, buf: bytearray, qname: str | None) -> None:
        self.buf = buf
        self.names: dict[bytes, int] = {}
        if qname is not None:  # the question's name, at offset 12
            self._register(name_to_wire(qname), 12, len(name_to_wire(qname)))

    def _register(self, wire: bytes, start: int, upto: int) -> None:
        pos = 0
        while pos < upto and wire[pos] and start + pos < 0x4000:
            self.names.setdefault(wire[pos:], start + pos)
            pos += wire[pos] + 1

    def name(self, name: str) -> None:
        wire = name_to_wire(name)
        buf = self.buf
        names = self.names
        start = len(buf)
        pos = 0
        while wire[pos]:
            offset = names.get(wire[pos:])
            if offset is not None:
                buf += wire[:pos]
                buf += (0xC000 | offset).to_bytes(2, "big")
                self._register(wire, start, pos)
                return
            pos += wire[pos] + 1
        buf += wire
        self._register(wire, start, pos)

    def rrset(self, rrset: RRset, owner: str | None, rotation: int, limit: int) -> int:
        """Write the RRset's records until one would pass `limit`; return how many fit."""
        buf = self.buf
        rdatas = rrset.rdatas
        if rotation and rrset.rdtype in _ROTATED and len(rdatas) > 1:
            k = rotation % len(rdatas)
            rdatas = rdatas[k:] + rdatas[:k]
        name = owner or rrset.name
        written = 0
        for rdata in rdatas:
            mark = len(buf)
            self.name(name)
            buf += RR_FIXED.pack(rrset.rdtype, CLASS_IN, rrset.ttl, len(rdata))
            buf += rdata
            if len(buf) > limit:
                del buf[mark:]
                self.names = {k: v for k, v in self.names.items() if v < mark}
                return written
            written += 1
        return written


def opt_record(udp_size: int, ext_rcode: int = 0, options: bytes = b"", do: bool = False) -> bytes:
    """Our OPT pseudo-RR (RFC 6891): version 0, ``options`` as they go on the wire
    (``edns_option``), the DO bit copied from the query (RFC 3225 §3). It is always the
    last RR of a response."""
    ttl = (ext_rcode >> 4) << 24 | (DO if do else 0)
    return b"\x00" + RR_FIXED.pack(OPT, udp_size, ttl, len(options)) + options


def edns_option(code: int, data: bytes) -> bytes:
    """One EDNS option in wire form (RFC 6891 6.1.2)."""
    return code.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def render_response(
    query: Query,
    rcode: int,
    *,
    aa: bool,
    ra: bool,
    answer: Sequence[RRset] = (),
    authority: Sequence[RRset] = (),
    additional: Sequence[RRset] = (),
    owner: str | None = None,
    limit: int = 512,
    udp: bool = True,
    edns_size: int = 1232,
    rotation: int = 0,
    options: bytes = b"",
) -> bytes:
    """Render the response to `query`.

    `owner` replaces the owner name of answer RRs (wildcard answers). `limit` is the most
    bytes the client takes. Over UDP, an answer or authority section that does not fit gives
    a TC response holding only the question (the client retries over TCP); additional RRs
    that do not fit are left out silently. Over TCP the message is cut after the last whole
    RR that fits, with TC set. Never malformed. ``options``: EDNS options of the response
    (wire form, ``edns_option``), when the query had EDNS.
    """
    flags = QR | (query.flags & (0x7800 | RD | CD)) | (rcode & 0xF)
    if aa:
        flags |= AA
    if ra:
        flags |= RA
    opt = opt_record(edns_size, rcode, options, query.do) if query.edns else b""
    room = limit - len(opt)
    buf = bytearray(12)
    buf += query.question
    writer = _Writer(buf, query.qname)
    counts = [0, 0, 0]
    truncated = False
    for section, rrsets in enumerate((answer, authority)):
        for rrset in rrsets:
            n = writer.rrset(rrset, owner if section == 0 else None, rotation, room)
            counts[section] += n
            if n < len(rrset.rdatas):
                truncated = True
                break
        if truncated:
            break
    if truncated and udp:
        del buf[12 + len(query.question) :]
        counts = [0, 0, 0]
    elif not truncated:
        for rrset in additional:
            n = writer.rrset(rrset, None, rotation, room)
            counts[2] += n
            if n < len(rrset.rdatas):
                break
    if truncated:
        flags |= TC
    if opt:
        buf += opt
        counts[2] += 1
    HEADER.pack_into(buf, 0, query.id, flags, 1, *counts)
    return bytes(buf)


def render_transfer(
    query: Query, rrsets: Iterable[RRset], *, limit: int = 65535
) -> Iterator[bytes]:
    """The messages of a zone transfer response (RFC 5936 2.2): `rrsets` in order, packed
    into messages of at most `limit` bytes with name compression, an RRset split between
    messages where it does not fit. The question goes in the first message only (2.2.1);
    each message carries an OPT record when the query had EDNS. Raises ValueError for a
    record too large for any message."""
    flags = QR | AA | (query.flags & (0x7800 | RD | CD))
    opt = opt_record(1232) if query.edns else b""
    room = limit - len(opt)
    first = True

    def start() -> tuple[bytearray, _Writer]:
        buf = bytearray(12)
        if first:
            buf += query.question
        return buf, _Writer(buf, query.qname if first else None)

    buf, writer = start()
    count = 0
    for whole in rrsets:
        rrset = whole
        while True:
            n = writer.rrset(rrset, None, 0, room)
            count += n
            if n == len(rrset.rdatas):
                break
            if count == 0:
                raise ValueError(f"a {rrset.rdtype} record of {rrset.name} fits in no message")
            buf += opt
            HEADER.pack_into(buf, 0, query.id, flags, int(first), count, 0, int(bool(opt)))
            yield bytes(buf)
            first = False
            buf, writer = start()
            count = 0
            rrset = RRset(rrset.name, rrset.rdtype, rrset.ttl, rrset.rdatas[n:])
    buf += opt
    HEADER.pack_into(buf, 0, query.id, flags, int(first), count, 0, int(bool(opt)))
    yield bytes(buf)


def render_error(
    data: bytes, rcode: int, query: Query | None = None, options: bytes = b""
) -> bytes | None:
    """A bare error response (FORMERR, NOTIMP, REFUSED, SERVFAIL) to a query.

    Echoes the question when `query` parsed, with ``options`` in the OPT record when it had
    EDNS; returns None when no header can be read.
    """
    if len(data) < 12:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    out_flags = QR | (flags & (0x7800 | RD | CD)) | (rcode & 0xF)
    if query is None:
        return HEADER.pack(qid, out_flags, 0, 0, 0, 0)
    opt = opt_record(1232, rcode, options, do=query.do) if query.edns else b""
    return HEADER.pack(qid, out_flags, 1, 0, 0, 1 if opt else 0) + query.question + opt


def render_bare(data: bytes, rcode: int) -> bytes | None:
    """A header-only response to a message the server does not answer, as BIND answers it:
    NOTIMP for an OPCODE other than QUERY, FORMERR for a QUERY without exactly one question.

    No question goes back. The OPT record does when the message had one (version 0, DO
    copied), and an EDNS version above 0 makes it BADVERS (RFC 6891 §6.1.3); a message
    whose records cannot be read gets FORMERR without OPT. RD and CD are copied only for
    QUERY (BIND does not trust the other bits of an OPCODE it does not know). Returns None
    when no header can be read.
    """
    if len(data) < 12:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    opcode = flags & 0x7800
    out_flags = QR | opcode | (0 if opcode else flags & (RD | CD))
    try:
        edns = _read_edns(data)
    except ValueError:
        return HEADER.pack(qid, out_flags | FORMERR, 0, 0, 0, 0)
    if edns is None:
        return HEADER.pack(qid, out_flags | rcode, 0, 0, 0, 0)
    version, do = edns
    if version:
        rcode = BADVERS
    opt = opt_record(1232, rcode, do=do)
    return HEADER.pack(qid, out_flags | (rcode & 0xF), 0, 0, 0, 1) + opt


def _read_edns(data: bytes) -> tuple[int, bool] | None:
    """The EDNS version and DO bit of a message's OPT record, None without one; any number
    of questions. Raises ValueError when a record runs past the end."""
    qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", data, 4)
    pos = 12
    for _ in range(qdcount):
        pos = read_name(data, pos)[1] + 4
        if pos > len(data):
            raise ValueError("question runs past the end of the message")
    for _ in range(ancount + nscount + arcount):
        _, rdtype, _, ttl, rdlen, pos = read_record_header(data, pos)
        if rdtype == OPT:
            return (ttl >> 16) & 0xFF, bool(ttl & DO)
        pos += rdlen
    return None


@dataclass(frozen=True, slots=True)
class Response:
    """The parts of an upstream response that forwarding needs."""

    id: int
    flags: int
    question: bytes
    answer: tuple[RRset, ...]

    @property
    def rcode(self) -> int:
        """The header RCODE (low four bits)."""
        return self.flags & 0xF


def parse_response(data: bytes) -> Response:
    """Parse an upstream response's header, question and answer section.

    Answer RRs come back one per RRset with names inside rdata expanded. Raises
    MessageError.
    """
    if len(data) < 12:
        raise MessageError("shorter than a DNS header", header=False)
    qid, flags, qdcount, ancount, _, _ = HEADER.unpack_from(data)
    pos = 12
    answers: list[RRset] = []
    try:
        for _ in range(qdcount):
            _, pos = read_name(data, pos)
            pos += 4
        question = data[12:pos]
        for _ in range(ancount):
            name, rdtype, _, ttl, rdlen, pos = read_record_header(data, pos)
            rdata = decompress_rdata(rdtype, data, pos, rdlen)
            answers.append(RRset(name, rdtype, ttl, (rdata,)))
            pos += rdlen
    except ValueError as exc:
        raise MessageError(str(exc)) from None
    return Response(qid, flags, question, tuple(answers))


def make_query(qid: int, qname: str, qtype: int, rd: bool = True) -> bytes:
    """A plain query message (no EDNS)."""
    return (
        HEADER.pack(qid, RD if rd else 0, 1, 0, 0, 0)
        + name_to_wire(qname)
        + struct.pack("!HH", qtype, CLASS_IN)
    )


TCP_KEEPALIVE = 11
"""The edns-tcp-keepalive option code (RFC 7828)."""


class RecordAt(NamedTuple):
    """Where a record of a message is: its section (0 answer, 1 authority, 2 additional),
    offset, type, TTL, and the offset and length of its rdata."""

    section: int
    start: int
    rdtype: int
    ttl: int
    rdata: int
    rdlen: int


def records_at(wire: bytes, question_end: int | None = None) -> Iterator[RecordAt]:
    """Every record after the question section of a message, in order (`question_end`:
    where the question section ends, when the caller knows). Raises ValueError or
    struct.error for a message that cannot be read that far."""
    _, _, qdcount, ancount, nscount, arcount = HEADER.unpack_from(wire)
    pos = question_end if question_end is not None else 12
    if question_end is None:
        for _ in range(qdcount):
            _, pos = read_name(wire, pos)
            pos += 4
    authority = ancount
    additional = ancount + nscount
    for index in range(additional + arcount):
        start = pos
        _, rdtype, _, ttl, rdlen, pos = read_record_header(wire, pos)
        section = 0 if index < authority else 1 if index < additional else 2
        yield RecordAt(section, start, rdtype, ttl, pos, rdlen)
        pos += rdlen


def add_edns_option(wire: bytes, option: bytes) -> bytes:
    """``wire`` with ``option`` (wire form, ``edns_option``) appended to its OPT record;
    unchanged when it has none or cannot be read (a response whose query had no EDNS).

    For options the answer path does not know about, added by a transport (TCP keepalive):
    works on any response, ours or an upstream's.
    """
    try:
        for record in records_at(wire):
            if record.rdtype == OPT and record.section == 2:
                pos, end = record.rdata, record.rdata + record.rdlen
                length = (record.rdlen + len(option)).to_bytes(2, "big")
                return wire[: pos - 2] + length + wire[pos:end] + option + wire[end:]
    except (ValueError, struct.error):
        pass
    return wire
