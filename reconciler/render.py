"""Text made from templates: zone files and the CoreDNS Corefile.

The jinja2 templates live in the repository's ``templates/`` (installed as
``reconciler/templates``). Output is deterministic: the same zone gives the same bytes.
Called by the zone file sink and the CLI.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.core.model import ZoneContent

ZONE_HEADER = "; dockzone zone file for "
"""First line of every zone file dockzone writes; files without it are not dockzone's."""


if TYPE_CHECKING:
    import jinja2


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # noqa: PLC0415 - only when a template is rendered: keeps `run` fast to start

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(importlib.resources.files("reconciler.templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_zone(zone: ZoneContent, serial: int) -> str:
    """The master file (RFC 1035 section 5) for ``zone`` with SOA serial ``serial``: absolute
    names, one RR per line, SOA first, then RRsets in canonical order."""
    rows = [(zone.origin, zone.soa.ttl, "SOA", zone.soa.to_text(serial))]
    for rrset in zone.rrsets:
        rows.extend((rrset.name, rrset.ttl, rrset.rdtype, text) for text in rrset.rdatas)
    width = max(len(row[0]) for row in rows)
    return _environment().get_template("zone.j2").render(zone=zone, rows=rows, width=width)


def render_corefile(
    directory: Path,
    zones: list[str],
    *,
    listen: list[tuple[str, int]] | None = None,
    reload: str = "2s",
) -> str:
    """A Corefile serving ``zones`` from the zone files in ``directory`` with CoreDNS's
    ``auto`` plugin, bound to the ``listen`` addresses (all on one port; none: CoreDNS's
    default, every address on port 53)."""
    listen = listen or []
    port = listen[0][1] if listen else None
    keys = [f"{zone}:{port}" if port else zone for zone in zones]
    return (
        _environment()
        .get_template("Corefile.j2")
        .render(
            zones=keys, directory=str(directory), bind=" ".join(h for h, _ in listen), reload=reload
        )
    )
