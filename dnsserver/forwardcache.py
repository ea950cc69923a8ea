"""Answers from upstream, kept for their TTL: a name outside the zones asked again is
answered without another round trip (CoreDNS's cache plugin, BIND's resolver cache do the
same; dnsdock and SkyDNS asked upstream every time).

An answer is kept by the query's bytes after its id (the question as the client sent it,
flags, EDNS), for the smallest TTL of its records, at most `MAX_TTL`; each answer handed out
again has its id replaced and every TTL lowered by the seconds it was kept, so a resolver
behind dockzone never caches a record longer than its origin allows. Only whole answers
(NOERROR or NXDOMAIN, not truncated, with at least one record: a negative answer needs its
SOA to have a lifetime) are kept. One cache belongs to one zone index (the server starts a
new one when the zones change: a name forwarded before may be in a zone now).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from dnsserver.message import HEADER, NXDOMAIN, TC, records_at
from dnsserver.rdata import OPT

MAX_TTL = 3600
"""The longest an upstream answer is kept, whatever its TTL says."""
MAX_ANSWERS = 10_000
"""Answers kept at once (the cache starts afresh when full)."""
_TTL = struct.Struct("!I")


class ForwardCache:
    """Upstream answers for one zone index (see the module docstring)."""

    __slots__ = ("_answers", "_clock")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._answers: dict[bytes, tuple[float, float, bytes, tuple[tuple[int, int], ...]]] = {}

    def get(self, query: bytes) -> bytes | None:
        """The kept answer to ``query`` with its id and TTLs as they are now, or None."""
        kept = self._answers.get(query[2:])
        if kept is None:
            return None
        fetched, expires, wire, ttls = kept
        now = self._clock()
        if now >= expires:
            self._answers.pop(query[2:], None)
            return None
        age = int(now - fetched)
        out = bytearray(wire)
        out[:2] = query[:2]
        if age:
            for offset, ttl in ttls:
                _TTL.pack_into(out, offset, max(ttl - age, 0))
        return bytes(out)

    def put(self, query: bytes, wire: bytes) -> None:
        """Keep ``wire``, the upstream's answer to ``query``, if it can be kept."""
        ttls = _ttls(wire)
        if not ttls:
            return
        lifetime = min(MAX_TTL, *(ttl for _, ttl in ttls))
        if lifetime <= 0:
            return
        if len(self._answers) >= MAX_ANSWERS:
            self._answers.clear()
        now = self._clock()
        self._answers[query[2:]] = (now, now + lifetime, wire, ttls)

    def __len__(self) -> int:
        return len(self._answers)


def _ttls(wire: bytes) -> tuple[tuple[int, int], ...]:
    """The offset and value of the TTL of every record but OPT, or () when the answer is not
    one to keep (an error, truncated, unreadable, no record)."""
    try:
        flags = HEADER.unpack_from(wire)[1]
        if flags & TC or (flags & 0xF) not in (0, NXDOMAIN):
            return ()
        records = list(records_at(wire))
    except (ValueError, struct.error):
        return ()
    if not records or records[-1].rdata + records[-1].rdlen != len(wire):
        return ()  # no record, or bytes after the last one
    return tuple((r.rdata - 6, r.ttl) for r in records if r.rdtype != OPT)
