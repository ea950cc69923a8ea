"""Signed answers validate: BIND's ``delv`` (a real validator, the zone's KSK as its trust
anchor) fully validates positive answers, NXDOMAIN and NODATA of every kind the server
makes, for a combined key and a KSK+ZSK pair, with ECDSAP256SHA256 and Ed25519; answers
after a change validate too, and a tampered answer does not. Without DO nothing changes:
no RRSIG, no NSEC, the same sections as an unsigned server of the same zone, dnsdock query
wildcards still aggregated (with DO they are literal names, so a validator can check them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnsserver import DNSService, ZoneStore, rrset_from_text
from dnsserver.dnssec import ECDSAP256SHA256, ED25519, ZONE_KEY, SigningKey
from dnsserver.signer import Signer
from dnsserver.zonefile import parse_zone_text
from tests.dnsserver.conftest import DOCKER_ZONE
from tests.servers import summary
from tests.signing import (
    FULLY_VALIDATED,
    Keys,
    SignedServer,
    assert_denial_validated,
    assert_validated,
    delv_lines,
    relay,
    replace_address,
    signed_server,
)

ORIGIN = "docker."

VARIANTS = {
    "ecdsa-csk": (ECDSAP256SHA256, False),
    "ecdsa-ksk-zsk": (ECDSAP256SHA256, True),
    "ed25519-csk": (ED25519, False),
    "ed25519-ksk-zsk": (ED25519, True),
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def signed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SignedServer]:
    """DOCKER_ZONE signed with each key variant, served on 127.0.0.1."""
    algorithm, split = VARIANTS[request.param]
    workdir = tmp_path_factory.mktemp(request.param)
    with signed_server(DOCKER_ZONE, ORIGIN, Keys.make(algorithm, split=split), workdir) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedServer]:
    """DOCKER_ZONE signed with one ECDSAP256SHA256 key (the default), no rotation."""
    workdir = tmp_path_factory.mktemp("signed")
    with signed_server(DOCKER_ZONE, ORIGIN, Keys.make(), workdir, rotate=False) as running:
        yield running


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[SignedServer]:
    """A signed DOCKER_ZONE of this test's own, to change."""
    with signed_server(DOCKER_ZONE, ORIGIN, Keys.make(), tmp_path) as running:
        yield running


POSITIVE = {
    "address": ("web.docker.", "A", ["web.docker. 30 IN A 10.0.0.7"]),
    # a validator caps a wildcard expansion's TTL at its NSEC proof's (the negative TTL)
    "rfc4592-wildcard": ("x.wild.docker.", "A", ["x.wild.docker. 10 IN A 10.0.6.1"]),
    "cname-chain": (
        "alias2.docker.",
        "A",
        [
            "alias2.docker. 30 IN CNAME alias.docker.",
            "alias.docker. 30 IN CNAME web.docker.",
            "web.docker. 30 IN A 10.0.0.7",
        ],
    ),
    "srv": (
        "_redis._tcp.redis.docker.",
        "SRV",
        [
            "_redis._tcp.redis.docker. 30 IN SRV 10 100 6379 redis1.redis.docker.",
            "_redis._tcp.redis.docker. 30 IN SRV 10 100 6379 redis2.redis.docker.",
        ],
    ),
    "aggregated": (
        "redis.docker.",
        "A",
        [f"redis.docker. 30 IN A 10.0.1.{i}" for i in (1, 2, 3)],
    ),
    "soa": (
        "docker.",
        "SOA",
        ["docker. 30 IN SOA ns.dns.docker. hostmaster.docker. 2024010101 3600 600 86400 10"],
    ),
}


@pytest.mark.parametrize("case", list(POSITIVE))
def test_delv_fully_validates_positive_answers(signed: SignedServer, case: str) -> None:
    name, rdtype, expected = POSITIVE[case]
    assert_validated(signed.delv(name, rdtype), *expected)


