"""The dockzone command as a user runs it: a real process, its output and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import service
from tests.servers import Daemon, dig

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["render", "diff", "apply", "zones", "show", "explain", "run", "serve", "operator"]


def dockzone(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DOCKZONE_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        input=stdin,
        text=True,
        capture_output=True,
        env=environ,
        cwd=cwd or ROOT,
        timeout=60,
        check=False,
    )


@pytest.fixture
def defs(tmp_path: Path) -> Path:
    directory = tmp_path / "defs"
    directory.mkdir()
    (directory / "web.yaml").write_text(
        yaml.safe_dump_all(
            [
                service("web", dns_name="web.nginx", host="10.0.0.7", port=80),
                service("db", dns_name="db1.postgres", host="10.0.0.8", aliases=["db.docker."]),
            ]
        )
    )
    return directory


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = dockzone(command, "--help")
    assert result.returncode == 0
    assert "usage: dockzone " + command in result.stdout
    assert "--definitions DIR" in result.stdout
    assert "--zones DIR" in result.stdout


def test_usage_errors_exit_2() -> None:
    assert dockzone().returncode == 2
    assert dockzone("frobnicate").returncode == 2
    bad = dockzone("render", "--ttl", "soon")
    assert bad.returncode == 2
    assert "--ttl: must be a number of seconds, not 'soon'" in bad.stderr


def test_render_then_render_again(defs: Path, zones_dir: Path) -> None:
    first = dockzone("render", "--definitions", str(defs), "--zones", str(zones_dir))
    assert first.returncode == 0, first.stderr
    assert f"docker.                        written   {zones_dir}/db.docker" in first.stdout
    assert "2 definitions from" in first.stdout
    second = dockzone("render", "--definitions", str(defs), "--zones", str(zones_dir))
    assert second.returncode == 0
    assert "written" not in second.stdout
    assert "unchanged" in second.stdout


def test_invalid_definition_exits_1_and_the_rest_still_renders(defs: Path, zones_dir: Path) -> None:
    (defs / "bad.yaml").write_text(yaml.safe_dump(service("bad", host="10.0.0.9", port=0)))
    result = dockzone("render", "--definitions", str(defs), "--zones", str(zones_dir))
    assert result.returncode == 1
    assert (
        "error: bad.yaml#0 spec.port: must be 1..65535, not 0 (definition skipped)" in result.stderr
    )
    assert "web.nginx.docker." in (zones_dir / "db.docker").read_text()


def test_diff_prints_added_and_removed_records(defs: Path, zones_dir: Path) -> None:
    dockzone("render", "--definitions", str(defs), "--zones", str(zones_dir))
    (defs / "web.yaml").write_text(
        yaml.safe_dump(service("web", dns_name="web.nginx", host="10.0.0.70", port=80))
    )
    result = dockzone("diff", "--definitions", str(defs), "--zones", str(zones_dir))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"zone docker. ({zones_dir}/db.docker):" in out
    assert "  - web.nginx.docker. 30 IN A 10.0.0.7" in out
    assert "  + web.nginx.docker. 30 IN A 10.0.0.70" in out
    assert "  - db.docker. 30 IN A 10.0.0.8" in out
    assert "zone removed 0.0.10.in-addr.arpa." not in out  # 10.0.0.70 is in the same /24
    assert "db.docker" in (zones_dir / "db.docker").read_text()  # diff wrote nothing
    after = dockzone("diff", "--definitions", str(defs), "--zones", str(zones_dir))
    assert "web.nginx.docker. 30 IN A 10.0.0.70" in after.stdout


def test_diff_says_no_changes(defs: Path, zones_dir: Path) -> None:
    dockzone("render", "--definitions", str(defs), "--zones", str(zones_dir))
    assert (
        dockzone("diff", "--definitions", str(defs), "--zones", str(zones_dir)).stdout
        == "no changes\n"
    )


def test_apply_validates_then_installs_each_document(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    source = tmp_path / "new.yaml"
    source.write_text(
        yaml.safe_dump_all([service("api", host="10.0.0.5"), service("cache", host="10.0.0.6")])
    )
    result = dockzone("apply", "-f", str(source), "--definitions", str(defs))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"servicerecord/api created ({defs}/servicerecord-api.yaml)",
        f"servicerecord/cache created ({defs}/servicerecord-cache.yaml)",
    ]
    again = dockzone("apply", "-f", str(source), "--definitions", str(defs))
    assert "servicerecord/api unchanged" in again.stdout
    changed = dockzone(
        "apply",
        "-f",
        "-",
        "--definitions",
        str(defs),
        stdin=yaml.safe_dump(service("api", host="10.0.0.55")),
    )
    assert changed.stdout.startswith("servicerecord/api configured")
    assert "10.0.0.55" in (defs / "servicerecord-api.yaml").read_text()


def test_apply_with_any_error_installs_nothing(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    source = tmp_path / "new.yaml"
    source.write_text(
        yaml.safe_dump_all(
            [service("ok", host="10.0.0.5"), service("bad", host="10.0.0.6", ttl=-1)]
        )
    )
    result = dockzone("apply", "-f", str(source), "--definitions", str(defs))
    assert result.returncode == 1
    assert f"error: {source}#1 spec.ttl: must be 0..2147483647, not -1" in result.stderr
    assert "nothing applied" in result.stderr
    assert not defs.exists()


def test_apply_refuses_a_name_defined_in_another_file(defs: Path) -> None:
    result = dockzone(
        "apply",
        "-f",
        "-",
        "--definitions",
        str(defs),
        stdin=yaml.safe_dump(service("web", host="10.0.0.1")),
    )
    assert result.returncode == 1
    assert (
        f"servicerecord/web is already defined in {defs}/web.yaml; edit that file" in result.stderr
    )


def test_zones_and_show(defs: Path, zones_dir: Path) -> None:
    dockzone("render", "--definitions", str(defs), "--zones", str(zones_dir))
    listing = dockzone("zones", "--zones", str(zones_dir)).stdout.splitlines()
    assert listing[0].split() == ["ZONE", "SERIAL", "RECORDS", "FILE"]
    rows = {line.split()[0]: line.split() for line in listing[1:]}
    assert rows["docker."][2] == "10"
    assert rows["0.0.10.in-addr.arpa."][3] == f"{zones_dir}/db.0.0.10.in-addr.arpa"
    shown = dockzone("show", "docker", "--zones", str(zones_dir))
    assert shown.stdout == (zones_dir / "db.docker").read_text()
    missing = dockzone("show", "nope.", "--zones", str(zones_dir))
    assert missing.returncode == 1
    assert "no zone nope." in missing.stderr


def test_explain_names_the_definition_and_field(defs: Path) -> None:
    result = dockzone("explain", "nginx.docker.", "SRV", "--definitions", str(defs))
    assert result.stdout.splitlines() == [
        "nginx.docker. 30 IN SRV 10 100 80 web.nginx.docker.",
        "    from web.yaml#0 (servicerecord/web) spec.port, aggregated from web.nginx.docker.",
    ]
    relative = dockzone("explain", "db", "--definitions", str(defs))
    assert "db.docker. 30 IN A 10.0.0.8" in relative.stdout
    assert "from web.yaml#1 (servicerecord/db) spec.aliases" in relative.stdout
    assert (
        "no records at nope.docker."
        in dockzone("explain", "nope", "--definitions", str(defs)).stdout
    )


def test_settings_from_environment_and_config_file(defs: Path, tmp_path: Path) -> None:
    config = tmp_path / "dockzone.yaml"
    config.write_text(
        f"definitions: {defs}\nzones: {tmp_path / 'z'}\ndomain: [example.test.]\nttl: 60\n"
    )
    result = dockzone("render", "--config", str(config), env={"DOCKZONE_TTL": "90"})
    assert result.returncode == 0  # relative names land in example.test.; the alias is dropped
    assert (
        "warning: conflict: db.docker. alias is outside every zone dockzone serves" in result.stderr
    )
    rows = [line.split() for line in (tmp_path / "z" / "db.example.test").read_text().splitlines()]
    assert ["web.nginx.example.test.", "90", "IN", "A", "10.0.0.7"] in rows
    flag = dockzone("render", "--config", str(config), "--ttl", "120", env={"DOCKZONE_TTL": "90"})
    rows = [line.split() for line in (tmp_path / "z" / "db.example.test").read_text().splitlines()]
    assert ["web.nginx.example.test.", "120", "IN", "A", "10.0.0.7"] in rows
    assert flag.returncode == 0


def test_unknown_config_key_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("domian: x.\n")
    result = dockzone("zones", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}: unknown key 'domian'" in result.stderr


def test_render_writes_a_corefile_for_the_auto_plugin(defs: Path, zones_dir: Path) -> None:
    result = dockzone(
        "render",
        "--definitions",
        str(defs),
        "--zones",
        str(zones_dir),
        "--corefile",
        "--dns",
        "127.0.0.1:1053",
    )
    assert result.returncode == 0
    corefile = (zones_dir / "Corefile").read_text()
    assert "docker.:1053 0.0.10.in-addr.arpa.:1053 {" in corefile
    assert f"directory {zones_dir.resolve()} db\\.(.*) {{1}}" in corefile
    assert "bind 127.0.0.1" in corefile


def test_option_prefixes_are_not_guessed() -> None:
    """``--api-token`` is not ``--api-token-file``: a secret passed as a flag by mistake
    must be refused, not read as a file name."""
    result = dockzone("run", "--api-token", "s3cret")
    assert result.returncode == 2
    assert "unrecognized arguments: --api-token s3cret" in result.stderr


def test_run_help_shows_only_the_two_dash_form() -> None:
    """Go-style flags are accepted, not advertised; hidden negations stay hidden."""
    result = dockzone("run", "--help")
    assert result.returncode == 0
    assert "--dns ADDR:PORT" in result.stdout
    assert "--tlsverify" in result.stdout
    assert "--no-tlsverify" not in result.stdout
    assert " -dns" not in result.stdout


def test_go_style_flags_mean_their_two_dash_form(defs: Path, zones_dir: Path) -> None:
    result = dockzone("render", f"-definitions={defs}", "-zones", str(zones_dir), "-ttl=7")
    assert result.returncode == 0, result.stderr
    lines = {" ".join(line.split()) for line in (zones_dir / "db.docker").read_text().splitlines()}
    assert "web.nginx.docker. 7 IN A 10.0.0.7" in lines


def test_a_go_style_boolean_with_a_bad_value_names_the_flag() -> None:
    result = dockzone("run", "-tlsverify=maybe")
    assert result.returncode == 2
    assert "-tlsverify: must be true or false, not 'maybe'" in result.stderr


def test_options_without_a_command_are_run() -> None:
    """dnsdock has no commands: ``dockzone -docker=tcp://...`` (its Dockerfile's CMD) is
    ``dockzone run``; a bad value is reported as run's."""
    result = dockzone("-dns=nowhere:53")
    assert result.returncode == 2
    assert "--dns: 'nowhere' is not an IP address" in result.stderr


