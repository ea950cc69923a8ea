"""``dockzone dnssec``: keys, ds, roll, ds-seen as a user runs them, and the key options."""

from __future__ import annotations

from pathlib import Path

import dns.dnssec
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from dnsserver.keys import KeyPolicy, KeyStore
from reconciler.config import resolve
from reconciler.errors import ConfigError
from reconciler.keys import key_policy, key_store
from tests.reconciler.test_cli import dockzone


def dnssec(keys: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = dockzone("dnssec", *args, "--dnssec-keys", str(keys), env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def assert_ds_agrees(printed: str, keys: Path, zone: str) -> None:
    """Each printed DS is what dnspython makes from the DNSKEY of a key in the store."""
    dnskeys = {
        key.tag: dns.rdata.from_wire(
            dns.rdataclass.IN, dns.rdatatype.DNSKEY, key.dnskey, 0, len(key.dnskey)
        )
        for key in KeyStore(keys).keys(zone).ds
    }
    lines = printed.splitlines()
    assert lines
    for line in lines:
        owner, ttl, klass, rdtype, rdata = line.split(" ", 4)
        assert (owner, ttl, klass, rdtype) == (zone, "86400", "IN", "DS")
        ds = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DS, rdata)
        made = dns.dnssec.make_ds(zone, dnskeys[ds.key_tag], "SHA256")  # type: ignore[attr-defined,arg-type]
        assert ds == made


def test_ds_makes_the_keys_and_prints_the_ds_dnspython_agrees_with(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert "no DNSSEC keys in" in dnssec(keys, "keys")
    printed = dnssec(keys, "ds", "docker.")
    assert_ds_agrees(printed, keys, "docker.")
    assert dnssec(keys, "ds", "docker") == printed  # the same keys the next time
    listing = dnssec(keys, "keys").splitlines()
    assert listing[0].split() == ["ZONE", "TAG", "ROLE", "ALGORITHM", "STATE", "NEXT", "EVENT"]
    tag = printed.split()[4]
    assert listing[1].split() == ["docker.", tag, "CSK", "ECDSAP256SHA256", "active", "-"]


def test_a_csk_roll_from_the_command_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    old = dnssec(keys, "ds", "docker.").split()[4]
    refused = dockzone("dnssec", "roll", "docker.", "--zsk", "--dnssec-keys", str(keys))
    assert refused.returncode == 1
    assert "combined signing key (CSK): roll it with --ksk" in refused.stderr
    rolled = dnssec(keys, "roll", "docker.", "--ksk")
    assert "ds-pending: its DS goes to the parent" in rolled
    assert "dockzone dnssec ds-seen docker." in rolled
    both = dnssec(keys, "ds", "docker.")
    assert both.split()[4] == old
    assert len(both.splitlines()) == 2
    assert_ds_agrees(both, keys, "docker.")
    assert "waiting for its DS at the parent" in dnssec(keys, "keys", "docker.")
    assert "in the DNSKEY RRset from 20" in dnssec(keys, "ds-seen", "docker.")
    listing = dnssec(keys, "keys", "docker.")
    assert "ds-pending  published at 20" in listing
    again = dockzone("dnssec", "ds-seen", "docker.", "--dnssec-keys", str(keys))
    assert again.returncode == 1
    assert "no KSK/CSK roll is waiting for its DS" in again.stderr


def test_split_ed25519_keys_from_the_environment(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    env = {"DOCKZONE_DNSSEC_SPLIT_KEYS": "true", "DOCKZONE_DNSSEC_ALGORITHM": "ed25519"}
    printed = dnssec(keys, "ds", "example.", env=env)
    assert " IN DS " in printed
    assert " 15 2 " in printed
    assert_ds_agrees(printed, keys, "example.")
    rows = [line.split()[2:5] for line in dnssec(keys, "keys").splitlines()[1:]]
    assert rows == [["KSK", "ED25519", "active"], ["ZSK", "ED25519", "active"]]
    rolled = dnssec(keys, "roll", "example.", "--zsk", env=env)
    assert "ZSK" in rolled
    assert "published: signing from 20" in rolled


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [
        ("--dnssec-zsk-lifetime", "soon", "must be seconds or a duration like 30d"),
        ("--dnssec-zsk-lifetime", "60", "a ZSK lifetime must be 0"),
        ("--dnssec-algorithm", "RSASHA256", "must be ECDSAP256SHA256 or ED25519"),
    ],
)
def test_bad_key_options_exit_2_naming_the_option(
    tmp_path: Path, flag: str, value: str, problem: str
) -> None:
    result = dockzone("dnssec", "keys", flag, value, "--dnssec-keys", str(tmp_path))
    assert result.returncode == 2
    assert f"{flag}: {problem}" in result.stderr


def test_run_and_serve_take_the_key_options() -> None:
    for command in ("run", "serve"):
        text = dockzone(command, "--help").stdout
        assert "--dnssec-keys DIR" in text
        assert "--dnssec-zsk-lifetime SECONDS|DURATION" in text
        assert "--dnssec-split-keys" in text


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30d", 30 * 86400), ("1w2d", 9 * 86400), ("12h", 43200), ("150m", 9000), ("86400", 86400)],
)
def test_key_policy_from_the_settings(tmp_path: Path, value: str, seconds: int) -> None:
    settings = resolve(
        {"dnssec_zsk_lifetime": value, "dnssec_keys": str(tmp_path), "dnssec_split_keys": True},
        {},
        None,
    )
    assert settings.dnssec_zsk_lifetime == seconds
    assert key_policy(settings) == KeyPolicy(split=True, zsk_lifetime=seconds)
    assert key_store(settings).directory == tmp_path


def test_a_zsk_lifetime_of_0_rolls_only_on_command(tmp_path: Path) -> None:
    settings = resolve({"dnssec_zsk_lifetime": "0"}, {}, None)
    assert key_policy(settings).zsk_lifetime == 0
    short = resolve({"dnssec_zsk_lifetime": "1h"}, {}, None)
    with pytest.raises(ConfigError, match="--dnssec-zsk-lifetime"):
        key_policy(short)
