"""Ownership in shared backends (ownership TXT names and texts, etcd key ids), the TSIG key
file parser, the SkyDNS layout both ways, and what the RFC 2136 sink considers its own."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import dns.rdataclass
import dns.update
import pytest

from reconciler import skydns
from reconciler.config import resolve
from reconciler.core import ownership
from reconciler.core.index import build
from reconciler.core.model import Owner, RRset, ServiceRecord, ZoneSettings
from reconciler.core.plan import Changes
from reconciler.errors import ConfigError
from reconciler.etcdclient import EtcdClient, EtcdOptions, prefix_end
from reconciler.sinks import rfc2136
from reconciler.sinks.etcd import EtcdSink, EtcdSinkConfig
from reconciler.sinks.rfc2136 import Rfc2136Config, Rfc2136Sink, managed, normalised, pack
from reconciler.tsig import parse_key_file

OWNER = Owner("file", "servicerecord/web", "defs/web.yaml#0")


def record(name: str, **fields: object) -> ServiceRecord:
    return ServiceRecord(name=name, zone="docker.", owner=OWNER, **fields)  # type: ignore[arg-type]


def test_ownership_txt_sits_at_a_child_name_and_names_the_instance() -> None:
    assert ownership.ownership_name("web.docker.") == "_dockzone.web.docker."
    assert ownership.owned_name("_dockzone.web.docker.") == "web.docker."
    assert ownership.owned_name("_DOCKZONE.web.docker.") == "web.docker."
    assert ownership.owned_name("web.docker.") is None
    text = ownership.ownership_text("host-a")
    assert text == "heritage=dockzone,dockzone/owner=host-a"
    assert ownership.parse_ownership(text) == "host-a"
    assert ownership.parse_ownership("heritage=external-dns,external-dns/owner=x") is None
    assert ownership.parse_ownership("v=spf1 -all") is None


def test_etcd_key_ids_are_stable_and_exact_about_the_instance() -> None:
    first = ownership.key_id("host", "file", "servicerecord/web", "web.docker.")
    assert first == ownership.key_id("host", "file", "servicerecord/web", "web.docker.")
    assert first != ownership.key_id("host", "file", "servicerecord/db", "web.docker.")
    key = f"/skydns/docker/web/{first}"
    assert ownership.is_own_key(key, "host")
    assert not ownership.is_own_key(key, "host-b")
    other = ownership.key_id("host-b", "file", "x")
    assert not ownership.is_own_key(f"/skydns/docker/web/{other}", "host")
    assert ownership.key_instance("/skydns/docker/web/x1") is None
    assert ownership.key_instance("/skydns/docker/web/1-zzzzzzzzzz") is None


def test_tsig_key_file_in_bind_format() -> None:
    key = parse_key_file(
        '# made by tsig-keygen\nkey "Dockzone-Key" {\n\talgorithm hmac-sha512;\n'
        '\tsecret "c2VjcmV0";\n};\n',
        "k.key",
    )
    assert (key.name, key.algorithm, key.secret) == ("dockzone-key.", "hmac-sha512", b"secret")
    assert "secret" not in repr(key).replace("secret=", "")
    assert parse_key_file('key k { secret "c2VjcmV0"; };', "k").algorithm == "hmac-sha256"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no key"),
        ('key "k" { algorithm hmac-sha256; };', "has no secret"),
        ('key "k" { algorithm rot13; secret "c2VjcmV0"; };', "unsupported algorithm"),
        ('key "k" { secret "not base64!"; };', "not base64"),
    ],
)
def test_bad_tsig_key_files_are_config_errors(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        parse_key_file(text, "bad.key")
    assert str(info.value).startswith("bad.key: ")


def test_skydns_keys_and_names() -> None:
    assert skydns.key_path("/skydns", "1.rails.east.skydns.local.") == (
        "/skydns/local/skydns/east/rails/1"
    )
    assert skydns.name_from_key("/skydns", "/skydns/docker/web/x1") == "x1.web.docker."
    assert skydns.name_from_key("/skydns", "/other/docker") is None
    assert skydns.parse_txt('"a b" "c\\"d" "\\065"') == ["a b", 'c"d', "A"]


def test_entries_come_from_records_not_from_aggregation_nor_etcd() -> None:
    etcd_owner = Owner("etcd", "/skydns/docker/redis/h-1", "")
    records = [
        record("1.redis.docker.", host="10.0.0.1", port=6379, text=("role=main",)),
        record("docs.docker.", host="docs.example.com."),
        ServiceRecord(name="2.redis.docker.", zone="docker.", owner=etcd_owner, host="10.0.0.2"),
    ]
    zones = build(records, ZoneSettings(reverse=False)).zones
    entries = skydns.entries_from_zones(zones, "/skydns", "host")
    values = {e.key.rpartition("/")[0]: json.loads(e.value) for e in entries.values()}
    assert values == {
        "/skydns/docker/redis/1": {
            "host": "10.0.0.1",
            "port": 6379,
            "priority": 10,
            "weight": 100,
            "ttl": 30,
            "text": "role=main",
        },
        "/skydns/docker/docs": {"host": "docs.example.com", "ttl": 30},
    }
    assert all(ownership.is_own_key(key, "host") for key in entries)
    discover = skydns.discover_entries(entries.values(), "/discover", "host")
    assert [e.value for e in discover.values()] == ["tcp://10.0.0.1:6379"]
    assert next(iter(discover)).startswith("/discover/service/1/default/host/host-")


def test_another_hosts_entry_becomes_a_record() -> None:
    found = skydns.record_from_entry(
        "/skydns/docker/web/b-0123456789",
        json.dumps({"host": "10.0.0.7", "port": 80, "ttl": 5, "text": "x", "group": "g"}),
        "/skydns",
        ("docker.",),
    )
    assert (found.name, found.zone, found.host, found.port, found.ttl) == (
        "b-0123456789.web.docker.",
        "docker.",
        "10.0.0.7",
        80,
        5,
    )
    assert (found.text, found.group, found.owner.source) == (("x",), "g", "etcd")
    with pytest.raises(ValueError, match="outside every zone"):
        skydns.record_from_entry("/skydns/local/x", "{}", "/skydns", ("docker.",))
    with pytest.raises(ValueError, match="port"):
        skydns.record_from_entry("/skydns/docker/x", '{"port": 70000}', "/skydns", ("docker.",))
    with pytest.raises(ValueError, match=r"host '10\.0\.0\.300' is not a valid IPv4 address"):
        skydns.record_from_entry(
            "/skydns/docker/x", '{"host": "10.0.0.300"}', "/skydns", ("docker.",)
        )


def test_rfc2136_manages_records_below_the_apex_but_not_soa_ns_or_glue() -> None:
    zones = build(
        [record("web.docker.", host="10.0.0.1"), record("docker.", host="10.0.0.2")],
        ZoneSettings(reverse=False),
    ).zones
    result = managed(zones, ["docker."])
    assert list(result) == ["docker."]
    assert sorted(result["docker."]) == ["web.docker."]
    assert result["docker."]["web.docker."]["A"].rdatas == ("10.0.0.1",)
    assert managed(zones, ["example."]) == {}


def test_empty_changes_send_nothing() -> None:
    rfc = Rfc2136Sink(Rfc2136Config(("127.0.0.1", 9), ("docker.",), None, "host"))
    client = EtcdClient(EtcdOptions(("http://127.0.0.1:9",), timeout=0.1))
    etcd = EtcdSink(client, EtcdSinkConfig("/skydns", "host"))
    asyncio.run(rfc.apply(Changes()))
    asyncio.run(etcd.apply(Changes()))


def test_prefix_end_covers_the_prefix() -> None:
    assert base64.b64decode(prefix_end("/skydns/")) == b"/skydns0"


def test_publishing_options_resolve(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    key.write_text('key "k" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n')
    settings = resolve(
        {
            "rfc2136_server": "127.0.0.1",
            "tsig_key_file": str(key),
            "etcd": ["http://127.0.0.1:2379/"],
        },
        {"DOCKZONE_ETCD_LEASE_TTL": "3", "DOCKZONE_INSTANCE_ID": "Host-A"},
        None,
    )
    assert settings.rfc2136_server == "127.0.0.1:53"
    assert settings.tsig_key_file is not None
    assert settings.tsig_key_file.name == "k."
    assert (settings.etcd, settings.etcd_lease_ttl, settings.instance_id) == (
        ("http://127.0.0.1:2379",),
        3,
        "host-a",
    )
    assert resolve({}, {}, None).instance_id
    with pytest.raises(ConfigError, match="cannot read TSIG key file"):
        resolve({"tsig_key_file": str(tmp_path / "missing.key")}, {}, None)
    with pytest.raises(ConfigError, match="one DNS label"):
        resolve({"instance_id": "a.b"}, {}, None)


def test_entries_of_a_few_names_equal_those_of_the_whole_zone() -> None:
    records = [
        record("1.redis.docker.", host="10.0.0.1", port=6379, text=("role=main",)),
        record("2.redis.docker.", host="10.0.0.2"),
        record("docs.docker.", host="docs.example.com."),
        ServiceRecord(
            name="web.docker.",
            zone="docker.",
            owner=Owner("file", "servicerecord/web2", "x"),
            host="10.0.0.9",
            mail=True,
        ),
        record("web.docker.", host="10.0.0.8"),
    ]
    zones = build(records, ZoneSettings(reverse=False)).zones
    everything = skydns.entries_from_zones(zones, "/skydns", "host")
    content = zones["docker."]
    names = sorted({rrset.name for rrset in content.rrsets})
    for name in names:
        some = skydns.entries_at(content, [name], "/skydns", "host")
        assert some == {k: e for k, e in everything.items() if e.name == name}, name
    assert skydns.entries_at(content, names, "/skydns", "host") == everything
    assert skydns.entries_at(content, ["nothing.docker."], "/skydns", "host") == {}


def test_discover_keys_carry_the_protocol_and_the_configured_realm() -> None:
    """totem/discover: ``DISCOVER=svc:8125/udp`` is ``udp://ip:port``, under the realm of
    ``--etcd-discover-realm``, and the key's id is its SkyDNS entry's."""
    records = [
        record("stats.docker.", host="10.0.0.1", port=8125, protocol="udp"),
        record("web.prod.docker.", host="10.0.0.2", port=80),
        record("docker.", host="10.0.0.3"),  # no port: not in discover's layout
    ]
    entries = skydns.entries_from_zones(
        build(records, ZoneSettings(reverse=False)).zones, "/skydns", "host"
    )
    discover = skydns.discover_entries(entries.values(), "/discover", "host", "my-realm")
    assert sorted(
        (key.rpartition("/")[0], entry.value, entry.name) for key, entry in discover.items()
    ) == [
        ("/discover/service/stats/my-realm/host", "udp://10.0.0.1:8125", "stats.docker."),
        ("/discover/service/web/my-realm/host", "tcp://10.0.0.2:80", "web.prod.docker."),
    ]
    ids = {skydns.discover_id(key): entry.name for key, entry in entries.items()}
    for key, entry in discover.items():
        assert skydns.is_discover_key("/discover", key)
        assert ids[skydns.discover_id(key)] == entry.name
    assert not skydns.is_discover_key("/discover", next(iter(entries)))


def _sink() -> Rfc2136Sink:
    return Rfc2136Sink(Rfc2136Config(("127.0.0.1", 9), ("docker.",), None, "host"))


def _a(name: str, count: int, ttl: int = 30, first: int = 1) -> RRset:
    return normalised(
        RRset(
            name,
            "A",
            ttl,
            tuple(f"10.0.{i // 250}.{i % 250 + 1}" for i in range(first, first + count)),
        )
    )


def _sections(message: dns.update.UpdateMessage) -> tuple[list[str], list[str]]:
    """The prerequisite and update sections as text lines."""
    return (
        [line for r in message.sections[1] for line in r.to_text().splitlines()],
        [line for r in message.sections[2] for line in r.to_text().splitlines()],
    )


def test_a_small_rrset_is_replaced_under_an_exact_prerequisite() -> None:
    sink = _sink()
    old = {"A": _a("web.docker.", 2)}
    new = {"A": _a("web.docker.", 2, first=5)}
    (message,) = pack([sink._update("docker.", "web.docker.", old, new)])
    prerequisites, updates = _sections(message.build(None))
    assert prerequisites == [
        '_dockzone.web.docker. 0 IN TXT "heritage=dockzone,dockzone/owner=host"',
        "web.docker. 0 IN A 10.0.0.2",
        "web.docker. 0 IN A 10.0.0.3",
    ]
    assert updates == [
        "web.docker. ANY A",
        "web.docker. 30 IN A 10.0.0.6",
        "web.docker. 30 IN A 10.0.0.7",
    ]


def test_a_big_rrset_changes_record_by_record() -> None:
    sink = _sink()
    big = rfc2136.SMALL_RRSET + 10
    old = {"A": _a("east.docker.", big)}
    changed = list(old["A"].rdatas)
    changed[3] = "10.9.9.9"
    new = {"A": normalised(RRset("east.docker.", "A", 30, tuple(changed)))}
    (message,) = pack([sink._update("docker.", "east.docker.", old, new)])
    prerequisites, updates = _sections(message.build(None))
    assert prerequisites[1:] == ["east.docker. ANY A"]  # exists, whatever its records
    assert updates == [
        f"east.docker. 0 NONE A {old['A'].rdatas[3]}",
        "east.docker. 30 IN A 10.9.9.9",
    ]
    # a TTL change alone: one record added again with the new TTL (BIND applies it to all)
    lower = {"A": RRset("east.docker.", "A", 10, old["A"].rdatas)}
    (message,) = pack([sink._update("docker.", "east.docker.", old, lower)])
    assert _sections(message.build(None))[1] == [f"east.docker. 10 IN A {old['A'].rdatas[0]}"]


def test_names_share_messages_and_a_big_one_is_split() -> None:
    sink = _sink()
    items = [
        sink._update("docker.", f"n{i}.docker.", None, {"A": _a(f"n{i}.docker.", 1)})
        for i in range(rfc2136.MAX_NAMES + 3)
    ]
    messages = pack(items)
    assert [len(m.items) for m in messages] == [rfc2136.MAX_NAMES, 3]
    assert all(m.last for m in messages)
    huge = sink._update("docker.", "big.docker.", None, {"A": _a("big.docker.", 6000)})
    assert huge.size > rfc2136.MAX_MESSAGE
    parts = pack([huge])
    assert len(parts) > 1
    assert [m.last for m in parts] == [False] * (len(parts) - 1) + [True]
    first, *rest = (_sections(m.build(None)) for m in parts)
    assert first[0] == ["big.docker. NONE ANY", "_dockzone.big.docker. NONE ANY"]  # claim
    for prerequisites, _ in rest:
        assert prerequisites == [
            '_dockzone.big.docker. 0 IN TXT "heritage=dockzone,dockzone/owner=host"'
        ]
    assert sum(len(updates) for _, updates in [first, *rest]) == 6001  # ownership TXT too
    for message in parts:
        assert len(message.build(None).to_wire()) < 65535
    assert all(len(_sections(m.build(None))[1]) <= rfc2136.MAX_RECORDS for m in parts)
