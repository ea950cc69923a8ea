"""Zone transfers out (AXFR, RFC 5936; IXFR, RFC 1995), who may make them, and TSIG.

`DNSService` hands this module every query for AXFR or IXFR and every query signed with
TSIG (RFC 8945), on either transport; everything else never comes here. `Transfers.respond`
returns the response messages:

| query                                | response                                          |
| ------------------------------------ | ------------------------------------------------- |
| signed, unknown key or bad signature | NOTAUTH, unsigned (counted as ``bad_tsig``)        |
| signed, not a transfer               | the ordinary answer, signed with the query's key  |
| transfer, client not allowed         | REFUSED (logged once per client, counted)          |
| transfer of a name that is no zone   | NOTAUTH                                           |
| AXFR over TCP                        | the zone: SOA, every RRset, SOA; messages <= 64 KiB |
| IXFR, the client's serial is current | the SOA alone                                      |
| IXFR, serial in the journal, TCP     | the difference (RFC 1995 4), condensed to one step |
| IXFR, serial in the journal, UDP     | the difference if one message holds it, else SOA   |
| IXFR, older serial, over UDP         | the SOA alone (RFC 1995 2: the client retries on TCP) |
| IXFR, older serial, over TCP         | the whole zone as AXFR sends it (RFC 1995 4)       |
| AXFR over UDP                        | REFUSED (RFC 5936 4.2)                             |

The difference comes from `journal` (`dnsserver.journal`), when given: every version from
the client's to the served one, condensed (`journal.condense`) into one deletion and one
addition section, where BIND sends one pair per version; both are what RFC 1995 allows.
A transfer reads one `ZoneIndex` (the snapshot the server took for the query), so it is
consistent however the store changes meanwhile. A signed transfer signs every message,
each MAC chained to the one before (RFC 8945 5.3.1), with dnspython's `dns.tsig`.

`TransferPolicy` is BIND's ``allow-transfer``: addresses, networks and TSIG key names; a
request is allowed when its client lies in one of the networks or it was signed (and
verified) with one of the named keys. The default allows nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from dnsserver.journal import Delta, Journal, condense, older
from dnsserver.message import (
    CD,
    CLASS_IN,
    FORMERR,
    NOTAUTH,
    RD,
    REFUSED,
    Query,
    records_at,
    render_error,
    render_transfer,
)
from dnsserver.name import name_to_wire, parse_name
from dnsserver.rdata import AXFR, IXFR
from dnsserver.zone import RRset, Zone
from dnsserver.zonestore import ZoneIndex

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TSIG = 250
TSIG_ROOM = 512
"""Bytes kept free in each transfer message for its TSIG record."""
MAX_LOGGED = 4096
"""Clients whose refusal is remembered as logged; beyond that each is logged again."""
WHOLE_FLAGS = 0x7800 | RD | CD
"""The query flags a transfer response copies (`render_transfer`)."""


@dataclass(frozen=True, slots=True)
class TransferKey:
    """A TSIG key: name (absolute, lower case), algorithm (``hmac-sha256``), secret."""

    name: str
    algorithm: str
    secret: bytes = field(repr=False)

    def to_dnspython(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.name, self.secret, self.algorithm)


class TransferPolicy:
    """Who may transfer zones: `allow` holds addresses, networks (CIDR) and names of
    `keys`. Raises ValueError for an entry that is none of these."""

    def __init__(self, allow: Iterable[str] = (), keys: Iterable[TransferKey] = ()) -> None:
        self.keys = {parse_name(key.name): key for key in keys}
        self.keyring: dict[dns.name.Name, dns.tsig.Key] = {
            dns.name.from_text(name): key.to_dnspython() for name, key in self.keys.items()
        }
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for entry in allow:
            text = entry.strip()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            try:
                name = parse_name(text)
            except ValueError:
                name = ""
            if name not in self.keys:
                raise ValueError(
                    f"allow-transfer {text!r}: neither an address, a network nor a TSIG key "
                    f"given (keys: {', '.join(sorted(self.keys)) or 'none'})"
                )
            names.add(name)
        self.networks = tuple(networks)
        self.key_names = frozenset(names)

    def allows(self, client: str, key: str | None) -> bool:
        """Whether `client` may transfer, having signed with `key` (verified) or nothing."""
        if key is not None and key in self.key_names:
            return True
        if not self.networks or not client:
            return False
        try:
            address = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


def signed_at(data: bytes, query: Query) -> int | None:
    """The offset of the TSIG record that ends `data`, or None when it is not signed.
    Cheap for the common query (no additional record but OPT)."""
    arcount = int.from_bytes(data[10:12], "big")
    if arcount <= int(query.edns):
        return None
    try:
        records = list(records_at(data, 12 + len(query.question)))
    except (ValueError, struct.error):
        return None
    return records[-1].start if records and records[-1].rdtype == TSIG else None


def is_transfer(query: Query) -> bool:
    """Whether `query` asks for a zone transfer."""
    return query.qtype in (AXFR, IXFR)


def transfer_rrsets(zone: Zone) -> Iterator[RRset]:
    """A zone as AXFR sends it: SOA, every other RRset, SOA (RFC 5936 2.2). dockzone's
    private ADDRESS_CNAME records (and their signatures) stay behind (a secondary answers
    with zone-file data)."""
    soa = zone.soa
    yield soa
    for rrset in zone.public_rrsets():
        if rrset is not soa:
            yield rrset
    yield soa


def ixfr_rrsets(soa: RRset, delta: Delta) -> Iterator[RRset]:
    """An incremental transfer (RFC 1995 4): the current SOA, the difference, the SOA."""
    yield soa
    yield from delta.rrsets()
    yield soa


@dataclass(slots=True)
class TransferCounts:
    """What the transfer side did, since start."""

    axfr: int = 0
    ixfr: int = 0
    """IXFR answered with the whole zone."""
    ixfr_journal: int = 0
    """IXFR answered with the difference from the journal."""
    ixfr_current: int = 0
    """IXFR answered with the SOA alone (client current, or over UDP)."""
    refused: int = 0
    bad_tsig: int = 0
    signed: int = 0
    """Signed queries that were not transfers (a secondary's SOA checks)."""


class Transfers:
    """Answers transfers and signed queries for a `DNSService` (see the module docstring).
    `policy` and `journal` may be replaced at any time."""

    def __init__(
        self, policy: TransferPolicy | None = None, journal: Journal | None = None
    ) -> None:
        self.policy = policy or TransferPolicy()
        self.journal = journal
        self.counts = TransferCounts()
        self._lock = threading.Lock()
        self._logged: set[tuple[str, str]] = set()
        self._rendered: dict[str, tuple[Zone, tuple[bytes, int, bool, int], list[bytes]]] = {}
        """Per zone: the last whole-zone transfer made (`_whole_zone`): the zone version, the
        kind of request, the messages."""

    def respond(
        self,
        data: bytes,
        query: Query,
        index: ZoneIndex,
        client: str,
        *,
        tcp: bool,
        plain: Callable[[bytes], bytes | None],
        tsig_at: int | None = None,
    ) -> Iterator[bytes]:
        """The response messages to `data` (a transfer, or signed at `tsig_at`).
        `plain` answers an unsigned query the ordinary way (the query without its TSIG)."""
        policy = self.policy
        key: dns.tsig.Key | None = None
        mac = b""
        unsigned = data
        if tsig_at is not None:
            try:
                message = dns.message.from_wire(data, keyring=policy.keyring)
            except (dns.message.UnknownTSIGKey, dns.tsig.BadSignature, dns.tsig.BadTime) as exc:
                self._count("bad_tsig")
                self._log_once(client, "bad-tsig", "TSIG from %s rejected: %s", client, exc)
                wire = render_error(data, NOTAUTH, query)
                if wire is not None:
                    yield wire
                return
            except dns.exception.DNSException:
                wire = render_error(data, FORMERR, query)
                if wire is not None:
                    yield wire
                return
            key = message.keyring if isinstance(message.keyring, dns.tsig.Key) else None
            mac = message.mac or b""
            arcount = int.from_bytes(data[10:12], "big") - 1
            unsigned = data[:10] + arcount.to_bytes(2, "big") + data[12:tsig_at]
        signer = _Signer(key, mac, query.id)
        if not is_transfer(query):
            self._count("signed")
            wire = plain(unsigned)
            if wire is not None:
                yield signer.sign(wire)
            return
        keyname = None if key is None else parse_name(key.name.to_text())
        if not policy.allows(client, keyname):
            self._count("refused")
            self._log_once(
                client,
                "refused",
                "zone transfer of %s refused to %s%s (see --allow-transfer)",
                query.qname,
                client or "?",
                f" (key {keyname})" if keyname else " (unsigned)",
            )
            yield signer.sign(render_error(unsigned, REFUSED, query) or b"")
            return
        zone = index.zones.get(query.qname)
        if query.qclass != CLASS_IN or zone is None:
            yield signer.sign(render_error(unsigned, NOTAUTH, query) or b"")
            return
        if query.qtype == AXFR and not tcp:
            yield signer.sign(render_error(unsigned, REFUSED, query) or b"")
            return
        rrsets: Iterable[RRset]
        kind = "AXFR"
        if query.qtype == IXFR:
            serial = _ixfr_serial(unsigned)
            if serial is None:
                yield signer.sign(render_error(unsigned, FORMERR, query) or b"")
                return
            journal = self.journal
            deltas = None
            if older(serial, zone.serial) and journal is not None:
                deltas = journal.since(zone.origin, serial, zone.serial)
            if deltas is not None:
                kind = f"IXFR from serial {serial} ({len(deltas)} versions, from the journal)"
                rrsets = ixfr_rrsets(zone.soa, condense(deltas))
                if not tcp:
                    wire = self._one_message(query, rrsets, key)
                    self._count("ixfr_journal" if wire is not None else "ixfr_current")
                    if wire is None:
                        rrsets = (zone.soa,)
                    else:
                        yield signer.sign(wire)
                        return
                else:
                    self._count("ixfr_journal")
            elif not tcp or not older(serial, zone.serial):
                self._count("ixfr_current")
                rrsets = (zone.soa,)
            else:
                kind = f"IXFR from serial {serial} (whole zone: not in the journal)"
                self._count("ixfr")
                rrsets = ()
        else:
            self._count("axfr")
            rrsets = ()
        started = time.monotonic()
        limit = 65535 - (TSIG_ROOM if key is not None else 0)
        messages = 0
        rendered = (
            render_transfer(query, rrsets, limit=limit)
            if rrsets
            else self._whole_zone(zone, query, limit)
        )
        for wire in rendered:
            messages += 1
            yield signer.sign(wire)
        log.debug(
            "%s of %s (serial %d) to %s: %d messages in %.3fs",
            kind,
            zone.origin,
            zone.serial,
            client,
            messages,
            time.monotonic() - started,
        )

    def _whole_zone(self, zone: Zone, query: Query, limit: int) -> Iterator[bytes]:
        """The messages of a whole-zone transfer (AXFR, or IXFR falling back to it), made
        once per zone version and kind of request (the question as asked, flags, EDNS, room)
        and kept for the next secondary asking for the same: several secondaries, or one
        retrying, cost the rendering once. Each message gets the query's id."""
        key = (query.question, query.flags & WHOLE_FLAGS, query.edns, limit)
        with self._lock:
            kept = self._rendered.get(zone.origin)
        if kept is not None and kept[0] is zone and kept[1] == key:
            messages = kept[2]
        else:
            messages = list(render_transfer(query, transfer_rrsets(zone), limit=limit))
            with self._lock:
                self._rendered[zone.origin] = (zone, key, messages)
        qid = query.id.to_bytes(2, "big")
        for message in messages:
            yield qid + message[2:]

    @staticmethod
    def _one_message(
        query: Query, rrsets: Iterable[RRset], key: dns.tsig.Key | None
    ) -> bytes | None:
        """`rrsets` as one UDP response within the client's size, or None when they need
        more than one."""
        limit = min(query.udp_size, 65535) - (TSIG_ROOM if key is not None else 0)
        try:
            messages = render_transfer(query, rrsets, limit=limit)
            first = next(messages)
        except ValueError:
            return None
        return None if next(messages, None) is not None else first

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self.counts, what, getattr(self.counts, what) + 1)

    def _log_once(self, client: str, kind: str, message: str, *args: Any) -> None:
        with self._lock:
            if (client, kind) in self._logged:
                return
            if len(self._logged) >= MAX_LOGGED:
                self._logged.clear()
            self._logged.add((client, kind))
        log.warning(message, *args)


