"""The daemon's in-process answers equal BIND's on the zone files the same daemon wrote.

dockzone hands its built zones to the server directly (no zone file parsing), so this is
the check that the two paths agree: every owner name x type, plus misses, compared on
rcode, AA and answer RRsets (ignoring order), and the SOA of negative answers. Wildcard
labels are dockzone-only and not compared; so are A/AAAA at a service whose host is a name
beside its SRV (SkyDNS's CNAME, which a zone file cannot hold): there dockzone must answer
that CNAME where BIND has no data.

Beside that table, generated questions (hypothesis, a fixed set per run) compare whole
responses the way a resolver sees them, and messages that are not plain queries (other
opcodes, EDNS versions above 0) are compared with BIND on the wire. Each test's docstring
lists what is left out and why.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# -- generated questions -------------------------------------------------------------------

EXAMPLES = int(os.environ.get("DOCKZONE_DIFFERENTIAL_EXAMPLES", "2000"))
"""Generated questions per run: bounded, so the test stays well under a minute."""

GENERATED_TYPES = [*TYPES, "ANY"]
COOKIE = 10
ECS = 8
QUERY_WILDCARD_LABELS = ("*", "any")
LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda label: label not in QUERY_WILDCARD_LABELS
)


@dataclass(frozen=True)
class Corpus:
    """The names of the rendered zone files, by kind, and their data (dnspython zones)."""

    zones: dict[str, dns.zone.Zone]
    existing: tuple[str, ...]  # owner names holding data (services, aliases, aggregates)
    above: tuple[str, ...]  # names above an owner inside its zone: aggregates, empty non-terminals
    forward: tuple[str, ...]  # the forward zones' origins
    reverse: tuple[str, ...]  # the reverse zones' origins
    targets: dict[str, set[str]]  # SRV and MX targets by owner name

    @classmethod
    def load(cls, directory: Path) -> Corpus:
        zones = {
            path.name[3:] + ".": dns.zone.from_file(
                str(path), origin=path.name[3:] + ".", relativize=False
            )
            for path in sorted(directory.glob("db.*"))
        }
        existing: set[str] = set()
        above: set[str] = set()
        for origin, zone in zones.items():
            apex = dns.name.from_text(origin)
            for name in zone.nodes:
                existing.add(name.to_text())
                parent = name.parent() if name != apex else apex
                while parent != apex and parent.is_subdomain(apex):
                    above.add(parent.to_text())
                    parent = parent.parent()
        reverse = tuple(o for o in zones if o.endswith(("in-addr.arpa.", "ip6.arpa.")))
        return cls(
            zones,
            tuple(sorted(existing)),
            tuple(sorted(above)),
            tuple(o for o in zones if o not in reverse),
            reverse,
            service_targets(directory),
        )


@dataclass(frozen=True)
class Question:
    """One generated query: what goes on the wire and to which transport."""

    kind: str
    wire: bytes
    question: bytes  # the question section as sent, compared byte for byte with the echo
    tcp: bool
    text: str  # for failure messages

    @property
    def qname(self) -> str:
        return self.text.split()[0]


def _mixed_case(name: str, rnd: random.Random) -> str:
    """RFC 5452 §9 / the 0x20 trick: letters in random case; servers echo them as asked."""
    return "".join(c.upper() if c.isalpha() and rnd.random() < 0.5 else c for c in name)


def _reverse_name(origin: str, rnd: random.Random) -> str:
    """A name inside a reverse zone: existing or not, an address or a partial one."""
    if origin.endswith("ip6.arpa."):
        depth = 34 - len(origin.split("."))  # 32 nibbles and "ip6" "arpa" ""
        labels = [f"{rnd.randrange(16):x}" for _ in range(rnd.randint(1, max(1, depth)))]
    else:
        depth = 7 - len(origin.split("."))  # 4 octets and "in-addr" "arpa" ""
        labels = [str(rnd.randrange(256)) for _ in range(rnd.randint(1, max(1, depth)))]
    return ".".join(labels) + "." + origin


@st.composite
def questions(draw: st.DrawFn, corpus: Corpus) -> Question:
    """Existing, missing, below-existing, aggregated, reverse, out-of-zone and
    wildcard-label names x every common type x EDNS, DO, COOKIE, unknown options, odd case."""
    rnd = draw(st.randoms(use_true_random=False))
    kind = draw(
        st.sampled_from(
            ["existing", "existing", "missing", "under", "above", "reverse", "outside", "wildcard"]
        )
    )
    if kind == "existing":
        name = draw(st.sampled_from(corpus.existing))
    elif kind == "missing":
        name = draw(LABEL) + "." + draw(st.sampled_from(corpus.forward))
    elif kind == "under":
        name = draw(LABEL) + "." + draw(st.sampled_from(corpus.existing))
    elif kind == "above":
        name = draw(st.sampled_from(corpus.above))
    elif kind == "reverse":
        if draw(st.booleans()):
            name = draw(st.sampled_from([n for n in corpus.existing if n.endswith(".arpa.")]))
        else:
            name = _reverse_name(draw(st.sampled_from(corpus.reverse)), rnd)
    elif kind == "outside":
        name = draw(LABEL) + ".example.net."
    else:  # a query wildcard in place of one label below the zone's apex
        name = draw(st.sampled_from([n for n in corpus.existing if n not in corpus.zones]))
        labels = name.split(".")
        origin = next(o for o in corpus.zones if name.endswith("." + o))
        position = draw(st.integers(0, len(labels) - len(origin.split(".")) - 1))
        labels[position] = draw(st.sampled_from(QUERY_WILDCARD_LABELS))
        name = ".".join(labels)
    if draw(st.booleans()):
        name = _mixed_case(name, rnd)
    rdtype = draw(st.sampled_from(GENERATED_TYPES))
    edns = draw(st.sampled_from(["none", "edns", "do", "cookie", "unknown", "all"]))
    options: list[dns.edns.Option] = []
    if edns in ("cookie", "all"):
        options.append(dns.edns.GenericOption(COOKIE, draw(st.binary(min_size=8, max_size=8))))
    if edns in ("unknown", "all"):
        code = draw(st.sampled_from([65001, 65100, 65534, 30]))
        options.append(dns.edns.GenericOption(code, draw(st.binary(max_size=16))))
    message = dns.message.make_query(name, rdtype)
    if edns != "none":
        message.use_edns(
            0,
            dns.flags.DO if edns in ("do", "all") else 0,
            draw(st.sampled_from([512, 1232, 4096])),
            options=options,
        )
    message.id = rnd.randrange(65536)
    if not draw(st.booleans()):
        message.flags &= ~dns.flags.RD
    if draw(st.integers(0, 9)) == 0:
        message.flags |= dns.flags.CD
    wire = message.to_wire()
    qlen = len(dns.name.from_text(name).to_wire()) + 4
    tcp = draw(st.integers(0, 4)) == 0
    text = f"{name} {rdtype} {edns} flags={message.flags:#x} {'tcp' if tcp else 'udp'}"
    return Question(kind, wire, wire[12 : 12 + qlen], tcp, text)


def exchange(port: int, wire: bytes, *, tcp: bool = False, timeout: float = 2.0) -> bytes | None:
    """Send one message to 127.0.0.1:``port``; the response's bytes, or None if none came."""
    family, kind = socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(("127.0.0.1", port))
            if not tcp:
                sock.send(wire)
                return sock.recv(65535)
            sock.sendall(len(wire).to_bytes(2, "big") + wire)
            head = sock.recv(2, socket.MSG_WAITALL)
            return sock.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL) if head else None
        except TimeoutError:
            return None


