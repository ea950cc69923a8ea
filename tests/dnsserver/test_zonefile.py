"""Master-file parsing: what RFC 1035 allows, what named-checkzone rejects, and where."""

from __future__ import annotations

from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from dnsserver import Zone, ZoneLoadError, load_zone_file, parse_zone_text
from dnsserver.rdata import rdtype_from_text
from tests.helpers import named_checkzone

HEAD = "$TTL 300\n@ IN SOA ns.example. admin.example. 1 3600 600 86400 60\n@ IN NS ns.example.\n"


def _texts(zone: Zone, name: str, rdtype: str) -> list[str]:
    """The RRset's rdata as dnspython prints it (an independent decoder)."""
    rrset = zone.get(name, rdtype_from_text(rdtype))
    assert rrset is not None, f"no {rdtype} at {name}"
    return sorted(
        dns.rdata.from_wire(
            dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), r, 0, len(r)
        ).to_text()
        for r in rrset.rdatas
    )


# (zone text after HEAD, name, type, expected rdata texts, expected ttl)
PARSE_CASES = [
    ("www A 192.0.2.1", "www.example.", "A", ["192.0.2.1"], 300),
    ("www 60 IN A 192.0.2.1", "www.example.", "A", ["192.0.2.1"], 60),
    ("www IN 60 A 192.0.2.1", "www.example.", "A", ["192.0.2.1"], 60),
    ("www 1h A 192.0.2.1", "www.example.", "A", ["192.0.2.1"], 3600),
    ("WWW.Example. a 192.0.2.1", "www.example.", "A", ["192.0.2.1"], 300),
    ("www A 192.0.2.1\n    A 192.0.2.2", "www.example.", "A", ["192.0.2.1", "192.0.2.2"], 300),
    ("www A 192.0.2.1\nwww A 192.0.2.1", "www.example.", "A", ["192.0.2.1"], 300),
    ("v6 AAAA 2001:db8::1", "v6.example.", "AAAA", ["2001:db8::1"], 300),
    ("a CNAME www", "a.example.", "CNAME", ["www.example."], 300),
    ("a CNAME @", "a.example.", "CNAME", ["example."], 300),
    ("@ MX 10 mail", "example.", "MX", ["10 mail.example."], 300),
    ("_s._tcp SRV 1 2 3 t.other.", "_s._tcp.example.", "SRV", ["1 2 3 t.other."], 300),
    (
        't TXT "a b" c "q\\"uote" "\\065\\;"',
        "t.example.",
        "TXT",
        ['"a b" "c" "q\\"uote" "A;"'],
        300,
    ),
    ('t TXT ( "one" ; comment\n "two" )', "t.example.", "TXT", ['"one" "two"'], 300),
    ('t TXT "semi;colon (paren"', "t.example.", "TXT", ['"semi;colon (paren"'], 300),
    ("1.2 PTR host.example.", "1.2.example.", "PTR", ["host.example."], 300),
    ("sub NS ns.sub", "sub.example.", "NS", ["ns.sub.example."], 300),
    ("$ORIGIN sub.example.\nx A 192.0.2.9", "x.sub.example.", "A", ["192.0.2.9"], 300),
    ('c CAA 0 issue "ca.example"', "c.example.", "CAA", ['0 issue "ca.example"'], 300),
    ("g TYPE999 \\# 3 abcdef", "g.example.", "TYPE999", ["\\# 3 abcdef"], 300),
    ("e\\.dot A 192.0.2.4", "e\\.dot.example.", "A", ["192.0.2.4"], 300),
]


@pytest.mark.parametrize(
    ("body", "name", "rdtype", "expected", "ttl"),
    PARSE_CASES,
    ids=[c[0].replace("\n", "|") for c in PARSE_CASES],
)
def test_parse(body: str, name: str, rdtype: str, expected: list[str], ttl: int) -> None:
    zone = parse_zone_text(HEAD + body + "\n", "example.")
    assert _texts(zone, name, rdtype) == expected
    rrset = zone.get(name, rdtype_from_text(rdtype))
    assert rrset is not None
    assert rrset.ttl == ttl


def test_soa_across_lines_with_comments() -> None:
    zone = parse_zone_text(
        """$ORIGIN example.
@ 3600 IN SOA ns admin (
        42   ; serial
        1h   ; refresh
        10m  ; retry
        1w   ; expire
        5m ) ; minimum
  IN NS ns
ns A 192.0.2.53
""",
    )
    assert zone.origin == "example."
    assert zone.serial == 42
    assert zone.negative_ttl == 300
    assert _texts(zone, "example.", "SOA") == ["ns.example. admin.example. 42 3600 600 604800 300"]
    assert zone.get("example.", rdtype_from_text("NS")) is not None