def test_an_empty_address_means_every_address(defs: Path, zones_dir: Path) -> None:
    """``--dns :1053`` (dnsdock's ``-dns=":53"``): the Corefile binds every address."""
    result = dockzone(
        "render",
        "--definitions",
        str(defs),
        "--zones",
        str(zones_dir),
        "--corefile",
        "-dns=:1053",
    )
    assert result.returncode == 0, result.stderr
    corefile = (zones_dir / "Corefile").read_text()
    assert "docker.:1053 0.0.10.in-addr.arpa.:1053 {" in corefile
    assert "bind" not in corefile
    bad = dockzone("run", "--nameserver", ":53")
    assert bad.returncode == 2
    assert "--nameserver: '' is not an IP address" in bad.stderr


def test_configured_reverse_zones_hold_their_ptrs_and_exist_when_empty(
    defs: Path, zones_dir: Path
) -> None:
    result = dockzone(
        "render",
        "--definitions",
        str(defs),
        "--zones",
        str(zones_dir),
        "--reverse-zone",
        "10.0.0.0/16",
        "--reverse-zone=113.0.203.in-addr.arpa",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in zones_dir.glob("db.*")) == [
        "db.0.10.in-addr.arpa",
        "db.113.0.203.in-addr.arpa",
        "db.docker",
    ]
    text = (zones_dir / "db.0.10.in-addr.arpa").read_text()
    lines = {" ".join(line.split()) for line in text.splitlines()}
    assert "7.0.0.10.in-addr.arpa. 30 IN PTR web.nginx.docker." in lines


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.0/12", "'10.0.0.0/12': the prefix length must be a multiple of 8"),
        ("fd00::/50", "'fd00::/50': the prefix length must be a multiple of 4"),
        ("10.0.0.300/24", "'10.0.0.300/24' is not a network"),
        ("docker", "'docker' is neither a network (10.0.0.0/16) nor a reverse zone"),
    ],
)
def test_a_bad_reverse_zone_names_the_option(value: str, message: str) -> None:
    result = dockzone("render", "--reverse-zone", value)
    assert result.returncode == 2
    assert f"--reverse-zone: {message}" in result.stderr


def test_tcp_idle_timeout_reaches_the_dns_server(defs: Path, tmp_path: Path) -> None:
    """``--tcp-idle-timeout`` is what TCP clients asking for edns-tcp-keepalive are told."""
    daemon = Daemon.start(tmp_path, defs, "--docker", "off", "--tcp-idle-timeout", "12.5")
    try:
        out = dig(daemon.port, "+tcp", "+keepalive", "docker.", "SOA")
    finally:
        daemon.stop()
    assert "status: NOERROR" in out
    assert "TCP KEEPALIVE: 12.5 secs" in out


@pytest.mark.parametrize("value", ["0", "6554", "soon"])
def test_a_bad_tcp_idle_timeout_names_the_option(value: str) -> None:
    result = dockzone("serve", "--tcp-idle-timeout", value)
    assert result.returncode == 2
    assert "--tcp-idle-timeout: must be" in result.stderr
