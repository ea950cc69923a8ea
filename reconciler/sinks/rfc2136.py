"""RFC 2136 dynamic updates, signed with TSIG, to a primary server such as BIND.

The sink reads each configured zone by AXFR (signed with the same key) and keeps only the
names that carry this instance's ownership TXT (``ownership.py``: ``_dockzone.<name>``).
``apply`` compares the desired RRsets with what the server holds under those names and sends
one UPDATE per changed name, with prerequisites so a concurrent writer is never clobbered:

- a name not yet ours is claimed only when nothing is at the name or at its ownership name
  ("name not in use"), in the same message that adds the ownership TXT and the RRsets;
- a name that is ours is changed only while its ownership TXT and every RRset we replace are
  exactly what we read ("RRset exists, value dependent"; "RRset does not exist" for adds);
- a name that is in use by someone else is left alone (a warning, once).

Only the difference is sent; an unchanged pass sends nothing. SOA and NS records, records at
a zone's apex and the in-process server's ``ns.dns`` glue belong to the server, never to the
sink. Each UPDATE's failure (REFUSED, NOTAUTH, a TSIG error, a timeout) is collected; the
others still go out, and the failures are raised together as ``TransientError`` so the next
pass retries. dnspython is blocking: every exchange runs in ``asyncio.to_thread``. Built by
``daemon.make_sinks`` for ``--rfc2136-server``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from reconciler.core import names
from reconciler.core.model import RRset, ZoneContent, ZoneSet
from reconciler.core.ownership import owned_name, ownership_name, ownership_text, parse_ownership
from reconciler.core.plan import Changes
from reconciler.core.zonebuild import CONFIG_OWNER
from reconciler.errors import TransientError
from reconciler.tsig import TsigKey

log = logging.getLogger(__name__)

SERVER_TYPES = frozenset({"SOA", "NS", "DNSKEY", "RRSIG", "NSEC", "NSEC3", "NSEC3PARAM"})
"""Types that belong to the server and are never published or removed."""

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
    """One zone as read from the server: the names we own, and the names someone else
    uses (any data at the name or its ownership name that is not ours)."""

    owned: Names
    foreign: set[str]


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
        self._warned: set[str] = set()

    # --- reading -------------------------------------------------------------------------

    async def current(self) -> ZoneSet:
        """The desired zones last applied, minus every zone whose managed records differ
        from the server's (so the plan sends the difference)."""
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
        dirty: set[str] = set()
        for zone, state in server.items():
            want = wanted.get(zone, {})
            for name in set(want) | set(state.owned):
                if name in state.foreign or want.get(name) == state.owned.get(name):
                    continue
                origin = names.zone_for(name, list(self._desired))
                if origin is None:
                    return {}  # a stale name outside every zone: let apply see everything
                dirty.add(origin)
        return {o: z for o, z in self._desired.items() if o not in dirty}

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
        if changes.is_empty:
            return
        self._desired = changes.applied_to(self._desired)
        wanted = managed(self._desired, self.config.zones)
        errors: list[str] = []
        for target, state in self._server.items():
            want = wanted.get(target, {})
            for name in sorted(set(want) | set(state.owned)):
                new, old = want.get(name, {}), state.owned.get(name)
                if name in state.foreign:
                    self._warn_foreign(target, name)
                    continue
                if old is not None and new == old:
                    continue
                update = self._update(target, name, old, new)
                if update is None:
                    continue
                error = await asyncio.to_thread(self._send, target, name, update)
                if error:
                    errors.append(error)
        if errors:
            raise TransientError("; ".join(errors))

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
        self, zone: str, name: str, old: Mapping[str, RRset] | None, new: Mapping[str, RRset]
    ) -> dns.update.UpdateMessage | None:
        update = dns.update.UpdateMessage(zone, keyring=self._keyring)
        marker = ownership_name(name)
        txt = _rdataset("TXT", 0, [f'"{ownership_text(self.config.instance)}"'])
        if old is None:
            if not new:
                return None
            update.absent(name)
            update.absent(marker)
            update.add(marker, _with_ttl(txt, _ttl(new.values())))
            for rrset in new.values():
                update.add(name, _to_rdataset(rrset))
            return update
        update.present(marker, txt)
        for rdtype in sorted(set(old) | set(new)):
            before, after = old.get(rdtype), new.get(rdtype)
            if before == after:
                continue
            if before is not None:
                update.present(name, _with_ttl(_to_rdataset(before), 0))
                update.delete(name, rdtype)
            else:
                update.absent(name, rdtype)
            if after is not None:
                update.add(name, _to_rdataset(after))
        if not new:
            update.delete(marker, "TXT")
        return update

    def _send(self, zone: str, name: str, update: dns.update.UpdateMessage) -> str | None:
        """Send one UPDATE; None on success, else what went wrong, naming server, zone,
        name and (for TSIG failures) the key."""
        host, port = self.config.server
        where = f"UPDATE of {name} in zone {zone} at {self.config.where}"
        try:
            response = dns.query.tcp(update, host, port=port, timeout=self.config.timeout)
        except Exception as exc:  # dnspython raises many unrelated types here
            return f"{where}: {self._describe(exc)}"
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            log.debug("%s: done", where)
            return None
        text = dns.rcode.to_text(rcode)
        if rcode in (dns.rcode.YXDOMAIN, dns.rcode.YXRRSET, dns.rcode.NXRRSET, dns.rcode.NXDOMAIN):
            return f"{where}: {text}: someone else changed the name; not touched"
        if rcode == dns.rcode.NOTAUTH:
            return (
                f"{where}: NOTAUTH (the server is not authoritative for the zone, "
                f"or key {self._key_name} is not allowed)"
            )
        if rcode == dns.rcode.REFUSED:
            return f"{where}: REFUSED (does the zone's update-policy allow key {self._key_name}?)"
        return f"{where}: {text}"

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
        if isinstance(exc, OSError):
            return exc.strerror or str(exc)
        return f"{type(exc).__name__}: {exc}"


