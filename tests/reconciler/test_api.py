"""The API's pure parts: the token rules at start-up, dnsdock bodies into ServiceRecord
specs, the persisted default TTL, and the DNS server's outcome classification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dnsserver.stats import CAUSES, cause_of
from reconciler.api import ApiError, apply_dnsdock, is_dnsdock, is_loopback, merge_spec
from reconciler.config import api_settings_path, resolve
from reconciler.daemon import check_api
from reconciler.errors import ConfigError


def settings(tmp_path: Path, **flags: Any) -> Any:
    return resolve({"definitions": str(tmp_path / "defs"), **flags}, {}, None)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("0.0.0.0", False), ("::", False)],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_loopback_needs_no_token(tmp_path: Path) -> None:
    assert check_api(settings(tmp_path)) == ""


def test_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--insecure-api"):
        check_api(settings(tmp_path, http="0.0.0.0:5380"))


def test_insecure_api_allows_it(tmp_path: Path) -> None:
    assert check_api(settings(tmp_path, http="0.0.0.0:5380", insecure_api=True)) == ""


def test_the_token_comes_from_the_file_or_the_environment(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc\n")
    assert check_api(settings(tmp_path, http="[::]:5380", api_token_file=str(token))) == "abc"
    from_env = resolve(
        {"http": "0.0.0.0:5380", "definitions": str(tmp_path)}, {"DOCKZONE_API_TOKEN": "xyz"}, None
    )
    assert check_api(from_env) == "xyz"
    token.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        check_api(settings(tmp_path, http="0.0.0.0:5380", api_token_file=str(token)))


def test_there_is_no_token_flag() -> None:
    from reconciler.cli import build_parser  # noqa: PLC0415

    args = build_parser().parse_args(["run"])
    assert "api_token" not in vars(args)  # a token on the command line shows in ps


def test_a_ttl_set_through_the_api_wins_over_the_option(tmp_path: Path) -> None:
    path = api_settings_path(tmp_path / "defs")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"ttl": 9}))
    resolved = settings(tmp_path, ttl="60")
    assert resolved.ttl == 9
    assert resolved.ttl_from_api
    assert resolved.zone_settings().default_ttl == 9


def test_a_dnsdock_body_becomes_name_dot_image() -> None:
    spec: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    body = {"name": "Foo", "image": "bar", "ip": "10.0.0.3", "ttl": 30, "aliases": ["db.docker"]}
    assert is_dnsdock(body)
    apply_dnsdock(spec, annotations, body)
    assert spec == {"name": "foo.bar", "host": "10.0.0.3", "ttl": 30, "aliases": ["db.docker."]}
    apply_dnsdock(spec, annotations, {"ttl": -1, "image": "baz"})
    assert spec == {"name": "foo.baz", "host": "10.0.0.3", "aliases": ["db.docker."]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ip": ["10.0.0.1", "10.0.0.2"]}, "ip"),
        ({"ip": "nope"}, "ip"),
        ({"name": 5}, "name"),
        ({"aliases": 5}, "aliases"),
    ],
)
def test_bad_dnsdock_fields_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as raised:
        apply_dnsdock({"name": "a"}, {}, body)
    assert raised.value.field == field
    assert raised.value.status == 400


def test_a_spec_patch_is_a_json_merge_patch() -> None:
    spec: dict[str, Any] = {"name": "a", "host": "10.0.0.1", "text": "x"}
    merge_spec(spec, {"text": None, "port": 80})
    assert spec == {"name": "a", "host": "10.0.0.1", "port": 80}
    assert not is_dnsdock(spec)


def _response(flags: int, rcode: int, answers: int) -> bytes:
    return b"\x00\x01" + bytes([flags, rcode]) + b"\x00\x01" + answers.to_bytes(2, "big") + bytes(4)


@pytest.mark.parametrize(
    ("wire", "cause"),
    [
        (_response(0x84, 0, 1), ""),
        (_response(0x84, 0, 0), "nodata"),
        (_response(0x84, 3, 0), "nxdomain"),
        (_response(0x80, 5, 0), "refused"),
        (_response(0x80, 2, 0), "servfail"),
        (_response(0x80, 1, 0), "formerr"),
        (_response(0x86, 0, 0), "truncated"),
    ],
)
def test_responses_are_classified_by_cause(wire: bytes, cause: str) -> None:
    assert CAUSES[cause_of(wire)] == cause
