"""The ``dockzone`` command line: the parser, ``run``, ``serve``, ``operator``, ``confirm``
(a POST to the running daemon), and the offline commands (render, diff, apply, zones, show,
explain; in ``offline``), each module imported when its command runs: ``run`` answers DNS
before the rest is imported.

Exit codes: 0 done; 1 some definitions (or zone files) were invalid, the rest was still
done; 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from reconciler import __version__, logs
from reconciler.config import OPTIONS, Settings, parse_hostport, resolve
from reconciler.errors import ConfigError

OK, INVALID, USAGE = 0, 1, 2


@dataclass(slots=True)
class Context:
    settings: Settings
    out: TextIO
    err: TextIO

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=self.err)

    def error(self, message: str) -> None:
        print(f"error: {message}", file=self.err)


GO_TRUE = ("1", "t", "T", "true", "TRUE", "True")
GO_FALSE = ("0", "f", "F", "false", "FALSE", "False")
"""The spellings of Go's ``strconv.ParseBool``, which dnsdock's flags accept."""

DAEMONS = ("run", "serve", "operator")
"""Commands that log what they change (INFO) unless told otherwise."""


class _Parser(argparse.ArgumentParser):
    """argparse that also takes Go's flag syntax, so dnsdock command lines work unchanged.

    dnsdock (Go's ``flag`` package) writes long options with one dash: ``-dns=:53``,
    ``-docker tcp://...``, ``-verbose``, ``-tlsverify=false``. Before parsing, a one-dash
    word naming a long option of this parser becomes its two-dash form; a boolean option
    given ``=true`` or ``=false`` becomes ``--name`` or ``--no-name``. One-letter options
    (``-f``, ``-h``) and values are left alone; ``--help`` shows only the two-dash form.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self._go_style(words), namespace)

    def _go_style(self, words: list[str]) -> list[str]:
        known = self._option_string_actions  # argparse keeps every option string here
        result: list[str] = []
        for number, word in enumerate(words):
            if word == "--":
                return result + words[number:]
            name, equals, value = word[1:].partition("=")
            flag = "--" + name
            if word.startswith("--") or len(name) < 2 or flag not in known:
                result.append(word)
            elif known[flag].nargs != 0:  # an option with a value: -dns=:53, -dns :53
                result.append(flag + equals + value)
            elif not equals or value in GO_TRUE:
                result.append(flag)
            elif value in GO_FALSE and "--no-" + name in known:
                result.append("--no-" + name)
            else:
                self.error(f"-{name}: must be true or false, not {value!r}")
        return result


