"""Zone.patched and ZoneStore.patch: copy-on-write changes of a few RRsets.

The patched zone must be exactly the zone built from scratch with the same records (names,
empty non-terminals, cuts, wildcards, query wildcard matches), the old zone must stay as it
was, and the names reported as changed must cover every answer that differs.
"""

from __future__ import annotations

import random

import pytest

from dnsserver import RRset, Zone, ZoneError, ZoneStore, resolve, rrset_from_text
from dnsserver.message import NOERROR, NXDOMAIN
from dnsserver.rdata import rdtype_from_text

ORIGIN = "docker."
SOA_TEXT = "ns.dns.docker. hostmaster.docker. {} 3600 600 86400 30"
A = rdtype_from_text("A")
NS = rdtype_from_text("NS")
SOA = rdtype_from_text("SOA")


def _base() -> Zone:
    return Zone.from_records(
        ORIGIN,
        [
            (ORIGIN, "SOA", 30, SOA_TEXT.format(1)),
            (ORIGIN, "NS", 30, "ns.dns.docker."),
            ("ns.dns.docker.", "A", 30, "127.0.0.1"),
            ("web.docker.", "A", 30, "10.0.0.7"),
            ("web-1.app.docker.", "A", 30, "10.0.1.1"),
            ("web-2.app.docker.", "A", 30, "10.0.1.2"),
            ("app.docker.", "A", 30, "10.0.1.1"),
            ("app.docker.", "A", 30, "10.0.1.2"),
            ("alias.docker.", "CNAME", 30, "web.docker."),
        ],
    )


def _rrset(name: str, rdtype: str, *rdatas: str, ttl: int = 30) -> RRset:
    return rrset_from_text(ORIGIN, name, rdtype, ttl, rdatas)


def _soa(serial: int) -> dict[tuple[str, int | str], RRset | None]:
    return {(ORIGIN, "SOA"): _rrset(ORIGIN, "SOA", SOA_TEXT.format(serial))}


def test_patch_adds_changes_and_removes_rrsets_and_leaves_the_old_zone() -> None:
    zone = _base()
    new = zone.patched(
        {
            **_soa(2),
            ("web.docker.", "A"): _rrset("web.docker.", "A", "10.0.0.8", "10.0.0.9"),
            ("db.docker.", A): _rrset("db.docker.", "A", "10.0.0.5"),
            ("alias.docker.", "CNAME"): None,
        }
    )
    assert new.serial == 2
    web = new.get("web.docker.", A)
    assert web is not None
    assert web.rdatas == (bytes([10, 0, 0, 8]), bytes([10, 0, 0, 9]))
    assert new.exists("db.docker.")
    assert not new.exists("alias.docker.")
    # The old zone is untouched: queries in flight keep their answers.
    assert zone.serial == 1
    old_web = zone.get("web.docker.", A)
    assert old_web is not None
    assert old_web.rdatas == (bytes([10, 0, 0, 7]),)
    assert not zone.exists("db.docker.")
    assert zone.exists("alias.docker.")


def test_empty_non_terminals_appear_and_disappear() -> None:
    zone = _base()
    deep = "_http._tcp.web-1.app.docker."
    srv = _rrset(deep, "SRV", "10 100 80 web-1.app.docker.")
    added, names = zone.patched_with_names({(deep, "SRV"): srv})
    assert "_tcp.web-1.app.docker." in added.nonterminals
    assert added.exists("_tcp.web-1.app.docker.")
    assert names == frozenset({deep, "_tcp.web-1.app.docker.", ORIGIN})
    # web-1 loses its own data but keeps a name below it: it becomes an ENT.
    ent, names = added.patched_with_names({("web-1.app.docker.", "A"): None})
    assert ent.exists("web-1.app.docker.")
    assert "web-1.app.docker." in ent.nonterminals
    # The last name below goes: every empty ancestor stops existing, not the ones with data.
    gone, names = ent.patched_with_names({(deep, "SRV"): None})
    assert not gone.exists("_tcp.web-1.app.docker.")
    assert not gone.exists("web-1.app.docker.")
    assert gone.exists("app.docker.")
    assert names == frozenset({deep, "_tcp.web-1.app.docker.", "web-1.app.docker.", ORIGIN})
    assert gone.nonterminals == {"dns.docker."}


