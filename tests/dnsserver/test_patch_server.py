"""Patches against a running server: answers change at once, cached answers of names the
patch did not touch stay cached (counted by the cache-miss statistic), and concurrent
readers never see half a patch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from dnsserver import DNSService, RRset, Zone, ZoneStore, resolve, rrset_from_text
from dnsserver.rdata import rdtype_from_text
from tests.servers import query

ORIGIN = "docker."
SOA_TEXT = "ns.dns.docker. hostmaster.docker. {} 3600 600 86400 30"

Patch = dict[tuple[str, int | str], RRset | None]


def _zone() -> Zone:
    return Zone.from_records(
        ORIGIN,
        [
            (ORIGIN, "SOA", 30, SOA_TEXT.format(1)),
            (ORIGIN, "NS", 30, "ns.dns.docker."),
            ("ns.dns.docker.", "A", 30, "127.0.0.1"),
            ("web.docker.", "A", 30, "10.0.0.7"),
            ("other.docker.", "A", 30, "10.0.0.9"),
            ("_http._tcp.web.docker.", "SRV", 30, "10 100 80 web.docker."),
            ("web-1.app.docker.", "A", 30, "10.0.1.1"),
            ("web-2.app.docker.", "A", 30, "10.0.1.2"),
            ("app.docker.", "A", 30, "10.0.1.1"),
            ("app.docker.", "A", 30, "10.0.1.2"),
        ],
    )


def _rrset(name: str, rdtype: str, *texts: str) -> RRset:
    return rrset_from_text(ORIGIN, name, rdtype, 30, texts)


class _Client:
    def __init__(self, service: DNSService) -> None:
        self.service = service
        self.port = service.addresses[0][1]

    def ask(self, name: str, rdtype: str = "A") -> dns.message.Message:
        return query("127.0.0.1", self.port, name, rdtype)

    def addresses(self, name: str, rdtype: str = "A") -> list[str]:
        response = self.ask(name, rdtype)
        return sorted(rr.to_text() for rrset in response.answer for rr in rrset)

    def misses(self) -> int:
        return self.service.stats().cache_misses


def _serial(response: dns.message.Message) -> int:
    (soa,) = response.authority
    return int(soa[0].serial)


QUESTIONS = [
    ("other.docker.", "A"),
    ("web.docker.", "A"),
    ("app.docker.", "A"),
    ("_http._tcp.web.docker.", "SRV"),
    ("new.docker.", "A"),
    ("missing.docker.", "A"),
    ("other.docker.", "TXT"),
    ("web-1.app.docker.", "A"),
]


def _warm(client: _Client) -> None:
    """Ask every question twice: the second round is answered from the cache."""
    for name, rdtype in QUESTIONS:
        client.ask(name, rdtype)
    before = client.misses()
    for name, rdtype in QUESTIONS:
        client.ask(name, rdtype)
    assert client.misses() == before


def test_a_patch_changes_answers_at_once_and_keeps_the_rest_cached(
    make_service: Callable[..., DNSService],
) -> None:
    store = ZoneStore({ORIGIN: _zone()})
    client = _Client(make_service(store))
    _warm(client)
    assert client.ask("new.docker.").rcode() == dns.rcode.NXDOMAIN
    store.patch(
        {
            ORIGIN: {
                (ORIGIN, "SOA"): _rrset(ORIGIN, "SOA", SOA_TEXT.format(2)),
                ("web.docker.", "A"): _rrset("web.docker.", "A", "10.0.0.8"),
                ("web-1.app.docker.", "A"): _rrset("web-1.app.docker.", "A", "10.0.1.11"),
                ("app.docker.", "A"): _rrset("app.docker.", "A", "10.0.1.11", "10.0.1.2"),
                ("new.docker.", "A"): _rrset("new.docker.", "A", "10.0.0.10"),
            }
        }
    )
    misses = client.misses()
    # Untouched: still answered from the cache.
    assert client.addresses("other.docker.") == ["10.0.0.9"]
    assert client.misses() == misses
    # Changed names, the aggregated ancestor, the SRV whose target moved, the name that
    # now exists: new answers at once.
    assert client.addresses("web.docker.") == ["10.0.0.8"]
    assert client.addresses("app.docker.") == ["10.0.1.11", "10.0.1.2"]
    assert client.addresses("web-1.app.docker.") == ["10.0.1.11"]
    srv = client.ask("_http._tcp.web.docker.", "SRV")
    assert [rr.to_text() for rrset in srv.additional for rr in rrset] == ["10.0.0.8"]
    new = client.ask("new.docker.")
    assert (new.rcode(), [rr.to_text() for rr in new.answer[0]]) == (0, ["10.0.0.10"])
    # Negative answers carry the SOA: the new serial at once.
    missing = client.ask("missing.docker.")
    assert (missing.rcode(), _serial(missing)) == (dns.rcode.NXDOMAIN, 2)
    nodata = client.ask("other.docker.", "TXT")
    assert (nodata.rcode(), nodata.answer, _serial(nodata)) == (0, [], 2)
    assert client.misses() == misses + 7
    # And those are cached again.
    for name, rdtype in QUESTIONS:
        client.ask(name, rdtype)
    assert client.misses() == misses + 7


def test_a_patch_without_a_new_soa_keeps_negative_answers(
    make_service: Callable[..., DNSService],
) -> None:
    store = ZoneStore({ORIGIN: _zone()})
    client = _Client(make_service(store))
    _warm(client)
    store.patch({ORIGIN: {("web.docker.", "A"): _rrset("web.docker.", "A", "10.0.0.8")}})
    misses = client.misses()
    assert client.ask("missing.docker.").rcode() == dns.rcode.NXDOMAIN
    assert client.ask("other.docker.", "TXT").answer == []
    assert client.addresses("app.docker.") == ["10.0.1.1", "10.0.1.2"]
    assert client.misses() == misses
    assert client.addresses("web.docker.") == ["10.0.0.8"]
    assert client.misses() == misses + 1


def test_a_new_empty_non_terminal_changes_its_negative_answer(
    make_service: Callable[..., DNSService],
) -> None:
    store = ZoneStore({ORIGIN: _zone()})
    client = _Client(make_service(store))
    assert client.ask("sub.docker.").rcode() == dns.rcode.NXDOMAIN
    assert client.ask("sub.docker.").rcode() == dns.rcode.NXDOMAIN
    store.patch({ORIGIN: {("x.sub.docker.", "A"): _rrset("x.sub.docker.", "A", "10.0.9.1")}})
    assert client.ask("sub.docker.").rcode() == dns.rcode.NOERROR
    store.patch({ORIGIN: {("x.sub.docker.", "A"): None}})
    assert client.ask("sub.docker.").rcode() == dns.rcode.NXDOMAIN


def test_query_wildcard_answers_follow_the_names_they_matched(
    make_service: Callable[..., DNSService],
) -> None:
    store = ZoneStore({ORIGIN: _zone()})
    client = _Client(make_service(store))
    assert client.addresses("*.app.docker.") == ["10.0.1.1", "10.0.1.2"]
    store.patch(
        {ORIGIN: {("web-2.app.docker.", "A"): _rrset("web-2.app.docker.", "A", "10.0.1.3")}}
    )
    assert client.addresses("*.app.docker.") == ["10.0.1.1", "10.0.1.3"]
    store.patch(
        {ORIGIN: {("web-3.app.docker.", "A"): _rrset("web-3.app.docker.", "A", "10.0.1.4")}}
    )
    assert client.addresses("*.app.docker.") == ["10.0.1.1", "10.0.1.3", "10.0.1.4"]


def test_anything_but_one_patch_starts_a_new_cache(
    make_service: Callable[..., DNSService],
) -> None:
    store = ZoneStore({ORIGIN: _zone()})
    client = _Client(make_service(store))
    _warm(client)
    # Two patches the serving thread did not see one by one: it cannot tell what the first
    # changed, so it drops everything.
    store.patch({ORIGIN: {("web.docker.", "A"): _rrset("web.docker.", "A", "10.0.0.8")}})
    store.patch({ORIGIN: {("web.docker.", "A"): _rrset("web.docker.", "A", "10.0.0.7")}})
    misses = client.misses()
    assert client.addresses("other.docker.") == ["10.0.0.9"]
    assert client.misses() == misses + 1
    # A reload (replace) too.
    client.addresses("other.docker.")
    store.replace({ORIGIN: _zone()})
    misses = client.misses()
    assert client.addresses("other.docker.") == ["10.0.0.9"]
    assert client.misses() == misses + 1


def _generation(generation: int) -> dict[str, Patch]:
    """One patch of two zones that must be seen together: x.a. is a CNAME to a name in b.
    that exists only in this generation, with two addresses of this generation; in a.,
    y.a. (a CNAME to z.a.) and z.a. change together."""
    soa = "ns.a. hostmaster.a. {} 3600 600 86400 30".format
    target = f"y{generation}.b."
    return {
        "a.": {
            ("a.", "SOA"): rrset_from_text("a.", "a.", "SOA", 30, [soa(generation)]),
            ("x.a.", "CNAME"): rrset_from_text("a.", "x.a.", "CNAME", 30, [target]),
            ("y.a.", "CNAME"): rrset_from_text("a.", "y.a.", "CNAME", 30, [f"z{generation}.a."]),
            (f"z{generation - 1}.a.", "TXT"): None,
            (f"z{generation}.a.", "TXT"): rrset_from_text(
                "a.", f"z{generation}.a.", "TXT", 30, [f'"{generation}"']
            ),
        },
        "b.": {
            ("b.", "SOA"): rrset_from_text("b.", "b.", "SOA", 30, [soa(generation)]),
            (f"y{generation - 1}.b.", "A"): None,
            (target, "A"): rrset_from_text(
                "b.", target, "A", 30, [f"10.0.{generation}.1", f"10.0.{generation}.2"]
            ),
        },
    }


def _empty_zones() -> dict[str, Zone]:
    soa = "ns.a. hostmaster.a. 0 3600 600 86400 30"
    return {
        origin: Zone.from_records(origin, [(origin, "SOA", 30, soa), (origin, "NS", 30, "ns.a.")])
        for origin in ("a.", "b.")
    }


def _consistent(response: dns.message.Message, qname: str) -> bool:
    if response.rcode() != 0 or len(response.answer) != 2:
        return False
    cname, data = response.answer
    label = cname[0].target.labels[0].decode()
    generation = int(label[1:])
    if qname == "x.a.":
        expected = [f"10.0.{generation}.1", f"10.0.{generation}.2"]
    else:
        expected = [f'"{generation}"']
    return sorted(r.to_text() for r in data) == expected and data.name == cname[0].target


def test_concurrent_patches_are_seen_whole(make_service: Callable[..., DNSService]) -> None:
    store = ZoneStore(_empty_zones())
    store.patch(_generation(1))
    service = make_service(store)
    port = service.addresses[0][1]
    stop = threading.Event()
    results: list[tuple[int, int, int]] = []  # (ok, inconsistent, failed) per client

    def client(tcp: bool) -> None:
        ok = bad = failed = 0
        deadline = time.monotonic() + 15  # hard bound even if the main thread dies
        while not stop.is_set() and time.monotonic() < deadline:
            for qname, rdtype in (("x.a.", "A"), ("y.a.", "TXT")):
                try:
                    response = query("127.0.0.1", port, qname, rdtype, tcp=tcp, timeout=2)
                except (dns.exception.DNSException, OSError):
                    failed += 1
                    continue
                if _consistent(response, qname):
                    ok += 1
                else:
                    bad += 1
        results.append((ok, bad, failed))

    def reader() -> None:
        """resolve() straight on snapshots, as fast as it goes."""
        ok = bad = 0
        a_type = rdtype_from_text("A")
        while not stop.is_set():
            result = resolve(store.snapshot(), "x.a.", a_type)
            cname, data = result.answer
            generation = cname.rdatas[0][2:].split(b"\x01b")[0].decode()
            if data.name == f"y{generation}.b." and len(data.rdatas) == 2:
                ok += 1
            else:
                bad += 1
        results.append((ok, bad, 0))

    threads = [threading.Thread(target=client, args=(i % 2 == 1,)) for i in range(4)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    try:
        for generation in range(2, 102):
            store.patch(_generation(generation))
            time.sleep(0.03)  # spread the patches over ~3 s of queries (pacing, not waiting)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
    assert len(results) == 5
    assert sum(r[1] for r in results) == 0, results
    assert sum(r[2] for r in results) == 0, results
    assert sum(r[0] for r in results[:4]) > 200, results
    final = query("127.0.0.1", port, "x.a.", "A")
    assert final.answer[0][0].target.to_text() == "y101.b."
    assert sorted(r.to_text() for r in final.answer[1]) == ["10.0.101.1", "10.0.101.2"]