def managed(zones: ZoneSet, targets: Iterable[str]) -> dict[str, Names]:
    """The RRsets of ``zones`` the sink publishes, by target zone and name: everything but
    SOA/NS, the configuration's glue, names outside every target zone and target apexes.
    Rdata texts are normalised through dnspython so they compare with what AXFR returns."""
    targets = tuple(targets)
    result: dict[str, Names] = {}
    for content in zones.values():
        for rrset in content.rrsets:
            if rrset.rdtype in SERVER_TYPES:
                continue
            owners = {
                p.owner
                for text in rrset.rdatas
                for p in content.provenance.get((rrset.name, rrset.rdtype, text), ())
            }
            if owners and owners <= {CONFIG_OWNER}:
                continue
            target = names.zone_for(rrset.name, targets)
            if target is None or rrset.name == target or "*" in rrset.name.split("."):
                continue
            normal = _to_rdataset(rrset)
            texts = tuple(sorted(rd.to_text() for rd in normal))
            by_type = result.setdefault(target, {}).setdefault(rrset.name, {})
            by_type[rrset.rdtype] = RRset(rrset.name, rrset.rdtype, rrset.ttl, texts)
    return result


def _rdataset(rdtype: str, ttl: int, texts: Iterable[str]) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_text_list(dns.rdataclass.IN, rdtype, ttl, list(texts))


def _to_rdataset(rrset: RRset) -> dns.rdataset.Rdataset:
    return _rdataset(rrset.rdtype, rrset.ttl, rrset.rdatas)


def _with_ttl(rdataset: dns.rdataset.Rdataset, ttl: int) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_rdata_list(ttl, list(rdataset))


def _ttl(rrsets: Iterable[RRset]) -> int:
    return min((r.ttl for r in rrsets), default=0)


def _unquote(text: str) -> str:
    """A one-string TXT rdata as its string (ownership texts need no escapes)."""
    return text.strip().strip('"')
