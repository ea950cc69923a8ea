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
``_`` (255 bytes at most) not at or below a delegation, in a zone without RFC 4592
wildcard records, no query wildcard label (``*``, ``any``), a type other than PTR (reverse
names may go to the forwarder), ANY and zone transfers. A DO query to a signed zone gets
the SOA's RRSIGs and the NSEC records proving the name and the wildcard at its closest
encloser absent (with their RRSIGs, owners uncompressed), as `proof` adds them on the
general path; those records are assembled once per pair of NSEC owners. One object serves
one `ZoneIndex` (the server makes a new one when the index changes: names come and go and
the SOA serial moves), so what it works out about the index can be kept.

Only the first label of a flood's names is new, so nothing else is parsed twice. The
question ends where the OPT record (of a known size) or the message does; what follows the
first label is a parent name whose wire form (lowercased) keys a `_Parent`: its text, the
zone (the longest one holding it, checked for delegations and wildcards), where the apex
sits in the question, the zone's SOA and OPT bytes; the response head is kept by the
query's flags and counts, and the question's type and class by their bytes. A query then
costs a few slices and lookups, the first label's check and one `Zone.exists`; the other
checks are made once per parent, each parent's from its own parent's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from dnsserver.answer import wildcard_name
from dnsserver.message import NXDOMAIN, RR_FIXED, opt_record
from dnsserver.name import name_to_wire
from dnsserver.nsec import chain_of
from dnsserver.rdata import SOA
from dnsserver.zone import NSEC, RRSIG, Zone, rrsig_key
from dnsserver.zonestore import ZoneIndex

_LABEL = re.compile(rb"[a-z0-9_-]+")  # a label of a plain name, lowercased
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"
_NO_ADDITIONAL = b"\x00\x00"
_ONE_ADDITIONAL = b"\x00\x01"
_CLASS_IN = b"\x00\x01"
_SKIPPED_TYPES = frozenset(
    t.to_bytes(2, "big") for t in (12, 250, 251, 252, 255)
)  # PTR, TSIG, IXFR, AXFR, ANY (ANY answers NXDOMAIN too, but keep it on one path)
_SOA_TYPE = SOA.to_bytes(2, "big")
_OPT_HEAD = b"\x00\x00\x29"
_NO_OPTIONS = b"\x00\x00"
_LONGEST_NAME = 255  # bytes in wire form (RFC 1035 3.1); the general path: FORMERR
_POINTERS = tuple((0xC000 | offset).to_bytes(2, "big") for offset in range(12 + _LONGEST_NAME))
"""Compression pointers by offset: every apex inside the question is within these."""
_PARENTS_KEPT = 10_000
"""Parent names kept (`NegativeAnswers._parents`); more are dropped all at once."""
_SOA_ANSWER = 3  # `NegativeAnswers._types`: where an SOA question's tails start


class _Parent(NamedTuple):
    """What every name one label below a parent name shares: everything `answer` needs
    but the first label (see `NegativeAnswers._parent`). No ``tails`` when no name below
    the parent gets a template; then only ``suffix`` and ``key`` are kept, for the names
    below."""

    suffix: str  # the parent's text after a dot: the question is the first label + this
    exists: Callable[[str], bool]  # the zone's `exists`
    base: int  # the apex's offset in the message, less the first label's length
    tails: tuple[bytes, ...]  # what follows the SOA's owner pointer (`_template`)
    zone: Zone | None
    key: tuple[bytes, ...]  # the parent's canonical key (its labels, last first)
    encloser: str | None  # the closest existing name at or above the parent


def _no_template(suffix: str, key: tuple[bytes, ...]) -> _Parent:
    """A parent below which no name gets a template."""
    return _Parent(suffix, bool, 0, (), None, key, None)


_NOT_A_NAME = _no_template("", ())
"""What `_parent` gives for bytes that are not a plain name (not kept: any bytes come)."""


