"""The incremental index: records in, zones out, and a pass costs what changed.

``RecordIndex`` holds every record by group (what sources report), the claims each record
makes (``zonebuild.contributions``), the claims at every name, and what each name resolved
to. ``update(groups)`` diffs the records of the changed groups and marks dirty only the
names their claims touch: a record's own name, the ancestors its aggregation feeds, its
reverse name, its aliases. ``commit()`` re-resolves the dirty names (conflicts there
included) and returns the plan: the RRsets that changed, per zone, with each changed zone
before and after. A commit with nothing dirty returns an empty plan.

When the set of zones changes (a record in a new zone, an address in a new reverse zone,
the last record of one gone), only names inside that zone change zone, as long as no other
zone lies above or below it (the usual case: the first container of a new network makes a
reverse zone): those names are re-resolved, the records named there claim again, and the
plan creates or deletes the zone. When zones nest, which zone a name belongs to may change
for many names, so the index re-derives every claim and compares whole zones: rare, and
still correct.

``build(records, settings)`` is a fresh index over ``records``: the full recompute, used by
the CLI and as the oracle the periodic resync compares the incremental state with.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from reconciler.core import names, plan
from reconciler.core.model import (
    Conflict,
    Provenance,
    ProvenanceMap,
    Record,
    RRKey,
    RRset,
    ZoneContent,
    ZoneSettings,
)
from reconciler.core.rdata import name_key, rdata_key, type_key
from reconciler.core.zonebuild import (
    EXCLUSIVE,
    Claim,
    Contribution,
    Resolved,
    contributions,
    nameserver_name,
    record_zones,
    resolve_name,
    rrsets_of,
    sorted_provenance,
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

AGGREGATE_MIN = 64
"""Names with at least this many claims keep an ``_Aggregate`` (when eligible) so that one
claim more or less costs its own text, not the whole RRset again."""


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
        self._zone_set: frozenset[str] = frozenset()
        self._reserved: frozenset[str] = frozenset()
        self._frames: dict[str, Resolved] = {}
        self._claims: dict[str, dict[Claim, int]] = {}
        self._resolved: dict[str, Resolved] = {}
        self._aggregates: dict[str, _Aggregate] = {}
        self._by_name: dict[str, dict[str, Mapping[RRKey, tuple[Provenance, ...]]]] = {}
        self._dirty: dict[str, dict[Claim, int]] = {}
        """Dirty names, with the net change of their claims since the last commit."""
        self._zones_moved = False
        """A zone may have appeared or gone since the last commit."""
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
            if not refs and zone not in self._zone_set:
                self._zones_moved = True
        if self._zones:  # before the first commit, that commit contributes every record
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
                if zone not in self.settings.fixed_zones:
                    self._zones_moved = True
        self._withdraw(record)

    def _withdraw(self, record: Record) -> None:
        """Take back the claims ``record`` made."""
        made = self._made.pop(record, None)
        if made is None:
            return
        if made.conflicts:
            self._conflicts = None
        dirty = self._dirty
        for name, claim in made.claims:
            at = self._claims[name]
            left = at[claim] - 1
            if left:
                at[claim] = left
            else:
                del at[claim]
                if not at:
                    del self._claims[name]
            delta = dirty.get(name)
            if delta is None:
                delta = dirty[name] = {}
            delta[claim] = delta.get(claim, 0) - 1

    def _contribute(self, record: Record) -> None:
        made = contributions(record, self._zone_set, self.settings)
        self._made[record] = made
        if made.conflicts:
            self._conflicts = None
        dirty = self._dirty
        for name, claim in made.claims:
            at = self._claims.get(name)
            if at is None:
                at = self._claims[name] = {}
            at[claim] = at.get(claim, 0) + 1
            delta = dirty.get(name)
            if delta is None:
                delta = dirty[name] = {}
            delta[claim] = delta.get(claim, 0) + 1

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
        return bool(self._dirty) or self._zones_moved

    def commit(self) -> plan.Changes:
        """Re-resolve the dirty names; the RRset changes since the last commit."""
        if not self._zones:
            return self._commit_all()
        created: set[str] = set()
        deleted: list[plan.ZoneChanges] = []
        if self._zones_moved:
            self._zones_moved = False
            serving = set(self.settings.fixed_zones) | set(self._zone_refs)
            added, gone = serving - self._zone_set, self._zone_set - serving
            if added or gone:
                if not all(_isolated(zone, serving | self._zone_set) for zone in added | gone):
                    return self._commit_all()
                created, deleted = self._move_zones(serving, added, gone)
        per_zone: dict[str, dict[tuple[str, str], RRset | None]] = {}
        touched: dict[str, dict[str, Resolved]] = {}
        for name, delta in self._dirty.items():
            before = self._resolved.get(name, _EMPTY)
            after = self._resolve(name, delta)
            if after.conflicts or before.conflicts:
                self._conflicts = None
            if after is _EMPTY:
                self._resolved.pop(name, None)
            else:
                self._resolved[name] = after
            if before.rrsets == after.rrsets and before.provenance == after.provenance:
                continue
            zone = names.zone_for(name, self._zone_set)
            if zone is None:
                continue
            touched.setdefault(zone, {})[name] = after
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
            by_name = dict(self._by_name[origin])
            for name, resolved in touched[origin].items():
                if resolved.provenance:
                    by_name[name] = resolved.provenance
                else:
                    by_name.pop(name, None)
            self._by_name[origin] = by_name
            changes = per_zone.get(origin, {})
            desired = current.updated(changes, ProvenanceMap(by_name))
            self.zones[origin] = desired
            if origin in created:  # every RRset is new: the plan creates the zone
                found = _zone_changes(current, desired, changes)
                zones.append(plan.ZoneChanges(origin, None, desired, found.rrsets))
            elif changes:
                zones.append(_zone_changes(current, desired, changes))
        if deleted:
            zones = sorted(zones + deleted, key=lambda zone: name_key(zone.origin))
        return plan.Changes(tuple(zones))

    def _move_zones(
        self, zones: set[str], added: set[str], gone: AbstractSet[str]
    ) -> tuple[set[str], list[plan.ZoneChanges]]:
        """Serve ``zones`` now: ``added`` appear, ``gone`` go, none of them above or below
        another zone (``_isolated``), so only names inside them change zone. Records named
        inside them claim again (their aggregation ends at the new apex, an alias there is
        now in a zone), every name inside them is dirty. The created zones start empty; the
        plan of each zone gone removes all it held."""
        moved = added | gone
        self._zones = tuple(sorted(zones, key=name_key))
        self._zone_set = frozenset(zones)
        self._reserved = frozenset(
            nameserver_name(zone, self.settings) for zone in zones if not zone.endswith(".arpa.")
        )
        self._conflicts = None
        for record in [r for r in self._made if _names_within(r, moved)]:
            self._withdraw(record)
            self._contribute(record)
        dirty = self._dirty
        for name in self._claims:
            if _within(name, moved):
                dirty.setdefault(name, {})
        for name in [name for name in self._aggregates if _within(name, moved)]:
            del self._aggregates[name]
        for zone in gone:
            for name in zone_frame(zone, self.settings)[1]:
                self._frames.pop(name, None)
                dirty.setdefault(name, {})
        for zone in added:
            soa, frame = zone_frame(zone, self.settings)
            self._frames.update(frame)
            for name in frame:
                dirty.setdefault(name, {})
            self.zones[zone] = ZoneContent(zone, soa, (), ProvenanceMap({}))
            self._by_name[zone] = {}
        deleted = []
        for zone in sorted(gone, key=name_key):
            current = self.zones.pop(zone)
            self._by_name.pop(zone, None)
            removed = tuple(plan.RRsetChange(r.name, r.rdtype, r, None) for r in current.rrsets)
            deleted.append(plan.ZoneChanges(zone, current, None, removed))
        return added, deleted

    def _resolve(self, name: str, delta: Mapping[Claim, int] | None = None) -> Resolved:
        claims = self._claims.get(name)
        frame = self._frames.get(name)
        if not claims and frame is None:
            self._aggregates.pop(name, None)
            return _EMPTY
        aggregate = self._aggregates.get(name)
        if aggregate is not None:
            if delta is not None and all(_Aggregate.takes(claim) for claim in delta):
                return aggregate.apply(delta)
            del self._aggregates[name]
        zone = names.zone_for(name, self._zone_set)
        if (
            claims
            and len(claims) >= AGGREGATE_MIN
            and zone is not None
            and frame is None
            and name not in self._reserved
            and all(_Aggregate.takes(claim) for claim in claims)
        ):
            aggregate = self._aggregates[name] = _Aggregate(name, claims)
            return aggregate.resolved()
        return resolve_name(name, zone, claims or (), name in self._reserved, frame)

    def _commit_all(self) -> plan.Changes:
        """Re-derive everything: the zone set changed (or this is the first commit)."""
        settings = self.settings
        zones = set(settings.fixed_zones) | set(self._zone_refs)
        self._zones = tuple(sorted(zones, key=name_key))
        self._zone_set = frozenset(zones)
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
        self._aggregates = {}
        for record in self._counts:
            self._contribute(record)
        self._resolved = {}
        by_zone: dict[str, list[tuple[str, Resolved]]] = {zone: [] for zone in self._zones}
        for name in set(self._claims) | set(self._frames):
            resolved = self._resolve(name)
            if resolved is _EMPTY:
                continue
            self._resolved[name] = resolved
            home = names.zone_for(name, self._zone_set)
            if home is not None:
                by_zone[home].append((name, resolved))
        self._dirty.clear()
        self._zones_moved = False
        self._conflicts = None
        before = self.zones
        self.zones = {}
        self._by_name = {}
        for zone in self._zones:
            by_name = self._by_name[zone] = {}
            rrsets: list[RRset] = []
            # Canonical order: names sorted once, each name's RRsets already in type order.
            for name, resolved in sorted(by_zone[zone], key=lambda item: name_key(item[0])):
                rrsets.extend(resolved.rrsets)
                if resolved.provenance:
                    by_name[name] = resolved.provenance
            self.zones[zone] = ZoneContent(zone, soas[zone], tuple(rrsets), ProvenanceMap(by_name))
        return plan.calculate(before, self.zones)


def _within(name: str, zones: set[str]) -> bool:
    """``name`` lies in (or at the apex of) one of ``zones``."""
    for zone in zones:
        if zone == "." or (
            name.endswith(zone) and (len(name) == len(zone) or name[-len(zone) - 1] == ".")
        ):
            return True
    return False


def _names_within(record: Record, zones: set[str]) -> bool:
    """A name of ``record`` itself (not a claim it derives) lies in one of ``zones``."""
    if _within(record.name, zones):
        return True
    return any(_within(alias, zones) for alias in getattr(record, "aliases", ()))


def _isolated(zone: str, zones: set[str]) -> bool:
    """No other of ``zones`` lies above or below ``zone``: when it comes or goes, only the
    names inside it change zone."""
    return not any(
        other != zone and (names.is_subdomain(other, zone) or names.is_subdomain(zone, other))
        for other in zones
    )


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


class _Texts:
    """One type's RRs at an aggregated name: each text with the provenances claiming it,
    the TTLs claimed (the RRset takes the lowest), and the texts in canonical order."""

    __slots__ = ("dirty", "order", "texts", "ttls")

    def __init__(self) -> None:
        self.texts: dict[str, dict[Provenance, int]] = {}
        self.ttls: dict[int, int] = {}
        self.order: list[tuple[tuple[int, str], str]] = []
        self.dirty: set[str] = set()

    def count(self, claim: Claim, n: int) -> None:
        text = claim.text
        at = self.texts.get(text)
        if at is None:
            at = self.texts[text] = {}
            insort(self.order, (rdata_key(claim.rdtype, text), text))
        left = at.get(claim.provenance, 0) + n
        if left > 0:
            at[claim.provenance] = left
        else:
            at.pop(claim.provenance, None)
            if not at:
                del self.texts[text]
                key = (rdata_key(claim.rdtype, text), text)
                del self.order[bisect_left(self.order, key)]
        ttls = self.ttls.get(claim.ttl, 0) + n
        if ttls > 0:
            self.ttls[claim.ttl] = ttls
        else:
            self.ttls.pop(claim.ttl, None)
        self.dirty.add(text)


class _Aggregate:
    """Incremental resolution of a name where no claim is exclusive and none has a group
    (so neither rule 1 nor rule 2 applies), typically an aggregated name such as
    ``east.skydns.local.`` above thousands of services: each type's RRset is the union of
    its claims, and a claim more or less changes only its own text. SRV is recomputed
    whole when an SRV claim changes (rule 3 normalises weights over the whole set)."""

    __slots__ = ("name", "provenance", "rrsets", "srv", "types")

    def __init__(self, name: str, claims: Mapping[Claim, int]) -> None:
        self.name = name
        self.types: dict[str, _Texts] = {}
        self.srv: dict[Claim, int] = {}
        self.rrsets: dict[str, RRset] = {}
        self.provenance: dict[RRKey, tuple[Provenance, ...]] = {}
        self.apply(claims)

    @staticmethod
    def takes(claim: Claim) -> bool:
        return claim.kind != EXCLUSIVE and not claim.group

    def apply(self, delta: Mapping[Claim, int]) -> Resolved:
        changed: set[str] = set()
        for claim, n in delta.items():
            if not n:
                continue
            changed.add(claim.rdtype)
            if claim.rdtype == "SRV":
                left = self.srv.get(claim, 0) + n
                if left > 0:
                    self.srv[claim] = left
                else:
                    self.srv.pop(claim, None)
                continue
            texts = self.types.get(claim.rdtype)
            if texts is None:
                texts = self.types[claim.rdtype] = _Texts()
            texts.count(claim, n)
        for rdtype in changed:
            self._refresh(rdtype)
        return self.resolved()

    def _refresh(self, rdtype: str) -> None:
        name, provenance = self.name, self.provenance
        if rdtype == "SRV":
            old = self.rrsets.pop("SRV", None)
            for text in old.rdatas if old else ():
                provenance.pop((name, "SRV", text), None)
            for rrset, sources in rrsets_of(name, list(self.srv)):
                self.rrsets["SRV"] = rrset
                provenance.update(sources)
            return
        texts = self.types[rdtype]
        for text in texts.dirty:
            at = texts.texts.get(text)
            if at:
                provenance[(name, rdtype, text)] = sorted_provenance(at)
            else:
                provenance.pop((name, rdtype, text), None)
        texts.dirty.clear()
        if texts.texts:
            rdatas = tuple(text for _, text in texts.order)
            self.rrsets[rdtype] = RRset(name, rdtype, min(texts.ttls), rdatas)
        else:
            del self.types[rdtype]
            self.rrsets.pop(rdtype, None)

    def resolved(self) -> Resolved:
        rrsets = tuple(sorted(self.rrsets.values(), key=lambda r: type_key(r.rdtype)))
        return Resolved(rrsets, dict(self.provenance), ())