def _rrsets(section: list[dns.rrset.RRset]) -> set[tuple[str, int, int, frozenset[str]]]:
    return {
        (r.name.to_text().lower(), r.rdtype, r.ttl, frozenset(rd.to_text() for rd in r))
        for r in section
    }


def _options(message: dns.message.Message) -> set[int]:
    return {int(option.otype) for option in message.options}


FIXED_FLAGS = dns.flags.QR | dns.flags.AA | dns.flags.TC | dns.flags.RD | dns.flags.RA
FIXED_FLAGS |= dns.flags.CD | dns.flags.AD | 0x0040  # Z


def differences(
    asked: Question,
    ours: bytes | None,
    theirs: bytes | None,
    *,
    cookies: bool,
    targets: dict[str, set[str]],
) -> list[str]:
    """What a resolver could tell apart in the two responses (the test's docstring says
    what is left out, and why)."""
    if ours is None or theirs is None:
        return [] if ours is theirs else [f"only one answered: dockzone {ours!r} bind {theirs!r}"]
    found = []
    for who, wire in (("dockzone", ours), ("bind", theirs)):
        if wire[12 : 12 + len(asked.question)] != asked.question:
            found.append(f"{who} did not echo the question as asked")
    a = dns.message.from_wire(ours)
    b = dns.message.from_wire(theirs)

    def same(field: str, x: object, y: object) -> None:
        if x != y:
            found.append(f"{field}: dockzone {x} bind {y}")

    same("id", a.id, b.id)
    same("rcode", dns.rcode.to_text(a.rcode()), dns.rcode.to_text(b.rcode()))
    same("opcode", a.opcode(), b.opcode())
    same(
        "flags", dns.flags.to_text(a.flags & FIXED_FLAGS), dns.flags.to_text(b.flags & FIXED_FLAGS)
    )
    same("question", a.question, b.question)
    if not _skydns_cname(a, b, targets):
        same("answer", _rrsets(a.answer), _rrsets(b.answer))
        same("authority", _rrsets(_positive(a)), _rrsets(_positive(b)))
    same("EDNS", a.edns, b.edns)
    same("DO", a.ednsflags & dns.flags.DO, b.ednsflags & dns.flags.DO)
    ignored = set() if cookies else {COOKIE}
    same("EDNS options", _options(a) - ignored, _options(b) - ignored)
    return found


