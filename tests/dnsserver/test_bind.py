"""Differential test: dockzone answers exactly like BIND 9 on the same zone files.

For every (owner name or empty non-terminal) x type, plus misses, compare rcode, AA and
the answer RRsets (ignoring order, with TTLs), and the SOA in negative answers. Over TCP,
so BIND's max-udp-size (1232) and ours do not differ on truncation. Wildcard-label
queries are dockzone-only semantics and are not compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dnsserver import ZoneDirectory, ZoneStore
from tests.dnsserver.conftest import COMPARED_ZONES, start_service
from tests.servers import NamedServer, query, summary

TYPES = ["A", "AAAA", "CNAME", "SRV", "TXT", "MX", "NS", "PTR", "SOA", "ANY"]


def _corpus(zone_files: Path) -> list[tuple[str, str]]:
    store = ZoneStore()
    ZoneDirectory(zone_files, store).rescan()
    names: set[str] = set()
    for zone in store.snapshot():
        names |= zone.names | zone.nonterminals
        names |= {"nope." + zone.origin, "x.y.nope." + zone.origin}
        names |= {"nope." + name for name in list(zone.names)[:5]}
    return [(name, rdtype) for name in sorted(names) for rdtype in TYPES]


def test_dockzone_answers_like_bind(named: NamedServer, compared_zone_files: Path) -> None:
    store = ZoneStore()
    ZoneDirectory(compared_zone_files, store).rescan()
    service = start_service(store)
    try:
        port = service.addresses[0][1]
        corpus = _corpus(compared_zone_files)
        assert len(corpus) > 300
        differences = []
        for qname, rdtype in corpus:
            ours = summary(query("127.0.0.1", port, qname, rdtype, tcp=True))
            theirs = summary(query("127.0.0.1", named.port, qname, rdtype, tcp=True))
            if ours != theirs:
                differences.append(f"{qname} {rdtype}:\n  dockzone {ours}\n  bind     {theirs}")
        assert not differences, f"{len(differences)} of {len(corpus)} differ:\n" + "\n".join(
            differences[:20]
        )
    finally:
        service.stop()


@pytest.mark.parametrize("origin", sorted(COMPARED_ZONES))
def test_bind_loaded_the_zone(named: NamedServer, origin: str) -> None:
    named.answers_soa(origin)
