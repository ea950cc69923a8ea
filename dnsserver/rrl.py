"""Response rate limiting (RRL) for UDP, as BIND's ``rate-limit``, NSD's and Knot's.

A spoofed-source flood makes a DNS server reflect (and amplify) its answers at a victim.
RRL counts identical responses per client netblock (IPv4 /24, IPv6 /56) and, over
`rate` per second, stops sending them: a dropped response is nothing at all, a slipped one
(every `slip`-th dropped response) a small truncated reply (TC set, the question only) so
a real client behind the netblock retries over TCP, which cannot be spoofed.
`DNSService._serve_udp` asks `RateLimiter.check` once per response it is about to send,
cached or built; TCP and forwarded answers are not limited.

What counts as one response (the account key), per netblock:

| response                      | account          | BIND's account              |
| ----------------------------- | ---------------- | --------------------------- |
| NOERROR (answers and NODATA)  | (qname, qtype)   | (qname, qtype)              |
| NXDOMAIN                      | every NXDOMAIN   | NXDOMAIN per zone           |
| any other rcode (errors)      | every error      | every error                 |

NXDOMAIN is one account per netblock rather than one per zone: the zone of a response is
not at hand on the cached path (only its bytes are), and dockzone serves a handful of
zones, so a random-subdomain flood is still limited as a whole. The qname is lowercased
(0x20 case randomisation does not open new accounts).

Each account is a token bucket, BIND's: its balance earns `rate` per second up to `rate`
(a one-second burst), each response costs one, and below zero responses are limited.
The balance goes down to ``-window * rate``, so a client that flooded stays limited until
its rate has been under the limit for up to `window` seconds; an account untouched for
`window` seconds starts afresh. Memory is bounded: at `max_entries` accounts, those
untouched for `window` seconds go; if that frees less than a quarter, every account goes
(limits restart from a full balance, which only favours the flooder for `rate`
responses per account).

Cost per call: two dict lookups (client -> netblock, account), a slice and a lowercase for
NOERROR, float arithmetic. Accounts are shared by the UDP threads without a lock: two
threads may lose one debit to each other, which only makes the limit a little looser.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

SEND = 0
"""`RateLimiter.check`: send the response."""
DROP = 1
"""Send nothing."""
SLIP = 2
"""Send `slip_response(query)` instead: TC set, no answer, so the client retries on TCP."""

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NXDOMAIN = 3
_ERROR = 1
"""Account keys of NXDOMAIN and error responses: ints, never equal to a qname's bytes."""

_EXEMPT = b""
_MAX_CLIENTS = 65536


class RateLimiter:
    """Per-netblock accounting of identical UDP responses; `check` decides each one.

    `rate` is responses per second per account (> 0); `slip` 0 never slips, 1 slips every
    limited response, N every N-th; `window` is in seconds; `exempt` networks are never
    limited (loopback is limited like any other address unless listed).
    """

    __slots__ = (
        "_blocks",
        "_floor",
        "_table",
        "exempt",
        "ipv4_prefix",
        "ipv6_prefix",
        "max_entries",
        "rate",
        "slip",
        "window",
    )

    def __init__(
        self,
        rate: float,
        *,
        slip: int = 2,
        window: float = 15.0,
        exempt: Iterable[IPNetwork] = (),
        ipv4_prefix: int = 24,
        ipv6_prefix: int = 56,
        max_entries: int = 20_000,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be more than 0 responses per second")
        self.rate = float(rate)
        self.slip = max(0, slip)
        self.window = float(window)
        self.exempt = tuple(exempt)
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self.max_entries = max_entries
        self._floor = -self.window * self.rate
        self._table: dict[tuple[bytes, bytes | int], list[float]] = {}
        self._blocks: dict[str, bytes] = {}

    def __len__(self) -> int:
        """Accounts held."""
        return len(self._table)

    def describe(self) -> str:
        """One line for the log: the limit and who is exempt."""
        exempt = ", ".join(str(network) for network in self.exempt) or "none"
        return (
            f"{self.rate:g} responses/s per /{self.ipv4_prefix} and /{self.ipv6_prefix}, "
            f"slip {self.slip}, window {self.window:g}s; exempt: {exempt}"
        )

    def check(self, client: str, query: bytes, rcode: int, now: float) -> int:
        """SEND, DROP or SLIP for one response with `rcode` to `query` from `client` (an
        address as recvfrom gives it), `now` in seconds of a monotonic clock."""
        block = self._blocks.get(client)
        if block is None:
            block = self._block(client)
        if not block:
            return SEND
        what: bytes | int
        if rcode == 0:
            # qname and qtype: the first zero byte after the header ends the name (a
            # label holding a zero byte only shortens the key, it never splits accounts).
            end = query.find(b"\x00", 12)
            what = query[12 : end + 3].lower()
        else:
            what = _NXDOMAIN if rcode == 3 else _ERROR
        key = (block, what)
        table = self._table
        entry = table.get(key)
        rate = self.rate
        if entry is None:
            if len(table) >= self.max_entries:
                table = self._sweep(now)
            table[key] = [rate - 1.0, now, 0.0]
            return SEND
        balance = entry[0]
        elapsed = now - entry[1]
        if elapsed > 0:  # earn `rate` per second, at most `rate` (no min(): it costs more)
            entry[1] = now
            balance += elapsed * rate
            if balance > rate or elapsed >= self.window:
                balance = rate
        balance -= 1.0
        if balance >= 0:
            entry[0] = balance
            return SEND
        floor = self._floor
        entry[0] = balance if balance > floor else floor
        slip = self.slip
        if slip:
            dropped = entry[2] + 1.0
            if dropped >= slip:
                entry[2] = 0.0
                return SLIP
            entry[2] = dropped
        return DROP

    def _block(self, client: str) -> bytes:
        """The netblock of `client` as bytes (its network address), or b"" when exempt;
        remembered for the next call."""
        try:
            address = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            block = client.encode()
        else:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if any(address in network for network in self.exempt):
                block = _EXEMPT
            else:
                prefix = self.ipv4_prefix if address.version == 4 else self.ipv6_prefix
                network = ipaddress.ip_network((address, prefix), strict=False)
                block = network.network_address.packed
        blocks = self._blocks
        if len(blocks) >= _MAX_CLIENTS:
            blocks = self._blocks = {}  # replaced, not cleared: other threads may read it
        blocks[client] = block
        return block

    def _sweep(self, now: float) -> dict[tuple[bytes, bytes | int], list[float]]:
        """Drop the accounts untouched for a window (all of them when that frees less than
        a quarter of the table); returns the new table."""
        horizon = now - self.window
        kept = {key: entry for key, entry in list(self._table.items()) if entry[1] > horizon}
        if len(kept) > self.max_entries * 3 // 4:
            kept = {}
        self._table = kept
        return kept


def slip_response(query: bytes) -> bytes:
    """The truncated reply to `query` that a slip sends: its id, QR and TC set, opcode and
    RD copied, NOERROR, the question when it can be found, no other record."""
    end = query.find(b"\x00", 12)
    if end < 0 or end + 5 > len(query) or query[4:6] != b"\x00\x01":
        question, count = b"", 0
    else:
        question, count = query[12 : end + 5], 1
    flags = 0x80 | (query[2] & 0x79) | 0x02
    return query[:2] + bytes((flags, 0, 0, count, 0, 0, 0, 0, 0, 0)) + question
