"""NXDOMAIN from templates (dnsserver/negative.py): byte for byte what the general path
renders, and only where the general path would say NXDOMAIN."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import pytest

from dnsserver import DNSService, ZoneDirectory, ZoneStore, parse_zone_text, rrset_from_text
from dnsserver.dnssec import ECDSAP256SHA256
from dnsserver.negative import NegativeAnswers
from dnsserver.signer import Signer
from tests.dnsserver.conftest import Server
from tests.servers import query
from tests.signing import Keys


@pytest.fixture(scope="module")
def store(zone_files: Path) -> ZoneStore:
    store = ZoneStore()
    ZoneDirectory(zone_files, store).rescan()
    return store


def _wire(name: str, rdtype: str = "A", *, edns: int = -1, odd_case: bool = False) -> bytes:
    message = dns.message.make_query(name, rdtype, use_edns=edns, want_dnssec=edns >= 0)
    wire = bytearray(message.to_wire())
    if odd_case:  # 0x20: mixed case in the question, echoed as sent
        for n in range(13, 13 + len(name)):
            if 0x61 <= wire[n] <= 0x7A and n % 2:
                wire[n] -= 0x20
    return bytes(wire)


def _general(store: ZoneStore, data: bytes) -> bytes | None:
    return DNSService(store, [])._answer(data, store.snapshot(), True).wire


def test_templates_make_the_bytes_the_general_path_makes(store: ZoneStore) -> None:
    negative = NegativeAnswers(store.snapshot(), ra=False, edns_size=4096)
    chooser = random.Random(7)
    made = 0
    for n in range(400):
        label = "".join(chooser.choice("abcdefghij0123-_") for _ in range(chooser.randint(1, 20)))
        zone = chooser.choice(["skydns.local.", "east.skydns.local.", "0.10.in-addr.arpa."])
        rdtype = chooser.choice(["A", "AAAA", "SRV", "TXT", "SOA", "MX"])
        data = _wire(f"x{label}.{zone}", rdtype, edns=n % 2 - 1, odd_case=bool(n % 3))
        wire = negative.answer(data)
        assert wire is not None, data
        assert wire == _general(store, data)
        assert dns.message.from_wire(wire).rcode() == dns.rcode.NXDOMAIN
        made += 1
    assert made == 400


@pytest.mark.parametrize(
    ("name", "rdtype", "why"),
    [
        ("web.docker.", "A", "exists"),
        ("web.docker.", "TXT", "exists (NODATA)"),
        ("a.b.c.docker.", "A", "an empty non-terminal (NODATA)"),
        ("x.sub.docker.", "A", "below a delegation: a referral"),
        ("*.redis.docker.", "A", "a query wildcard"),
        ("any.redis.docker.", "A", "a query wildcard"),
        ("x.wild.docker.", "A", "an RFC 4592 wildcard record"),
        ("nothing.docker.", "A", "a zone with wildcard records"),
        ("www.example.test.", "A", "outside the zones"),
        ("9.9.0.10.in-addr.arpa.", "PTR", "PTR may be forwarded"),
        ("x.docker.", "ANY", "ANY stays on one path"),
        ("x.docker.", "AXFR", "a zone transfer"),
    ],
)
def test_everything_but_a_plain_nxdomain_goes_to_the_general_path(
    store: ZoneStore, name: str, rdtype: str, why: str
) -> None:
    negative = NegativeAnswers(store.snapshot(), ra=False, edns_size=4096)
    assert negative.answer(_wire(name, rdtype, edns=0)) is None, why


def test_queries_of_another_shape_go_to_the_general_path(store: ZoneStore) -> None:
    negative = NegativeAnswers(store.snapshot(), ra=False, edns_size=4096)
    plain = _wire("nothing.skydns.local.", edns=0)
    assert negative.answer(plain) is not None
    nsid = dns.message.make_query(
        "nothing.skydns.local.",
        "A",
        use_edns=0,
        options=[dns.edns.GenericOption(dns.edns.NSID, b"")],
    ).to_wire()
    assert negative.answer(nsid) is None  # an option to answer: the general path
    version1 = dns.message.make_query("nothing.skydns.local.", "A", use_edns=1).to_wire()
    assert negative.answer(version1) is None  # BADVERS
    notify = bytearray(plain)
    notify[2] |= 4 << 3
    assert negative.answer(bytes(notify)) is None  # opcode NOTIFY
    assert negative.answer(plain + b"\x00") is None  # trailing garbage: FORMERR
    assert negative.answer(plain[:20]) is None
    escaped = _wire("a\\.b.skydns.local.")
    assert negative.answer(escaped) is None  # a dot inside a label


def _question(labels: list[bytes], rdtype: str = "A") -> bytes:
    """A query (no EDNS) for a name of any labels, even ones dnspython would refuse."""
    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    return b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + wire + _wire("x.", rdtype)[-4:]


@pytest.mark.parametrize(
    "labels",
    [
        [b"NOTHING", b"SKYDNS", b"LOCAL"],  # all upper case: the parent's case kept apart
        [b"nOtHiNg", b"SkYdNs", b"lOcAl"],
        [b"a" * 63, b"skydns", b"local"],  # the longest label, first and in the middle
        [b"x", b"b" * 63, b"skydns", b"local"],
        [b"x", b"y", b"rails", b"staging", b"east", b"skydns", b"local"],  # below a name
        [b"x", b"staging", b"east", b"skydns", b"local"],  # below an empty non-terminal
        [b"a-_", b"b_-", b"skydns", b"local"],
        [b"x", b"y", b"z", b"0", b"10", b"in-addr", b"arpa"],
        [b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 48, b"skydns", b"local"],  # 255 bytes
    ],
)
def test_names_of_every_shape_get_the_general_paths_bytes(
    store: ZoneStore, labels: list[bytes]
) -> None:
    negative = NegativeAnswers(store.snapshot(), ra=False, edns_size=4096)
    for data in (_question(labels), _question(labels, "SOA")):
        wire = negative.answer(data)
        assert wire is not None
        assert wire == _general(store, data)
    assert negative.answer(_question(labels)) == _general(store, _question(labels))  # kept


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ([b"skydns", b"local"], "the apex (NODATA)"),
        ([b"SkyDNS", b"local"], "the apex in mixed case"),
        ([b"staging", b"east", b"skydns", b"local"], "an empty non-terminal (NODATA)"),
        ([b"a b", b"skydns", b"local"], "a space in the first label"),
        ([b"a\x00b", b"skydns", b"local"], "a zero byte in the first label"),
        ([b"\xc3\xa9", b"skydns", b"local"], "not ASCII"),
        ([b"x", b"a b", b"skydns", b"local"], "a space in the parent"),
        ([b"x", b"a\x00b", b"skydns", b"local"], "a zero byte in the parent"),
        ([b"x", b"*", b"skydns", b"local"], "a query wildcard in the parent"),
        ([b"x", b"ANY", b"skydns", b"local"], "dnsdock's query wildcard in the parent"),
        ([b"Any", b"skydns", b"local"], "dnsdock's query wildcard, upper case"),
        ([b"a" * 64, b"skydns", b"local"], "a label over 63 bytes (FORMERR)"),
        ([b"x", b"a" * 64, b"skydns", b"local"], "a label over 63 bytes in the parent"),
        ([b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 49, b"skydns", b"local"], "256 bytes"),
        ([b"nothing", b"local"], "outside the zones"),
        ([b"x", b"y", b"sub", b"docker"], "below a delegation, two labels down"),
        ([b"x", b"y", b"wild", b"docker"], "in a zone with wildcard records"),
        ([b"x"], "below the root"),
    ],
)
def test_odd_names_go_to_the_general_path(store: ZoneStore, labels: list[bytes], why: str) -> None:
    negative = NegativeAnswers(store.snapshot(), ra=False, edns_size=4096)
    assert negative.answer(_question(labels)) is None, why
    assert negative.answer(_question(labels)) is None, why  # what was kept says so too


def test_a_compression_pointer_in_the_question_goes_to_the_general_path(
    store: ZoneStore,
) -> None:
    negative = NegativeAnswers(store.snapshot(), ra=False, edns_size=4096)
    data = _question([b"x", b"skydns", b"local"])
    assert negative.answer(data) is not None
    assert negative.answer(data[:14] + b"\xc0\x0c" + data[-4:]) is None


def test_a_name_longer_than_255_bytes_is_formerr_from_the_general_path(
    store: ZoneStore,
) -> None:
    labels = [b"a" * 63, b"b" * 63, b"c" * 63, b"d" * 49, b"skydns", b"local"]
    assert (
        NegativeAnswers(store.snapshot(), ra=False, edns_size=4096).answer(_question(labels))
        is None
    )
    assert dns.message.from_wire(_general(store, _question(labels)) or b"").rcode() == (
        dns.rcode.FORMERR
    )


def test_a_zone_inside_another_gets_its_own_templates() -> None:
    """The longest zone: `sub.cut.test.` is served, and delegated from `cut.test.`."""
    inner = CUT_ZONE.replace("cut.test.", "sub.cut.test.").replace(" 1 3600", " 9 3600")
    store = ZoneStore(
        {
            "cut.test.": parse_zone_text(CUT_ZONE, "cut.test."),
            "sub.cut.test.": parse_zone_text(inner, "sub.cut.test."),
        }
    )
    negative = NegativeAnswers(store.snapshot(), ra=False, edns_size=1232)
    service = DNSService(store, [], max_udp_size=1232)
    for name in ("x.sub.cut.test.", "x.y.sub.cut.test.", "x.cut.test.", "x.y.cut.test."):
        for edns in (-1, 0):
            data = _wire(name, edns=edns, odd_case=True)
            wire = negative.answer(data)
            assert wire is not None, name
            assert wire == service._answer(data, store.snapshot(), True).wire
    for name in ("sub.cut.test.", "x.sub.sub.cut.test.", "ns.sub.cut.test."):
        assert negative.answer(_wire(name)) is None, name


def test_a_lone_cookie_comes_back_in_the_opt_record(store: ZoneStore) -> None:
    """The server hands `answer` the COOKIE option to return (`cookies.answer`) when the
    query's OPT record ends with one; the rest is the answer without it."""
    negative = NegativeAnswers(store.snapshot(), ra=False, edns_size=4096)
    option = b"\x00\x0a\x00\x18" + bytes(range(24))
    for do in (False, True):
        plain = dns.message.make_query("x.skydns.local.", "A", use_edns=0, want_dnssec=do)
        cookied = dns.message.make_query(
            "x.skydns.local.",
            "A",
            use_edns=0,
            want_dnssec=do,
            options=[dns.edns.GenericOption(dns.edns.COOKIE, bytes(24))],
        )
        cookied.id = plain.id
        without = _general(store, plain.to_wire()) or b""
        wire = negative.answer(cookied.to_wire(), option)
        assert wire == without[:-2] + len(option).to_bytes(2, "big") + option
        assert negative.answer(cookied.to_wire()) is None  # the option not accounted for
        assert negative.answer(plain.to_wire(), option) is None


