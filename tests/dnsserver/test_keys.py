"""The DNSSEC key store: keys made on first use, kept on disk, rolled on time and on command.

Every DNSKEY and DS is checked with dnspython; time is a fake clock."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from dnsserver.dnssec import DNSKEY, ED25519, SigningKey, rrsig_rdata
from dnsserver.errors import KeyFileError, KeyStoreError
from dnsserver.keys import DAY, KeyPolicy, KeyStore, ZoneKeys
from dnsserver.zone import RRset

T0 = 1_800_000_000.0
HOUR = 3600.0
PUBLISH = HOUR + HOUR  # DNSKEY TTL + margin
RETIRE = DAY + HOUR  # max zone TTL + margin
DS_WAIT = DAY + HOUR  # DS TTL + margin


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def store(directory: Path, clock: Clock, **policy: object) -> KeyStore:
    return KeyStore(directory, KeyPolicy(**policy), clock=clock)  # type: ignore[arg-type]


def dnskey(key: SigningKey) -> dns.rdata.Rdata:
    rdata = dns.rdata.from_wire(
        dns.rdataclass.IN, dns.rdatatype.DNSKEY, key.dnskey, 0, len(key.dnskey)
    )
    assert dns.dnssec.key_id(rdata) == key.tag  # type: ignore[arg-type]
    return rdata


def tags(keys: tuple[SigningKey, ...]) -> list[int]:
    return [key.tag for key in keys]


def assert_ds_agrees(keystore: KeyStore, zone: str) -> list[int]:
    """The printed DS records equal dnspython's for the keys in `ds`; their tags."""
    printed = keystore.ds_records(zone)
    keys = keystore.keys(zone).ds
    assert len(printed) == len(keys)
    for text, key in zip(printed, keys, strict=True):
        owner, ttl, _, _, rdata = text.split(" ", 4)
        assert (owner, ttl) == (zone, "86400")
        parsed = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DS, rdata)
        assert parsed == dns.dnssec.make_ds(zone, dnskey(key), "SHA256")  # type: ignore[arg-type]
    return tags(keys)


def assert_signs_dnskey_rrset(zone: str, keys: ZoneKeys) -> None:
    """Signatures by `keys.ksk` over the DNSKEY RRset validate with dnspython."""
    rdatas = tuple(sorted(key.dnskey for key in keys.published))
    rrset = RRset(zone, DNSKEY, 3600, rdatas)
    name = dns.name.from_text(zone)
    dnskeys = dns.rrset.from_rdata_list(name, 3600, [dnskey(k) for k in keys.published])
    for key in keys.ksk:
        wire = rrsig_rdata(key, zone, rrset, inception=int(T0) - 60, expiration=int(T0) + 86400)
        rrsig = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.RRSIG, wire, 0, len(wire))
        sigs = dns.rrset.from_rdata_list(name, 3600, [rrsig])
        dns.dnssec.validate(dnskeys, sigs, {name: dnskeys}, now=T0)