NEGATIVE = {
    "nxdomain": ("nope.docker.", "A", "NXDOMAIN"),
    "nodata": ("web.docker.", "TXT", "NXRRSET"),
    "empty-non-terminal": ("b.c.docker.", "A", "NXRRSET"),
    "wildcard-nodata": ("x.wild.docker.", "MX", "NXRRSET"),
    "nxdomain-below-name": ("no.web.docker.", "AAAA", "NXDOMAIN"),
}


@pytest.mark.parametrize("case", list(NEGATIVE))
def test_delv_fully_validates_denials(signed: SignedServer, case: str) -> None:
    name, rdtype, kind = NEGATIVE[case]
    assert_denial_validated(signed.delv(name, rdtype), name, rdtype, kind)


def test_delv_validates_the_dnskey_rrset(signed: SignedServer) -> None:
    output = signed.delv(ORIGIN, "DNSKEY")
    assert output.startswith(FULLY_VALIDATED + "\n"), output
    dnskeys = [line for line in delv_lines(output) if line.startswith("docker. 3600 IN DNSKEY")]
    assert len(dnskeys) == len(signed.keys.published), output
    for key in signed.keys.published:
        assert f"key id = {key.tag}" in output


def _query(
    port: int, name: str, rdtype: str, *, dnssec: bool, payload: int = 4096
) -> dns.message.Message:
    message = dns.message.make_query(name, rdtype, use_edns=0, payload=payload, want_dnssec=dnssec)
    message.flags &= ~dns.flags.RD
    return dns.query.tcp(message, "127.0.0.1", port=port, timeout=3)


def _dnskeys(port: int) -> dict[dns.name.Name, dns.rrset.RRset]:
    response = _query(port, ORIGIN, "DNSKEY", dnssec=False)
    return {dns.name.from_text(ORIGIN): response.answer[0]}


def _signed_pairs(
    section: list[dns.rrset.RRset],
) -> list[tuple[dns.rrset.RRset, dns.rrset.RRset]]:
    """Each RRset of ``section`` with its RRSIG RRset (asserting there is one)."""
    sigs = {(r.name, r.covers): r for r in section if r.rdtype == dns.rdatatype.RRSIG}
    pairs = []
    for rrset in section:
        if rrset.rdtype in (dns.rdatatype.RRSIG, dns.rdatatype.OPT):
            continue
        sig = sigs.get((rrset.name, rrset.rdtype))
        assert sig is not None, f"no RRSIG for {rrset}"
        pairs.append((rrset, sig))
    return pairs


def test_srv_additional_addresses_are_signed(signed: SignedServer) -> None:
    response = _query(signed.port, "_redis._tcp.redis.docker.", "SRV", dnssec=True)
    keys = _dnskeys(signed.port)
    additional = _signed_pairs(response.additional)
    assert {r.name.to_text() for r, _ in additional} == {
        "redis1.redis.docker.",
        "redis2.redis.docker.",
    }
    for rrset, sig in additional:
        dns.dnssec.validate(rrset, sig, keys)


def test_insecure_referral_proves_there_is_no_ds(signed: SignedServer) -> None:
    """delv cannot follow a referral to a child it cannot reach ("non-improving
    referral"), so dnspython checks the proof: the NSEC of the delegation point, signed,
    listing NS but not DS."""
    response = _query(signed.port, "x.sub.docker.", "A", dnssec=True)
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.flags & dns.flags.AA
    assert not response.answer
    sub = dns.name.from_text("sub.docker.")
    ns = response.get_rrset(response.authority, sub, dns.rdataclass.IN, dns.rdatatype.NS)
    assert ns is not None
    assert [r.to_text() for r in ns] == ["ns.sub.docker."]
    assert not [r for r in response.authority if r.rdtype == dns.rdatatype.DS]
    ((nsec, sig),) = _signed_pairs([r for r in response.authority if r.rdtype != dns.rdatatype.NS])
    assert (nsec.name, nsec.rdtype) == (sub, dns.rdatatype.NSEC)
    types = set(nsec[0].to_text().split()[1:])
    assert "NS" in types
    assert "DS" not in types
    dns.dnssec.validate(nsec, sig, _dnskeys(signed.port))