def test_a_flood_of_random_names_gets_nxdomain_over_udp(dockzone_dns: Server) -> None:
    """Each name asked once: no answer cache can help, every one is NXDOMAIN with the SOA."""
    for n in range(200):
        name = f"flood{n}-{random.getrandbits(32):x}.skydns.local."
        response = dockzone_dns.query(name, "A")
        assert response.rcode() == dns.rcode.NXDOMAIN
        assert [rrset.name.to_text() for rrset in response.authority] == ["skydns.local."]


CUT_ZONE = """\
$ORIGIN cut.test.
$TTL 30
@ IN SOA ns hostmaster 1 3600 600 86400 30
@ IN NS ns
ns IN A 127.0.0.1
sub IN NS ns.sub
ns.sub IN A 10.0.0.1
"""


def test_names_below_a_delegation_get_the_referral_not_a_template() -> None:
    store = ZoneStore({"cut.test.": parse_zone_text(CUT_ZONE, "cut.test.")})
    negative = NegativeAnswers(store.snapshot(), ra=False, edns_size=1232)
    assert negative.answer(_wire("x.sub.cut.test.")) is None
    assert negative.answer(_wire("deeper.x.sub.cut.test.", edns=0)) is None
    data = _wire("other.cut.test.", edns=0)
    wire = negative.answer(data)
    assert wire is not None
    assert (
        wire == DNSService(store, [], max_udp_size=1232)._answer(data, store.snapshot(), True).wire
    )