def _ixfr_serial(data: bytes) -> int | None:
    """The serial of the SOA in an IXFR query's authority section (RFC 1995 3), or None."""
    try:
        message = dns.message.from_wire(data)
    except dns.exception.DNSException:
        return None
    for rrset in message.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return int(rrset[0].serial)
    return None


class _Signer:
    """Signs the messages of one response with the query's key (nothing without one):
    the first MAC covers the query's, each later one the one before (RFC 8945 5.3.1)."""

    __slots__ = ("_ctx", "key", "mac", "qid")

    def __init__(self, key: dns.tsig.Key | None, mac: bytes, qid: int) -> None:
        self.key = key
        self.mac = mac
        self.qid = qid
        self._ctx: Any = None

    def sign(self, wire: bytes) -> bytes:
        key = self.key
        if key is None or not wire:
            return wire
        # dnspython's TSIG rdata class and `sign` are not annotated.
        template = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
            dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, 0, 300, b"", self.qid, 0, b""
        )
        # The first call (no context yet) digests the query's MAC, later ones the context.
        rdata, self._ctx = dns.tsig.sign(  # type: ignore[no-untyped-call]
            wire, key, template, int(time.time()), self.mac, self._ctx, True
        )
        rdata_wire: bytes = rdata.to_wire()
        record = (
            name_to_wire(parse_name(key.name.to_text()))
            + struct.pack("!HHIH", TSIG, dns.rdataclass.ANY, 0, len(rdata_wire))
            + rdata_wire
        )
        arcount = int.from_bytes(wire[10:12], "big") + 1
        return wire[:10] + arcount.to_bytes(2, "big") + wire[12:] + record