def test_an_ancestor_that_loses_all_data_and_children_stops_existing() -> None:
    zone = _base().patched(
        {
            ("app.docker.", "A"): None,
            ("web-1.app.docker.", "A"): None,
            ("web-2.app.docker.", "A"): None,
        }
    )
    assert not zone.exists("app.docker.")
    assert "app.docker." not in zone.nonterminals


def test_nxdomain_and_noerror_follow_the_patch() -> None:
    store = ZoneStore({ORIGIN: _base()})
    assert resolve(store.snapshot(), "new.sub.docker.", A).rcode == NXDOMAIN
    assert resolve(store.snapshot(), "sub.docker.", A).rcode == NXDOMAIN
    store.patch({ORIGIN: {("new.sub.docker.", "A"): _rrset("new.sub.docker.", "A", "10.9.0.1")}})
    found = resolve(store.snapshot(), "new.sub.docker.", A)
    assert (found.rcode, len(found.answer)) == (NOERROR, 1)
    ent = resolve(store.snapshot(), "sub.docker.", A)
    assert (ent.rcode, ent.answer) == (NOERROR, [])  # NODATA at the new empty non-terminal
    store.patch({ORIGIN: {("new.sub.docker.", "A"): None}})
    assert resolve(store.snapshot(), "new.sub.docker.", A).rcode == NXDOMAIN
    assert resolve(store.snapshot(), "sub.docker.", A).rcode == NXDOMAIN


PATCH_ERRORS = [
    (
        {("web.docker.", "CNAME"): ("web.docker.", "CNAME", "x.docker.")},
        "zone docker.: CNAME beside other data at web.docker.",
    ),
    (
        {("alias.docker.", "A"): ("alias.docker.", "A", "10.0.0.1")},
        "zone docker.: CNAME beside other data at alias.docker.",
    ),
    ({("www.other.", "A"): None}, "www.other. is outside the origin docker."),
    ({(ORIGIN, "SOA"): None}, "no SOA record at the zone apex docker."),
    (
        {("web.docker.", "SOA"): ("web.docker.", "SOA", SOA_TEXT.format(3))},
        "SOA at web.docker., not at the zone apex",
    ),
    (
        {("web.docker.", "AAAA"): ("web.docker.", "A", "10.0.0.1")},
        "RRset web.docker. A given for web.docker. AAAA",
    ),
    ({("web.docker.", "BOGUS"): None}, "unknown record type"),
]


@pytest.mark.parametrize(("changes", "reason"), PATCH_ERRORS, ids=[e[1] for e in PATCH_ERRORS])
def test_patch_enforces_the_zone_rules(
    changes: dict[tuple[str, str], tuple[str, str, str] | None], reason: str
) -> None:
    zone = _base()
    patch: dict[tuple[str, int | str], RRset | None] = {
        key: None if spec is None else _rrset(*spec) for key, spec in changes.items()
    }
    with pytest.raises(ZoneError, match=reason) as info:
        zone.patched(patch)
    assert info.value.origin == ORIGIN


def test_cname_may_replace_data_in_the_same_patch() -> None:
    zone = _base().patched(
        {
            ("web.docker.", "A"): None,
            ("web.docker.", "CNAME"): _rrset("web.docker.", "CNAME", "app.docker."),
        }
    )
    cname = zone.get("web.docker.", rdtype_from_text("CNAME"))
    assert cname is not None