def test_any_with_do_carries_signatures(server: SignedServer) -> None:
    response = _query(server.port, "dual.docker.", "ANY", dnssec=True)
    pairs = _signed_pairs(response.answer)
    assert {dns.rdatatype.to_text(r.rdtype) for r, _ in pairs} == {"A", "AAAA", "NSEC"}
    keys = _dnskeys(server.port)
    for rrset, sig in pairs:
        dns.dnssec.validate(rrset, sig, keys)
    plain = _query(server.port, "dual.docker.", "ANY", dnssec=False)
    assert not [r for r in plain.answer if r.rdtype == dns.rdatatype.RRSIG]


QUESTIONS = [
    ("web.docker.", "A"),
    ("nope.docker.", "A"),
    ("web.docker.", "TXT"),
    ("b.c.docker.", "A"),
    ("x.wild.docker.", "A"),
    ("x.wild.docker.", "MX"),
    ("alias2.docker.", "A"),
    ("_redis._tcp.redis.docker.", "SRV"),
    ("redis.docker.", "A"),
    ("x.sub.docker.", "A"),
    ("*.redis.docker.", "A"),
    ("docker.", "SOA"),
    ("docker.", "NS"),
]


@pytest.mark.parametrize(("name", "rdtype"), QUESTIONS)
def test_without_do_answers_equal_the_unsigned_servers(
    server: SignedServer, make_service: Callable[..., DNSService], name: str, rdtype: str
) -> None:
    """No RRSIG or NSEC without DO, in any section; the sections equal an unsigned
    server's of the same zone."""
    unsigned = make_service(ZoneStore({ORIGIN: parse_zone_text(DOCKER_ZONE, ORIGIN)}), rotate=False)
    signed_response = _query(server.port, name, rdtype, dnssec=False)
    plain = _query(unsigned.addresses[0][1], name, rdtype, dnssec=False)
    for section in (signed_response.answer, signed_response.authority, signed_response.additional):
        assert not [r for r in section if r.rdtype in (dns.rdatatype.RRSIG, dns.rdatatype.NSEC)], (
            signed_response
        )
    assert summary(signed_response) == summary(plain)
    for ours, theirs in (
        (signed_response.authority, plain.authority),
        (signed_response.additional, plain.additional),
    ):
        assert sorted(r.to_text() for r in ours) == sorted(r.to_text() for r in theirs)


def test_query_wildcards_aggregate_without_do_and_are_literal_with_do(
    server: SignedServer,
) -> None:
    """dnsdock's ``*.redis.docker.`` (any one label) cannot be proved by DNSSEC: without
    DO it still answers the union of redis1..3; with DO it is the literal name, which
    does not exist, and delv validates that NXDOMAIN."""
    plain = _query(server.port, "*.redis.docker.", "A", dnssec=False)
    assert plain.rcode() == dns.rcode.NOERROR
    assert sorted(rd.to_text() for r in plain.answer for rd in r) == [
        "10.0.1.1",
        "10.0.1.2",
        "10.0.1.3",
    ]
    with_do = _query(server.port, "*.redis.docker.", "A", dnssec=True)
    assert with_do.rcode() == dns.rcode.NXDOMAIN
    assert not with_do.answer
    assert_denial_validated(server.delv("*.redis.docker.", "A"), "*.redis.docker.", "A", "NXDOMAIN")