def _skydns_cname(
    ours: dns.message.Message, theirs: dns.message.Message, targets: dict[str, set[str]]
) -> bool:
    """Whether dockzone's A/AAAA answer goes on where BIND's ends with SkyDNS's CNAME: a
    service whose host is a name, beside its SRV, which a zone file cannot hold."""
    if ours.question[0].rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return False
    extra = [rrset for rrset in ours.answer if rrset not in theirs.answer]
    if not extra or len(ours.answer) - len(extra) != len(theirs.answer):
        return False
    first = extra[0]
    name = first.name.to_text().lower()
    return first.rdtype == dns.rdatatype.CNAME and first[0].target.to_text() in targets.get(
        name, ()
    )


def _positive(message: dns.message.Message) -> list[dns.rrset.RRset]:
    """The authority section, less the zone's NS RRset on an answer with data: BIND
    (``minimal-responses no-auth-recursive``, its default) adds it to answers to
    non-recursive queries, dockzone never does; both are allowed (RFC 2181 §6.1)."""
    if not message.answer:
        return list(message.authority)
    return [r for r in message.authority if r.rdtype != dns.rdatatype.NS]


def _wildcard_problems(asked: Question, wire: bytes | None, names: Corpus) -> list[str]:
    """A query wildcard (dnsdock's ``*``, SkyDNS's ``any``) answered sanely: the question
    echoed, AA, and the union of the data of every name it matches, owned by the
    question's name (of CNAMEs, one: RFC 2181 §10.1); no match (or matches without data of that type) is a negative
    answer with the zone's SOA."""
    if wire is None:
        return ["no answer"]
    problems = []
    if wire[12 : 12 + len(asked.question)] != asked.question:
        problems.append("question not echoed as asked")
    message = dns.message.from_wire(wire)
    pattern = asked.qname.lower().split(".")
    rdtype = message.question[0].rdtype
    expected: dict[int, set[str]] = {}
    for zone in names.zones.values():
        for name, node in zone.nodes.items():
            labels = name.to_text().lower().split(".")
            if len(labels) != len(pattern) or any(
                p not in QUERY_WILDCARD_LABELS and p != label
                for p, label in zip(pattern, labels, strict=True)
            ):
                continue
            for rdataset in node.rdatasets:
                if rdataset.rdtype == rdtype or (
                    rdtype == dns.rdatatype.ANY and rdataset.rdtype != dns.rdatatype.CNAME
                ):
                    expected.setdefault(rdataset.rdtype, set()).update(
                        rd.to_text() for rd in rdataset
                    )
    got: dict[int, set[str]] = {}
    for rrset in message.answer:
        if rrset.name.to_text().lower() != asked.qname.lower():
            problems.append(f"answer owned by {rrset.name}")
        got.setdefault(rrset.rdtype, set()).update(rd.to_text() for rd in rrset)
    if not message.flags & dns.flags.AA:
        problems.append("no AA")
    if message.flags & dns.flags.TC:
        return problems  # over UDP, the union did not fit: the client retries over TCP
    if rdtype == dns.rdatatype.CNAME and len(got.get(rdtype, ())) == 1:
        # One CNAME per name (RFC 2181 §10.1): any one of the matching names' CNAMEs.
        got = (
            {rdtype: expected.get(rdtype, set())}
            if got[rdtype] <= expected.get(rdtype, set())
            else got
        )
    if expected:
        if message.rcode() != dns.rcode.NOERROR or got != expected:
            problems.append(f"{dns.rcode.to_text(message.rcode())} {got}, expected {expected}")
    elif message.answer or message.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        problems.append(f"{dns.rcode.to_text(message.rcode())} {got} where nothing matches")
    elif [r.rdtype for r in message.authority] != [dns.rdatatype.SOA]:
        problems.append(f"negative answer with authority {message.authority}")
    return problems


