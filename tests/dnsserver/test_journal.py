"""The IXFR journal: deltas built from store swaps (patches and reloads), condensing, the
size bound, incremental transfers from a real server read with dnspython, and journal files
(written, loaded when they end at the served serial, dropped otherwise)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.rrset
import dns.xfr
import dns.zone
import pytest

from dnsserver import (
    ADDRESS_CNAME,
    DNSService,
    RRset,
    TransferPolicy,
    Transfers,
    Zone,
    ZoneDirectory,
    ZoneStore,
    rrset_from_text,
)
from dnsserver.journal import Delta, Journal, condense, diff_zones
from dnsserver.journalfile import MAGIC, JournalWriter, journal_path, load_journals
from tests.helpers import eventually

ORIGIN = "example."
Record = tuple[str, int, int, bytes]


def _soa(serial: int) -> str:
    return f"ns.dns.example. hostmaster.example. {serial} 3600 600 86400 10"


def _zone(serial: int, hosts: dict[str, str], ttl: int = 30) -> Zone:
    records = [
        ("@", "SOA", 30, _soa(serial)),
        ("@", "NS", 30, "ns.dns.example."),
        ("ns.dns", "A", 30, "127.0.0.1"),
    ]
    records += [(name, "A", ttl, address) for name, address in hosts.items()]
    return Zone.from_records(ORIGIN, records)


def _records(zone: Zone) -> set[Record]:
    """Every transferable record but the SOA."""
    return {
        (r.name, r.rdtype, r.ttl, rdata)
        for r in zone.rrsets()
        if r.rdtype not in (dns.rdatatype.SOA, ADDRESS_CNAME)
        for rdata in r.rdatas
    }


def _apply(records: set[Record], delta: Delta) -> set[Record]:
    """RFC 1995 semantics: delete by name, type and rdata; then add."""
    gone = {(r.name, r.rdtype, rdata) for r in delta.deleted for rdata in r.rdatas}
    kept = {r for r in records if (r[0], r[1], r[3]) not in gone}
    return kept | {(r.name, r.rdtype, r.ttl, rdata) for r in delta.added for rdata in r.rdatas}


def _set_soa(serial: int) -> dict[tuple[str, int | str], RRset | None]:
    return {(ORIGIN, "SOA"): rrset_from_text(ORIGIN, ORIGIN, "SOA", 30, [_soa(serial)])}


def _a(name: str, *addresses: str, ttl: int = 30) -> RRset:
    return rrset_from_text(ORIGIN, name, "A", ttl, list(addresses))


@pytest.fixture
def tracked() -> tuple[ZoneStore, Journal]:
    store = ZoneStore({ORIGIN: _zone(1, {"a": "10.0.0.1", "b": "10.0.0.2"})})
    journal = Journal()
    store.track(journal.record)
    return store, journal


def test_a_patch_journals_the_records_deleted_and_added(
    tracked: tuple[ZoneStore, Journal],
) -> None:
    store, journal = tracked
    store.patch(
        {
            ORIGIN: {
                **_set_soa(2),
                ("a.example.", "A"): _a("a.example.", "10.0.0.1", "10.0.0.9"),
                ("b.example.", "A"): None,
                ("c.example.", "A"): _a("c.example.", "10.0.0.3"),
                ("c.example.", ADDRESS_CNAME): rrset_from_text(
                    ORIGIN, "c.example.", ADDRESS_CNAME, 30, ["web.example."]
                ),
            }
        }
    )
    found = journal.get(ORIGIN)
    assert found is not None
    (delta,) = found.deltas
    assert (delta.old_serial, delta.new_serial, found.serial) == (1, 2, 2)
    assert sorted(delta.deleted) == [_a("b.example.", "10.0.0.2")]
    assert sorted(delta.added) == [_a("a.example.", "10.0.0.9"), _a("c.example.", "10.0.0.3")]
    assert delta.size == 2 + 1 + 2


def test_a_reload_journals_the_difference_of_zones_whose_serial_changed() -> None:
    store = ZoneStore({ORIGIN: _zone(1, {"a": "10.0.0.1", "b": "10.0.0.2"})})
    other = Zone.from_records("other.", [("@", "SOA", 30, _soa(7)), ("x", "A", 30, "10.9.9.9")])
    store.update({"other.": other})
    journal = Journal()
    store.track(journal.record)
    store.replace({ORIGIN: _zone(2, {"a": "10.0.0.1", "b": "10.0.0.5"}, ttl=30), "other.": other})
    (delta,) = journal.get(ORIGIN).deltas  # type: ignore[union-attr]
    assert delta.deleted == (_a("b.example.", "10.0.0.2"),)
    assert delta.added == (_a("b.example.", "10.0.0.5"),)
    assert journal.get("other.") is None  # untouched: the same zone object


def test_a_ttl_change_deletes_and_adds_the_whole_rrset() -> None:
    deleted, added = diff_zones(_zone(1, {"a": "10.0.0.1"}), _zone(2, {"a": "10.0.0.1"}, ttl=60))
    assert deleted == [_a("a.example.", "10.0.0.1")]
    assert added == [_a("a.example.", "10.0.0.1", ttl=60)]


@pytest.mark.parametrize(
    ("serial", "hosts", "why"),
    [
        (1, {"a": "10.0.0.7"}, "without a serial change"),
        (0, {"a": "10.0.0.1"}, "serial went back"),
    ],
    ids=["same-serial-other-data", "serial-backwards"],
)
def test_an_untrustworthy_change_drops_the_zone_journal(
    tracked: tuple[ZoneStore, Journal],
    caplog: pytest.LogCaptureFixture,
    serial: int,
    hosts: dict[str, str],
    why: str,
) -> None:
    store, journal = tracked
    store.replace({ORIGIN: _zone(2, {"a": "10.0.0.1"})})
    store.replace({ORIGIN: _zone(serial + 1, hosts)})
    found = journal.get(ORIGIN)
    assert found is not None
    assert not found.deltas
    assert found.serial == serial + 1
    assert why in caplog.text


def test_a_new_zone_starts_an_empty_journal_and_a_removed_one_loses_it(
    tracked: tuple[ZoneStore, Journal],
) -> None:
    store, journal = tracked
    store.update({"other.": Zone.from_records("other.", [("@", "SOA", 30, _soa(7))])})
    assert journal.get("other.") is not None
    assert not journal.get("other.").deltas  # type: ignore[union-attr]
    store.update({}, removed={"other."})
    assert journal.get("other.") is None


def test_same_serial_with_only_private_records_changed_keeps_the_journal(
    tracked: tuple[ZoneStore, Journal],
) -> None:
    store, journal = tracked
    store.patch({ORIGIN: {**_set_soa(2), ("a.example.", "A"): None}})
    store.patch(
        {
            ORIGIN: {
                ("b.example.", ADDRESS_CNAME): rrset_from_text(
                    ORIGIN, "b.example.", ADDRESS_CNAME, 30, ["x.example."]
                )
            }
        }
    )
    assert len(journal.get(ORIGIN).deltas) == 1  # type: ignore[union-attr]


def _random_versions(seed: int, steps: int) -> list[Zone]:
    rng = random.Random(seed)
    hosts: dict[str, tuple[int, tuple[str, ...]]] = {}
    zones = []
    for serial in range(1, steps + 2):
        for _ in range(rng.randint(1, 4)):
            name = f"h{rng.randint(0, 7)}"
            roll = rng.random()
            if roll < 0.3:
                hosts.pop(name, None)
            elif roll < 0.45 and name in hosts:
                hosts[name] = (60 if hosts[name][0] == 30 else 30, hosts[name][1])
            else:
                addresses = tuple({f"10.0.0.{rng.randint(1, 6)}" for _ in range(rng.randint(1, 3))})
                hosts[name] = (hosts.get(name, (30, ()))[0], addresses)
        records = [("@", "SOA", 30, _soa(serial)), ("@", "NS", 30, "ns.dns.example.")]
        records += [(n, "A", ttl, a) for n, (ttl, addrs) in hosts.items() for a in addrs]
        zones.append(Zone.from_records(ORIGIN, records))
    return zones


@pytest.mark.parametrize("seed", range(20))
def test_condensed_deltas_take_any_version_to_the_last(seed: int) -> None:
    zones = _random_versions(seed, 12)
    journal = Journal()
    store = ZoneStore({ORIGIN: zones[0]})
    store.track(journal.record)
    for zone in zones[1:]:
        store.replace({ORIGIN: zone})
    last = zones[-1]
    for start, zone in enumerate(zones[:-1]):
        deltas = journal.since(ORIGIN, zone.serial, last.serial)
        assert deltas is not None
        assert len(deltas) == len(zones) - 1 - start
        condensed = condense(deltas)
        assert (condensed.old_serial, condensed.new_serial) == (zone.serial, last.serial)
        assert _apply(_records(zone), condensed) == _records(last)
        assert condensed.size <= sum(delta.size for delta in deltas)


def test_a_record_added_and_deleted_again_is_not_sent() -> None:
    one = _zone(1, {"a": "10.0.0.1"})
    two = _zone(2, {"a": "10.0.0.1", "b": "10.0.0.2"})
    three = _zone(3, {"a": "10.0.0.1"})
    deltas = []
    for x, y in ((one, two), (two, three)):
        deleted, added = diff_zones(x, y)
        deltas.append(Delta(x.soa, tuple(deleted), y.soa, tuple(added)))
    condensed = condense(deltas)
    assert condensed.deleted == condensed.added == ()
    assert condensed.old_soa == one.soa
    assert condensed.new_soa == three.soa


def test_the_journal_keeps_at_most_its_limit_dropping_the_oldest() -> None:
    journal = Journal(limit=10)
    store = ZoneStore({ORIGIN: _zone(1, {})})
    store.track(journal.record)
    for serial in range(2, 7):  # each delta: 2 SOAs + 1 added = 3 records
        store.patch(
            {
                ORIGIN: {
                    **_set_soa(serial),
                    (f"h{serial}.example.", "A"): _a(f"h{serial}.example.", "10.0.0.1"),
                }
            }
        )
    found = journal.get(ORIGIN)
    assert found is not None
    assert [d.new_serial for d in found.deltas] == [4, 5, 6]
    assert found.size == 9
    assert journal.since(ORIGIN, 3, 6) is not None
    assert journal.since(ORIGIN, 2, 6) is None  # dropped: a transfer gets the whole zone
    store.patch(
        {
            ORIGIN: {
                **_set_soa(7),
                **{(f"x{n}.example.", "A"): _a(f"x{n}.example.", "10.0.0.2") for n in range(20)},
            }
        }
    )
    found = journal.get(ORIGIN)
    assert found is not None
    assert (found.serial, len(found.deltas), found.size) == (7, 0, 0)  # too big to keep


# -- transfers from a real server ------------------------------------------------------------


def _big_zone(serial: int, hosts: int) -> Zone:
    return _zone(serial, {f"host{n}": f"10.1.{n // 250}.{n % 250 + 1}" for n in range(hosts)})


@pytest.fixture
def served() -> Iterator[tuple[ZoneStore, DNSService]]:
    store = ZoneStore({ORIGIN: _big_zone(1, 2000)})
    journal = Journal()
    store.track(journal.record)
    service = DNSService(
        store,
        [("127.0.0.1", 0)],
        forwarder=None,
        transfers=Transfers(TransferPolicy(["127.0.0.0/8"]), journal),
    )
    service.start()
    try:
        yield store, service
    finally:
        service.stop()


def _axfr(port: int) -> dns.zone.Zone:
    zone = dns.zone.Zone(ORIGIN)
    query, _ = dns.xfr.make_query(zone)
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=port, timeout=10)
    return zone


def _ixfr_messages(port: int, serial: int, *, tcp: bool = True) -> list[dns.message.Message]:
    query = dns.message.make_query(ORIGIN, "IXFR")
    query.authority.append(dns.rrset.from_text(ORIGIN, 30, "IN", "SOA", _soa(serial)))
    if not tcp:
        return [dns.query.udp(query, "127.0.0.1", port=port, timeout=5, one_rr_per_rrset=True)]
    return list(dns.query.xfr("127.0.0.1", ORIGIN, "IXFR", port=port, serial=serial, timeout=10))


def test_ixfr_from_the_journal_applied_to_the_old_zone_gives_the_new_one(
    served: tuple[ZoneStore, DNSService],
) -> None:
    store, service = served
    port = service.addresses[0][1]
    secondary = _axfr(port)
    store.patch({ORIGIN: {**_set_soa(2), ("host1.example.", "A"): None}})
    store.patch({ORIGIN: {**_set_soa(3), ("new.example.", "A"): _a("new.example.", "10.9.0.1")}})
    store.patch(
        {ORIGIN: {**_set_soa(4), ("host2.example.", "A"): _a("host2.example.", "10.9.0.2")}}
    )
    query, _ = dns.xfr.make_query(secondary)  # IXFR from serial 1, the zone's
    assert query.question[0].rdtype == dns.rdatatype.IXFR
    dns.query.inbound_xfr("127.0.0.1", secondary, query, port=port, timeout=10)
    assert secondary == _axfr(port)
    assert secondary.get_soa().serial == 4
    counts = service.transfers.counts
    assert (counts.ixfr_journal, counts.ixfr, counts.axfr) == (1, 0, 2)
    (message,) = _ixfr_messages(port, 1)
    serials = [r[0].serial for r in message.answer if r.rdtype == dns.rdatatype.SOA]
    assert serials == [4, 1, 4, 4]  # condensed: one deletion and one addition section
    assert sum(len(r) for r in message.answer) == 4 + 2 + 2


def test_a_difference_beyond_64_kib_spans_several_messages(
    served: tuple[ZoneStore, DNSService],
) -> None:
    store, service = served
    port = service.addresses[0][1]
    secondary = _axfr(port)
    big = _big_zone(2, 8000)  # 6000 more hosts (~16 bytes each), the first 2000 as before
    store.replace({ORIGIN: big})
    messages = _ixfr_messages(port, 1)
    assert len(messages) > 1
    assert all(len(m.to_wire()) <= 65535 for m in messages)
    assert sum(len(r) for m in messages for r in m.answer) == 6000 + 4
    query, _ = dns.xfr.make_query(secondary)
    dns.query.inbound_xfr("127.0.0.1", secondary, query, port=port, timeout=10)
    assert secondary == _axfr(port)


@pytest.mark.parametrize(
    ("serial", "answer"),
    [(3, [3]), (9, [3]), (0, "whole"), (2, [3, 2, 3, 3])],
    ids=["current", "newer", "not-in-journal", "in-journal"],
)
def test_ixfr_answers_by_where_the_client_serial_is(
    served: tuple[ZoneStore, DNSService], serial: int, answer: list[int] | str
) -> None:
    store, service = served
    store.patch({ORIGIN: {**_set_soa(2), ("host1.example.", "A"): None}})
    store.patch({ORIGIN: {**_set_soa(3), ("host2.example.", "A"): None}})
    port = service.addresses[0][1]
    if serial >= 3:  # one message (dnspython's xfr refuses a serial newer than ours)
        query = dns.message.make_query(ORIGIN, "IXFR")
        query.authority.append(dns.rrset.from_text(ORIGIN, 30, "IN", "SOA", _soa(serial)))
        messages = [dns.query.tcp(query, "127.0.0.1", port=port, timeout=5)]
    else:
        messages = _ixfr_messages(port, serial)
    soas = [r[0].serial for m in messages for r in m.answer if r.rdtype == dns.rdatatype.SOA]
    if answer == "whole":
        assert soas == [3, 3]
        assert sum(len(r) for m in messages for r in m.answer) == 2 + 2 + 1998
        assert service.transfers.counts.ixfr == 1
    else:
        assert soas == answer


def test_ixfr_over_udp_gets_the_difference_when_it_fits_else_the_soa(
    served: tuple[ZoneStore, DNSService],
) -> None:
    store, service = served
    port = service.addresses[0][1]
    store.patch({ORIGIN: {**_set_soa(2), ("host1.example.", "A"): None}})
    (small,) = _ixfr_messages(port, 1, tcp=False)
    kinds = [
        (r.rdtype, r[0].serial if r.rdtype == dns.rdatatype.SOA else None) for r in small.answer
    ]
    assert kinds == [
        (dns.rdatatype.SOA, 2),
        (dns.rdatatype.SOA, 1),
        (dns.rdatatype.A, None),
        (dns.rdatatype.SOA, 2),
        (dns.rdatatype.SOA, 2),
    ]
    store.replace({ORIGIN: _big_zone(3, 2500)})  # 500 more hosts: beyond 512 bytes
    (large,) = _ixfr_messages(port, 2, tcp=False)
    assert [(r.rdtype, r[0].serial) for r in large.answer] == [(dns.rdatatype.SOA, 3)]
    over_tcp = _ixfr_messages(port, 2)
    assert sum(len(r) for m in over_tcp for r in m.answer) == 500 + 1 + 4


# -- journal files ---------------------------------------------------------------------------


def _journaled(tmp_path: Path, versions: int) -> tuple[ZoneStore, Journal, JournalWriter]:
    store = ZoneStore({ORIGIN: _zone(1, {})})
    journal = Journal()
    store.track(journal.record)
    writer = JournalWriter(journal, tmp_path, interval=0.01)
    writer.start()
    for serial in range(2, versions + 2):
        store.patch(
            {
                ORIGIN: {
                    **_set_soa(serial),
                    (f"h{serial}.example.", "A"): _a(f"h{serial}.example.", "10.0.0.1"),
                }
            }
        )
    writer.stop()
    return store, journal, writer


def test_the_journal_file_is_written_and_loaded_when_it_ends_at_the_served_serial(
    tmp_path: Path,
) -> None:
    store, journal, writer = _journaled(tmp_path, 5)
    path = journal_path(tmp_path, ORIGIN)
    assert path == tmp_path / ".dockzone-journal.example"
    assert path.read_bytes().startswith(MAGIC)
    assert not list(tmp_path.glob("*.tmp"))
    assert writer.writes >= 1
    again = Journal()
    assert load_journals(tmp_path, again, store.snapshot().zones) == 1
    assert again.get(ORIGIN) == journal.get(ORIGIN)
    assert again.since(ORIGIN, 1, 6) == journal.since(ORIGIN, 1, 6)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("serial", "ends at serial 6, example. is served at 7"),
        ("garbage", "not a journal of this format"),
        ("truncated", "damaged"),
        ("unserved", "example. is not served"),
    ],
)
def test_an_untrusted_journal_file_is_dropped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str, why: str
) -> None:
    store, _, _ = _journaled(tmp_path, 3)
    store, _, _ = _journaled(tmp_path, 5)
    path = journal_path(tmp_path, ORIGIN)
    zones = dict(store.snapshot().zones)
    if damage == "serial":
        zones[ORIGIN] = _zone(7, {})
    elif damage == "garbage":
        path.write_bytes(b"garbage")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
    else:
        zones = {}
    journal = Journal()
    assert load_journals(tmp_path, journal, zones) == 0
    assert journal.get(ORIGIN) is None
    assert not path.exists()
    assert why in caplog.text


def test_a_zone_directory_reload_is_journaled(tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    text = "$ORIGIN example.\n@ 30 IN SOA ns.dns hostmaster {serial} 1 1 1 1\nns.dns 30 IN A 127.0.0.1\n{extra}"
    (zones / "db.example").write_text(text.format(serial=1, extra=""))
    store = ZoneStore()
    directory = ZoneDirectory(zones, store)
    directory.rescan()
    journal = Journal()
    store.track(journal.record)
    writer = JournalWriter(journal, zones, interval=0.01)
    writer.start()
    try:
        (zones / "db.example").write_text(text.format(serial=2, extra="web 30 IN A 10.0.0.7\n"))
        directory.rescan()
        eventually(lambda: journal_path(zones, ORIGIN).exists(), timeout=5)
    finally:
        writer.stop()
    (delta,) = journal.get(ORIGIN).deltas  # type: ignore[union-attr]
    assert delta.added == (_a("web.example.", "10.0.0.7"),)
    assert delta.deleted == ()
    assert directory.rescan().changed is False  # the journal file is no zone file