def test_answers_after_a_change_validate(fresh: SignedServer) -> None:
    assert_validated(fresh.delv("web6.docker.", "AAAA"), "web6.docker. 30 IN AAAA fd00::7")
    soa = rrset_from_text(
        ORIGIN,
        ORIGIN,
        "SOA",
        30,
        ["ns.dns.docker. hostmaster.docker. 2024010102 3600 600 86400 10"],
    )
    fresh.store.patch(
        {
            ORIGIN: {
                ("new.docker.", "A"): rrset_from_text(ORIGIN, "new.docker.", "A", 30, ["10.0.9.9"]),
                ("web6.docker.", "AAAA"): None,
                (ORIGIN, "SOA"): soa,
            }
        }
    )
    assert_validated(fresh.delv("new.docker.", "A"), "new.docker. 30 IN A 10.0.9.9")
    assert_denial_validated(fresh.delv("web6.docker.", "AAAA"), "web6.docker.", "AAAA", "NXDOMAIN")
    assert_validated(
        fresh.delv(ORIGIN, "SOA"),
        "docker. 30 IN SOA ns.dns.docker. hostmaster.docker. 2024010102 3600 600 86400 10",
    )
    # the neighbours whose NSEC records changed
    assert_validated(fresh.delv("web.docker.", "A"), "web.docker. 30 IN A 10.0.0.7")
    assert_denial_validated(fresh.delv("newer.docker.", "A"), "newer.docker.", "A", "NXDOMAIN")


def test_a_relay_passing_answers_unchanged_validates(server: SignedServer) -> None:
    with relay(server.port) as passing:
        output = server.delv("web.docker.", "A", port=passing.port)
    assert_validated(output, "web.docker. 30 IN A 10.0.0.7")


def test_a_tampered_answer_fails_validation(server: SignedServer) -> None:
    with relay(server.port, replace_address("10.0.0.7", "10.0.0.66")) as tampering:
        output = server.delv("web.docker.", "A", port=tampering.port)
    assert FULLY_VALIDATED not in output, output
    assert "RRSIG failed to verify" in output, output
    assert "resolution failed" in output, output


def test_answers_validate_through_every_step_of_a_zsk_roll(tmp_path: Path) -> None:
    """Pre-publication (RFC 6781 §4.1.1.1) as the key store drives it: the new ZSK
    published, then signing (the old one still published), then the old one removed;
    delv, anchored at the KSK, validates the zone at every step."""
    first = Keys.make(split=True)
    ksk, old = first.published
    new = SigningKey.generate(flags=ZONE_KEY)
    steps = [
        Keys((ksk, old, new), (ksk,), (old,)),  # the successor published
        Keys((ksk, old, new), (ksk,), (new,)),  # the successor signs, the old one retired
        Keys((ksk, new), (ksk,), (new,)),  # the old one removed
    ]
    current = [first]
    store = ZoneStore(
        {ORIGIN: parse_zone_text(DOCKER_ZONE, ORIGIN)}, signer=Signer(lambda _: current[0])
    )
    anchor = tmp_path / "anchor.conf"
    anchor.write_text(first.trust_anchors(ORIGIN))
    service = DNSService(store, [("127.0.0.1", 0)])
    service.start()
    try:
        server = SignedServer(service, store, first, ORIGIN, anchor)
        serial = store.snapshot().zones[ORIGIN].serial
        for keys in steps:
            current[0] = keys
            store.resign()
            zone = store.snapshot().zones[ORIGIN]
            assert zone.serial == serial + 1  # secondaries see the new signatures
            serial = zone.serial
            dnskey = zone.get(ORIGIN, 48)
            assert dnskey is not None
            assert len(dnskey.rdatas) == len(keys.published)
            assert_validated(server.delv("web.docker."), "web.docker. 30 IN A 10.0.0.7")
            assert_denial_validated(server.delv("nope.docker."), "nope.docker.", "A", "NXDOMAIN")
            signed_by = {
                int.from_bytes(r[16:18], "big") for r in _rrsigs(server.port, "web.docker.")
            }
            assert signed_by == {keys.zsk[0].tag}
    finally:
        service.stop()


def _rrsigs(port: int, name: str) -> list[bytes]:
    response = dns.query.udp(
        dns.message.make_query(name, "A", want_dnssec=True), "127.0.0.1", port=port, timeout=2
    )
    return [rdata.to_wire() for rrset in response.answer if rrset.rdtype == 46 for rdata in rrset]