@pytest.fixture(scope="module")
def names(rendered: Daemon) -> Corpus:
    return Corpus.load(rendered.zones)


@pytest.fixture(scope="module")
def cookies(rendered: Daemon) -> bool:
    """Whether dockzone answers a client COOKIE (RFC 7873) with a COOKIE of its own yet."""
    message = dns.message.make_query(
        "docker.", "SOA", use_edns=0, options=[dns.edns.GenericOption(COOKIE, bytes(8))]
    )
    wire = exchange(rendered.port, message.to_wire())
    assert wire is not None
    return COOKIE in _options(dns.message.from_wire(wire))


@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same questions every run: CI stays stable
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_questions_get_the_answers_bind_gives(
    rendered: Daemon, bind: NamedServer, names: Corpus, cookies: bool, data: st.DataObject
) -> None:
    """Thousands of generated questions (``DOCKZONE_DIFFERENTIAL_EXAMPLES``, default 2000)
    to dockzone and to BIND on the zone files dockzone wrote: existing names, missing
    names, names below existing ones, aggregated names and empty non-terminals, reverse
    names, names outside every zone; every common type and ANY; with and without EDNS,
    with DO, a client COOKIE, unknown options; RD on and off, CD; 0x20 mixed case; UDP
    and TCP. Compared: rcode (extended too), the flags RFCs fix (QR, opcode, AA, TC, RD
    and CD copied, RA, AD, Z), the question echoed byte for byte, the answer and
    authority RRsets as sets (owner names case-insensitively, TTLs included), whether
    there is an OPT record, its DO bit (RFC 3225 §3: copied) and the options it carries.

    Left out, on purpose:

    - the NS RRset BIND adds to the authority section of answers with data to
      non-recursive queries (``minimal-responses no-auth-recursive``, its default);
      dockzone leaves it out. RFC 2181 §6.1 allows both.
    - the additional section: dockzone adds SRV/MX/NS targets' addresses as BIND does,
      but the existing table tests cover it, and an address left out for room is allowed.
    - the OPT record's UDP payload size: each server advertises its own (RFC 6891 §6.2.3).
    - the value of COOKIE options: both return a server cookie (RFC 7873 §5.2.2), made
      with each server's secret, so only the presence of a COOKIE is compared (the
      ``cookies`` fixture checks dockzone answers one; with ``--no-cookies`` it would not).
    - query wildcards (a ``*`` or ``any`` label) are dockzone's own: BIND reads them as
      RFC 4592 names. Those are checked against the zone files instead: the union of the
      matching names' data, owned by the question's name.
    """
    asked = data.draw(questions(names))
    ours = exchange(rendered.port, asked.wire, tcp=asked.tcp)
    if asked.kind == "wildcard":
        problems = _wildcard_problems(asked, ours, names)
    else:
        theirs = exchange(bind.port, asked.wire, tcp=asked.tcp)
        problems = differences(asked, ours, theirs, cookies=cookies, targets=names.targets)
    assert not problems, asked.text + "\n" + "\n".join(problems)


