"""SOA serials: RFC 1982 serial number arithmetic and the next serial to write.

The zone file sink asks ``next_serial(previous, now)``: it is greater than ``previous`` in
serial arithmetic (so secondaries and caches see the change) and follows the clock (seconds
since the epoch) when the clock is ahead, so a serial stays meaningful even when the state
that remembered the previous one is lost.
"""

from __future__ import annotations

SERIAL_BITS = 32
_MODULUS = 1 << SERIAL_BITS
_HALF = 1 << (SERIAL_BITS - 1)


def serial_lt(a: int, b: int) -> bool:
    """``a < b`` in RFC 1982 serial arithmetic (section 3.2)."""
    return a != b and ((a < b and b - a < _HALF) or (a > b and a - b > _HALF))


def next_serial(previous: int | None, now: int) -> int:
    """The serial after ``previous``: ``now`` when that is later, else ``previous + 1``
    (wrapping at 2**32). With no previous serial, ``now``."""
    now %= _MODULUS
    if previous is None:
        return now
    if serial_lt(previous, now):
        return now
    return (previous + 1) % _MODULUS
