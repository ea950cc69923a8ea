"""Journals on disk: one file per zone beside the zone files, so IXFR survives a restart.

``.dockzone-journal.<zone>`` (``<zone>`` without its final dot, ``root`` for the root zone)
holds a first line naming the format and the exact Python version, then the zone's origin,
its last serial and its deltas (``marshal`` of builtin values: tuples of names, types,
TTLs and rdata in wire form, as ``dnsserver.snapshot`` stores served zones). Written
atomically (temporary file in the same directory, fsync, rename, fsync of the directory).

`JournalWriter` writes on its own thread, at most once per `interval` seconds per zone,
after the store swapped (never on a DNS thread, never in the swap itself); `stop` writes
what is still pending. `load_journals` reads the files at start and keeps a zone's journal
only when it ends at the serial the zone is served with; any other file (another format or
Python version, a serial that does not match, deltas that do not chain) is deleted and
logged, and secondaries of that zone get the whole zone at their next transfer.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from dnsserver.journal import Delta, Journal, ZoneJournal
from dnsserver.zone import RRset, Zone

log = logging.getLogger(__name__)

PREFIX = ".dockzone-journal."
MAGIC = b"dockzone journal 1 " + sys.version.encode("ascii", "replace") + b"\n"
"""First line of a journal file: the format and the exact Python version (marshal's
format may change between versions)."""


def journal_path(directory: Path, origin: str) -> Path:
    """The journal file of `origin` in `directory`."""
    return directory / (PREFIX + (origin.rstrip(".") or "root"))


def dump(origin: str, journal: ZoneJournal) -> bytes:
    """`journal` as the bytes of its file."""
    deltas = [
        (
            tuple(d.old_soa),
            [tuple(r) for r in d.deleted],
            tuple(d.new_soa),
            [tuple(r) for r in d.added],
        )
        for d in journal.deltas
    ]
    return MAGIC + marshal.dumps((origin, journal.serial, deltas))


def parse(data: bytes) -> tuple[str, ZoneJournal]:
    """The origin and journal in the bytes `dump` made. Raises ValueError for anything else
    (another format or Python version, truncated, deltas that do not chain)."""
    if not data.startswith(MAGIC):
        raise ValueError("not a journal of this format and Python version")
    try:
        origin, serial, raw = marshal.loads(data[len(MAGIC) :])
        journal = ZoneJournal(int(serial), deque())
        for old_soa, deleted, new_soa, added in raw:
            delta = Delta(
                RRset(*old_soa),
                tuple(RRset(*r) for r in deleted),
                RRset(*new_soa),
                tuple(RRset(*r) for r in added),
            )
            if journal.deltas and journal.deltas[-1].new_serial != delta.old_serial:
                raise ValueError(f"delta to {delta.new_serial} does not follow the one before")
            journal.deltas.append(delta)
            journal.size += delta.size
    except (EOFError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise ValueError(f"damaged: {exc}") from None
    if not isinstance(origin, str):
        raise ValueError("damaged: no origin")
    if journal.deltas and journal.deltas[-1].new_serial != journal.serial:
        raise ValueError("its deltas do not end at its serial")
    return origin, journal


def write_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: temporary file, fsync, rename, fsync the directory.
    (``reconciler.atomicio`` does the same; ``dnsserver`` imports nothing from there.)"""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def load_journals(directory: Path, journal: Journal, zones: Mapping[str, Zone]) -> int:
    """Load the journal files in `directory` into `journal`, each only when its zone is in
    `zones` (what the server serves now) with the serial the journal ends at; delete every
    other journal file. Returns how many zones' journals were loaded."""
    loaded = 0
    try:
        paths = sorted(directory.glob(PREFIX + "*"))
    except OSError:
        return 0
    for path in paths:
        if path.name.endswith(".tmp"):
            continue
        why = ""
        try:
            origin, found = parse(path.read_bytes())
        except (OSError, ValueError) as exc:
            why = str(exc)
        else:
            zone = zones.get(origin)
            if path != journal_path(directory, origin):
                why = f"it holds the journal of {origin}"
            elif zone is None:
                why = f"{origin} is not served"
            elif zone.serial != found.serial:
                why = f"it ends at serial {found.serial}, {origin} is served at {zone.serial}"
            else:
                journal.load(origin, found)
                loaded += 1
                log.info(
                    "journal of %s loaded: serials %d..%d, %d deltas, %d records",
                    origin,
                    found.first_serial,
                    found.serial,
                    len(found.deltas),
                    found.size,
                )
                continue
        log.warning(
            "journal %s dropped: %s (secondaries get the whole zone at their next transfer)",
            path,
            why,
        )
        with contextlib.suppress(OSError):
            path.unlink()
    return loaded


class JournalWriter:
    """Writes the journals of `journal` into `directory` on its own thread, each zone at
    most once per `interval` seconds; a zone whose journal is gone or empty has its file
    deleted."""

    def __init__(self, journal: Journal, directory: Path, interval: float = 1.0) -> None:
        self.journal = journal
        self.directory = directory
        self.interval = interval
        self.writes = 0
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.journal.on_change = self._changed
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="dns-journal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then write what is still pending."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def _changed(self, origin: str) -> None:
        with self._lock:
            self._dirty.add(origin)
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            self.flush()
            # Pace the writes: churn faster than this is written once per interval.
            self._stopping.wait(self.interval)

    def flush(self) -> None:
        """Write every zone whose journal changed since the last write."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for origin in sorted(dirty):
            path = journal_path(self.directory, origin)
            found = self.journal.get(origin)
            try:
                if found is None or not found.deltas:
                    path.unlink(missing_ok=True)
                else:
                    write_file(path, dump(origin, found))
                    self.writes += 1
            except OSError as exc:
                log.warning("cannot write the journal of %s to %s: %s", origin, path, exc)
                with self._lock:
                    self._dirty.add(origin)  # tried again at the next change or stop
