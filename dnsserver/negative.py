"""NXDOMAIN without parsing or rendering: the answer to a name that does not exist, made
from a per-zone template.

A random-subdomain flood (every query a new name under a served zone, the common attack on
authoritative servers) never hits the answer cache, and the general path (parse the
message, resolve, render with compression) costs several times a cached answer. Its
answers differ only in the question, which is copied as sent, so `NegativeAnswers` builds
them from bytes: the header, the question, the zone's SOA (owner a pointer to the apex
inside the question, as the general renderer compresses it), the OPT record. The bytes are
the same as `message.render_response` would make; `tests/dnsserver/test_negative.py`
compares the two.

It answers only the plain case and leaves everything else to the general path (returns
None): opcode QUERY, one question of class IN, no answer or authority records, no EDNS or
EDNS version 0 with no options but a lone COOKIE, a name of letters, digits, ``-`` and
``_`` not at or below a delegation, in a zone without RFC 4592 wildcard records, no query
wildcard label (``*``, ``any``), a type other than PTR (reverse names may go to the
forwarder), ANY and zone transfers. A DO query to a signed zone gets the SOA's RRSIGs and
the NSEC records proving the name and the wildcard at its closest encloser absent (with
their RRSIGs, owners uncompressed), as `proof` adds them on the general path; those records
are assembled once per pair of NSEC owners. One object serves one `ZoneIndex` (the server makes a
new one when the index changes: names come and go and the SOA serial moves).
"""

from __future__ import annotations

import re

from dnsserver.answer import closest_encloser, wildcard_name
from dnsserver.message import NXDOMAIN, RR_FIXED, opt_record
from dnsserver.name import name_to_wire
from dnsserver.nsec import chain_of
from dnsserver.rdata import SOA
from dnsserver.zone import NSEC, RRSIG, Zone, rrsig_key
from dnsserver.zonestore import ZoneIndex