class NegativeAnswers:
    """NXDOMAIN answers for one zone index; ``ra`` sets RA (a forwarder is configured),
    ``edns_size`` is the UDP size our OPT record offers."""

    __slots__ = (
        "_flags",
        "_heads",
        "_index",
        "_opt",
        "_opt_do",
        "_origins",
        "_parents",
        "_proofs",
        "_soa_sigs",
        "_templates",
        "_types",
        "_wild",
    )

    def __init__(self, index: ZoneIndex, *, ra: bool, edns_size: int) -> None:
        self._index = index
        self._origins = frozenset(zone.origin for zone in index)
        self._flags = 0x80 | NXDOMAIN if ra else NXDOMAIN
        self._opt = opt_record(edns_size, NXDOMAIN)
        self._opt_do = opt_record(edns_size, NXDOMAIN, do=True)  # DO copied (RFC 3225 3)
        # Lookups made once and kept: the response head (flags and counts) by the query's
        # flags and counts, where the tails of an answer start by question type and class,
        # what names below a parent share by the parent's wire form (lowercased).
        self._heads: dict[bytes, bytes] = {}
        self._types: dict[bytes, int] = {}
        self._parents: dict[bytes, _Parent] = {}
        self._templates: dict[str, tuple[bytes, ...]] = {}
        # Signed zones (NXDOMAIN to a DO query): the SOA's RRSIGs per zone, the NSEC owner
        # covering `*.<encloser>` per encloser, the proof records per pair of NSEC owners.
        self._soa_sigs: dict[str, tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}
        self._wild: dict[str, str] = {}
        self._proofs: dict[tuple[str, str], tuple[int, bytes]] = {}

    def answer(self, data: bytes, cookie: bytes = b"") -> bytes | None:
        """The NXDOMAIN response to the query ``data``, or None when the general path must
        answer it. ``cookie``: the COOKIE option (wire form) to return, when the query's OPT
        record held a lone COOKIE option (``cookie_size`` bytes at its end)."""
        # Each step is a slice and a lookup of what `_head`, `_type` and `_parent` worked
        # out the first time they saw the same bytes (see the module docstring); local
        # names and one tuple unpacking, as attribute lookups cost on this path.
        size = len(data)
        if size < 17:
            return None
        head = self._heads.get(data[2:12]) or self._head(data[2:12])
        if not head:
            return None  # a response, another opcode, more than a question
        if head[-1]:  # an OPT record: the last RR, holding `cookie` (or nothing)
            rdlen = len(cookie)
            end = size - 11 - rdlen
        elif cookie:
            return None
        else:
            end = size
        # Where the question ends if the message is one to answer (an OPT record of 11
        # bytes and `cookie`); when it is not, a check below fails: the root label at
        # `pos`, the parent name between the first label and it, the OPT record's bytes.
        pos = end - 5  # the question name's root label, before its type and class
        n = data[12]  # the first label's length: the rest of the name is its parent
        if n > 63 or not 13 + n < pos < 12 + _LONGEST_NAME:
            return None  # a pointer, a name below the root itself, too long
        label = data[13 : 13 + n].lower()
        if not (label.isalnum() or _LABEL.fullmatch(label)) or label == b"any":
            return None  # escapes, a query wildcard `*` or `any`, a zero byte, not ASCII
        kind = self._types.get(data[pos:end])
        if kind is None:
            kind = self._type(data[pos:end])
            if kind is None:
                return None  # no root label at `pos`, not class IN, a type left out
        parent = self._parents.get(data[13 + n : pos]) or self._parent(data[13 + n : pos])
        suffix, exists, base, tails, zone, _, _ = parent
        if not tails:
            return None
        qname = label.decode() + suffix
        if exists(qname) or qname in self._origins:
            # NODATA, a referral (a delegation owns NS records), the apex of another zone
            return None
        if head[-1]:
            if (
                data[end : end + 3] != _OPT_HEAD
                or data[end + 6]  # EDNS version
                or data[end + 9 : end + 11] != (rdlen.to_bytes(2, "big") if rdlen else _NO_OPTIONS)
            ):
                return None
            if data[end + 7] & 0x80:  # DO
                if zone is not None and chain_of(zone) is not None:  # (a zone with tails)
                    return self._signed(
                        data, head, end, kind=kind, parent=parent, qname=qname, cookie=cookie
                    )
                tail = tails[kind + 2]
            else:
                tail = tails[kind + 1]
            if cookie:
                tail = tail[:-2] + rdlen.to_bytes(2, "big") + cookie
        else:
            tail = tails[kind]
        return data[:2] + head + data[12:end] + _POINTERS[base + n] + tail

    def _head(self, counts: bytes) -> bytes:
        """The response's flags and counts for the query's (``counts``: its bytes 2 to 12),
        or b"" for a query `answer` leaves alone; kept in `_heads`."""
        if len(counts) != 10 or counts[0] & 0xF8 or counts[2:8] != _ONE_QUESTION:
            return b""
        if counts[8:] not in (_NO_ADDITIONAL, _ONE_ADDITIONAL):
            return b""
        # RD and CD copied (RFC 1035 4.1.1, RFC 4035 3.1.6); AA set.
        flags = bytes((0x84 | (counts[0] & 0x01), self._flags | (counts[1] & 0x10)))
        made = self._heads[counts] = flags + b"\x00\x01\x00\x00\x00\x01" + counts[8:]
        return made

    def _type(self, tail: bytes) -> int | None:
        """Where the tails for a question ending in ``tail`` (the name's root label, type,
        class) start, or None for a question `answer` leaves alone; kept in `_types`."""
        if len(tail) != 5 or tail[0] or tail[3:] != _CLASS_IN or tail[1:3] in _SKIPPED_TYPES:
            return None
        made = self._types[tail] = _SOA_ANSWER if tail[1:3] == _SOA_TYPE else 0
        return made

    def _parent(self, wire: bytes) -> _Parent:
        """What the names one label below ``wire`` (a name in wire form without its root
        label, as asked) share. Kept by the lowercased name, so that mixed case (0x20)
        costs a `lower()` and a second lookup; made from what its parent's children share
        (kept too), so that a name two labels or more below the apex costs a few lookups."""
        parents = self._parents
        wire = wire.lower()
        made = parents.get(wire)
        if made is None:
            made = self._made(wire)
            if made is _NOT_A_NAME:
                return made
            if len(parents) >= _PARENTS_KEPT:
                parents.clear()  # a flood of names two labels or more below the zone
            parents[wire] = made
        return made

    def _made(self, wire: bytes) -> _Parent:
        """`_parent` of the name ``wire`` (lowercased), not kept yet."""
        if not wire:
            return _no_template(".", ())  # the root: no template for the root zone
        length = wire[0]
        label = wire[1 : 1 + length]
        if not 0 < length == len(label) <= 63 or not (label.isalnum() or _LABEL.fullmatch(label)):
            return _NOT_A_NAME  # a pointer, escapes, a query wildcard `*`, cut short
        up = self._parents.get(wire[1 + length :]) or self._parent(wire[1 + length :])
        if up is _NOT_A_NAME:
            return up
        name = label.decode("ascii") + up.suffix
        key = (*up.key, label)
        if name in self._origins:  # a zone apex: its zone, whatever holds its parent
            return self._apex(name, key)
        zone = up.zone
        if zone is None or label == b"any" or name in zone.cuts:
            # Nothing below the parent got a template (outside the zones, a zone with
            # wildcards...), dnsdock's query wildcard label, a delegation (the parent's
            # ancestors were checked up to the apex): nothing below this name gets one.
            return _no_template("." + name, key)
        return _Parent(
            "." + name,
            up.exists,
            up.base + 1 + length,  # the apex is as much further into the message
            up.tails,
            zone,
            key,
            name if zone.exists(name) else up.encloser,
        )

    def _apex(self, origin: str, key: tuple[bytes, ...]) -> _Parent:
        """`_parent` of a zone apex (``key``: its canonical key)."""
        zone = self._index.find(origin)
        assert zone is not None
        tails = self._templates.get(origin) or self._template(zone)
        if tails is None or zone.has_wildcards or b"any" in key:
            return _no_template("." + origin, key)  # no SOA, RFC 4592 wildcards, dnsdock's `any`
        # Names below have a first label of n bytes: the apex starts at 12 + 1 + n.
        return _Parent("." + origin, zone.exists, 13, tails, zone, key, origin)

    def _signed(
        self,
        data: bytes,
        head: bytes,
        end: int,
        *,
        kind: int,
        parent: _Parent,
        qname: str,
        cookie: bytes,
    ) -> bytes | None:
        """A DO query to a signed zone: the SOA, its RRSIGs and the NSEC records (with
        theirs) proving that neither the name nor a wildcard at its closest encloser
        exists."""
        zone = parent.zone
        assert zone is not None
        label = data[13 : 13 + data[12]].lower()
        proof = self._proof(zone, qname, (*parent.key, label), parent.encloser)
        if proof is None:
            return None
        count, records = proof
        signed = self._soa_sigs.get(zone.origin) or self._signed_soa(zone)
        sigs = signed[1] if kind else signed[0]
        pointer = _POINTERS[parent.base + data[12]]
        opt = self._opt_do
        if cookie:
            opt = opt[:-2] + len(cookie).to_bytes(2, "big") + cookie
        wire = b"".join(
            (
                data[:2],
                head[:6],
                (1 + len(sigs) + count).to_bytes(2, "big"),
                head[8:],
                data[12:end],
                pointer,
                parent.tails[kind],
                *(pointer + sig for sig in sigs),
                records,
                opt,
            )
        )
        if len(wire) > max(int.from_bytes(data[end + 3 : end + 5], "big"), 512):
            return None  # too big for the client's UDP size: the general path truncates
        return wire

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
        self._soa_sigs[zone.origin] = made
        return made

    def _proof(
        self, zone: Zone, qname: str, key: tuple[bytes, ...], encloser: str | None
    ) -> tuple[int, bytes] | None:
        """The NSEC records (and their RRSIGs) of an NXDOMAIN for `qname` (`key`: its
        canonical key, `encloser`: its closest encloser): how many, and their wire form with
        uncompressed owners."""
        chain = zone.chain
        assert chain is not None
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

    def _template(self, zone: Zone) -> tuple[bytes, ...] | None:
        """What follows the owner pointer of the SOA record: the SOA RR for any question
        type then no OPT record, ours, ours with DO; the same for an SOA question (TTL 0, as
        `answer._negative`) from `_SOA_ANSWER` on."""
        soa = zone.get(zone.origin, SOA)
        if soa is None or zone.origin == "." or len(soa.rdatas) != 1:
            return None
        rdata = soa.rdatas[0]
        opts = (b"", self._opt, self._opt_do)
        made = tuple(
            RR_FIXED.pack(SOA, 1, ttl, len(rdata)) + rdata + opt
            for ttl in (zone.negative_ttl, 0)
            for opt in opts
        )
        self._templates[zone.origin] = made
        return made
