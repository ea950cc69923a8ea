"""Text made from templates: zone files and the CoreDNS Corefile.

The jinja2 templates live in the repository's ``templates/`` (installed as
``reconciler/templates``). Output is deterministic: the same zone gives the same bytes.
Called by the zone file sink and the CLI.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.core.model import RRset, ZoneContent

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


RowCache = dict[int, tuple[RRset, int, str]]
"""Rendered lines per RRset (by identity, the RRset kept alive with them) and name width."""


def render_zone(zone: ZoneContent, serial: int, cache: RowCache | None = None) -> str:
    """The master file (RFC 1035 section 5) for ``zone`` with SOA serial ``serial``: absolute
    names, one RR per line, SOA first, then RRsets in canonical order.

    ``cache`` (one per zone, kept by the caller) holds each RRset's lines from the last
    render: a zone of 40,000 records where a few RRsets changed is joined, not formatted
    again. It is replaced with the lines of this render's RRsets only."""
    width = max(len(zone.origin), max(map(len, map(_name_of, zone.rrsets)), default=0))
    old = cache if cache is not None else {}
    get = old.get
    new: RowCache = {}
    parts = [_row(zone.origin, width, zone.soa.ttl, "SOA", zone.soa.to_text(serial))]
    for rrset in zone.rrsets:
        known = get(id(rrset))
        if known is not None and known[0] is rrset and known[1] == width:
            new[id(rrset)] = known
            parts.append(known[2])
        else:
            text = "".join(
                _row(rrset.name, width, rrset.ttl, rrset.rdtype, data) for data in rrset.rdatas
            )
            new[id(rrset)] = (rrset, width, text)
            parts.append(text)
    if cache is not None:
        cache.clear()
        cache.update(new)
    return _environment().get_template("zone.j2").render(zone=zone, records="".join(parts))


_name_of = attrgetter("name")


def _row(name: str, width: int, ttl: int, rdtype: str, data: str) -> str:
    return f"{name.ljust(width)} {ttl} IN {rdtype.ljust(5)} {data}\n"


def render_corefile(
    directory: Path,
    zones: list[str],
    *,
    listen: list[tuple[str, int]] | None = None,
    reload: str = "2s",
) -> str:
    """A Corefile serving ``zones`` from the zone files in ``directory`` with CoreDNS's
    ``auto`` plugin, bound to the ``listen`` addresses (all on one port; none, or an empty
    address: CoreDNS's default, every address)."""
    listen = listen or []
    port = listen[0][1] if listen else None
    keys = [f"{zone}:{port}" if port else zone for zone in zones]
    bind = "" if any(not host for host, _ in listen) else " ".join(h for h, _ in listen)
    return (
        _environment()
        .get_template("Corefile.j2")
        .render(zones=keys, directory=str(directory), bind=bind, reload=reload)
    )