_PLAIN = re.compile(rb"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"
_NO_ADDITIONAL = b"\x00\x00"
_ONE_ADDITIONAL = b"\x00\x01"
_CLASS_IN = b"\x00\x01"
_SKIPPED_TYPES = frozenset(
    t.to_bytes(2, "big") for t in (12, 250, 251, 252, 255)
)  # PTR, TSIG, IXFR, AXFR, ANY (ANY answers NXDOMAIN too, but keep it on one path)
_SOA_TYPE = SOA.to_bytes(2, "big")
_OPT_HEAD = b"\x00\x00\x29"


class NegativeAnswers:
    """NXDOMAIN answers for one zone index; ``ra`` sets RA (a forwarder is configured),
    ``edns_size`` is the UDP size our OPT record offers."""

    __slots__ = ("_flags", "_index", "_opt", "_opt_do", "_proofs", "_signed", "_templates", "_wild")

    def __init__(self, index: ZoneIndex, *, ra: bool, edns_size: int) -> None:
        self._index = index
        self._flags = 0x80 | NXDOMAIN if ra else NXDOMAIN
        self._opt = opt_record(edns_size, NXDOMAIN)
        self._opt_do = opt_record(edns_size, NXDOMAIN, do=True)  # DO copied (RFC 3225 3)
        self._templates: dict[str, tuple[int, bytes, bytes]] = {}
        # Signed zones (NXDOMAIN to a DO query): the SOA's RRSIGs per zone, the NSEC owner
        # covering `*.<encloser>` per encloser, the proof records per pair of NSEC owners.
        self._signed: dict[str, tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}
        self._wild: dict[str, str] = {}
        self._proofs: dict[tuple[str, str], tuple[int, bytes]] = {}

    def answer(self, data: bytes, cookie: bytes = b"") -> bytes | None:
        """The NXDOMAIN response to the query ``data``, or None when the general path must
        answer it. ``cookie``: the COOKIE option (wire form) to return, when the query's OPT
        record held a lone COOKIE option (``cookie_size`` bytes at its end)."""
        if len(data) < 17 or data[2] & 0xF8 or data[4:10] != _ONE_QUESTION:
            return None  # a response, another opcode, more than a question
        size = len(data)
        labels = []
        pos = 12
        while pos < size:
            length = data[pos]
            if not length:
                break
            if length > 63:
                return None
            labels.append(data[pos + 1 : pos + 1 + length])
            pos += length + 1
        else:
            return None
        end = pos + 5
        if data[pos + 3 : end] != _CLASS_IN or data[pos + 1 : pos + 3] in _SKIPPED_TYPES:
            return None
        additional = data[10:12]
        do = 0
        if additional == _NO_ADDITIONAL:
            if end != size or cookie:
                return None
            opt = b""
        elif additional == _ONE_ADDITIONAL:
            rdlen = len(cookie)
            if (
                data[end : end + 3] != _OPT_HEAD
                or data[end + 6]  # EDNS version
                or end + 11 + rdlen != size
                or int.from_bytes(data[end + 9 : end + 11], "big") != rdlen
            ):
                return None
            do = data[end + 7] & 0x80
            opt = self._opt_do if do else self._opt
            if cookie:
                opt = opt[:-2] + len(cookie).to_bytes(2, "big") + cookie
        else:
            return None
        text = b".".join(labels).lower()
        if not _PLAIN.fullmatch(text) or text.count(b".") != len(labels) - 1:
            return None  # escapes, a query wildcard `*`, dots inside labels, the root
        if b"any" in text and b"any" in text.split(b"."):
            return None  # dnsdock's query wildcard label
        qname = text.decode("ascii") + "."
        zone = self._index.find(qname)
        if zone is None or zone.has_wildcards or zone.exists(qname):
            return None
        if zone.cuts:  # at or below a delegation: a referral
            name, origin, cuts = qname, zone.origin, zone.cuts
            while name != origin:
                if name in cuts:
                    return None
                name = name[name.index(".") + 1 :]
        template = self._templates.get(zone.origin)
        if template is None:
            template = self._template(zone)
            if template is None:
                return None
        apex_length, soa, soa_for_soa = template
        if apex_length > pos + 1 - 12:
            return None
        pointer = (0xC000 | (pos + 1 - apex_length)).to_bytes(2, "big")
        flags = bytes((0x84 | (data[2] & 0x01), self._flags | (data[3] & 0x10)))
        if do and chain_of(zone) is not None:
            # A signed zone: the SOA, its RRSIGs and the NSEC records (with theirs) proving
            # that neither the name nor a wildcard at its closest encloser exists.
            proof = self._proof(zone, qname, tuple(reversed(text.split(b"."))))
            if proof is None:
                return None
            count, records = proof
            soa_question = data[pos + 1 : pos + 3] == _SOA_TYPE
            signed = self._signed.get(zone.origin) or self._signed_soa(zone)
            sigs = signed[1] if soa_question else signed[0]
            wire = b"".join(
                (
                    data[:2],
                    flags,
                    b"\x00\x01\x00\x00",
                    (1 + len(sigs) + count).to_bytes(2, "big"),
                    additional,
                    data[12:end],
                    pointer,
                    soa_for_soa if soa_question else soa,
                    *(pointer + sig for sig in sigs),
                    records,
                    opt,
                )
            )
            if len(wire) > max(int.from_bytes(data[end + 3 : end + 5], "big"), 512):
                return None  # too big for the client's UDP size: the general path truncates
            return wire
        return b"".join(
            (
                data[:2],
                flags,
                b"\x00\x01\x00\x00\x00\x01",
                additional,
                data[12:end],
                pointer,
                soa_for_soa if data[pos + 1 : pos + 3] == _SOA_TYPE else soa,
                opt,
            )
        )

    def _signed_soa(self, zone: Zone) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """The SOA's RRSIG records after their owner: with the negative TTL, and TTL 0 (for
        an SOA question), as `proof` adds them."""
        group = zone.get(zone.origin, rrsig_key(SOA))
        rdatas = group.rdatas if group is not None else ()
        ttl = zone.negative_ttl
        made = (
            tuple(RR_FIXED.pack(RRSIG, 1, ttl, len(r)) + r for r in rdatas),
            tuple(RR_FIXED.pack(RRSIG, 1, 0, len(r)) + r for r in rdatas),
        )
        self._signed[zone.origin] = made
        return made

    def _proof(self, zone: Zone, qname: str, key: tuple[bytes, ...]) -> tuple[int, bytes] | None:
        """The NSEC records (and their RRSIGs) of an NXDOMAIN for `qname` (`key`: its
        canonical key): how many, and their wire form with uncompressed owners."""
        chain = zone.chain
        assert chain is not None
        encloser = closest_encloser(zone, qname)
        if encloser is None:
            return None
        wild = self._wild.get(encloser)
        if wild is None:
            wild = self._wild[encloser] = chain.before(wildcard_name(encloser))
        cover = chain.before(qname, key)
        made = self._proofs.get((cover, wild))
        if made is None:
            records: list[bytes] = []
            for owner in dict.fromkeys((cover, wild)):
                nsec = zone.get(owner, NSEC)
                if nsec is None:
                    return None
                group = zone.get(owner, rrsig_key(NSEC))
                sigs = group.rdatas if group is not None else ()
                signed = (nsec.rdatas[0], NSEC), *((r, RRSIG) for r in sigs)
                records.extend(
                    name_to_wire(owner) + RR_FIXED.pack(rdtype, 1, nsec.ttl, len(r)) + r
                    for r, rdtype in signed
                )
            made = self._proofs[(cover, wild)] = (len(records), b"".join(records))
        return made

    def _template(self, zone: Zone) -> tuple[int, bytes, bytes] | None:
        """(length of the apex name in wire form, the SOA RR after its owner for any
        question type, the same for an SOA question: TTL 0, as `answer._negative`)."""
        soa = zone.get(zone.origin, SOA)
        if soa is None or zone.origin == "." or len(soa.rdatas) != 1:
            return None
        rdata = soa.rdatas[0]
        ttl = zone.negative_ttl
        made = (
            len(name_to_wire(zone.origin)),
            RR_FIXED.pack(SOA, 1, ttl, len(rdata)) + rdata,
            RR_FIXED.pack(SOA, 1, 0, len(rdata)) + rdata,
        )
        self._templates[zone.origin] = made
        return made
