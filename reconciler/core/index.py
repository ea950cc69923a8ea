"""The incremental index: records in, zones out, and a pass costs what changed.

``RecordIndex`` holds every record by group (what sources report), the claims each record
makes (``zonebuild.contributions``), the claims at every name, and what each name resolved
to. ``update(groups)`` diffs the records of the changed groups and marks dirty only the
names their claims touch: a record's own name, the ancestors its aggregation feeds, its
reverse name, its aliases. ``commit()`` re-resolves the dirty names (conflicts there
included) and returns the plan: the RRsets that changed, per zone, with each changed zone
before and after. A commit with nothing dirty returns an empty plan.

When the set of zones changes (a record in a new zone, an address in a new reverse zone,
the last record of one gone), which zone a name belongs to may change for many names, so
the index re-derives every claim and compares whole zones: rare, and still correct.

``build(records, settings)`` is a fresh index over ``records``: the full recompute, used by
the CLI and as the oracle the periodic resync compares the incremental state with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.core import names, plan
from reconciler.core.model import (
    Conflict,
    Provenance,
    Record,
    RRKey,
    RRset,
    Soa,
    ZoneContent,
    ZoneSettings,
)
from reconciler.core.rdata import name_key, type_key
from reconciler.core.zonebuild import (
    Claim,
    Contribution,
    Resolved,
    contributions,
    nameserver_name,
    record_zones,
    resolve_name,
    zone_frame,
)


@dataclass(frozen=True, slots=True)
class BuildResult:
    """The zones built from a set of records, and the claims that had to be left out."""

    zones: dict[str, ZoneContent]
    conflicts: tuple[Conflict, ...]


def build(records: Iterable[Record], settings: ZoneSettings) -> BuildResult:
    """Every zone ``records`` and ``settings`` call for, from scratch."""
    index = RecordIndex(settings)
    index.update({"": tuple(records)}, complete=True)
    index.commit()
    return BuildResult(dict(index.zones), index.conflicts)


_EMPTY = Resolved((), {}, ())


class RecordIndex:
    """Records by group, claims by name, zones by origin; see the module docstring."""

    def __init__(self, settings: ZoneSettings) -> None:
        self.settings = settings
        self.zones: dict[str, ZoneContent] = {}
        """The zones as of the last ``commit``."""
        self._groups: dict[str, tuple[Record, ...]] = {}
        self._counts: dict[Record, int] = {}
        self._made: dict[Record, Contribution] = {}
        self._zone_refs: dict[str, int] = {}
        self._zones: tuple[str, ...] = ()
        self._reserved: frozenset[str] = frozenset()
        self._frames: dict[str, Resolved] = {}
        self._claims: dict[str, dict[Claim, int]] = {}
        self._resolved: dict[str, Resolved] = {}
        self._dirty: set[str] = set()
        self._rebuild = False
        self._conflicts: tuple[Conflict, ...] | None = ()

    # -- input -------------------------------------------------------------------------

    @property
    def records(self) -> Iterable[Record]:
        """Every record held (each once)."""
        return self._counts.keys()

    def groups(self) -> Mapping[str, tuple[Record, ...]]:
        return self._groups

    def update(self, groups: Mapping[str, tuple[Record, ...]], complete: bool = False) -> None:
        """Take the records of ``groups`` (an empty tuple: the group is gone). With
        ``complete``, ``groups`` is everything and any group not in it is gone."""
        added: list[Record] = []
        removed: list[Record] = []
        held = self._groups
        if complete:
            for key in [key for key in held if key not in groups]:
                removed.extend(held.pop(key))
        for key, records in groups.items():
            before = held.get(key, ())
            if before is records or before == records:
                continue
            if records:
                held[key] = records
            else:
                held.pop(key, None)
            if before:
                old = set(before)
                new = set(records)
                removed.extend(r for r in before if r not in new)
                added.extend(r for r in records if r not in old)
            else:
                added.extend(records)
        for record in removed:
            self._forget(record)
        for record in added:
            self._add(record)

    def _add(self, record: Record) -> None:
        count = self._counts.get(record, 0)
        self._counts[record] = count + 1
        if count:
            return
        for zone in record_zones(record, self.settings):
            refs = self._zone_refs.get(zone, 0)
            self._zone_refs[zone] = refs + 1
            if not refs and zone not in self._zones:
                self._rebuild = True
        if not self._rebuild:
            self._contribute(record)

    def _forget(self, record: Record) -> None:
        count = self._counts.get(record, 0)
        if count > 1:
            self._counts[record] = count - 1
            return
        if not count:
            return
        del self._counts[record]
        for zone in record_zones(record, self.settings):
            refs = self._zone_refs.get(zone, 0) - 1
            if refs > 0:
                self._zone_refs[zone] = refs
            else:
                self._zone_refs.pop(zone, None)
                if zone not in self.settings.domains:
                    self._rebuild = True
        made = self._made.pop(record, None)
        if made is None:
            return
        if made.conflicts:
            self._conflicts = None
        for name, claim in made.claims:
            at = self._claims[name]
            left = at[claim] - 1
            if left:
                at[claim] = left
            else:
                del at[claim]
                if not at:
                    del self._claims[name]
            self._dirty.add(name)

    def _contribute(self, record: Record) -> None:
        made = contributions(record, self._zones, self.settings)
        self._made[record] = made
        if made.conflicts:
            self._conflicts = None
        for name, claim in made.claims:
            at = self._claims.get(name)
            if at is None:
                at = self._claims[name] = {}
            at[claim] = at.get(claim, 0) + 1
            self._dirty.add(name)

    # -- output ------------------------------------------------------------------------

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        """Every claim left out as of the last commit, by name then dropped owner."""
        if self._conflicts is None:
            found = {c for made in self._made.values() for c in made.conflicts}
            found.update(c for resolved in self._resolved.values() for c in resolved.conflicts)
            self._conflicts = tuple(sorted(found, key=lambda c: (name_key(c.name), c.dropped)))
        return self._conflicts

    @property
    def dirty(self) -> bool:
        """True when a commit would re-resolve anything."""
        return bool(self._dirty) or self._rebuild

    def commit(self) -> plan.Changes:
        """Re-resolve the dirty names; the RRset changes since the last commit."""
        if self._rebuild or not self._zones:
            return self._commit_all()
        per_zone: dict[str, dict[tuple[str, str], RRset | None]] = {}
        touched: dict[str, list[tuple[str, Resolved, Resolved]]] = {}
        for name in self._dirty:
            before = self._resolved.get(name, _EMPTY)
            after = self._resolve(name)
            if after.conflicts or before.conflicts:
                self._conflicts = None
            if after is _EMPTY:
                self._resolved.pop(name, None)
            else:
                self._resolved[name] = after
            if before.rrsets == after.rrsets and before.provenance == after.provenance:
                continue
            zone = names.zone_for(name, self._zones)
            if zone is None:
                continue
            touched.setdefault(zone, []).append((name, before, after))
            if before.rrsets == after.rrsets:
                continue
            old = {rrset.rdtype: rrset for rrset in before.rrsets}
            changes = per_zone.setdefault(zone, {})
            for rrset in after.rrsets:
                if old.pop(rrset.rdtype, None) != rrset:
                    changes[(name, rrset.rdtype)] = rrset
            for rdtype in old:
                changes[(name, rdtype)] = None
        self._dirty.clear()
        zones = []
        for origin in sorted(touched, key=name_key):
            current = self.zones[origin]
            provenance = dict(current.provenance)
            for _name, before, after in touched[origin]:
                for key in before.provenance:
                    provenance.pop(key, None)
                provenance.update(after.provenance)
            changes = per_zone.get(origin, {})
            desired = current.updated(changes, provenance)
            self.zones[origin] = desired
            if changes:
                zones.append(_zone_changes(current, desired, changes))
        return plan.Changes(tuple(zones))

    def _resolve(self, name: str) -> Resolved:
        claims = self._claims.get(name)
        frame = self._frames.get(name)
        if not claims and frame is None:
            return _EMPTY
        zone = names.zone_for(name, self._zones)
        return resolve_name(name, zone, claims or (), name in self._reserved, frame)

    def _commit_all(self) -> plan.Changes:
        """Re-derive everything: the zone set changed (or this is the first commit)."""
        settings = self.settings
        zones = set(settings.domains) | set(self._zone_refs)
        self._zones = tuple(sorted(zones, key=name_key))
        self._reserved = frozenset(
            nameserver_name(zone, settings) for zone in zones if not zone.endswith(".arpa.")
        )
        self._frames = {}
        soas = {}
        for zone in self._zones:
            soas[zone], frame = zone_frame(zone, settings)
            self._frames.update(frame)
        self._claims = {}
        self._made = {}
        for record in self._counts:
            self._contribute(record)
        self._resolved = {}
        by_zone: dict[str, list[Resolved]] = {zone: [] for zone in self._zones}
        for name in set(self._claims) | set(self._frames):
            resolved = self._resolve(name)
            if resolved is _EMPTY:
                continue
            self._resolved[name] = resolved
            home = names.zone_for(name, self._zones)
            if home is not None:
                by_zone[home].append(resolved)
        self._dirty.clear()
        self._rebuild = False
        self._conflicts = None
        before = self.zones
        self.zones = {zone: _zone(zone, soas[zone], by_zone[zone]) for zone in self._zones}
        return plan.calculate(before, self.zones)


def _zone(origin: str, soa: Soa, resolved: list[Resolved]) -> ZoneContent:
    rrsets: list[RRset] = []
    provenance: dict[RRKey, tuple[Provenance, ...]] = {}
    for item in resolved:
        rrsets.extend(item.rrsets)
        provenance.update(item.provenance)
    rrsets.sort(key=lambda r: (name_key(r.name), type_key(r.rdtype)))
    return ZoneContent(origin, soa, tuple(rrsets), provenance)


def _zone_changes(
    current: ZoneContent, desired: ZoneContent, changes: Mapping[tuple[str, str], RRset | None]
) -> plan.ZoneChanges:
    rrsets = []
    for name, rdtype in sorted(changes, key=lambda key: (name_key(key[0]), type_key(key[1]))):
        new = changes[(name, rdtype)]
        old = current.rrset(name, rdtype)
        if old != new:
            rrsets.append(plan.RRsetChange(name, rdtype, old, new))
    return plan.ZoneChanges(current.origin, current, desired, tuple(rrsets))
