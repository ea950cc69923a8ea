"""Served zones as one file that loads several times faster than their zone files.

A restart serves the zones it served before while the first pass runs (``reconciler.warm``),
and parsing 40,000 records of master-file text is most of that start. ``dump`` writes the
zones' RRsets in wire form (``marshal``, CPython's own format for builtin values); ``load``
gives them back as zones. Each zone carries a stamp the caller chooses (``reconciler.warm``
uses its zone file's size, mtime and inode) so that the caller can tell whether the zone is still
what the file holds; a file in another format or from another Python version loads as
nothing.
"""

from __future__ import annotations

import marshal
import sys
from collections.abc import Mapping

from dnsserver.zone import RRset, Zone, type_key

MAGIC = b"dockzone served zones 1 " + sys.version.encode("ascii", "replace") + b"\n"
"""First line of the file: the format and the exact Python version (marshal's format may
change between versions)."""

Stamp = tuple[int, ...]


def dump(zones: Mapping[str, tuple[Stamp, Zone]]) -> bytes:
    """``zones`` (origin -> (stamp, zone)) as bytes for ``load``."""
    payload = {
        origin: (tuple(stamp), [tuple(rrset) for rrset in zone.rrsets()])
        for origin, (stamp, zone) in zones.items()
    }
    return MAGIC + marshal.dumps(payload)


def load(data: bytes) -> dict[str, tuple[Stamp, Zone]]:
    """The zones ``dump`` wrote, by origin; empty when ``data`` is not such a file (another
    format, another Python version, truncated). Raises nothing for bad data."""
    if not data.startswith(MAGIC):
        return {}
    try:
        payload = marshal.loads(data[len(MAGIC) :])
        zones = {}
        for origin, (stamp, rrsets) in payload.items():
            nodes: dict[str, dict[int, RRset]] = {}
            for name, rdtype, ttl, rdatas in rrsets:
                node = nodes.get(name)
                if node is None:
                    node = nodes[name] = {}
                node[type_key(rdtype, rdatas[0])] = RRset(name, rdtype, ttl, rdatas)
            zones[origin] = (tuple(stamp), Zone(origin, nodes))
    except (ValueError, TypeError, EOFError, KeyError, AttributeError):
        return {}
    return zones
