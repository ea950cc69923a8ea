"""The signer keeps served zones signed: whole zones, patches, refreshes and key changes,
checked with BIND's `dnssec-verify` (signatures, the NSEC chain, the DNSKEY RRset) and
dnspython's validator."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdata
import dns.rrset
import pytest

from dnsserver import ZoneError, ZoneStore, rrset_from_text
from dnsserver.dnssec import DNSKEY, NSEC, RRSIG, ZONE_KEY, SigningKey, rrsig_expiration
from dnsserver.errors import KeyFileError
from dnsserver.signer import Signer, SigningPolicy
from dnsserver.zone import Zone, rrsig_key
from dnsserver.zonefile import zone_to_text
from tests.helpers import require_binary

ORIGIN = "docker."
NOW = int(time.time())  # dnssec-verify checks validity against the real clock


@dataclass(frozen=True)
class Keys:
    published: tuple[SigningKey, ...]
    ksk: tuple[SigningKey, ...]
    zsk: tuple[SigningKey, ...]


def _csk() -> Keys:
    key = SigningKey.generate()
    return Keys((key,), (key,), (key,))


def _soa(serial: int, minimum: int = 30) -> tuple[str, str, int, str]:
    return ("@", "SOA", 30, f"ns.dns.docker. hostmaster.docker. {serial} 3600 600 86400 {minimum}")


def _zone(services: int = 50, serial: int = 1) -> Zone:
    records = [_soa(serial), ("@", "NS", 30, "ns.dns.docker."), ("ns.dns", "A", 30, "127.0.0.1")]
    for n in range(services):
        records.append((f"web{n}.app", "A", 30, f"10.0.{n // 256}.{n % 256}"))
        records.append((f"_http._tcp.web{n}.app", "SRV", 30, f"10 100 80 web{n}.app.docker."))
    records.append(("*.wild", "TXT", 30, '"any name here"'))
    records.append(("alias.app", "CNAME", 30, "web1.app.docker."))
    return Zone.from_records(ORIGIN, records)


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


def _verify(zone: Zone, tmp_path: Path, *, csk: bool = True) -> None:
    """BIND's dnssec-verify accepts the zone (at the signer's time)."""
    path = tmp_path / f"db.{zone.serial}"
    path.write_text(zone_to_text(zone))
    command = [require_binary("dnssec-verify"), "-o", ORIGIN]
    if csk:
        command.append("-z")  # one combined key (flags 257) signs everything
    result = subprocess.run(
        [*command, str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Zone fully signed" in result.stdout


def _store(keys: Keys, clock: Clock, zone: Zone | None = None) -> tuple[ZoneStore, Signer]:
    signer = Signer(lambda _: keys, clock=clock)
    return ZoneStore({ORIGIN: zone or _zone()}, signer=signer), signer


def _validate_all(zone: Zone, keys: Keys) -> int:
    """dnspython validates every RRset's signatures with the zone's DNSKEY RRset; returns
    how many RRsets it checked."""
    origin = dns.name.from_text(ORIGIN)
    dnskey = zone.get(ORIGIN, DNSKEY)
    assert dnskey is not None
    keyring = {
        origin: dns.rrset.from_rdata_list(
            origin,
            dnskey.ttl,
            [dns.rdata.from_wire(1, DNSKEY, r, 0, len(r)) for r in dnskey.rdatas],
        )
    }
    checked = 0
    for rrset in zone.rrsets():
        if rrset.rdtype == RRSIG or rrset.rdtype > 0xFF00:
            continue
        if rrset.rdtype == 2 and rrset.name != ORIGIN:
            continue
        group = zone.get(rrset.name, rrsig_key(rrset.rdtype))
        assert group is not None, (rrset.name, rrset.rdtype)
        name = dns.name.from_text(rrset.name)
        data = dns.rrset.from_rdata_list(
            name,
            rrset.ttl,
            [dns.rdata.from_wire(1, rrset.rdtype, r, 0, len(r)) for r in rrset.rdatas],
        )
        sigs = dns.rrset.from_rdata_list(
            name, group.ttl, [dns.rdata.from_wire(1, RRSIG, r, 0, len(r)) for r in group.rdatas]
        )
        dns.dnssec.validate(data, sigs, keyring, now=NOW)
        checked += 1
    return checked


def test_a_signed_zone_passes_dnssec_verify_and_every_rrset_validates(tmp_path: Path) -> None:
    keys = _csk()
    store, _ = _store(keys, Clock())
    zone = store.snapshot().zones[ORIGIN]
    _verify(zone, tmp_path)
    assert _validate_all(zone, keys) > 100
    # The wildcard's signature counts the labels without the `*` (RFC 4034 §3.1.3).
    group = zone.get("*.wild.docker.", rrsig_key(16))
    assert group is not None
    assert group.rdatas[0][3] == 2


def test_split_keys_sign_the_dnskey_rrset_with_the_ksk_and_the_rest_with_the_zsk(
    tmp_path: Path,
) -> None:
    ksk, zsk = SigningKey.generate(), SigningKey.generate(flags=ZONE_KEY)
    keys = Keys((ksk, zsk), (ksk,), (zsk,))
    store, _ = _store(keys, Clock())
    zone = store.snapshot().zones[ORIGIN]
    _verify(zone, tmp_path, csk=False)
    dnskey_sigs = zone.get(ORIGIN, rrsig_key(DNSKEY))
    soa_sigs = zone.get(ORIGIN, rrsig_key(6))
    assert dnskey_sigs is not None
    assert soa_sigs is not None
    assert {int.from_bytes(r[16:18], "big") for r in dnskey_sigs.rdatas} == {ksk.tag}
    assert {int.from_bytes(r[16:18], "big") for r in soa_sigs.rdatas} == {zsk.tag}


def test_a_patch_signs_only_what_it_changed_and_keeps_the_chain_whole(tmp_path: Path) -> None:
    keys = _csk()
    store, signer = _store(keys, Clock(), _zone(services=2000))
    before = signer.signatures
    soa = rrset_from_text(
        ORIGIN, ORIGIN, "SOA", 30, ["ns.dns.docker. hostmaster.docker. 2 3600 600 86400 30"]
    )
    store.patch(
        {
            ORIGIN: {
                ("new.app.docker.", "A"): rrset_from_text(
                    ORIGIN, "new.app.docker.", "A", 30, ["10.9.9.9"]
                ),
                ("web7.app.docker.", "A"): None,  # web7 keeps nothing but... nothing: it goes
                ("web8.app.docker.", "TXT"): rrset_from_text(
                    ORIGIN, "web8.app.docker.", "TXT", 30, ['"hi"']
                ),
                (ORIGIN, "SOA"): soa,
            }
        }
    )
    # new.app: A + NSEC and its predecessor's NSEC; web7's predecessor's NSEC; web8: TXT +
    # NSEC (its type bitmap); the SOA.
    assert signer.signatures - before <= 8
    zone = store.snapshot().zones[ORIGIN]
    assert zone.get("web7.app.docker.", NSEC) is None
    assert zone.get("web7.app.docker.", rrsig_key(1)) is None
    _verify(zone, tmp_path)
    assert _validate_all(zone, keys) > 4000


def test_the_same_zone_again_is_not_signed_again() -> None:
    keys = _csk()
    store, signer = _store(keys, Clock())
    before = signer.signatures
    store.replace({ORIGIN: _zone()})
    assert signer.signatures == before


def test_signatures_due_for_refresh_are_made_again_and_nothing_else(tmp_path: Path) -> None:
    keys = _csk()
    clock = Clock()
    policy = SigningPolicy()
    signer = Signer(lambda _: keys, policy=policy, clock=clock)
    store = ZoneStore({ORIGIN: _zone()}, signer=signer)
    made = signer.signatures
    first = store.resign()
    assert signer.signatures == made  # nothing due
    assert first is store.snapshot()
    # Half way through the spread of expirations, some are due, some not.
    clock.now += policy.validity - policy.refresh - policy.validity // 20
    store.resign()
    refreshed = signer.signatures - made
    assert 0 < refreshed < made
    clock.now += policy.validity // 10
    store.resign()
    zone = store.snapshot().zones[ORIGIN]
    due = int(clock.now) + policy.refresh
    for rrset in zone.rrsets():
        if rrset.rdtype == RRSIG:
            assert all(rrsig_expiration(r) > due for r in rrset.rdatas)


def test_new_keys_resign_the_zone_and_publish_them(tmp_path: Path) -> None:
    first = _csk()
    current = [first]
    signer = Signer(lambda _: current[0], clock=Clock())
    store = ZoneStore({ORIGIN: _zone()}, signer=signer)
    second = _csk()
    both = Keys(first.published + second.published, second.ksk, second.zsk)
    current[0] = both
    store.resign()
    zone = store.snapshot().zones[ORIGIN]
    dnskey = zone.get(ORIGIN, DNSKEY)
    assert dnskey is not None
    assert len(dnskey.rdatas) == 2
    _verify(zone, tmp_path)
    soa_sigs = zone.get(ORIGIN, rrsig_key(6))
    assert soa_sigs is not None
    assert {int.from_bytes(r[16:18], "big") for r in soa_sigs.rdatas} == {second.zsk[0].tag}


def test_the_signer_refuses_dnssec_records_from_a_source() -> None:
    store, _ = _store(_csk(), Clock())

    with pytest.raises(ZoneError, match="made by the signer"):
        store.patch(
            {
                ORIGIN: {
                    ("x.docker.", "NSEC"): rrset_from_text(
                        ORIGIN, "x.docker.", "NSEC", 30, ["docker. A"]
                    )
                }
            }
        )


def test_a_zone_whose_keys_cannot_be_read_keeps_its_version_and_holds_up_no_other() -> None:
    """One zone's damaged key files: its change waits (the old version stays served, a
    new zone is not served), every other zone's change is swapped in, then the error is
    raised for the caller to retry."""
    keys = _csk()
    broken = {"other."}

    def keys_of(origin: str) -> Keys:
        if origin in broken:
            raise KeyFileError(f"keys/{origin}keys.json", "keys[0].state", "damaged")
        return keys

    other = Zone.from_records("other.", [_soa(1)])
    broken.clear()
    store = ZoneStore({ORIGIN: _zone(), "other.": other}, signer=Signer(keys_of, clock=Clock()))
    broken.add("other.")
    soa_other = rrset_from_text(
        "other.", "other.", "SOA", 30, ["ns.dns.docker. hostmaster.docker. 2 3600 600 86400 30"]
    )
    with pytest.raises(KeyFileError, match="damaged"):
        store.patch(
            {
                ORIGIN: {
                    ("new.docker.", "A"): rrset_from_text(
                        ORIGIN, "new.docker.", "A", 30, ["10.1.1.1"]
                    )
                },
                "other.": {("other.", "SOA"): soa_other},
            },
            zones={"third.": Zone.from_records("third.", [_soa(1)])},
        )
    served = store.snapshot().zones
    assert served[ORIGIN].get("new.docker.", 1) is not None  # swapped in
    assert served["other."].serial == 1  # as it was
    assert "third." in served  # signed: not a zone of the broken store
    broken.add("fourth.")
    with pytest.raises(KeyFileError):
        store.patch({}, zones={"fourth.": Zone.from_records("fourth.", [_soa(1)])})
    assert "fourth." not in store.snapshot().zones
