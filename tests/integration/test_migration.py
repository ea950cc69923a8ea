"""Coming from dnsdock, SkyDNS, docker_ddns: a user's old command line, containers and
queries work against ``dockzone run``, with a real BIND as the upstream nameserver."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest
import yaml

from dnsserver import DNSService, ZoneStore
from reconciler import daemon
from reconciler.config import resolve
from reconciler.sources import Snapshot
from tests.helpers import assert_zone_files_valid, eventually, service
from tests.servers import EXAMPLE_DOMAINS, Daemon, NamedServer, dig, dig_answers, free_port, query

LAN_ZONE = """\
$ORIGIN lan.test.
$TTL 300
@ IN SOA ns hostmaster 1 3600 600 86400 300
@ IN NS ns
ns IN A 127.0.0.1
printer IN A 127.0.0.80
service1 IN CNAME www
www IN A 127.0.0.81
"""


REVERSE_ZONE = """\
$TTL 300
@ IN SOA ns.lan.test. hostmaster.lan.test. 1 3600 600 86400 300
@ IN NS ns.lan.test.
{last} IN PTR {host}.lan.test.
"""
REVERSE = {"1.0.10.in-addr.arpa": ("126", "lan-host"), "2.0.10.in-addr.arpa": ("6", "shadowed")}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NamedServer]:
    """A real BIND on loopback standing in for the LAN's nameserver: lan.test, and the
    reverse zones of two LAN networks."""
    workdir = tmp_path_factory.mktemp("upstream")
    zones = workdir / "zones"
    zones.mkdir()
    (zones / "db.lan.test").write_text(LAN_ZONE)
    for origin, (last, host) in REVERSE.items():
        (zones / f"db.{origin}").write_text(REVERSE_ZONE.format(last=last, host=host))
    server = NamedServer.start(workdir, zones, free_port())
    try:
        for origin in ["lan.test", *REVERSE]:
            eventually(lambda origin=origin: server.answers_soa(origin + "."), timeout=15)
        yield server
    finally:
        server.stop()


def _put(http: str, path: str, body: object) -> int:
    request = urllib.request.Request(
        f"http://{http}{path}", data=json.dumps(body).encode(), method="PUT"
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return int(response.status)


def test_a_dnsdock_command_line_runs_unchanged(tmp_path: Path, upstream: NamedServer) -> None:
    """dnsdock's Go-style flags, as its README and Dockerfile write them, and no command:
    answers with dnsdock's TTL and environment, its API, and forwarding to -nameserver."""
    port, http = free_port(), f"127.0.0.1:{free_port()}"
    command = [
        f"-dns=127.0.0.1:{port}",
        f"-http={http}",
        "-domain=docker",
        "-environment=prod",
        f"-nameserver=127.0.0.1:{upstream.port}",
        "-ttl=0",
        "-verbose",
        "-tlsverify=false",
        "-docker",
        "off",
    ]
    definitions = tmp_path / "dockzone" / "definitions"
    definitions.mkdir(parents=True)
    (definitions / "web.yaml").write_text(
        yaml.safe_dump(service("web", dns_name="web.nginx", host="198.18.0.7"))
    )
    daemon = Daemon.start_command(tmp_path, command, port=port, http=http)
    try:
        assert dig_answers(port, "web.nginx.prod.docker.") == [
            "web.nginx.prod.docker. 0 IN A 198.18.0.7"
        ]
        # dnsdock's README: curl http://dnsdock.docker/services/newid -X PUT ...
        assert _put(http, "/services/newid", {"name": "foo", "image": "bar", "ip": "198.18.0.3"})
        assert dig_answers(port, "foo.bar.prod.docker.") == [
            "foo.bar.prod.docker. 0 IN A 198.18.0.3"
        ]
        assert dig_answers(port, "printer.lan.test.") == ["printer.lan.test. 300 IN A 127.0.0.80"]
        assert "INFO pass 1" in daemon.output()  # -verbose: every change is logged
    finally:
        assert daemon.stop() == 0, daemon.output()


