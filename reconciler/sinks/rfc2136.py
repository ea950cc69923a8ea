"""RFC 2136 dynamic updates, signed with TSIG, to a primary server such as BIND.

``current()`` reads each configured zone by AXFR (signed with the same key) and keeps only
the names that carry this instance's ownership TXT (``ownership.py``: ``_dockzone.<name>``);
it runs on the loop's first pass, after a failure and on full passes (resync, SIGHUP), and
that is where changes by other writers are seen and repaired. Between those, ``apply()``
works from the plan alone: it looks at the names the plan changed (and the names the last
read found different), compares what should be published there with what it knows the
server holds, and sends only the difference. So a one-record change costs a few names, not
a zone transfer and a walk over every RRset.

Prerequisites make sure a concurrent writer is never clobbered:

- a name not yet ours is claimed only when nothing is at the name or at its ownership name
  ("name not in use"), in the same message that adds the ownership TXT and the RRsets;
- a name that is ours is changed only while its ownership TXT is exactly ours ("RRset
  exists, value dependent"), and each RRset we replace is exactly what we last saw; an
  RRset we add must not exist ("RRset does not exist");
- a name that is in use by someone else is left alone (a warning, once).

An RRset of more than ``SMALL_RRSET`` records (an aggregated name above thousands of
services) is not replaced whole: the message deletes the records that go and adds the ones
that come, under "RRset exists (value independent)", so a one-record change sends one or
two records, not the whole set twice (which would not fit in one message). BIND gives the
whole RRset the TTL of a record added to it; a TTL change re-adds one record.

Updates for several names of one zone share a message (up to ``MAX_NAMES`` names,
``MAX_RECORDS`` records and ``MAX_MESSAGE`` bytes), so the server commits them at once;
when such a message fails on a prerequisite (or with SERVFAIL, e.g. BIND's limit on
records per RRset), each of its names is sent again on its own, so one name taken by
someone else does not hold up the others. A name whose change is bigger than one message
goes out in several, each guarded by the ownership TXT (so a claim of thousands of records
is not atomic). Every message of a pass goes over one TCP connection. SOA and NS records,
records at a zone's apex and the in-process server's ``ns.dns`` glue belong to the server,
never to the sink.

Each failure (REFUSED, NOTAUTH, SERVFAIL, a failed prerequisite) is collected while the
other messages still go out; a broken connection, a timeout or a TSIG failure stops the rest.
The failures are raised together as ``TransientError``, and the loop then has the next
pass read the zones again. dnspython is blocking: the exchanges run in
``asyncio.to_thread``. Built by ``daemon.make_sinks`` for ``--rfc2136-server``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from reconciler.core import names
from reconciler.core.model import RRset, ZoneContent, ZoneSet
from reconciler.core.ownership import owned_name, ownership_name, ownership_text, parse_ownership
from reconciler.core.plan import Changes
from reconciler.core.rdata import name_key, type_key
from reconciler.core.zonebuild import CONFIG_OWNER
from reconciler.errors import TransientError
from reconciler.tsig import TsigKey

log = logging.getLogger(__name__)

SERVER_TYPES = frozenset({"SOA", "NS", "DNSKEY", "RRSIG", "NSEC", "NSEC3", "NSEC3PARAM"})
"""Types that belong to the server and are never published or removed."""

SMALL_RRSET = 32
"""RRsets up to this size are replaced whole, under an exact prerequisite; bigger ones
change record by record (see the module docstring)."""

MAX_MESSAGE = 60_000
"""Estimated bytes of prerequisites and updates per message (TCP carries 65,535; the
header, zone section and TSIG need far less than the rest)."""

MAX_RECORDS = 500
"""Updates per message. BIND spends about a millisecond per record it adds (more on a
loaded machine): a message that claims an aggregated name of thousands of records at once
can outlast the timeout, so such a name goes out in parts."""

MAX_NAMES = 64
"""Names per message: enough to cut the server's commits, few enough that a failed
prerequisite costs little to retry name by name."""

PREREQUISITE_FAILED = frozenset(
    {dns.rcode.YXDOMAIN, dns.rcode.YXRRSET, dns.rcode.NXRRSET, dns.rcode.NXDOMAIN}
)

Names = dict[str, dict[str, RRset]]
"""name -> rdtype -> RRset, within one zone on the server."""


@dataclass(frozen=True, slots=True)
class Rfc2136Config:
    """Where updates go: the primary's address, the zones to update, the key, and the
    instance id written into ownership TXT records."""

    server: tuple[str, int]
    zones: tuple[str, ...]
    key: TsigKey | None
    instance: str
    timeout: float = 5.0

    @property
    def where(self) -> str:
        host, port = self.server
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(slots=True)
class ServerZone:
    """One zone as the server holds it: the names we own (as read, then as we changed
    them), and the names someone else uses (any data at the name or its ownership name
    that is not ours)."""

    owned: Names
    foreign: set[str]


Op = tuple[int, Callable[[dns.update.UpdateMessage], None]]
"""One prerequisite or update: its estimated size in bytes, and how to add it."""


@dataclass(slots=True)
class NameUpdate:
    """What one name needs: the prerequisites that guard it, the updates in order, and
    what the server holds there once they are applied."""

    target: str
    name: str
    new: dict[str, RRset]
    guard: Op
    """The ownership TXT as a prerequisite, for the later messages of a big change."""
    prerequisites: list[Op] = field(default_factory=list)
    updates: list[Op] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(s for s, _ in self.prerequisites) + sum(s for s, _ in self.updates)


@dataclass(slots=True)
class Message:
    """One UPDATE: the names it carries and their operations. ``last`` is False for all
    but the final message of a name that needs several."""

    target: str
    items: list[NameUpdate]
    ops: list[Op]
    last: bool = True

    def build(self, keyring: dns.tsig.Key | None) -> dns.update.UpdateMessage:
        message = dns.update.UpdateMessage(self.target, keyring=keyring)
        for _, add in self.ops:
            add(message)
        return message

    def what(self) -> str:
        first = self.items[0].name
        more = len(self.items) - 1
        return f"{first} and {more} more names" if more else first


class Rfc2136Sink:
    """Publishes the managed part of the desired zones to ``config.zones`` on the server."""

    name = "rfc2136"

    def __init__(self, config: Rfc2136Config) -> None:
        self.config = config
        key = config.key
        self._keyring = dns.tsig.Key(key.name, key.secret, key.algorithm) if key else None
        self._key_name = key.name if key else "(none: unsigned)"
        self._desired: dict[str, ZoneContent] = {}
        self._server: dict[str, ServerZone] = {}
        self._pending: set[str] = set()
        """Names the last read found different from the desired records."""
        self._warned: set[str] = set()
        text = f'"{ownership_text(config.instance)}"'
        self._mark = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text)

    # --- reading -------------------------------------------------------------------------

    async def current(self) -> ZoneSet:
        """The desired zones last applied, as the server holds them: at each name where the
        server differs, its RRsets in place of the desired ones (so the plan sends the
        difference and says what it repairs)."""
        server: dict[str, ServerZone] = {}
        errors = []
        for zone in self.config.zones:
            try:
                server[zone] = await asyncio.to_thread(self._read_zone, zone)
            except TransientError as exc:
                errors.append(str(exc))
        if errors:
            raise TransientError("; ".join(errors))
        self._server = server
        wanted = managed(self._desired, self.config.zones)
        drift: dict[str, tuple[str, dict[str, RRset]]] = {}
        for zone, state in server.items():
            want = wanted.get(zone, {})
            for name in want.keys() | state.owned.keys():
                if name in state.foreign:
                    self._warn_foreign(zone, name)
                elif want.get(name) != state.owned.get(name):
                    drift[name] = (zone, want.get(name, {}))
        self._pending = set(drift)
        if drift and self._desired:
            log.info(
                "%s: %d names differ from what dockzone published (%s); repairing",
                self.config.where,
                len(drift),
                ", ".join(sorted(drift, key=name_key)[:5]),
            )
        return self._held(drift)

    def _held(self, drift: Mapping[str, tuple[str, dict[str, RRset]]]) -> ZoneSet:
        """``self._desired`` with the server's RRsets at each name in ``drift``. Where that
        cannot show (a name outside every desired zone, a difference the zone's RRsets do
        not carry) the zone, or every zone, is left out: the plan then covers all of it,
        and ``apply`` still sends only what differs."""
        if not drift:
            return self._desired
        origins = frozenset(self._desired)
        by_origin: dict[str, dict[tuple[str, str], RRset | None]] = {}
        for name, (target, want) in drift.items():
            origin = names.zone_for(name, origins)
            if origin is None:
                return {}
            content = self._desired[origin]
            held = self._server[target].owned.get(name, {})
            changes = by_origin.setdefault(origin, {})
            for rrset in content.rrsets_at([name]).get(name, ()):
                if rrset.rdtype not in held and _published(content, rrset, target):
                    changes[(name, rrset.rdtype)] = None
            for rdtype, rrset in held.items():
                if want.get(rdtype) != rrset:
                    changes[(name, rdtype)] = rrset
        result = dict(self._desired)
        for origin, changes in by_origin.items():
            content = self._desired[origin]
            view = content.updated(changes, content.provenance)
            if view == content:
                del result[origin]
            else:
                result[origin] = view
        return result

    def _read_zone(self, zone: str) -> ServerZone:
        host, port = self.config.server
        try:
            xfr = dns.query.xfr(
                host,
                zone,
                port=port,
                keyring={self._keyring.name: self._keyring} if self._keyring else None,
                keyname=self._keyring.name if self._keyring else None,
                relativize=False,
                lifetime=self.config.timeout,
            )
            content = dns.zone.from_xfr(xfr, relativize=False, check_origin=False)
        except Exception as exc:  # dnspython raises many unrelated types here
            raise TransientError(
                f"zone {zone} at {self.config.where}: transfer failed: {self._describe(exc)}"
            ) from exc
        data: Names = {}
        for node_name, node in content.nodes.items():
            name = node_name.to_text().lower()
            for rdataset in node.rdatasets:
                rdtype = dns.rdatatype.to_text(rdataset.rdtype)
                texts = tuple(sorted(rd.to_text() for rd in rdataset))
                data.setdefault(name, {})[rdtype] = RRset(name, rdtype, rdataset.ttl, texts)
        return self._split(zone, data)

    def _split(self, zone: str, data: Names) -> ServerZone:
        mine = ownership_text(self.config.instance)
        owned: Names = {}
        foreign: set[str] = set()
        marked: dict[str, bool] = {}
        for name, rrsets in data.items():
            target = owned_name(name)
            if target is None:
                continue
            txt = rrsets.get("TXT")
            texts = [_unquote(t) for t in txt.rdatas] if txt else []
            marked[target] = mine in texts and len(rrsets) == 1
            if not marked[target] and any(parse_ownership(t) for t in texts):
                log.debug("%s: owned by another dockzone instance", target)
        for name, rrsets in data.items():
            if owned_name(name) is not None or name == zone:
                continue
            if marked.get(name):
                owned[name] = {t: r for t, r in rrsets.items() if t not in SERVER_TYPES}
            elif set(rrsets) - SERVER_TYPES:
                foreign.add(name)
        for name, ours in marked.items():
            if not ours:
                foreign.add(name)
            elif name not in owned:
                owned[name] = {}  # an ownership TXT left without records: ours to clean up
        return ServerZone(owned, foreign)

    # --- writing -------------------------------------------------------------------------

    async def apply(self, changes: Changes) -> None:
        """Send what the names the plan changed (and those the last read found different)
        need; see the module docstring."""
        if changes.is_empty and not self._pending:
            return
        started = time.monotonic()
        self._desired = changes.applied_to(self._desired)
        dirty = {change.name for zone in changes.zones for change in zone.rrsets}
        dirty |= self._pending
        self._pending = set()
        unread = [zone for zone in self.config.zones if zone not in self._server]
        for zone in unread:  # apply() without current(): read what the names are checked against
            self._server[zone] = await asyncio.to_thread(self._read_zone, zone)
        items = self._updates(dirty)
        if not items:
            return
        messages = pack(items)
        done, errors = await asyncio.to_thread(self._send_all, messages)
        for item in done:
            owned = self._server[item.target].owned
            if item.new:
                owned[item.name] = item.new
            else:
                owned.pop(item.name, None)
        log.info(
            "%s: %d of %d names updated in %d messages (%.3fs)",
            self.config.where,
            len(done),
            len(items),
            len(messages),
            time.monotonic() - started,
        )
        if errors:
            raise TransientError("; ".join(errors))

    def _updates(self, dirty: Collection[str]) -> list[NameUpdate]:
        """What each of the ``dirty`` names needs, in canonical name order (those that need
        nothing left out)."""
        targets = self.config.zones
        desired = self._desired
        origins = frozenset(desired)
        by_origin: dict[str | None, list[str]] = {}
        for name in dirty:
            by_origin.setdefault(names.zone_for(name, origins), []).append(name)
        found: dict[str, list[RRset]] = {}
        for origin, members in by_origin.items():
            if origin is not None:
                found.update(desired[origin].rrsets_at(members))
        items = []
        for name in sorted(dirty, key=name_key):
            target = names.zone_for(name, targets)
            if target is None or name == target:
                continue
            state = self._server[target]
            origin = names.zone_for(name, origins)
            new: dict[str, RRset] = {}
            if origin is not None:
                content = desired[origin]
                for rrset in found.get(name, ()):
                    if _published(content, rrset, target):
                        new[rrset.rdtype] = normalised(rrset)
            if name in state.foreign:
                if new:
                    self._warn_foreign(target, name)
                continue
            old = state.owned.get(name)
            if old == new or (old is None and not new):
                continue
            items.append(self._update(target, name, old, new))
        return items

    def _warn_foreign(self, zone: str, name: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning(
                "zone %s at %s: %s is in use by another writer; dockzone leaves it alone",
                zone,
                self.config.where,
                name,
            )

    def _update(
        self, zone: str, name: str, old: Mapping[str, RRset] | None, new: dict[str, RRset]
    ) -> NameUpdate:
        """The prerequisites and updates that turn ``old`` (None: not ours yet) into
        ``new`` at ``name`` (see the module docstring)."""
        owner = dns.name.from_text(name)
        marker = dns.name.from_text(ownership_name(name))
        mark = self._mark
        bare = len(name) + 12
        guard: Op = (bare + 10 + _size(mark), lambda m: m.present(marker, mark))
        item = NameUpdate(zone, name, new, guard)
        if old is None:
            item.prerequisites += [
                (bare, lambda m: m.absent(owner)),
                (bare + 10, lambda m: m.absent(marker)),
            ]
            ttl = _ttl(new.values())
            item.updates.append((bare + 10 + _size(mark), lambda m: m.add(marker, ttl, mark)))
            for rrset in new.values():
                item.updates += _adds(owner, rrset.ttl, rrset.rdtype, rrset.rdatas)
            return item
        item.prerequisites.append(guard)
        for rdtype in sorted(old.keys() | new.keys(), key=type_key):
            before, after = old.get(rdtype), new.get(rdtype)
            if before == after:
                continue
            if before is None:
                assert after is not None
                item.prerequisites.append((bare, _absent(owner, rdtype)))
                item.updates += _adds(owner, after.ttl, rdtype, after.rdatas)
                continue
            whole = len(before.rdatas) <= SMALL_RRSET
            if whole:
                rdatas = [rdata(rdtype, text) for text in before.rdatas]
                size = sum(16 + _size(rd) for rd in rdatas)
                item.prerequisites.append((size, _present(owner, rdatas)))
            else:
                item.prerequisites.append((bare, _present_type(owner, rdtype)))
            if after is None:
                item.updates.append((bare, _delete_type(owner, rdtype)))
            elif whole and len(after.rdatas) <= SMALL_RRSET:
                item.updates.append((bare, _delete_type(owner, rdtype)))
                item.updates += _adds(owner, after.ttl, rdtype, after.rdatas)
            else:
                kept = set(after.rdatas)
                gone = [t for t in before.rdatas if t not in kept]
                had = set(before.rdatas)
                come = [t for t in after.rdatas if t not in had]
                if not come and after.ttl != before.ttl:
                    come = [after.rdatas[0]]  # BIND gives the RRset the TTL of a record added
                item.updates += _deletes(owner, rdtype, gone)
                item.updates += _adds(owner, after.ttl, rdtype, come)
        if not new:
            item.updates.append((bare + 10, _delete_type(marker, "TXT")))
        return item

    def _send_all(self, messages: list[Message]) -> tuple[list[NameUpdate], list[str]]:
        """Send ``messages`` in order over one connection (in a thread): the names whose
        every message succeeded, and what went wrong."""
        done: list[NameUpdate] = []
        errors: list[str] = []
        failed: set[str] = set()
        connection = _Connection(self.config.server, self.config.timeout)
        try:
            for n, message in enumerate(messages):
                if any(item.name in failed for item in message.items):
                    continue  # a later message of a name whose earlier one failed
                try:
                    error = self._exchange(connection, message)
                    if error is not None and len(message.items) > 1 and error[0]:
                        for item in message.items:  # one name may have failed them all
                            alone = Message(
                                message.target, [item], item.prerequisites + item.updates
                            )
                            failure = self._exchange(connection, alone)
                            if failure is None:
                                done.append(item)
                            else:
                                errors.append(failure[1])
                        continue
                except Exception as exc:  # dnspython and sockets raise many unrelated types
                    errors.append(f"{self._where(message)}: {self._describe(exc)}")
                    if n + 1 < len(messages):
                        errors.append(
                            f"{len(messages) - n - 1} more UPDATE messages to "
                            f"{self.config.where} not sent"
                        )
                    break
                if error is None:
                    if message.last:
                        done.extend(message.items)
                else:
                    errors.append(error[1])
                    failed.update(item.name for item in message.items)
        finally:
            connection.close()
        return done, errors

    def _exchange(self, connection: _Connection, message: Message) -> tuple[bool, str] | None:
        """Send one message: None on success, else (whether one of its names alone may be
        the cause: a failed prerequisite, SERVFAIL; what went wrong, naming server, zone,
        name and the key where it matters). Raises on a broken connection, a timeout or a
        TSIG failure."""
        response = connection.exchange(message.build(self._keyring))
        rcode = response.rcode()
        where = self._where(message)
        if rcode == dns.rcode.NOERROR:
            log.debug("%s: done", where)
            return None
        text = dns.rcode.to_text(rcode)
        if rcode in PREREQUISITE_FAILED:
            return True, f"{where}: {text}: someone else changed the name; not touched"
        if rcode == dns.rcode.NOTAUTH:
            return False, (
                f"{where}: NOTAUTH (the server is not authoritative for the zone, "
                f"or key {self._key_name} is not allowed)"
            )
        if rcode == dns.rcode.REFUSED:
            return False, (
                f"{where}: REFUSED (does the zone's update-policy allow key {self._key_name}?)"
            )
        if rcode == dns.rcode.SERVFAIL:
            return True, (
                f"{where}: SERVFAIL (see the server's log; BIND 9.18.28 and later refuse "
                "RRsets of more than 100 records unless max-records-per-type allows them)"
            )
        return False, f"{where}: {text}"

    def _where(self, message: Message) -> str:
        return f"UPDATE of {message.what()} in zone {message.target} at {self.config.where}"

    def _describe(self, exc: Exception) -> str:
        key = self._key_name
        if isinstance(exc, dns.tsig.PeerBadKey):
            return f"TSIG key {key} is not known to the server (BADKEY)"
        if isinstance(exc, dns.tsig.PeerBadSignature):
            return f"TSIG key {key} was rejected: wrong secret or algorithm (BADSIG)"
        if isinstance(exc, dns.tsig.PeerBadTime):
            return f"TSIG key {key} was rejected: clocks differ (BADTIME)"
        if isinstance(exc, dns.tsig.PeerError):
            return f"TSIG key {key} was rejected ({exc})"
        if isinstance(exc, dns.message.UnknownTSIGKey | dns.tsig.BadSignature):
            return f"the server's answer is not signed with TSIG key {key}: {exc}"
        if isinstance(exc, dns.xfr.TransferError):
            return f"{exc} (is the transfer allowed for key {key}?)"
        if isinstance(exc, dns.exception.Timeout):
            return f"no answer within {self.config.timeout:g}s"
        if isinstance(exc, EOFError):
            return "the server closed the connection"
        if isinstance(exc, OSError):
            return exc.strerror or str(exc)
        return f"{type(exc).__name__}: {exc}"


class _Connection:
    """One TCP connection to the server, opened on first use; a connection the server
    closed while idle is opened again once."""

    def __init__(self, server: tuple[str, int], timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        self._sock: socket.socket | None = None

    def exchange(self, message: dns.message.Message) -> dns.message.Message:
        reused = self._sock is not None
        try:
            return self._exchange(message)
        except (OSError, EOFError):
            self.close()
            if not reused:
                raise
            return self._exchange(message)
        except Exception:
            self.close()  # the stream may be out of step
            raise

    def _exchange(self, message: dns.message.Message) -> dns.message.Message:
        if self._sock is None:
            sock = socket.create_connection(self.server, timeout=self.timeout)
            sock.setblocking(False)
            self._sock = sock
        host, port = self.server
        return dns.query.tcp(message, host, timeout=self.timeout, port=port, sock=self._sock)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def pack(items: Iterable[NameUpdate]) -> list[Message]:
    """``items`` as messages: names of one zone share a message up to ``MAX_NAMES`` names,
    ``MAX_RECORDS`` updates and ``MAX_MESSAGE`` bytes; a name bigger than that gets several
    of its own."""
    messages: list[Message] = []
    shared: Message | None = None
    size = records = 0
    for item in items:
        need, more = item.size, len(item.updates)
        if need > MAX_MESSAGE or more > MAX_RECORDS:
            messages.extend(_chunks(item))
            continue
        if (
            shared is None
            or shared.target != item.target
            or size + need > MAX_MESSAGE
            or records + more > MAX_RECORDS
            or len(shared.items) >= MAX_NAMES
        ):
            shared = Message(item.target, [], [])
            messages.append(shared)
            size = records = 0
        shared.items.append(item)
        shared.ops += item.prerequisites + item.updates
        size += need
        records += more
    return messages


def _chunks(item: NameUpdate) -> Iterator[Message]:
    """One name's change in several messages: the first with its prerequisites, the rest
    guarded by its ownership TXT (which the first adds for a claim, and the last removes
    when the name goes)."""
    current = Message(item.target, [item], list(item.prerequisites), last=False)
    size = sum(s for s, _ in item.prerequisites)
    records = 0
    for op in item.updates:
        if records and (size + op[0] > MAX_MESSAGE or records >= MAX_RECORDS):
            yield current
            current = Message(item.target, [item], [item.guard], last=False)
            size, records = item.guard[0], 0
        current.ops.append(op)
        size += op[0]
        records += 1
    current.last = True
    yield current


def _absent(owner: dns.name.Name, rdtype: str) -> Callable[[dns.update.UpdateMessage], None]:
    return lambda m: m.absent(owner, rdtype)


def _present(
    owner: dns.name.Name, rdatas: list[dns.rdata.Rdata]
) -> Callable[[dns.update.UpdateMessage], None]:
    return lambda m: m.present(owner, *rdatas)


def _present_type(owner: dns.name.Name, rdtype: str) -> Callable[[dns.update.UpdateMessage], None]:
    return lambda m: m.present(owner, rdtype)


def _delete_type(owner: dns.name.Name, rdtype: str) -> Callable[[dns.update.UpdateMessage], None]:
    return lambda m: m.delete(owner, rdtype)


def _adds(owner: dns.name.Name, ttl: int, rdtype: str, texts: Iterable[str]) -> list[Op]:
    result: list[Op] = []
    for text in texts:
        rd = rdata(rdtype, text)
        result.append((16 + _size(rd), functools.partial(_add, owner=owner, ttl=ttl, rd=rd)))
    return result


def _deletes(owner: dns.name.Name, rdtype: str, texts: Iterable[str]) -> list[Op]:
    result: list[Op] = []
    for text in texts:
        rd = rdata(rdtype, text)
        result.append((16 + _size(rd), functools.partial(_delete, owner=owner, rd=rd)))
    return result


def _add(
    message: dns.update.UpdateMessage, *, owner: dns.name.Name, ttl: int, rd: dns.rdata.Rdata
) -> None:
    message.add(owner, ttl, rd)


def _delete(
    message: dns.update.UpdateMessage, *, owner: dns.name.Name, rd: dns.rdata.Rdata
) -> None:
    message.delete(owner, rd)


def managed(zones: ZoneSet, targets: Iterable[str]) -> dict[str, Names]:
    """The RRsets of ``zones`` the sink publishes, by target zone and name: everything but
    SOA/NS, the configuration's glue, names outside every target zone and target apexes.
    Rdata texts are normalised through dnspython so they compare with what AXFR returns."""
    targets = tuple(targets)
    result: dict[str, Names] = {}
    for content in zones.values():
        for rrset in content.rrsets:
            target = names.zone_for(rrset.name, targets)
            if target is None or not _published(content, rrset, target):
                continue
            by_type = result.setdefault(target, {}).setdefault(rrset.name, {})
            by_type[rrset.rdtype] = normalised(rrset)
    return result


def _published(content: ZoneContent, rrset: RRset, target: str) -> bool:
    """True when the sink publishes ``rrset`` into ``target``: not the server's types, not
    the apex, not a wildcard name, and not only the configuration's records (glue)."""
    if rrset.rdtype in SERVER_TYPES or rrset.name == target or "*" in rrset.name.split("."):
        return False
    provenance = content.provenance
    seen = False
    for text in rrset.rdatas:
        for source in provenance.get((rrset.name, rrset.rdtype, text), ()):
            if source.owner != CONFIG_OWNER:
                return True
            seen = True
    return not seen


@functools.lru_cache(maxsize=1 << 17)
def rdata(rdtype: str, text: str) -> dns.rdata.Rdata:
    """``text`` parsed (cached: the same records are compared and sent pass after pass)."""
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)


@functools.lru_cache(maxsize=1 << 17)
def _normal_text(rdtype: str, text: str) -> str:
    return rdata(rdtype, text).to_text()


def normalised(rrset: RRset) -> RRset:
    """``rrset`` with its rdatas as dnspython writes them, sorted: comparable with what a
    transfer returns."""
    texts = tuple(sorted(_normal_text(rrset.rdtype, t) for t in rrset.rdatas))
    return RRset(rrset.name, rrset.rdtype, rrset.ttl, texts)


def _size(rd: dns.rdata.Rdata) -> int:
    return len(rd.to_wire() or b"")


def _ttl(rrsets: Iterable[RRset]) -> int:
    return min((r.ttl for r in rrsets), default=0)


def _unquote(text: str) -> str:
    """A one-string TXT rdata as its string (ownership texts need no escapes)."""
    return text.strip().strip('"')