def test_a_name_that_comes_into_existence_answers_at_once(
    make_service: Callable[..., DNSService],
) -> None:
    """NXDOMAIN answers made from templates are kept apart from the answer cache; a patch
    that adds the name (or moves the SOA) drops them."""
    store = ZoneStore({"cut.test.": parse_zone_text(CUT_ZONE, "cut.test.")})
    port = make_service(store).addresses[0][1]
    for _ in range(3):
        assert query("127.0.0.1", port, "new.cut.test.", "A").rcode() == dns.rcode.NXDOMAIN
    added = rrset_from_text("cut.test.", "new.cut.test.", "A", 30, ["10.0.0.9"])
    store.patch({"cut.test.": {("new.cut.test.", "A"): added}})
    response = query("127.0.0.1", port, "new.cut.test.", "A")
    assert [rr.to_text() for rrset in response.answer for rr in rrset] == ["10.0.0.9"]
    store.patch({"cut.test.": {("new.cut.test.", "A"): None}})
    assert query("127.0.0.1", port, "new.cut.test.", "A").rcode() == dns.rcode.NXDOMAIN


def _sections(wire: bytes) -> tuple[object, ...]:
    message = dns.message.from_wire(wire)
    return (
        message.id,
        message.flags,
        message.rcode(),
        message.ednsflags,
        message.question,
        # Names compare without case: each path compresses some owners into the question,
        # which keeps the case it was asked in.
        sorted(rrset.to_text().lower() for rrset in message.answer),
        sorted(rrset.to_text().lower() for rrset in message.authority),
    )