def test_dockzone_rendered_file(tmp_path: Path) -> None:
    """The reconciler's format: absolute names, one RR per line, padded columns."""
    text = """\
; dockzone zone file for docker. (written by dockzone; edits are overwritten)
$ORIGIN docker.
$TTL 30
docker.                      30 IN SOA   ns.dns.docker. hostmaster.docker. 1763894400 3600 600 86400 30
docker.                      30 IN NS    ns.dns.docker.
ns.dns.docker.               30 IN A     127.0.0.1
web.docker.                  30 IN A     10.0.0.7
_http._tcp.web.docker.       30 IN SRV   10 100 80 web.docker.
"""
    path = tmp_path / "db.docker"
    path.write_text(text)
    assert named_checkzone("docker.", path).returncode == 0
    zone = load_zone_file(path)
    assert zone.origin == "docker."
    assert sorted(zone.names) == [
        "_http._tcp.web.docker.",
        "docker.",
        "ns.dns.docker.",
        "web.docker.",
    ]
    assert zone.nonterminals == {"dns.docker.", "_tcp.web.docker."}
    assert _texts(zone, "_http._tcp.web.docker.", "SRV") == ["10 100 80 web.docker."]


def test_without_ttl_directive_the_soa_minimum_is_the_default() -> None:
    zone = parse_zone_text(
        "example. IN SOA ns.example. admin.example. 1 3600 600 86400 120\n"
        "example. IN NS ns.example.\nwww IN A 192.0.2.1\n",
        "example.",
    )
    www = zone.get("www.example.", rdtype_from_text("A"))
    assert www is not None
    assert www.ttl == 120


def test_include(tmp_path: Path) -> None:
    (tmp_path / "hosts.inc").write_text("www A 192.0.2.1\n")
    path = tmp_path / "db.example"
    path.write_text(HEAD + "$INCLUDE hosts.inc\nmail A 192.0.2.2\n")
    zone = load_zone_file(path, "example.")
    assert _texts(zone, "www.example.", "A") == ["192.0.2.1"]


# (body after HEAD or a whole file, line, reason fragment)
ERROR_CASES = [
    ("$TTL 30\nwww A 192.0.2.1\n", 3, "no SOA", False),
    ("www.other. A 192.0.2.1", 4, "www.other. is outside the origin example.", True),
    ("web A 192.0.2.1\nweb CNAME x.example.", 5, "CNAME beside other data at web.example.", True),
    ("web CNAME x.example.\nweb A 192.0.2.1", 5, "CNAME beside other data at web.example.", True),
    ("web CNAME x.example.\nweb CNAME y.example.", 5, "more than one CNAME", True),
    ("www A 192.0.2", 4, "bad A rdata", True),
    ("www A 192.0.2.1 extra", 4, "bad A rdata", True),
    ("www AAAA nope", 4, "bad AAAA rdata", True),
    ("www MX ten mail", 4, "bad MX rdata", True),
    ("www SRV 1 2 mail", 4, "bad SRV rdata", True),
    ("www BOGUS 1", 4, "expected a record type", True),
    ("www CH A 192.0.2.1", 4, "class CH is not supported", True),
    ('t TXT "open', 4, "unterminated quoted string", True),
    ("t TXT ( a", 4, "unbalanced '('", True),
    ("t TXT a )", 4, "unbalanced ')'", True),
    ("$GENERATE 1-3 h$ A 192.0.2.$", 4, "unsupported or malformed directive", True),
    ("x..y A 192.0.2.1", 4, "empty label", True),
    ("sub SOA ns admin 1 2 3 4 5", 4, "SOA at sub.example., not at the zone apex", True),
]


@pytest.mark.parametrize(
    ("body", "line", "reason", "with_head"),
    ERROR_CASES,
    ids=[c[2] + "|" + c[0].split("\n")[-1] for c in ERROR_CASES],
)
def test_errors_name_file_and_line(
    tmp_path: Path, body: str, line: int, reason: str, with_head: bool
) -> None:
    path = tmp_path / "db.example"
    path.write_text((HEAD if with_head else "") + body + "\n")
    with pytest.raises(ZoneLoadError) as info:
        load_zone_file(path, "example.")
    error = info.value
    assert error.path == str(path)
    assert reason in error.reason
    if reason != "no SOA":
        assert error.line == line
        assert str(error).startswith(f"{path}:{line}: ")
    # BIND agrees that each of these files is broken.
    assert named_checkzone("example.", path).returncode != 0


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ZoneLoadError, match="cannot read"):
        load_zone_file(tmp_path / "db.missing")


