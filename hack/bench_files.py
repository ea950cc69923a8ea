"""Benchmark the definitions files source (issue 10: a pass costs what changed).

A temp directory with one big file of ``--big`` ServiceRecord documents and ``--small``
files of one document each. Times, in process, with the real files:

1. cold: the first ``load()`` of a fresh ``FilesSource`` (every file read, parsed, validated);
2. big edit: ``load()`` after one document of the big file changed (the file rewritten,
   as an editor does, and signalled with ``touch()`` as watchfiles would);
3. small edit: ``load()`` after one small file changed;
4. full: ``load(full=True)`` with nothing changed (the periodic resync);
5. cli: ``load_definitions()`` of the whole directory (``dockzone render/diff/apply``).

Run: ``.venv/bin/python hack/bench_files.py [--big 8000] [--small 2000] [--repeat 5]``.
It also runs against an older checkout (``PYTHONPATH=<checkout>``) whose ``FilesSource`` has
only ``load()``: then 2 and 3 are a plain ``load()`` and 4 is skipped.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if "PYTHONPATH" not in os.environ:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.definitions import NameDefaults, load_definitions
from reconciler.sources.files import FilesSource

DEFAULTS = NameDefaults(("docker.", "skydns.local."))


def document(number: int, host: str | None = None) -> str:
    """One ServiceRecord as an editor would write it; some with aliases, text, a zone."""
    lines = [
        "apiVersion: dockzone.dev/v1alpha1",
        "kind: ServiceRecord",
        "metadata:",
        f"  name: svc-{number:05d}",
        "spec:",
        f"  name: {number % 50}.svc-{number:05d}.app",
        f"  host: {host or f'10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}'}",
        "  port: 8080",
        "  ttl: 30",
    ]
    if number % 10 == 0:
        lines.append(f"  aliases: [alias-{number}.docker., db-{number}]")
    if number % 7 == 0:
        lines.append(f'  text: "version={number}"')
    if number % 13 == 0:
        lines.append("  zone: skydns.local.")
    return "\n".join(lines) + "\n"


def big_text(count: int, changed: dict[int, str]) -> str:
    return "".join(f"---\n{document(n, changed.get(n))}" for n in range(count))


def small_path(root: Path, number: int) -> Path:
    return root / "small" / f"svc-{number:05d}.yaml"


def write(root: Path, big: int, small: int) -> None:
    (root / "small").mkdir(parents=True)
    (root / "big.yaml").write_text(big_text(big, {}))
    for n in range(big, big + small):
        small_path(root, n).write_text(document(n))


CPU: list[float] = []
"""CPU seconds of every timed call, in order (the machine may be shared: wall time varies)."""


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    result = call()
    CPU.append(time.process_time() - cpu)
    return time.perf_counter() - start, result


def changed_groups(snapshot: Any) -> int | None:
    groups = getattr(snapshot, "groups", None)
    if groups is None or getattr(snapshot, "complete", True):
        return None
    return len(groups)


def line(label: str, seconds: list[float], extra: str = "") -> None:
    ms = [s * 1000 for s in seconds]
    cpu = statistics.median(CPU[-len(seconds) :]) * 1000
    print(
        f"{label:<12} median {statistics.median(ms):8.1f} ms   min {min(ms):8.1f} ms"
        f"   max {max(ms):8.1f} ms   cpu median {cpu:8.1f} ms{extra}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=int, default=8000, help="documents in the big file")
    parser.add_argument("--small", type=int, default=2000, help="files of one document")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        root = Path(tmp) / "definitions"
        write(root, args.big, args.small)
        print(f"{args.big} documents in big.yaml + {args.small} files of one document")

        cold: list[float] = []
        count = 0
        for _ in range(args.repeat):
            source = FilesSource(root, DEFAULTS)
            seconds, snapshot = timed(source.load)
            cold.append(seconds)
            count = len(snapshot.records)
            assert not snapshot.problems, snapshot.problems[:3]
        line("cold", cold, f"   ({count} records)")

        incremental = "full" in inspect.signature(source.load).parameters
        touch = getattr(source, "touch", None)
        big_file = root / "big.yaml"

        big: list[float] = []
        groups: set[int | None] = set()
        changed: dict[int, str] = {}
        for run in range(args.repeat):
            number = (run * 997 + 13) % args.big
            changed[number] = f"192.0.2.{run + 1}"
            big_file.write_text(big_text(args.big, changed))
            if touch is not None:
                touch(big_file)
            seconds, snapshot = timed(source.load)
            big.append(seconds)
            groups.add(changed_groups(snapshot))
        line("big edit", big, f"   (groups reported: {sorted(groups, key=str)})")

        small: list[float] = []
        groups = set()
        for run in range(args.repeat):
            number = args.big + (run * 331) % args.small
            path = small_path(root, number)
            path.write_text(document(number, f"192.0.2.{run + 101}"))
            if touch is not None:
                touch(path)
            seconds, snapshot = timed(source.load)
            small.append(seconds)
            groups.add(changed_groups(snapshot))
        line("small edit", small, f"   (groups reported: {sorted(groups, key=str)})")

        if incremental:
            full = [timed(lambda: source.load(full=True))[0] for _ in range(args.repeat)]
            line("full", full, "   (nothing changed)")

        cli = [timed(lambda: load_definitions(root, DEFAULTS))[0] for _ in range(args.repeat)]
        line("cli", cli, "   (load_definitions of the directory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