def test_rrset_from_text() -> None:
    rrset = rrset_from_text(ORIGIN, "web", "A", 60, ["10.0.0.1", "10.0.0.2", "10.0.0.1"])
    assert rrset == RRset("web.docker.", A, 60, (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"))
    srv = rrset_from_text(ORIGIN, "_x._tcp.web.docker.", "SRV", 30, ["1 2 3 web"])
    assert srv.rdatas == (b"\x00\x01\x00\x02\x00\x03\x03web\x06docker\x00",)
    with pytest.raises(ZoneError, match="bad A rdata"):
        rrset_from_text(ORIGIN, "web.docker.", "A", 30, ["nope"])
    with pytest.raises(ZoneError, match="outside the origin"):
        rrset_from_text(ORIGIN, "web.other.", "A", 30, ["10.0.0.1"])
    with pytest.raises(ZoneError, match="more than one CNAME"):
        rrset_from_text(ORIGIN, "c.docker.", "CNAME", 30, ["a.docker.", "b.docker."])
    with pytest.raises(ZoneError, match="no A record"):
        rrset_from_text(ORIGIN, "web.docker.", "A", 30, [])
    with pytest.raises(ZoneError, match="TTL out of range"):
        rrset_from_text(ORIGIN, "web.docker.", "A", -1, ["10.0.0.1"])


def test_delegations_and_wildcards_are_kept_up_to_date() -> None:
    zone = _base()
    zone.match(["*", "app", "docker"])  # build the query wildcard index before patching
    with_cut, names = zone.patched_with_names(
        {
            ("sub.docker.", "NS"): _rrset("sub.docker.", "NS", "ns.sub.docker."),
            ("ns.sub.docker.", "A"): _rrset("ns.sub.docker.", "A", "10.0.5.1"),
            ("*.wild.docker.", "A"): _rrset("*.wild.docker.", "A", "10.0.6.1"),
            ("web-3.app.docker.", "A"): _rrset("web-3.app.docker.", "A", "10.0.1.3"),
            ("web-1.app.docker.", "A"): None,
        }
    )
    assert names is None  # a new delegation: answers anywhere below it may differ
    assert with_cut.cuts == {"sub.docker."}
    assert with_cut.has_wildcards
    assert sorted(with_cut.match(["*", "app", "docker"])) == [
        "web-2.app.docker.",
        "web-3.app.docker.",
    ]
    assert sorted(zone.match(["*", "app", "docker"])) == ["web-1.app.docker.", "web-2.app.docker."]
    index = ZoneStore({ORIGIN: with_cut}).snapshot()
    referral = resolve(index, "host.sub.docker.", A)
    assert not referral.aa
    synthesized = resolve(index, "x.wild.docker.", A)
    assert synthesized.answer[0].name == "x.wild.docker."
    assert ORIGIN in synthesized.depends

    back, names = with_cut.patched_with_names(
        {("sub.docker.", "NS"): None, ("*.wild.docker.", "A"): None}
    )
    assert names is None
    assert not back.cuts
    assert not back.has_wildcards
    assert resolve(ZoneStore({ORIGIN: back}).snapshot(), "x.wild.docker.", A).rcode == NXDOMAIN

    # A changed wildcard alone is a change of the apex (negative answers may now differ).
    _, names = with_cut.patched_with_names(
        {("*.wild.docker.", "A"): _rrset("*.wild.docker.", "A", "10.0.6.2")}
    )
    assert names == frozenset({"*.wild.docker.", ORIGIN})


def test_changing_data_only_changes_that_name() -> None:
    _, names = _base().patched_with_names(
        {("web.docker.", "A"): _rrset("web.docker.", "A", "10.0.0.99")}
    )
    assert names == frozenset({"web.docker."})
    _, names = _base().patched_with_names(_soa(9))
    assert names == frozenset({ORIGIN})


def _records(state: dict[tuple[str, str], list[str]]) -> list[tuple[str, str, int, str]]:
    return [(name, rdtype, 30, text) for (name, rdtype), texts in state.items() for text in texts]


def test_random_patches_match_a_zone_built_from_scratch() -> None:
    """Many random patches: after each, the patched zone equals the zone built whole."""
    rng = random.Random(7)
    names = [
        f"{prefix}{leaf}.docker."
        for prefix in ("", "a.", "b.a.", "c.b.a.", "x.y.")
        for leaf in ("p", "q", "*")
    ] + ["docker.", "a.docker.", "b.a.docker."]
    state: dict[tuple[str, str], list[str]] = {
        (ORIGIN, "SOA"): [SOA_TEXT.format(1)],
        (ORIGIN, "NS"): ["ns.dns.docker."],
    }
    zone = Zone.from_records(ORIGIN, _records(state))
    zone.match(["*", "docker"])
    for step in range(300):
        changes: dict[tuple[str, int | str], RRset | None] = {}
        for _ in range(rng.randint(1, 4)):
            name = rng.choice(names)
            rdtype = rng.choice(["A", "TXT", "NS"] if name != ORIGIN else ["A", "TXT"])
            if rng.random() < 0.45:
                state.pop((name, rdtype), None)
                changes[(name, rdtype)] = None
            else:
                if rdtype == "A":
                    texts = [f"10.0.{step % 250}.{i}" for i in range(rng.randint(1, 3))]
                elif rdtype == "NS":
                    texts = ["ns.dns.docker."]
                else:
                    texts = [f'"{step}"']
                state[(name, rdtype)] = texts
                changes[(name, rdtype)] = _rrset(name, rdtype, *texts)
        zone = zone.patched(changes)
        whole = Zone.from_records(ORIGIN, _records(state))
        assert zone.names == whole.names
        assert zone.nonterminals == whole.nonterminals
        assert zone.cuts == whole.cuts
        assert zone.has_wildcards == whole.has_wildcards
        assert sorted(map(repr, zone.rrsets())) == sorted(map(repr, whole.rrsets()))
        for name in [*names, "y.docker.", "z.docker."]:
            assert zone.exists(name) == whole.exists(name), (step, name)
        for pattern in (["*", "docker"], ["*", "a", "docker"], ["any", "*", "a", "docker"]):
            assert sorted(zone.match(pattern)) == sorted(whole.match(pattern))


def test_store_patch_swaps_several_zones_at_once() -> None:
    other = Zone.from_records(
        "other.", [("other.", "SOA", 30, "ns.other. h.other. 1 3600 600 86400 30")]
    )
    store = ZoneStore({ORIGIN: _base(), "other.": other})
    before = store.snapshot()
    after = store.patch(
        {
            ORIGIN: {("web.docker.", "A"): _rrset("web.docker.", "A", "10.0.0.8")},
            "other.": {
                ("x.other.", "TXT"): rrset_from_text("other.", "x.other.", "TXT", 30, ['"x"'])
            },
        }
    )
    assert store.snapshot() is after
    assert after.generation == before.generation + 1
    assert after.base == before.generation
    assert after.changed == {
        ORIGIN: frozenset({"web.docker."}),
        "other.": frozenset({"x.other.", "other."}),
    }
    assert after.changed_names == frozenset({"web.docker.", "x.other.", "other."})
    assert before.find("x.other.") is other  # a reader's snapshot stays whole

    # Nothing to do: nothing swapped.
    assert store.patch({ORIGIN: {}}) is after

    # Adding or dropping whole zones makes an index that is not a patch.
    third = Zone.from_records("third.", [("third.", "SOA", 30, "ns.third. h.third. 1 1 1 1 1")])
    grown = store.patch({}, zones={"third.": third}, removed={"other."})
    assert sorted(z.origin for z in grown) == ["docker.", "third."]
    assert grown.base is None
    assert grown.changed_names is None


def test_store_patch_is_all_or_nothing() -> None:
    store = ZoneStore({ORIGIN: _base()})
    before = store.snapshot()
    with pytest.raises(ZoneError, match="not served"):
        store.patch({"nope.": {}})
    with pytest.raises(ZoneError, match="CNAME beside other data"):
        store.patch(
            {
                ORIGIN: {
                    ("web.docker.", "A"): _rrset("web.docker.", "A", "10.0.0.8"),
                    ("alias.docker.", "A"): _rrset("alias.docker.", "A", "10.0.0.8"),
                }
            }
        )
    with pytest.raises(ValueError, match="patched and also set or removed"):
        store.patch({ORIGIN: _soa(5)}, removed={ORIGIN})
    assert store.snapshot() is before


def test_depends_names_what_the_answer_was_made_from() -> None:
    zone = _base().patched(
        {
            ("_http._tcp.web.docker.", "SRV"): _rrset(
                "_http._tcp.web.docker.", "SRV", "10 100 80 web.docker.", "10 100 80 gone.docker."
            ),
            ("chain.docker.", "CNAME"): _rrset("chain.docker.", "CNAME", "alias.docker."),
        }
    )
    index = ZoneStore({ORIGIN: zone}).snapshot()
    srv = resolve(index, "_http._tcp.web.docker.", rdtype_from_text("SRV"))
    assert srv.depends == {"_http._tcp.web.docker.", "web.docker.", "gone.docker."}
    assert resolve(index, "chain.docker.", A).depends == {
        "chain.docker.",
        "alias.docker.",
        "web.docker.",
    }
    assert resolve(index, "web.docker.", A).depends == {"web.docker."}
    assert resolve(index, "web.docker.", rdtype_from_text("TXT")).depends == {
        "web.docker.",
        ORIGIN,
    }
    assert resolve(index, "nope.docker.", A).depends == {"nope.docker.", ORIGIN}
    wildcard = resolve(index, "*.app.docker.", A)
    assert wildcard.depends == {
        "*.app.docker.",
        ORIGIN,
        "web-1.app.docker.",
        "web-2.app.docker.",
    }
    assert resolve(index, "outside.test.", A).depends == set()