# Lines as dockzone writes them, and lines of every other kind mixed in, for the fast path.
FAST_PATH_TEXT = """\
; dockzone zone file for docker. (written by dockzone; edits are overwritten)
$ORIGIN docker.
$TTL 30
docker.                30 IN SOA   ns.dns.docker. hostmaster.docker. 7 3600 600 86400 30
docker.                30 IN NS    ns.dns.docker.
ns.dns.docker.         30 IN A     127.0.0.1
_http._tcp.web.docker. 30 IN SRV   10 100 8080 web.docker.
_http._tcp.web.docker. 30 IN SRV   20 50 8081 web2
app.docker.            30 IN A     10.0.0.1
app.docker.            60 IN A     10.0.0.2
app.docker.            30 IN A     10.0.0.1
web.docker.            30 IN A     10.0.0.1
web.docker.            30 IN TXT   "service=web" "image=nginx:1.25"
web.docker.            30 IN TXT   "a;b"
web.docker.            30 IN TXT   plain "mixed"
web.docker.            30 IN TXT   "caf\u00e9"
web2                   30 IN AAAA  fd00::2
web2                   30 IN A     10.0.0.2 ; a comment after data
web2                   30 IN MX    10 web.docker.
alias.docker.          30 IN CNAME web.docker.
alias2.docker.         30 IN CNAME web.docker.\x20\x20
7.0.0.10.in-addr.arpa.docker. 30 IN PTR web
*.wild.docker.         30 IN A     10.0.9.9
sub.docker.            30 IN NS    ns.sub.docker.
ns.sub.docker.         30 IN A     10.0.5.1
tab.docker.\t30\tIN\tA\t10.0.0.3
crlf.docker.           30 IN A     10.0.0.4\r
                       30 IN A     10.0.0.5
esc\\.dot.docker.      30 IN A     10.0.0.6
lower.docker.          30 IN a     10.0.0.7
$ORIGIN sub2.docker.
rel                    30 IN A     10.0.0.8
big                    4294967295 IN A 10.0.0.9
"""


def test_the_fast_path_builds_what_the_general_tokenizer_builds() -> None:
    from dnsserver.zone import ZoneBuilder  # noqa: PLC0415
    from dnsserver.zonefile import _Parser  # noqa: PLC0415 (the two paths, side by side)

    fast = ZoneBuilder("docker.")
    _Parser("docker.", fast, fast=True).parse(FAST_PATH_TEXT, "f")
    general = ZoneBuilder("docker.")
    _Parser("docker.", general).parse(FAST_PATH_TEXT, "f")
    ours, theirs = fast.build(), general.build()
    assert sorted(ours.rrsets()) == sorted(theirs.rrsets())
    assert ours.nonterminals == theirs.nonterminals
    assert ours.cuts == theirs.cuts == {"sub.docker."}
    assert ours.has_wildcards
    assert len(ours) == 28
    assert _texts(ours, "alias2.docker.", "CNAME") == ["web.docker."]
    assert _texts(ours, "app.docker.", "A") == ["10.0.0.1", "10.0.0.2"]
    app = ours.get("app.docker.", rdtype_from_text("A"))
    assert app is not None
    assert app.ttl == 30
    assert _texts(ours, "web.docker.", "TXT") == [
        '"a;b"',
        '"caf\\195\\169"',
        '"plain" "mixed"',
        '"service=web" "image=nginx:1.25"',
    ]
    assert _texts(ours, "crlf.docker.", "A") == ["10.0.0.4", "10.0.0.5"]
    assert _texts(ours, "rel.sub2.docker.", "A") == ["10.0.0.8"]
    assert ours.get("esc\\.dot.docker.", 1) is not None


@pytest.mark.parametrize(
    ("tail", "line", "reason"),
    [
        ("x.docker. 30 IN A 10.0.0", 5, "bad A rdata"),
        ("x.docker. 30 IN SRV 1 2 x.docker.", 5, "bad SRV rdata"),
        ("x.docker. 30 IN SRV 1 2 70000 x.docker.", 5, "bad SRV rdata"),
        ("x.docker. 4294967296 IN A 10.0.0.1", 5, "TTL out of range"),
        ('x.docker. 30 IN TXT "' + "y" * 256 + '"', 5, "longer than 255"),
        ("x.other. 30 IN A 10.0.0.1", 5, "outside the origin"),
        ("x.docker. 30 IN A 10.0.0.1\nx.docker. 30 IN CNAME y.docker.", 6, "CNAME beside"),
        ("x..docker. 30 IN A 10.0.0.1", 5, "empty label"),
        # a relative label of exactly 64 bytes (found by fuzzing: it used to crash)
        ("x.docker. 30 IN CNAME " + "a" * 64, 5, "label longer than 63 bytes"),
        ("a" * 64 + " 30 IN A 10.0.0.1", 5, "label longer than 63 bytes"),
    ],
)
def test_fast_path_errors_name_the_line(tail: str, line: int, reason: str) -> None:
    head = (
        "; dockzone (header)\n$TTL 30\n"
        "docker. 30 IN SOA ns.docker. h.docker. 1 3600 600 86400 30\n"
        "docker. 30 IN NS ns.docker.\n"
    )
    with pytest.raises(ZoneLoadError) as info:
        parse_zone_text(head + tail + "\n", "docker.", "db.docker")
    assert info.value.line == line
    assert reason in info.value.reason


def test_records_running_across_lines_take_the_general_path() -> None:
    zone = parse_zone_text(
        "docker. 30 IN SOA ns.docker. h.docker. 1 3600 600 86400 30\n"
        "web.docker. 30 IN A 10.0.0.1\n"
        't.docker. 30 IN TXT ( "one"\n  "two" )\n'
        'u.docker. 30 IN TXT "multi\nline"\n',
        "docker.",
    )
    assert _texts(zone, "t.docker.", "TXT") == ['"one" "two"']
    assert _texts(zone, "u.docker.", "TXT") == ['"multi\\010line"']
    assert _texts(zone, "web.docker.", "A") == ["10.0.0.1"]
