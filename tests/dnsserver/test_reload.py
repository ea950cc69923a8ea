"""Atomic reload: queries during 50 swaps see the old zone set or the new one, never a mix."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.query

from dnsserver import DNSService, Zone, ZoneStore


def _zones(generation: int) -> dict[str, Zone]:
    """Two zones that must change together: x.a. is a CNAME to a name in b. of the same age."""
    soa = "ns.a. hostmaster.a. {} 3600 600 86400 30"
    a = Zone.from_records(
        "a.",
        [
            ("a.", "SOA", 30, soa.format(generation)),
            ("a.", "NS", 30, "ns.a."),
            ("ns.a.", "A", 30, "127.0.0.1"),
            ("x.a.", "CNAME", 30, f"y{generation}.b."),
        ],
    )
    b = Zone.from_records(
        "b.",
        [
            ("b.", "SOA", 30, soa.format(generation)),
            ("b.", "NS", 30, "ns.a."),
            (f"y{generation}.b.", "A", 30, f"10.0.{generation}.1"),
            (f"y{generation}.b.", "A", 30, f"10.0.{generation}.2"),
        ],
    )
    return {"a.": a, "b.": b}


def _consistent(response: dns.message.Message) -> bool:
    if response.rcode() != 0 or len(response.answer) != 2:
        return False
    cname, addresses = response.answer
    generation = int(cname[0].target.labels[0][1:])
    return (
        sorted(r.to_text() for r in addresses)
        == [
            f"10.0.{generation}.1",
            f"10.0.{generation}.2",
        ]
        and addresses.name == cname[0].target
    )


def test_reload_under_load_is_atomic(make_service: Callable[..., DNSService]) -> None:
    store = ZoneStore(_zones(0))
    service = make_service(store)
    port = service.addresses[0][1]
    stop = threading.Event()
    results: list[tuple[int, int, int]] = []  # (ok, inconsistent, failed) per client

    def client(tcp: bool) -> None:
        ok = bad = failed = 0
        deadline = time.monotonic() + 10  # hard bound even if the main thread dies
        while not stop.is_set() and time.monotonic() < deadline:
            message = dns.message.make_query("x.a.", "A")
            try:
                if tcp:
                    response = dns.query.tcp(message, "127.0.0.1", port=port, timeout=2)
                else:
                    response = dns.query.udp(message, "127.0.0.1", port=port, timeout=2)
            except (dns.exception.DNSException, OSError):
                failed += 1
                continue
            if _consistent(response):
                ok += 1
            else:
                bad += 1
        results.append((ok, bad, failed))

    threads = [threading.Thread(target=client, args=(i % 2 == 1,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for generation in range(1, 51):
            store.replace(_zones(generation))
            time.sleep(0.1)  # spread the swaps over ~5 s of queries (pacing, not waiting)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    ok = sum(r[0] for r in results)
    assert len(results) == 4
    assert sum(r[1] for r in results) == 0, results
    assert sum(r[2] for r in results) == 0, results
    assert ok > 200
    final = dns.query.udp(dns.message.make_query("x.a.", "A"), "127.0.0.1", port=port, timeout=2)
    assert final.answer[0][0].target.to_text() == "y50.b."
