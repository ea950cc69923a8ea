"""What ``dockzone explain NAME`` shows: the records at a name, the owner and field each
came from, and the conflicts settled there. Pure: ``offline.cmd_explain`` calls it on the
zones it built from the definitions, the status page on the zones the daemon serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.core import names
from reconciler.core.model import Conflict, Provenance, ZoneSet


@dataclass(frozen=True, slots=True)
class Line:
    """One RR at the name, in master-file form, and why it exists."""

    text: str
    provenance: tuple[Provenance, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    name: str
    """The name asked about, absolute."""
    zone: str | None
    """The zone that holds it (None: outside every zone)."""
    lines: tuple[Line, ...]
    conflicts: tuple[Conflict, ...]

    def to_text(self, rdtype: str = "") -> list[str]:
        """The lines ``dockzone explain`` prints."""
        result: list[str] = []
        for line in self.lines:
            result.append(line.text)
            result.extend(f"    from {provenance}" for provenance in line.provenance)
        result.extend(f"conflict: {conflict}" for conflict in self.conflicts)
        if not self.lines:
            where = f" in zone {self.zone}" if self.zone else " (outside every zone)"
            result.append(f"no {rdtype + ' ' if rdtype else ''}records at {self.name}{where}")
        return result


def resolve_name(text: str, origin: str, zones: Sequence[str]) -> str:
    """``text`` as an absolute name: as given when it ends with a dot or falls inside one of
    ``zones``, else relative to ``origin`` (``<environment>.<domain>``)."""
    if text.endswith(".") or names.zone_for(names.fqdn(text), list(zones)):
        return names.fqdn(text)
    return names.absolute(text, origin)


def explain(
    zones: ZoneSet, conflicts: Sequence[Conflict], name: str, rdtype: str = ""
) -> Explanation:
    """The records at the absolute ``name`` (only ``rdtype`` when given), with provenance."""
    rdtype = rdtype.upper()
    found = names.zone_for(name, list(zones))
    lines: list[Line] = []
    if found is not None:
        zone = zones[found]
        for rrset in zone.rrsets_at([name]).get(name, []):
            if rdtype and rrset.rdtype != rdtype:
                continue
            for text in rrset.rdatas:
                lines.append(
                    Line(
                        f"{rrset.name} {rrset.ttl} IN {rrset.rdtype} {text}",
                        tuple(zone.provenance.get((rrset.name, rrset.rdtype, text), ())),
                    )
                )
    return Explanation(name, found, tuple(lines), tuple(c for c in conflicts if c.name == name))
