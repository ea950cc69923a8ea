"""The offline commands: render, diff, apply, zones, show, explain.

They read the definitions and zone files once and exit. ``cli`` imports this module only
when one of them runs, so that ``dockzone run`` binds its DNS socket before any of it
(the index, the planner, the zone file writer) is imported.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

import yaml

from reconciler import heap
from reconciler.atomicio import write_if_changed
from reconciler.cli import INVALID, OK, Context
from reconciler.config import listen_addresses
from reconciler.core import names, plan
from reconciler.core.index import BuildResult, build
from reconciler.definitions import Definitions, load_definitions, parse_definitions
from reconciler.errors import DefinitionError
from reconciler.explain import explain, resolve_name
from reconciler.render import render_corefile
from reconciler.sinks.zonefiles import ZoneFileSink, load_zone_files, zone_file_name

# --- shared steps -----------------------------------------------------------------------


def _load(ctx: Context) -> Definitions:
    definitions = load_definitions(ctx.settings.definitions, ctx.settings.name_defaults())
    for error in definitions.errors:
        ctx.error(f"{error} (definition skipped)")
    return definitions


def _build(ctx: Context, definitions: Definitions) -> BuildResult:
    result = build(definitions.records, ctx.settings.zone_settings())
    for conflict in result.conflicts:
        ctx.warn(f"conflict: {conflict}")
    return result


def _desired(ctx: Context) -> tuple[Definitions, BuildResult]:
    with heap.building():
        definitions = _load(ctx)
        return definitions, _build(ctx, definitions)


# --- commands ---------------------------------------------------------------------------


def cmd_render(ctx: Context, args: argparse.Namespace) -> int:
    definitions, result = _desired(ctx)
    sink = ZoneFileSink(ctx.settings.zones)
    changes = plan.calculate(asyncio.run(sink.current()), result.zones)
    report = asyncio.run(sink.apply(changes))
    for error in report.errors:
        ctx.error(str(error))
    written = set(report.written)
    for origin in sorted(result.zones, key=_zone_order):
        path = ctx.settings.zones / zone_file_name(origin)
        state = "written" if path in written else "unchanged"
        print(f"{origin:<30} {state:<9} {path}", file=ctx.out)
    for path in report.deleted:
        print(f"{'':<30} {'deleted':<9} {path}", file=ctx.out)
    if args.corefile is not None:
        corefile = Path(args.corefile) if args.corefile else ctx.settings.zones / "Corefile"
        text = render_corefile(
            ctx.settings.zones.resolve(),
            sorted(result.zones, key=_zone_order),
            listen=listen_addresses(ctx.settings.dns),
        )
        state = "written" if write_if_changed(corefile, text) else "unchanged"
        print(f"{'Corefile':<30} {state:<9} {corefile}", file=ctx.out)
    count = len(definitions.documents)
    print(
        f"{count} definition{'s'[: count != 1]} from {ctx.settings.definitions}, "
        f"{len(result.zones)} zones in {ctx.settings.zones}",
        file=ctx.out,
    )
    return INVALID if definitions.errors or report.errors else OK


def _zone_order(origin: str) -> tuple[bool, tuple[str, ...]]:
    return (origin.endswith(".arpa."), tuple(reversed(origin.rstrip(".").split("."))))


def cmd_diff(ctx: Context, args: argparse.Namespace) -> int:
    definitions, result = _desired(ctx)
    changes = plan.calculate(asyncio.run(ZoneFileSink(ctx.settings.zones).current()), result.zones)
    print_changes(changes, ctx.settings.zones, ctx.out)
    return INVALID if definitions.errors else OK


def print_changes(changes: plan.Changes, directory: Path, out: TextIO) -> None:
    """The plan as a reviewer reads it: per zone a summary line, then ``+``/``-`` RRs."""
    if changes.is_empty:
        print("no changes", file=out)
        return
    for zone in changes.zones:
        counts = ", ".join(
            f"{zone.count(a)} {a}" for a in ("added", "removed", "changed") if zone.count(a)
        )
        soa = " (SOA changed)" if zone.soa_changed else ""
        what = {"create": "new zone", "delete": "zone removed", "update": "zone"}[zone.action]
        path = directory / zone_file_name(zone.origin)
        print(f"{what} {zone.origin} ({path}): {counts or 'no RRsets'}{soa}", file=out)
        for change in zone.rrsets:
            for line in change.lines():
                print(f"  {line}", file=out)


def cmd_apply(ctx: Context, args: argparse.Namespace) -> int:
    source = args.filename
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.error(f"{source}: cannot read: {exc}")
        return INVALID
    label = "<stdin>" if source == "-" else source
    found = parse_definitions(text, label, ctx.settings.name_defaults())
    errors = list(found.errors)
    directory = ctx.settings.definitions
    installed = (
        load_definitions(directory, ctx.settings.name_defaults())
        if directory.exists()
        else Definitions()
    )
    targets = {}
    for document in found.documents:
        target = directory / f"{document.kind.lower()}-{document.name}.yaml"
        targets[document.object] = target
        for existing in installed.documents:
            path = existing.location.rpartition("#")[0]
            if existing.object == document.object and directory / path != target:
                index = int(document.location.rpartition("#")[2])
                errors.append(
                    DefinitionError(
                        label,
                        index,
                        "metadata.name",
                        f"{document.object} is already defined in {directory / path}; "
                        "edit that file",
                    )
                )
    if errors:
        for error in errors:
            ctx.error(str(error))
        print("nothing applied", file=ctx.err)
        return INVALID
    if not found.documents:
        ctx.error(f"{label}: no definitions found")
        return INVALID
    for document in found.documents:
        target = targets[document.object]
        existed = target.exists()
        body = yaml.safe_dump(document.body, sort_keys=False, allow_unicode=True)
        changed = write_if_changed(target, body)
        state = "unchanged" if not changed else ("configured" if existed else "created")
        print(f"{document.object} {state} ({target})", file=ctx.out)
    return OK


def cmd_zones(ctx: Context, args: argparse.Namespace) -> int:
    files = load_zone_files(ctx.settings.zones)
    if not files:
        print(f"no zone files in {ctx.settings.zones}", file=ctx.out)
        return OK
    print(f"{'ZONE':<30} {'SERIAL':>10} {'RECORDS':>7}  FILE", file=ctx.out)
    for origin in sorted(files, key=_zone_order):
        file = files[origin]
        serial = "-" if file.serial is None else str(file.serial)
        if file.content is not None:
            count = str(file.content.record_count)
        else:
            count = "?" if file.ours else "foreign"
        print(f"{origin:<30} {serial:>10} {count:>7}  {file.path}", file=ctx.out)
    return OK


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    origin = names.fqdn(args.zone)
    path = ctx.settings.zones / zone_file_name(origin)
    try:
        ctx.out.write(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        ctx.error(f"no zone {origin} in {ctx.settings.zones} (dockzone zones lists them)")
        return INVALID
    return OK


def cmd_explain(ctx: Context, args: argparse.Namespace) -> int:
    definitions, result = _desired(ctx)
    origin = ctx.settings.name_defaults().origin(ctx.settings.domain[0])
    name = resolve_name(args.name, origin, list(result.zones))
    found = explain(result.zones, result.conflicts, name, args.rdtype)
    for line in found.to_text(args.rdtype.upper()):
        print(line, file=ctx.out)
    return INVALID if definitions.errors else OK
