"""NSEC (RFC 4034 §4): canonical name order, type bit maps, and a signed zone's chain.

No cryptography here: the server's answer path imports it for every zone, signed or not.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from dnsserver.name import name_to_wire

if TYPE_CHECKING:
    from dnsserver.zone import Zone

NSEC = 47


def type_bitmap(types: Iterable[int]) -> bytes:
    """RFC 4034 §4.1.2 type bit maps of a set of types."""
    windows: dict[int, bytearray] = {}
    for rdtype in sorted(set(types)):
        window, low = divmod(rdtype, 256)
        bits = windows.setdefault(window, bytearray())
        octet = low // 8
        if len(bits) <= octet:
            bits.extend(b"\x00" * (octet + 1 - len(bits)))
        bits[octet] |= 0x80 >> (low % 8)
    return b"".join(bytes((window, len(bits))) + bits for window, bits in sorted(windows.items()))


def nsec_rdata(next_name: str, types: Iterable[int]) -> bytes:
    """NSEC rdata: the next owner name in canonical order and the types at this name (the
    caller includes RRSIG and NSEC themselves)."""
    return name_to_wire(next_name) + type_bitmap(types)


def nsec_next(rdata: bytes) -> bytes:
    """The next-name field of NSEC rdata, in wire form."""
    offset = 0
    while rdata[offset]:
        offset += rdata[offset] + 1
    return rdata[: offset + 1]


def canonical_key(name: str) -> tuple[bytes, ...]:
    """Sort key of RFC 4034 §6.1 canonical name order: labels compared right to left, each
    as lower-case octets."""
    wire = name_to_wire(name)
    labels = []
    offset = 0
    while wire[offset]:
        length = wire[offset]
        labels.append(wire[offset + 1 : offset + 1 + length].lower())
        offset += length + 1
    labels.reverse()
    return tuple(labels)


class Chain:
    """The names of a signed zone that own NSEC records, in canonical order."""

    __slots__ = ("keys", "names")

    def __init__(self, names: list[str], keys: list[tuple[bytes, ...]] | None = None) -> None:
        self.names = names
        self.keys = keys if keys is not None else [canonical_key(name) for name in names]

    @classmethod
    def of(cls, names: Sequence[str]) -> Chain:
        ordered = sorted((canonical_key(name), name) for name in names)
        return cls([name for _, name in ordered], [key for key, _ in ordered])

    def before(self, name: str, key: tuple[bytes, ...] | None = None) -> str:
        """The last name of the chain at or before `name` (the apex for names before the
        first: every name of a zone sorts after its apex); `key`: its `canonical_key`,
        when the caller has it."""
        index = bisect.bisect_right(self.keys, key or canonical_key(name)) - 1
        return self.names[max(index, 0)]

    def after(self, name: str) -> str:
        """The chain's name after `name` (which is in the chain), wrapping to the apex."""
        index = bisect.bisect_right(self.keys, canonical_key(name))
        return self.names[index % len(self.names)]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_key(name)
        index = bisect.bisect_left(self.keys, key)
        return index < len(self.keys) and self.keys[index] == key

    def __len__(self) -> int:
        return len(self.names)


def chain_of(zone: Zone) -> Chain | None:
    """The NSEC chain of a signed zone, None for an unsigned one. Zones the signer made
    carry theirs; a zone loaded signed (a file from `dnssec-signzone`, or one dockzone
    wrote with --sign-zone-files) gets it built on first use from its NSEC records."""
    chain = zone.chain
    if chain is None and zone.get(zone.origin, NSEC) is not None:
        chain = zone.chain = Chain.of([n for n in zone.names if zone.get(n, NSEC) is not None])
    return chain
