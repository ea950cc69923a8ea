"""The plan: what must change so that a sink holds the desired zones.

``calculate(current, desired)`` is pure (no I/O, no clock, no logging), like ExternalDNS's
``plan.Calculate``. Per zone and name it sorts RRsets into added, removed and changed:

=================  ===================  ==============================
current            desired              change
=================  ===================  ==============================
zone missing       zone present         zone created, every RRset added
zone present       zone missing         zone deleted, every RRset removed
RRset missing      RRset present        added
RRset present      RRset missing        removed
RRset A            RRset B (A != B)     changed (TTL or data)
RRset A            RRset A              nothing
=================  ===================  ==============================

A changed SOA (hostmaster, timers) is a change of the zone too. An empty plan
(``Changes.is_empty``) means a sink has nothing to write.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from reconciler.core.model import RRset, ZoneContent, ZoneSet
from reconciler.core.rdata import name_key, type_key


@dataclass(frozen=True, slots=True)
class RRsetChange:
    """One RRset added (``old`` None), removed (``new`` None) or changed."""

    name: str
    rdtype: str
    old: RRset | None
    new: RRset | None

    def lines(self) -> list[str]:
        """The change as a reviewer reads it: records that go (``-``) and come (``+``) in
        master-file form, and ``~`` for a TTL change of the records that stay."""
        result = []
        old = self.old.rdatas if self.old else ()
        new = self.new.rdatas if self.new else ()
        kept_old, kept_new = frozenset(old), frozenset(new)  # big aggregates: no O(n^2)
        if self.old is not None:
            ttl = self.old.ttl
            result += [
                f"- {self.name} {ttl} IN {self.rdtype} {t}" for t in old if t not in kept_new
            ]
        if self.new is not None:
            ttl = self.new.ttl
            result += [
                f"+ {self.name} {ttl} IN {self.rdtype} {t}" for t in new if t not in kept_old
            ]
        if self.old and self.new and self.old.ttl != self.new.ttl:
            result.append(f"~ {self.name} IN {self.rdtype} TTL {self.old.ttl} -> {self.new.ttl}")
        return result

    @property
    def action(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed"


@dataclass(frozen=True, slots=True)
class ZoneChanges:
    """What changes in one zone. ``current``/``desired`` are the whole zone before/after
    (None when the zone is created/deleted), for sinks that rewrite whole zones."""

    origin: str
    current: ZoneContent | None
    desired: ZoneContent | None
    rrsets: tuple[RRsetChange, ...]
    soa_changed: bool = False

    @property
    def action(self) -> str:
        if self.current is None:
            return "create"
        if self.desired is None:
            return "delete"
        return "update"

    def count(self, action: str) -> int:
        return sum(1 for change in self.rrsets if change.action == action)


@dataclass(frozen=True, slots=True)
class Changes:
    """Every zone's changes, in canonical zone order. Empty means nothing to write."""

    zones: tuple[ZoneChanges, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.zones

    def applied_to(self, zones: ZoneSet) -> dict[str, ZoneContent]:
        """``zones`` after these changes: for sinks that remember what they were given."""
        result = dict(zones)
        for zone in self.zones:
            if zone.desired is None:
                result.pop(zone.origin, None)
            else:
                result[zone.origin] = zone.desired
        return result


def with_new_serial(changes: Changes, origins: Collection[str], zones: ZoneSet) -> Changes:
    """``changes`` plus an SOA change (a new serial, nothing else) for each of ``origins``
    that ``zones`` holds and ``changes`` does not touch yet: the DNSSEC signatures of those
    zones are refreshed, and secondaries must see a new serial to transfer them."""
    touched = {zone.origin for zone in changes.zones}
    added = [
        ZoneChanges(origin, zones[origin], zones[origin], (), soa_changed=True)
        for origin in origins
        if origin in zones and origin not in touched
    ]
    if not added:
        return changes
    every = sorted([*changes.zones, *added], key=lambda zone: name_key(zone.origin))
    return Changes(tuple(every))


def calculate(current: ZoneSet, desired: ZoneSet) -> Changes:
    """The changes that turn ``current`` into ``desired`` (see the module docstring)."""
    zones = []
    for origin in sorted(set(current) | set(desired), key=name_key):
        before, after = current.get(origin), desired.get(origin)
        if before == after:
            continue
        changes = _rrset_changes(before, after)
        soa_changed = before is not None and after is not None and before.soa != after.soa
        zones.append(ZoneChanges(origin, before, after, changes, soa_changed))
    return Changes(tuple(zones))


def _rrset_changes(
    before: ZoneContent | None, after: ZoneContent | None
) -> tuple[RRsetChange, ...]:
    """Both zones' RRsets are in canonical order: one merge, no sort (a created or deleted
    zone is every RRset in order)."""
    old = before.rrsets if before else ()
    new = after.rrsets if after else ()
    if not old:
        return tuple(RRsetChange(r.name, r.rdtype, None, r) for r in new)
    if not new:
        return tuple(RRsetChange(r.name, r.rdtype, r, None) for r in old)
    result = []
    i = j = 0
    a_key = _key(old[0])
    b_key = _key(new[0])
    while i < len(old) or j < len(new):
        if j == len(new) or (i < len(old) and a_key < b_key):
            a = old[i]
            result.append(RRsetChange(a.name, a.rdtype, a, None))
            i += 1
            a_key = _key(old[i]) if i < len(old) else a_key
        elif i == len(old) or b_key < a_key:
            b = new[j]
            result.append(RRsetChange(b.name, b.rdtype, None, b))
            j += 1
            b_key = _key(new[j]) if j < len(new) else b_key
        else:
            a, b = old[i], new[j]
            if a is not b and a != b:
                result.append(RRsetChange(a.name, a.rdtype, a, b))
            i += 1
            j += 1
            a_key = _key(old[i]) if i < len(old) else a_key
            b_key = _key(new[j]) if j < len(new) else b_key
    return tuple(result)


def _key(rrset: RRset) -> tuple[tuple[str, ...], tuple[int, str]]:
    return (name_key(rrset.name), type_key(rrset.rdtype))