def _common_options(parser: argparse.ArgumentParser, command: str) -> None:
    group = parser.add_argument_group("settings (also DOCKZONE_<NAME> or the --config file)")
    group.add_argument("--config", type=Path, metavar="FILE", help="YAML file of settings")
    for option in OPTIONS:
        if (option.commands and command not in option.commands) or not option.cli:
            continue
        flag = "--" + option.name.replace("_", "-")
        dest, text = option.name, option.help
        if option.switch:
            group.add_argument(flag, dest=dest, help=text, action="store_const", const=True)
            # Go's -tlsverify=false; not shown, the switch is off unless given.
            negation = "--no-" + option.name.replace("_", "-")
            group.add_argument(
                negation, dest=dest, help=argparse.SUPPRESS, action="store_const", const=False
            )
        elif option.flag:
            group.add_argument(flag, dest=dest, help=text, action=argparse.BooleanOptionalAction)
        elif option.repeat:
            group.add_argument(flag, dest=dest, help=text, action="append", metavar=option.metavar)
        else:
            group.add_argument(flag, dest=dest, help=text, metavar=option.metavar)
    group.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: INFO for run, serve and operator, else WARNING)",
    )
    group.add_argument(
        "--verbose",
        action=argparse.BooleanOptionalAction,
        help="log every change (INFO), as dnsdock's -verbose; --no-verbose: only warnings",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dockzone",
        description="DNS service discovery for Docker hosts and Kubernetes clusters.",
        allow_abbrev=False,  # --api-token must not quietly mean --api-token-file
    )
    parser.add_argument("--version", action="version", version=f"dockzone {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, summary: str, handler: Callable[[Context, argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary, allow_abbrev=False)
        _common_options(sub, name)
        sub.set_defaults(handler=handler)
        return sub

    render = command(
        "render",
        "Render the definitions into zone files (only changed zones are written).",
        cmd_render,
    )
    render.add_argument(
        "--corefile",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="also write a CoreDNS Corefile (default PATH: <zones>/Corefile)",
    )
    command("diff", "Show what render would change in the zone files, per zone and name.", cmd_diff)
    apply = command(
        "apply", "Validate definitions and install them into the definitions directory.", cmd_apply
    )
    apply.add_argument(
        "-f",
        "--filename",
        required=True,
        metavar="FILE",
        help="YAML file of definitions, or - for standard input",
    )
    command(
        "run",
        "Run the daemon: watch the definitions, keep the zone files and the DNS server converged.",
        cmd_run,
    )
    command(
        "serve", "Serve the zone files of a directory over DNS, reloading changed files.", cmd_serve
    )
    command(
        "operator",
        "Run the Kubernetes operator: ServiceRecord CRs into zone files for a CoreDNS sidecar.",
        cmd_operator,
    )
    confirm = command(
        "confirm",
        "Let the running daemon remove the records a held-back read drops (deletion budget).",
        cmd_confirm,
    )
    confirm.add_argument(
        "source", metavar="SOURCE", nargs="?", default="", help="only this source (docker, ...)"
    )
    command(
        "status",
        "Print the running daemon's summary: zones, sources, sinks, the last passes, problems.",
        cmd_status,
    )
    command("zones", "List the zone files with their serial and record count.", cmd_zones)
    show = command("show", "Print one zone file.", cmd_show)
    show.add_argument("zone", metavar="ZONE", help="zone name, like docker.")
    explain = command(
        "explain", "Show the records at a name and the definitions they came from.", cmd_explain
    )
    explain.add_argument("name", metavar="NAME", help="a name, absolute or relative to the domain")
    explain.add_argument(
        "rdtype", metavar="TYPE", nargs="?", default="", help="only this record type"
    )
    _dnssec_commands(commands)
    return parser


def _dnssec_commands(commands: Any) -> None:
    """``dockzone dnssec keys|ds|roll|ds-seen``, each with the settings of ``dnssec``."""
    summary = "DNSSEC keys: list them, print the DS for the parent, roll them."
    dnssec = commands.add_parser("dnssec", help=summary, description=summary, allow_abbrev=False)
    actions = dnssec.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(
        name: str, text: str, handler: Callable[[Context, argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(
            name, help=text, description=text, allow_abbrev=False
        )
        _common_options(sub, "dnssec")
        sub.set_defaults(handler=handler)
        return sub

    keys = action("keys", "List the keys: zone, tag, role, state, next event.", cmd_dnssec_keys)
    keys.add_argument("zone", metavar="ZONE", nargs="?", default="", help="only this zone")
    ds = action(
        "ds",
        "Print the DS records the parent zone should hold now (makes the keys if none exist).",
        cmd_dnssec_ds,
    )
    roll = action("roll", "Start a key rollover now.", cmd_dnssec_roll)
    kind = roll.add_mutually_exclusive_group(required=True)
    kind.add_argument(
        "--zsk", dest="kind", action="store_const", const="zsk", help="a new ZSK (pre-publish)"
    )
    kind.add_argument(
        "--ksk",
        dest="kind",
        action="store_const",
        const="ksk",
        help="a new KSK or combined key (double-DS: its DS goes to the parent first)",
    )
    kind.add_argument("--csk", dest="kind", action="store_const", const="csk", help="as --ksk")
    seen = action(
        "ds-seen",
        "The parent serves the new KSK's DS: the key enters the DNSKEY RRset after the DS TTL.",
        cmd_dnssec_ds_seen,
    )
    for sub in (ds, roll, seen):
        sub.add_argument("zone", metavar="ZONE", help="zone name, like docker.")


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run one command; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0].startswith("-") and words[0].lstrip("-") not in ("h", "help", "version"):
        words.insert(0, "run")  # dnsdock's command line has options only: dockzone -dns=:53
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:
        return int(exc.code or 0)
    logs.configure(log_level(args))
    try:
        settings = resolve(vars(args), os.environ, args.config)
    except ConfigError as exc:
        print(f"dockzone: {exc}", file=err)
        return USAGE
    handler: Callable[[Context, argparse.Namespace], int] = args.handler
    return handler(Context(settings, out, err), args)


def log_level(args: argparse.Namespace) -> str:
    """``--log-level``, else ``--verbose`` (INFO) or ``--no-verbose`` (WARNING), else INFO
    for the daemons and WARNING for the other commands."""
    if args.log_level:
        return str(args.log_level)
    if args.verbose is not None:
        return "INFO" if args.verbose else "WARNING"
    return "INFO" if args.command in DAEMONS else "WARNING"


# --- commands ---------------------------------------------------------------------------


def _deferred(module: str, command: str) -> Callable[[Context, argparse.Namespace], int]:
    """The handler `command` of ``reconciler.<module>``, imported when it runs: ``offline``
    (the index, the planner, the zone file writer), ``keys`` (``cryptography``)."""

    def handler(ctx: Context, args: argparse.Namespace) -> int:
        # `run` binds DNS before these load; other commands do not load them at all.
        loaded = importlib.import_module(f"reconciler.{module}")
        run: Callable[[Context, argparse.Namespace], int] = getattr(loaded, command)
        return run(ctx, args)

    return handler


cmd_render = _deferred("offline", "cmd_render")
cmd_diff = _deferred("offline", "cmd_diff")
cmd_apply = _deferred("offline", "cmd_apply")
cmd_zones = _deferred("offline", "cmd_zones")
cmd_show = _deferred("offline", "cmd_show")
cmd_explain = _deferred("offline", "cmd_explain")
cmd_dnssec_keys = _deferred("keys", "cmd_keys")
cmd_dnssec_ds = _deferred("keys", "cmd_ds")
cmd_dnssec_roll = _deferred("keys", "cmd_roll")
cmd_dnssec_ds_seen = _deferred("keys", "cmd_ds_seen")


class _Stopped(Exception):
    """SIGTERM or SIGINT arrived while ``run`` was still starting."""


def _stop_early(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    # Until the daemon's own handlers are in place, a stop request ends the start cleanly.
    signal.signal(signal.SIGTERM, _stop_early)
    signal.signal(signal.SIGINT, _stop_early)
    from reconciler import warm  # noqa: PLC0415 - DNS answers before the heavy imports

    early = None
    try:
        try:
            early = warm.start(ctx.settings)
        except OSError as exc:
            where = ctx.settings.dns
            print(f"dockzone: cannot serve DNS on {where}: {exc.strerror or exc}", file=ctx.err)
            return 1
        except ConfigError as exc:
            print(f"dockzone: {exc}", file=ctx.err)
            return 2
        import asyncio  # noqa: PLC0415 - after the DNS socket, as everything below

        from reconciler import daemon  # noqa: PLC0415 - aiohttp, docker: after the DNS socket

        return asyncio.run(daemon.run(ctx.settings, ctx.err, early))
    except _Stopped:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second request: stop at once
        if early is not None and early.service is not None:
            early.service.stop()
            warm.save_served(ctx.settings.zones, early.store)
        print("dockzone: stopped while starting", file=ctx.err)
        return 0


def cmd_confirm(ctx: Context, args: argparse.Namespace) -> int:
    """``POST /confirm[/SOURCE]`` to the daemon's HTTP API (``--http``, with the token of
    ``--api-token-file`` or DOCKZONE_API_TOKEN)."""
    import urllib.parse  # noqa: PLC0415 - only this command needs it

    path = "/confirm"
    if args.source:
        path += "/" + urllib.parse.quote(args.source, safe="")
    body = _call_daemon(ctx, "POST", path)
    if isinstance(body, int):
        return body
    for held in body.get("confirmed", {}).values():
        print(f"confirmed: {held}", file=ctx.out)
    return OK


def _call_daemon(ctx: Context, method: str, path: str) -> dict[str, Any] | int:
    """``method path`` on the daemon's HTTP API (``--http``; 0.0.0.0 and :: reached on
    loopback), with the token of ``--api-token-file`` or DOCKZONE_API_TOKEN: the JSON
    body, or an exit code after printing the error."""
    import json  # noqa: PLC0415 - only the commands that call the daemon need these
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from reconciler.daemon import api_token  # noqa: PLC0415

    if ctx.settings.http == "off":
        ctx.error("the HTTP API is off (--http off); give the daemon's --http ADDR:PORT")
        return USAGE
    host, port = parse_hostport(ctx.settings.http)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    where = f"[{host}]" if ":" in host else host
    url = f"http://{where}:{port}{path}"
    try:
        token = api_token(ctx.settings)
    except ConfigError as exc:
        ctx.error(str(exc))
        return USAGE
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = b"" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        ctx.error(f"{url}: {message}")
        return INVALID
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        ctx.error(f"cannot reach dockzone's HTTP API at {url}: {reason}")
        return INVALID
    return body


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    """``GET /status`` from the daemon, printed as the status page shows it."""
    body = _call_daemon(ctx, "GET", "/status")
    if isinstance(body, int):
        return body
    print_status(body, ctx.out)
    return OK


def print_status(status: dict[str, Any], out: TextIO) -> None:
    """The status page's summary as text: zones, sources and sinks, problems, passes."""
    state = "ready" if status.get("ready") else "starting"
    print(
        f"dockzone {status.get('version')}, started {status.get('started')}, "
        f"{status.get('passes')} passes, {state}",
        file=out,
    )
    print(f"\n{'ZONE':<30} {'SERIAL':>10} {'RECORDS':>7}", file=out)
    for origin, zone in status.get("zones", {}).items():
        serial = "-" if zone.get("serial") is None else zone["serial"]
        print(f"{origin:<30} {serial:>10} {zone.get('records'):>7}", file=out)
    print(f"\n{'SOURCE':<30} {'RECORDS':>7}  STATE", file=out)
    for name, source in status.get("sources", {}).items():
        if source.get("held"):
            held = source["held"]
            what = f"holding back {held['removed']} deletions ({held['reason']})"
        elif source.get("stale"):
            what = "stale"
        else:
            what = "ok"
        print(f"{name:<30} {source.get('records'):>7}  {what}", file=out)
    for name, sink in status.get("sinks", {}).items():
        print(f"{'sink ' + name:<30} {'':>7}  {sink.get('error') or 'converged'}", file=out)
    dns = status.get("dns")
    if dns:
        rate = "" if dns.get("rate") is None else f", {dns['rate']}/s"
        listeners = ", ".join(dns.get("listeners", [])) or "-"
        print(f"DNS on {listeners}: {dns.get('queries')} queries{rate}", file=out)
    problems = [
        f"{name}: {problem}"
        for name, source in status.get("sources", {}).items()
        for problem in source.get("problems", [])
    ]
    problems += [f"conflict: {conflict}" for conflict in status.get("conflicts", [])]
    last = status.get("last_reconcile") or {}
    problems += [f"sink: {error}" for error in last.get("errors", [])]
    print(f"\nproblems: {len(problems) or 'none'}", file=out)
    for problem in problems:
        print(f"  {problem}", file=out)
    print("\nlast passes:", file=out)
    for report in status.get("recent", [])[:5]:
        counts = report.get("rrsets", {})
        what = (
            f"+{counts.get('added')} -{counts.get('removed')} ~{counts.get('changed')}"
            if report.get("changed")
            else "no changes"
        )
        why = ", ".join(report.get("reasons", [])) or "-"
        print(
            f"  #{report.get('number')} {report.get('time')} {why} "
            f"{report.get('seconds', 0):.3f}s {what}",
            file=out,
        )
        for line in report.get("lines", []):
            print(f"      {line}", file=out)


def cmd_operator(ctx: Context, args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from reconciler import operator  # noqa: PLC0415 - kopf loads only for this command

    return asyncio.run(operator.main(ctx.settings, ctx.err))


def cmd_serve(ctx: Context, args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from reconciler import daemon  # noqa: PLC0415

    return asyncio.run(daemon.serve(ctx.settings, ctx.err))
