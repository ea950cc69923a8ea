"""DNS COOKIE (RFC 7873) with server cookies in the RFC 9018 layout.

A client sends an 8-byte client cookie, and after the first answer the server cookie it
got back. The server answers every query that carries a client cookie with a server
cookie for that client: version 1, three reserved bytes, a 32-bit timestamp (seconds),
and an 8-byte keyed hash of the client cookie, those fields and the client's address.

RFC 9018 names SipHash-2-4 as the hash so that servers of one anycast set, sharing a
secret, accept each other's cookies. Python's standard library has no SipHash; this uses
keyed BLAKE2b (8-byte digest), which has the same properties for one server (unforgeable
without the secret, bound to the client's address and cookie). Servers sharing a secret
must therefore all be dockzone.

A server cookie is valid for an hour after its timestamp (and up to five minutes ahead,
for clocks apart), and is renewed once it is half an hour old (RFC 9018 4.3). Checking and
making cookies sits on the UDP hot path, so both are memoised per (cookie, client address)
for the second they were made in: a resolver sending the same cookie again costs a
dictionary lookup.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import time
from collections.abc import Callable
from enum import Enum

COOKIE = 10
"""The EDNS option code of DNS COOKIE."""

CLIENT_SIZE = 8
SERVER_SIZE = 16  # ours: version, reserved, timestamp, hash
LIFETIME = 3600
RENEW_AFTER = 1800
CLOCK_SKEW = 300
MEMO_LIMIT = 10_000


class Verdict(Enum):
    """What a query's server cookie says about the client."""

    NONE = "none"  # a client cookie alone (a first query)
    VALID = "valid"
    BAD = "bad"  # not ours, expired, or for another address/client cookie


class CookieError(ValueError):
    """A COOKIE option of a length RFC 7873 5.2.2 does not allow (FORMERR)."""


class Cookies:
    """Makes and checks server cookies with one secret (random per process by default:
    a restarted server hands out new cookies, which clients take as they come)."""

    def __init__(self, secret: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self.secret = secret if secret is not None else os.urandom(16)
        self._now = clock
        self._memo: dict[tuple[bytes, str], tuple[int, bytes, Verdict]] = {}

    def answer(self, cookie: bytes, client: str) -> tuple[bytes, Verdict]:
        """The COOKIE option (wire form, code and length included) for a query whose
        option data is ``cookie`` from ``client``, and what its server cookie was worth.
        Raises CookieError for a malformed option."""
        now = int(self._now())
        memo = self._memo.get((cookie, client))
        if memo is not None and memo[0] == now:
            return memo[1], memo[2]
        size = len(cookie)
        if size != CLIENT_SIZE and not CLIENT_SIZE + 8 <= size <= CLIENT_SIZE + 32:
            raise CookieError(f"a COOKIE option of {size} bytes (8, or 16 to 40)")
        address = _address_bytes(client)
        client_cookie = cookie[:CLIENT_SIZE]
        verdict = Verdict.NONE
        server = b""
        if size > CLIENT_SIZE:
            verdict = Verdict.BAD
            if size == CLIENT_SIZE + SERVER_SIZE and cookie[8] == 1:
                stamp = int.from_bytes(cookie[12:16], "big")
                age = (now - stamp) & 0xFFFFFFFF  # serial arithmetic, as RFC 9018 4.3
                fresh = age <= LIFETIME or (0x100000000 - age) <= CLOCK_SKEW
                if fresh and cookie[16:] == self._hash(client_cookie, cookie[8:16], address):
                    verdict = Verdict.VALID
                    if age <= RENEW_AFTER or age > LIFETIME:
                        server = cookie[8:]
        if not server:
            head = b"\x01\x00\x00\x00" + (now & 0xFFFFFFFF).to_bytes(4, "big")
            server = head + self._hash(client_cookie, head, address)
        option = b"\x00\x0a\x00\x18" + client_cookie + server
        if len(self._memo) >= MEMO_LIMIT:
            self._memo.clear()
        self._memo[(cookie, client)] = (now, option, verdict)
        return option, verdict

    def _hash(self, client_cookie: bytes, head: bytes, address: bytes) -> bytes:
        return hashlib.blake2b(
            client_cookie + head + address, digest_size=8, key=self.secret
        ).digest()


def _address_bytes(client: str) -> bytes:
    try:
        return ipaddress.ip_address(client).packed
    except ValueError:
        return client.encode()
