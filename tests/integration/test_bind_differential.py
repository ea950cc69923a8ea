"""The daemon's in-process answers equal BIND's on the zone files the same daemon wrote.

dockzone hands its built zones to the server directly (no zone file parsing), so this is
the check that the two paths agree: every owner name x type, plus misses, compared on
rcode, AA and answer RRsets (ignoring order), and the SOA of negative answers. Wildcard
labels are dockzone-only and not compared; so are A/AAAA at a service whose host is a name
beside its SRV (SkyDNS's CNAME, which a zone file cannot hold): there dockzone must answer
that CNAME where BIND has no data.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import eventually, service
from tests.servers import EXAMPLE_DOMAINS, ROOT, Daemon, NamedServer, free_port, query, summary

TYPES = ["A", "AAAA", "CNAME", "SRV", "TXT", "MX", "NS", "PTR", "SOA"]


def extra_definitions() -> list[dict[str, object]]:
    docs: list[dict[str, object]] = []
    for i in range(12):
        docs.append(
            service(
                f"app-{i}",
                dns_name=f"{i}.app.{['east', 'west'][i % 2]}",
                host=f"10.20.{i % 3}.{i + 1}",
                port=8000 + i % 4,
                weight=50 * (i % 3),
                priority=10 + i % 2,
                ttl=20 + i,
                text=f"app {i}",
            )
        )
    docs += [
        service("v6", dns_name="v6.app", host="fd00::10", aliases=["six.docker."]),
        service("mail", dns_name="mx.app", host="10.30.0.1", mail=True, priority=5),
        service("ext", dns_name="ext", host="web.example.com"),
        service("chain", dns_name="chain", host="ext.docker"),
        service("grouped-a", dns_name="a.grp", host="10.40.0.1", group="g1"),
        service("grouped-b", dns_name="b.sub.grp", host="10.40.0.2", group="g2"),
        service("stripped", dns_name="1.web.tier", host="10.50.0.1", port=443, targetStrip=1),
    ]
    return docs


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    workdir = tmp_path_factory.mktemp("differential")
    definitions = workdir / "definitions"
    shutil.copytree(ROOT / "manifests" / "examples", definitions)
    (definitions / "extra.yaml").write_text(yaml.safe_dump_all(extra_definitions()))
    daemon = Daemon.start(workdir, definitions, *EXAMPLE_DOMAINS)
    try:
        yield daemon
    finally:
        assert daemon.stop() == 0


@pytest.fixture(scope="module")
def bind(rendered: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamedServer]:
    server = NamedServer.start(tmp_path_factory.mktemp("named"), rendered.zones, free_port())
    try:
        for path in sorted(rendered.zones.glob("db.*")):
            eventually(lambda origin=path.name[3:] + ".": server.answers_soa(origin), timeout=15)
        yield server
    finally:
        server.stop()


def corpus(zones: Path) -> list[tuple[str, str]]:
    names: set[str] = set()
    for path in zones.glob("db.*"):
        origin = path.name[3:] + "."
        owners = {
            line.split()[0]
            for line in path.read_text().splitlines()
            if line and line[0] not in ";$"
        }
        names |= owners | {"nope." + origin, "x.nope." + origin}
        names |= {"missing." + owner for owner in sorted(owners)[:3]}
    return [(name, rdtype) for name in sorted(names) for rdtype in TYPES]


def service_targets(zones: Path) -> dict[str, set[str]]:
    """SRV and MX targets by owner name, from the zone files."""
    found: dict[str, set[str]] = {}
    for path in zones.glob("db.*"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) > 4 and parts[3] in ("SRV", "MX"):
                found.setdefault(parts[0], set()).add(parts[-1])
    return found


def test_in_process_answers_equal_bind_on_the_rendered_files(
    rendered: Daemon, bind: NamedServer
) -> None:
    cases = corpus(rendered.zones)
    assert len(cases) > 300
    targets = service_targets(rendered.zones)
    differences = []
    skydns_cnames = []
    for qname, rdtype in cases:
        response = query("127.0.0.1", rendered.port, qname, rdtype, tcp=True)
        ours = summary(response)
        theirs = summary(query("127.0.0.1", bind.port, qname, rdtype, tcp=True))
        if ours == theirs:
            continue
        first = response.answer[0] if response.answer else None
        if (
            rdtype in ("A", "AAAA")
            and first is not None
            and first.rdtype == 5  # CNAME
            and first.name.to_text() == qname
            and first[0].target.to_text() in targets.get(qname, ())
            and theirs[0] == "NOERROR"
            and not theirs[2]
        ):
            skydns_cnames.append(f"{qname} {rdtype}")
            continue
        differences.append(f"{qname} {rdtype}:\n  dockzone {ours}\n  bind     {theirs}")
    assert not differences, f"{len(differences)} of {len(cases)} differ:\n" + "\n".join(
        differences[:20]
    )
    assert "1.rails.production.east.skydns.local. A" in skydns_cnames