# -- messages that are not plain queries -------------------------------------------------

UNKNOWN_OPCODES = [1, 2, 3, *range(6, 16)]
"""IQUERY (retired, RFC 3425), STATUS, unassigned, DSO (RFC 8490) and unassigned: every
OPCODE but QUERY, NOTIFY and UPDATE. BIND implements NOTIFY and UPDATE and judges their
content (FORMERR, REFUSED, NOTAUTH); dockzone implements neither and answers NOTIMP."""


def _message(opcode: int, *, question: str | None, edns: int | None, do: bool = False) -> bytes:
    message = dns.message.make_query(
        question or "docker.", "A", use_edns=edns, want_dnssec=do, id=0x4242
    )
    wire = bytearray(message.to_wire())
    wire[2] |= opcode << 3
    if question is None:  # drop the question, keep the additional section (the OPT)
        end = 12 + len(dns.name.from_text("docker.").to_wire()) + 4
        wire = wire[:4] + b"\x00\x00" + wire[6:12] + wire[end:]
    return bytes(wire)


def _wire_view(wire: bytes | None) -> tuple[object, ...]:
    """Everything of a bare response: header flags and counts, the question's bytes, and
    the OPT record's extended rcode, version and DO bit (not its UDP size: each
    server's own)."""
    if wire is None:
        return ("no answer",)
    message = dns.message.from_wire(wire)
    counts = tuple(int.from_bytes(wire[n : n + 2], "big") for n in range(4, 12, 2))
    question = wire[12 : len(wire) - (11 if message.edns >= 0 else 0)]
    return (
        message.id,
        f"{int.from_bytes(wire[2:4], 'big'):#06x}",
        dns.rcode.to_text(message.rcode()),
        counts,
        question,
        message.edns,
        message.ednsflags & dns.flags.DO,
    )


@pytest.mark.parametrize("edns", [None, 0, 1], ids=["no-edns", "edns0", "edns1"])
@pytest.mark.parametrize("question", ["docker.", None], ids=["question", "no-question"])
@pytest.mark.parametrize("opcode", UNKNOWN_OPCODES)
def test_unknown_opcodes_get_notimp_as_bind_answers(
    rendered: Daemon, bind: NamedServer, opcode: int, question: str | None, edns: int | None
) -> None:
    """NOTIMP, also without a question (it was FORMERR): a bare header, the opcode kept,
    RD not copied, the OPT record when the query had one, BADVERS over NOTIMP for an EDNS
    version above 0; byte for byte what BIND sends (issue 11)."""
    wire = _message(opcode, question=question, edns=edns, do=edns == 0)
    ours = _wire_view(exchange(rendered.port, wire))
    assert ours == _wire_view(exchange(bind.port, wire))
    assert ours[2] == ("BADVERS" if edns else "NOTIMP")


@pytest.mark.parametrize("do", [False, True], ids=["", "do"])
@pytest.mark.parametrize("version", [1, 255])
@pytest.mark.parametrize(
    "question",
    ["web.docker.", "nope.docker.", "x.example.net.", None],
    ids=["existing", "missing", "outside", "no-question"],
)
def test_edns_versions_above_0_get_badvers_as_bind_answers(
    rendered: Daemon, bind: NamedServer, question: str | None, version: int, do: bool
) -> None:
    """RFC 6891 §6.1.3: BADVERS with an OPT of version 0, the question echoed (none for a
    message without one: that was FORMERR), RD copied, DO copied, as BIND answers."""
    wire = _message(0, question=question, edns=version, do=do)
    for tcp in (False, True):
        ours = _wire_view(exchange(rendered.port, wire, tcp=tcp))
        assert ours == _wire_view(exchange(bind.port, wire, tcp=tcp))
        assert ours[2] == "BADVERS"