def test_an_empty_host_listens_on_every_address(tmp_path: Path, upstream: NamedServer) -> None:
    """``--dns :PORT`` (dnsdock's ``-dns=":53"``) answers on any local address, IPv6 too,
    each reply from the address the query went to (else the client drops it)."""
    port, http = free_port("0.0.0.0"), f"127.0.0.1:{free_port()}"
    nameserver = f"127.0.0.1:{upstream.port}"
    command = [
        "run",
        "--dns",
        f":{port}",
        f"-http={http}",
        "-docker=off",
        "-nameserver",
        nameserver,
    ]
    daemon = Daemon.start_command(tmp_path, command, port=port, http=http)
    try:
        for host in ("127.0.0.1", "127.0.0.3", *(("::1",) if _has_ipv6() else ())):
            response = query(host, port, "docker.", "SOA")
            assert response.rcode() == dns.rcode.NOERROR, host
            forwarded = query(host, port, "printer.lan.test.", "A", rd=True)
            assert [rrset.to_text() for rrset in forwarded.answer] == [
                "printer.lan.test. 300 IN A 127.0.0.80"
            ], host
        assert f"DNS on 0.0.0.0:{port}" in daemon.output()
        assert "status: NOERROR" in dig(port, "docker.", "SOA", host="127.0.0.3")
    finally:
        assert daemon.stop() == 0, daemon.output()


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_a_skydns_host_name_service_answers_a_with_the_chased_cname(
    tmp_path: Path, upstream: NamedServer
) -> None:
    """SkyDNS's README: an A question at a service whose host is a name gets a CNAME to
    it, followed inside the zones or through the upstream, though the name holds the
    service's SRV; the zone file keeps only the SRV."""
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    sky = {"zone": "skydns.local.", "port": 8080}
    (definitions / "rails.yaml").write_text(
        yaml.safe_dump_all(
            [
                service("r1", dns_name="1.rails.production.east", host="service1.lan.test", **sky),
                service(
                    "r3", dns_name="3.rails.production.east", host="service3.skydns.local", **sky
                ),
                service("s3", dns_name="service3", host="10.0.2.15", **sky),
            ]
        )
    )
    port, http = free_port(), f"127.0.0.1:{free_port()}"
    command = ["run", f"--definitions={definitions}", f"--zones={tmp_path / 'zones'}"]
    command += [f"--dns=127.0.0.1:{port}", f"--http={http}", "--docker=off"]
    command += [f"--nameserver=127.0.0.1:{upstream.port}", *EXAMPLE_DOMAINS]
    daemon = Daemon.start_command(tmp_path, command, port=port, http=http)
    try:
        assert dig_answers(port, "1.rails.production.east.skydns.local.") == [
            "1.rails.production.east.skydns.local. 30 IN CNAME service1.lan.test.",
            "service1.lan.test. 300 IN CNAME www.lan.test.",
            "www.lan.test. 300 IN A 127.0.0.81",
        ]
        assert dig_answers(port, "3.rails.production.east.skydns.local.") == [
            "3.rails.production.east.skydns.local. 30 IN CNAME service3.skydns.local.",
            "service3.skydns.local. 30 IN A 10.0.2.15",
        ]
        assert dig_answers(port, "1.rails.production.east.skydns.local.", "SRV") == [
            "1.rails.production.east.skydns.local. 30 IN SRV 10 100 8080 service1.lan.test."
        ]
        response = query("127.0.0.1", port, "1.rails.production.east.skydns.local.", "AAAA")
        assert response.answer[0].to_text().endswith("CNAME service1.lan.test.")
    finally:
        assert daemon.stop() == 0, daemon.output()
    lines = {
        " ".join(line.split())
        for line in (daemon.zones / "db.skydns.local").read_text().splitlines()
    }
    assert "1.rails.production.east.skydns.local. 30 IN SRV 10 100 8080 service1.lan.test." in lines
    assert not any(" CNAME " in line for line in lines)
    assert_zone_files_valid(daemon.zones)


def test_reverse_lookups_of_other_hosts_go_to_the_upstream(
    tmp_path: Path, upstream: NamedServer
) -> None:
    """A record at 10.0.1.125 does not hide the LAN's PTR for 10.0.1.126 (SkyDNS forwards
    PTR questions it has no record for); a --reverse-zone network stays dockzone's whole."""
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    (definitions / "hosts.yaml").write_text(
        yaml.safe_dump_all(
            [
                service("web", dns_name="web", host="10.0.1.125"),
                service("db", dns_name="db", host="10.0.2.5"),
            ]
        )
    )
    port, http = free_port(), f"127.0.0.1:{free_port()}"
    command = ["run", f"--definitions={definitions}", f"--zones={tmp_path / 'zones'}"]
    command += [f"--dns=127.0.0.1:{port}", f"--http={http}", "--docker=off"]
    command += [f"--nameserver=127.0.0.1:{upstream.port}", "--reverse-zone", "10.0.2.0/24"]
    daemon = Daemon.start_command(tmp_path, command, port=port, http=http)

    def reverse(address: str) -> tuple[str, list[str], str]:
        """rcode, answer, and whose SOA came with a miss (dockzone's or BIND's)."""
        name = ".".join(reversed(address.split("."))) + ".in-addr.arpa."
        response = query("127.0.0.1", port, name, "PTR", rd=True)
        soa = response.authority[0][0].mname.to_text() if response.authority else ""
        answer = [rrset[0].to_text() for rrset in response.answer]
        return dns.rcode.to_text(response.rcode()), answer, soa

    try:
        assert reverse("10.0.1.125") == ("NOERROR", ["web.docker."], "")
        assert reverse("10.0.1.126") == ("NOERROR", ["lan-host.lan.test."], "")
        assert reverse("10.0.1.127") == ("NXDOMAIN", [], "ns.lan.test.")  # BIND's answer
        assert reverse("10.0.2.5") == ("NOERROR", ["db.docker."], "")
        assert reverse("10.0.2.6") == ("NXDOMAIN", [], "ns.dns.docker.")  # --reverse-zone
        assert "lan-host.lan.test." in dig(port, "-x", "10.0.1.126", "+short")
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert sorted(path.name for path in daemon.zones.glob("db.*")) == [
        "db.1.0.10.in-addr.arpa",
        "db.2.0.10.in-addr.arpa",
        "db.docker",
    ]
    assert_zone_files_valid(daemon.zones)


def test_docker_subnets_and_configured_reverse_zones_stay_authoritative() -> None:
    """What ``run`` hands the server: the --reverse-zone networks at once, the subnets of
    the watched Docker networks after each read of the Docker source."""
    settings = resolve({"reverse_zone": ["10.0.2.0/24", "fd00::/48"]}, {}, None)
    owned = daemon.reverse_networks(settings)
    assert [str(network) for network in owned] == ["10.0.2.0/24", "fd00::/48"]
    service = DNSService(ZoneStore())
    update = daemon.network_aware(service, owned)
    assert update is not None
    update(Snapshot(networks=("198.18.4.0/24",)))
    assert [str(network) for network in service.reverse_authority or ()] == [
        "10.0.2.0/24",
        "fd00::/48",
        "198.18.4.0/24",
    ]