def test_a_signed_zone_gets_the_nsec_proofs_the_general_path_gives() -> None:
    """DO to a signed zone: the same records as the general path (`proof`), compressed
    differently; without DO the unsigned template's bytes as before."""
    signed = ZoneStore(
        {"docker.": parse_zone_text(SIGNED_ZONE, "docker.")},
        signer=Signer(lambda _: Keys.make(ECDSAP256SHA256)),
    )
    negative = NegativeAnswers(signed.snapshot(), ra=False, edns_size=4096)
    chooser = random.Random(11)
    for n in range(200):
        label = "".join(chooser.choice("abcdefghij0123-_") for _ in range(chooser.randint(1, 20)))
        name = chooser.choice([f"x{label}.docker.", f"x{label}.app.docker.", f"{label}z.docker."])
        rdtype = chooser.choice(["A", "AAAA", "SOA", "TXT"])
        data = _wire(name, rdtype, edns=0, odd_case=bool(n % 3))
        wire = negative.answer(data)
        assert wire is not None, name
        assert _sections(wire) == _sections(_general(signed, data) or b"")
        authority = dns.message.from_wire(wire).authority
        assert {rrset.rdtype for rrset in authority} == {6, 46, 47}  # SOA, RRSIG, NSEC
        plain = _wire(name, rdtype, edns=-1)
        assert negative.answer(plain) == _general(signed, plain)


SIGNED_ZONE = """\
$ORIGIN docker.
$TTL 30
@ IN SOA ns.dns hostmaster 7 3600 600 86400 10
@ IN NS ns.dns
ns.dns IN A 127.0.0.1
web IN A 10.0.0.7
web.app IN A 10.0.0.8
db.app IN A 10.0.0.9
zz IN TXT "last"
"""