def test_first_use_makes_one_combined_key_in_private_files(tmp_path: Path, clock: Clock) -> None:
    keystore = store(tmp_path / "keys", clock)
    keys = keystore.keys("docker.")
    (csk,) = keys.published
    assert (csk.flags, csk.algorithm, csk.sep) == (257, 13, True)
    assert keys.ksk == keys.zsk == keys.ds == (csk,)
    assert keys.next_event is None  # a CSK rolls only on command
    folder = tmp_path / "keys" / "docker"
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    pem = folder / f"Kdocker.+013+{csk.tag:05d}.pem"
    for path in (pem, folder / "keys.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert assert_ds_agrees(keystore, "docker.") == [csk.tag]
    assert_signs_dnskey_rrset("docker.", keys)


def test_split_keys_make_a_ksk_for_the_dnskey_rrset_and_a_zsk_for_the_rest(
    tmp_path: Path, clock: Clock
) -> None:
    keys = store(tmp_path, clock, split=True).keys("docker")
    ksk, zsk = keys.published
    assert (ksk.flags, zsk.flags) == (257, 256)
    assert (keys.ksk, keys.zsk, keys.ds) == ((ksk,), (zsk,), (ksk,))
    assert keys.next_event == T0 + 30 * DAY - PUBLISH


def test_a_new_process_loads_the_same_keys(tmp_path: Path, clock: Clock) -> None:
    first = store(tmp_path, clock, split=True).keys("docker.")
    again = store(tmp_path, clock, split=True).keys("docker.")
    assert tags(again.published) == tags(first.published)
    assert [k.dnskey for k in again.published] == [k.dnskey for k in first.published]
    assert again.timings == first.timings
    assert_signs_dnskey_rrset("docker.", again)  # the private key read back signs
    root = store(tmp_path, clock).keys(".")
    assert (tmp_path / "root" / "keys.json").exists()
    assert tags(store(tmp_path, clock).keys(".").published) == tags(root.published)


def test_keys_is_the_same_object_while_nothing_changes(tmp_path: Path, clock: Clock) -> None:
    keystore = store(tmp_path, clock, split=True)
    keys = keystore.keys("docker.")
    written = (tmp_path / "docker" / "keys.json").stat().st_mtime_ns
    assert keystore.keys("DOCKER") is keys
    assert keys.next_event is not None
    clock.now = keys.next_event - 1
    assert keystore.keys("docker.") is keys
    assert (tmp_path / "docker" / "keys.json").stat().st_mtime_ns == written


def test_zsk_rolls_by_pre_publication(tmp_path: Path, clock: Clock) -> None:
    """Published before it signs; the old ZSK stays published while its signatures may be
    cached, then goes with its file."""
    keystore = store(tmp_path, clock, split=True)
    start = keystore.keys("docker.")
    (ksk,), (old,) = start.ksk, start.zsk

    clock.now = T0 + 30 * DAY - PUBLISH
    published = keystore.keys("docker.")
    assert published is not start
    new = published.published[-1]
    assert tags(published.published) == [ksk.tag, old.tag, new.tag]
    assert published.zsk == (old,)  # published, not yet signing
    assert published.next_event == clock.now + PUBLISH
    assert [r.state for r in keystore.describe("docker.")] == ["active", "active", "published"]
    # a restart in the middle of the roll keeps it
    assert store(tmp_path, clock, split=True).keys("docker.").timings == published.timings

    clock.now += PUBLISH
    active = keystore.keys("docker.")
    assert active.zsk == (new,)
    assert tags(active.published) == [ksk.tag, old.tag, new.tag]  # old: retired
    assert active.next_event == clock.now + RETIRE
    assert [r.state for r in keystore.describe("docker.")] == ["active", "retired", "active"]

    clock.now += RETIRE - 1
    assert keystore.keys("docker.") is active
    clock.now += 1
    removed = keystore.keys("docker.")
    assert tags(removed.published) == [ksk.tag, new.tag]
    assert removed.next_event == T0 + 60 * DAY - PUBLISH  # the new ZSK's own lifetime
    assert not (tmp_path / "docker" / f"Kdocker.+013+{old.tag:05d}.pem").exists()
    assert_signs_dnskey_rrset("docker.", removed)


def test_a_late_start_publishes_now_not_in_the_past(tmp_path: Path, clock: Clock) -> None:
    keystore = store(tmp_path, clock, split=True)
    keystore.keys("docker.")
    clock.now = T0 + 40 * DAY  # the daemon was down when the roll was due
    keys = store(tmp_path, clock, split=True).keys("docker.")
    assert len(keys.published) == 3
    assert keys.next_event == clock.now + PUBLISH


def test_zsk_roll_on_command_and_the_refusals(tmp_path: Path, clock: Clock) -> None:
    keystore = store(tmp_path, clock, split=True, zsk_lifetime=0)
    keys = keystore.keys("docker.")
    assert keys.next_event is None
    rolled = keystore.roll("docker.", "zsk")
    assert len(rolled.published) == 3
    assert rolled.zsk == keys.zsk
    assert rolled.next_event == T0 + PUBLISH
    with pytest.raises(KeyStoreError, match="already under way"):
        keystore.roll("docker.", "zsk")
    csk = store(tmp_path, clock)
    with pytest.raises(KeyStoreError, match="combined signing key"):
        csk.roll("example.", "zsk")


def test_ksk_roll_by_double_ds(tmp_path: Path, clock: Clock) -> None:
    keystore = store(tmp_path, clock, split=True)
    start = keystore.keys("docker.")
    (old,) = start.ksk
    clock.now += HOUR
    rolled = keystore.roll("docker.", "ksk")
    new = rolled.ds[-1]
    assert assert_ds_agrees(keystore, "docker.") == [old.tag, new.tag]
    assert rolled.published == start.published  # the DS first, not the DNSKEY
    assert rolled.next_event == start.next_event  # waits for ds-seen, not for a time
    row = next(r for r in keystore.describe() if r.tag == new.tag)
    assert (row.state, row.when) == ("ds-pending", None)
    with pytest.raises(KeyStoreError, match="already under way"):
        keystore.roll("docker.", "ksk")

    clock.now += HOUR
    seen = keystore.ds_seen("docker.")
    assert seen.next_event == clock.now + DS_WAIT
    clock.now += DS_WAIT - 1
    assert keystore.keys("docker.") is seen
    clock.now += 1
    swapped = keystore.keys("docker.")
    assert swapped.ksk == (new,)
    assert tags(swapped.published) == [new.tag, *tags(start.zsk)]
    assert assert_ds_agrees(keystore, "docker.") == [new.tag]
    assert not (tmp_path / "docker" / f"Kdocker.+013+{old.tag:05d}.pem").exists()
    assert_signs_dnskey_rrset("docker.", swapped)
    with pytest.raises(KeyStoreError, match="no KSK/CSK roll"):
        keystore.ds_seen("docker.")


def test_csk_roll_by_double_ds_then_pre_publication(tmp_path: Path, clock: Clock) -> None:
    keystore = store(tmp_path, clock)
    (old,) = keystore.keys("docker.").zsk
    clock.now += HOUR
    new = keystore.roll("docker.", "csk").ds[-1]
    keystore.ds_seen("docker.")
    clock.now += DS_WAIT
    published = keystore.keys("docker.")
    assert tags(published.published) == [old.tag, new.tag]
    assert published.ksk == published.zsk == (old,)
    assert assert_ds_agrees(keystore, "docker.") == [old.tag, new.tag]
    clock.now += PUBLISH
    active = keystore.keys("docker.")
    assert active.ksk == active.zsk == (new,)
    assert tags(active.published) == [old.tag, new.tag]  # old: retired, its signatures cached
    assert assert_ds_agrees(keystore, "docker.") == [new.tag]
    clock.now += RETIRE
    assert tags(keystore.keys("docker.").published) == [new.tag]


def test_ed25519_keys(tmp_path: Path, clock: Clock) -> None:
    keystore = store(tmp_path, clock, algorithm=ED25519)
    keys = keystore.keys("docker.")
    assert keys.published[0].algorithm == ED25519
    assert keystore.describe()[0].algorithm == "ED25519"
    assert (tmp_path / "docker" / f"Kdocker.+015+{keys.published[0].tag:05d}.pem").exists()
    assert_ds_agrees(keystore, "docker.")
    assert_signs_dnskey_rrset("docker.", keys)
    assert tags(store(tmp_path, clock).keys("docker.").published) == tags(keys.published)


def test_a_change_by_another_process_is_read(tmp_path: Path, clock: Clock) -> None:
    daemon = store(tmp_path, clock, split=True)
    keys = daemon.keys("docker.")
    store(tmp_path, clock, split=True).roll("docker.", "zsk")  # dockzone dnssec roll
    after = daemon.keys("docker.")
    assert after is not keys
    assert len(after.published) == 3
    assert daemon.keys("docker.") is after


DAMAGES = [
    ("not json", lambda text: "{", "", "not valid JSON"),
    ("missing field", lambda text: _set(text, "state"), "keys[0].state", "must be one of"),
    ("bad role", lambda text: text.replace('"CSK"', '"XSK"'), "keys[0].role", "must be one of"),
    ("bad time", lambda text: _set(text, "active", "soon"), "keys[0].active", "epoch seconds"),
    ("no time", lambda text: _set(text, "active", None), "keys[0].active", "must be set"),
    ("other zone", lambda text: text.replace('"docker."', '"other."'), "zone", "must be"),
]


def _set(text: str, name: str, *value: object) -> str:
    """keys.json with keys[0].name set to `value`, or without it."""
    document = json.loads(text)
    document["keys"][0].pop(name)
    if value:
        document["keys"][0][name] = value[0]
    return json.dumps(document)


@pytest.mark.parametrize(
    ("edit", "field", "problem"), [d[1:] for d in DAMAGES], ids=[d[0] for d in DAMAGES]
)
def test_a_damaged_state_file_is_an_error_naming_file_and_field(
    tmp_path: Path, clock: Clock, edit: object, field: str, problem: str
) -> None:
    keys = store(tmp_path, clock).keys("docker.")
    path = tmp_path / "docker" / "keys.json"
    path.write_text(edit(path.read_text()))  # type: ignore[operator]
    with pytest.raises(KeyFileError) as info:
        store(tmp_path, clock).keys("docker.")
    assert str(info.value).startswith(f"{path}: {field}" if field else f"{path}: ")
    assert problem in str(info.value)
    assert [p.name for p in (tmp_path / "docker").glob("*.pem")] == [
        f"Kdocker.+013+{keys.published[0].tag:05d}.pem"
    ]  # nothing new was made


def test_missing_key_files_are_errors_never_replaced(tmp_path: Path, clock: Clock) -> None:
    (csk,) = store(tmp_path, clock).keys("docker.").published
    pem = tmp_path / "docker" / f"Kdocker.+013+{csk.tag:05d}.pem"
    state = tmp_path / "docker" / "keys.json"
    saved = state.read_bytes()
    state.unlink()
    with pytest.raises(
        KeyFileError, match=re.escape(f"{state}: missing while key files are there ({pem.name})")
    ):
        store(tmp_path, clock).keys("docker.")
    state.write_bytes(saved)
    pem.write_text("garbage")
    with pytest.raises(KeyFileError, match=re.escape(f"{pem}: not a usable private key")):
        store(tmp_path, clock).keys("docker.")
    pem.unlink()
    with pytest.raises(
        KeyFileError, match=re.escape(f"{pem}: missing: the private key of keys[0]")
    ):
        store(tmp_path, clock).keys("docker.")
    assert list((tmp_path / "docker").glob("*.pem")) == []


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="ZSK lifetime"):
        KeyPolicy(zsk_lifetime=60)
    with pytest.raises(ValueError, match="unsupported"):
        KeyPolicy(algorithm=8)


def test_a_running_store_keeps_its_keys_when_the_file_goes_bad(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    keystore = store(tmp_path, clock)
    keys = keystore.keys("docker.")
    (tmp_path / "docker" / "keys.json").write_text("{")
    assert keystore.keys("docker.") is keys
    assert keystore.keys("docker.") is keys
    assert [r.levelname for r in caplog.records if "keeping the keys" in r.message] == ["WARNING"]
    with pytest.raises(KeyFileError):
        keystore.roll("docker.", "ksk")
