"""The zone file sink: one RFC 1035 master file per zone, ``db.<zone>`` in one directory.

The file names follow CoreDNS's ``auto`` plugin default (``db\\.(.*)``), so CoreDNS (or
BIND) can serve the directory as it is. ``current()`` reads back the files dockzone wrote
(first line ``; dockzone zone file for``); ``apply()`` rewrites only the zones in the plan,
each atomically, with a new SOA serial. Files dockzone did not write are never touched.

Serials never go backwards: the highest serial written per zone is also kept in
``.dockzone-serials.json`` in the directory, so a zone that is deleted and comes back, or a
file edited by hand, still gets a higher serial. Called by the CLI and, later, the loop.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.atomicio import atomic_write, fsync_directory
from reconciler.core import rdata
from reconciler.core.model import RRset, Soa, ZoneContent, ZoneSet
from reconciler.core.plan import Changes
from reconciler.core.serials import next_serial, serial_lt
from reconciler.errors import ZoneWriteError
from reconciler.render import ZONE_HEADER, RowCache, render_zone

log = logging.getLogger(__name__)

STATE_FILE = ".dockzone-serials.json"

SIGNED_MARKER = "; DNSSEC records made by dockzone's signer (--sign-zone-files)"
"""The line after which a signed zone file holds its DNSKEY, RRSIG and NSEC records."""


def zone_file_name(origin: str) -> str:
    """``docker.`` -> ``db.docker``; the root zone is ``db.root``."""
    return "db." + (origin.rstrip(".") or "root")


@dataclass(frozen=True, slots=True)
class ZoneFile:
    """A zone file found on disk. ``content`` is None when the file is not dockzone's or
    cannot be read back; ``serial`` is None when no SOA could be read."""

    origin: str
    path: Path
    ours: bool
    serial: int | None
    content: ZoneContent | None


@dataclass(slots=True)
class ApplyReport:
    """What ``apply`` did: files written and deleted, and zones it could not write."""

    written: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)
    errors: list[ZoneWriteError] = field(default_factory=list)


def parse_zone_text(text: str) -> tuple[ZoneContent, int]:
    """Read back a zone file dockzone rendered. Raises ValueError on anything else."""
    soa: Soa | None = None
    origin = ""
    serial = 0
    rows: dict[tuple[str, str], list[str]] = defaultdict(list)
    ttls: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line == SIGNED_MARKER:
            break  # the signer's records follow: not data the plan compares
        if not line or line.startswith((";", "$")):
            continue
        parts = line.split(None, 4)
        if len(parts) != 5 or parts[2] != "IN" or not parts[1].isdigit():
            raise ValueError(f"line {number}: not a 'name ttl IN type data' record")
        name, ttl, _, rdtype, data = parts
        data = data.rstrip()
        if rdtype == "SOA":
            fields = data.split()
            if soa is not None or len(fields) != 7 or not all(f.isdigit() for f in fields[2:]):
                raise ValueError(f"line {number}: unexpected SOA")
            origin = name
            serial = int(fields[2])
            refresh, retry, expire, minimum = (int(f) for f in fields[3:])
            soa = Soa(fields[0], fields[1], refresh, retry, expire, minimum, int(ttl))
            continue
        key = (name, rdtype)
        if key in ttls and ttls[key] != int(ttl):
            raise ValueError(f"line {number}: {name} {rdtype} has two TTLs")
        ttls[key] = int(ttl)
        rows[key].append(data)
    if soa is None:
        raise ValueError("no SOA record")
    rrsets = [
        RRset(
            name,
            rdtype,
            ttls[(name, rdtype)],
            _sorted_rdatas(rdtype, texts),
        )
        for (name, rdtype), texts in rows.items()
    ]
    rrsets.sort(key=lambda r: (rdata.name_key(r.name), rdata.type_key(r.rdtype)))
    return ZoneContent(origin, soa, tuple(rrsets)), serial


def _sorted_rdatas(rdtype: str, texts: list[str]) -> tuple[str, ...]:
    return tuple(sorted(texts, key=lambda text: rdata.rdata_key(rdtype, text)))


FileStamp = tuple[int, int, int]
"""(inode, size, mtime in ns): a file read before and unchanged since is not parsed again."""


def load_zone_files(
    directory: Path, memo: dict[Path, tuple[FileStamp, ZoneFile]] | None = None
) -> dict[str, ZoneFile]:
    """Every ``db.*`` file in ``directory``, by origin. ``memo`` keeps what was read by
    file stamp, so a file unchanged since the last call is not parsed again."""
    found: dict[str, ZoneFile] = {}
    if not directory.is_dir():
        return found
    seen: set[Path] = set()
    for path in sorted(directory.glob("db.*")):
        try:
            stat = path.stat()
        except OSError:
            continue
        if not path.is_file():
            continue
        origin = path.name[3:] + "." if path.name != "db.root" else "."
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        known = memo.get(path) if memo is not None else None
        if known is not None and known[0] == stamp:
            found[origin] = known[1]
            seen.add(path)
            continue
        found[origin] = _read_zone_file(origin, path)
        if memo is not None:
            memo[path] = (stamp, found[origin])
            seen.add(path)
    if memo is not None:
        for gone in set(memo) - seen:
            del memo[gone]
    return found


def _read_zone_file(origin: str, path: Path) -> ZoneFile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ZoneFile(origin, path, False, None, None)
    if not text.startswith(ZONE_HEADER):
        return ZoneFile(origin, path, False, None, None)
    try:
        content, serial = parse_zone_text(text)
    except (ValueError, ArithmeticError) as exc:
        log.warning("%s: cannot read back (%s); it will be rewritten", path, exc)
        return ZoneFile(origin, path, True, _soa_serial(text), None)
    return ZoneFile(origin, path, True, serial, content)


def _ours(path: Path) -> tuple[bool, bool]:
    """(dockzone may write ``path``, the file exists)."""
    try:
        with path.open("rb") as file:
            head = file.read(len(ZONE_HEADER))
    except FileNotFoundError:
        return True, False
    except OSError:
        return False, True
    return head == ZONE_HEADER.encode(), True


def _head_serial(path: Path) -> int | None:
    """The SOA serial of a zone file dockzone wrote (the SOA is among its first lines)."""
    try:
        with path.open(encoding="utf-8") as file:
            head = file.read(4096)
    except (OSError, UnicodeDecodeError):
        return None
    if not head.startswith(ZONE_HEADER):
        return None
    return _soa_serial(head)


def _soa_serial(text: str) -> int | None:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 7 and parts[3:4] == ["SOA"] and parts[6].isdigit():
            return int(parts[6])
    return None


class ZoneFileSink:
    """Zone files in ``directory``; ``clock`` gives seconds since the epoch (for serials).

    The serials are kept in memory once read (the state file and the zone files' SOAs, at
    the first use); ``prepare(changes)`` assigns the serials of the zones a plan will write,
    so other sinks (the in-process server, through ``serial``) serve the same serial before
    the file is written. ``apply`` reads only the files of the zones it writes.
    """

    name = "zonefiles"

    def __init__(
        self,
        directory: Path,
        clock: Callable[[], float] = time.time,
        signed: Callable[[str, int], str] | None = None,
    ) -> None:
        """``signed(origin, serial)``: the DNSSEC records to append to a zone's file
        (``--sign-zone-files``), or "" to write it unsigned."""
        self.directory = directory
        self.clock = clock
        self.signed = signed
        self._serials: dict[str, int] | None = None
        self._prepared: dict[str, int] = {}
        self._memo: dict[Path, tuple[FileStamp, ZoneFile]] = {}
        self._rows: dict[str, RowCache] = {}

    def files(self) -> dict[str, ZoneFile]:
        return load_zone_files(self.directory, self._memo)

    async def current(self) -> ZoneSet:
        """The zones dockzone wrote and can read back (every file is read: full passes)."""
        files = self.files()
        known = self._book()
        for origin, file in files.items():
            serial = file.serial if file.ours else None
            if serial is not None and (origin not in known or serial_lt(known[origin], serial)):
                known[origin] = serial  # edited by hand with a higher serial
        return {
            origin: file.content
            for origin, file in files.items()
            if file.ours and file.content is not None
        }

    def prepare(self, changes: Changes) -> None:
        """Assign the serials of the zones ``changes`` writes (``apply`` uses them)."""
        known = self._book()
        now = int(self.clock())
        for zone in changes.zones:
            if zone.desired is not None:
                serial = next_serial(known.get(zone.origin), now)
                known[zone.origin] = serial
                self._prepared[zone.origin] = serial

    async def apply(self, changes: Changes) -> ApplyReport:
        """Write the changed zones, delete the zones no longer wanted. A zone that cannot
        be written is reported in the result; the others are still written."""
        report = ApplyReport()
        if changes.is_empty:
            return report
        self.directory.mkdir(parents=True, exist_ok=True)
        known = self._book()
        written = False
        for zone in changes.zones:
            path = self.directory / zone_file_name(zone.origin)
            ours, on_disk = _ours(path)
            if not ours:
                self._prepared.pop(zone.origin, None)
                report.errors.append(
                    ZoneWriteError(
                        zone.origin,
                        str(path),
                        "the file exists and was not written by dockzone; left alone",
                    )
                )
                continue
            if zone.desired is None:
                self._rows.pop(zone.origin, None)
                if on_disk:
                    path.unlink()
                    fsync_directory(self.directory)
                    report.deleted.append(path)
                continue
            serial = self._prepared.pop(zone.origin, None)
            if serial is None:
                serial = next_serial(known.get(zone.origin), int(self.clock()))
            try:
                rows = self._rows.setdefault(zone.origin, {})
                text = render_zone(zone.desired, serial, rows)
                if self.signed is not None:
                    tail = self.signed(zone.origin, serial)
                    if tail:
                        text = f"{text}{SIGNED_MARKER}\n{tail}"
                atomic_write(path, text)
            except OSError as exc:
                report.errors.append(
                    ZoneWriteError(
                        zone.origin,
                        str(path),
                        f"{os.strerror(exc.errno or 0) or exc}; the last written file stays, "
                        "and the write is retried",
                    )
                )
                continue
            known[zone.origin] = serial
            written = True
            report.written.append(path)
        if written:
            self._save_state(known)
        return report

    def serial(self, origin: str) -> int | None:
        """The serial of ``origin``'s zone as last written or prepared (None: never)."""
        return self._book().get(origin)

    def serials(self) -> dict[str, int]:
        """The highest serial written per zone."""
        return dict(self._book())

    def _book(self) -> dict[str, int]:
        """Serials by zone: the state file and the SOAs of dockzone's zone files, read once."""
        if self._serials is None:
            self._remove_leftovers()
            known = self._load_state()
            if self.directory.is_dir():
                for path in self.directory.glob("db.*"):
                    origin = path.name[3:] + "." if path.name != "db.root" else "."
                    serial = _head_serial(path)
                    if serial is not None and (
                        known.get(origin) is None or serial_lt(known[origin], serial)
                    ):
                        known[origin] = serial
            self._serials = known
        return self._serials

    def _remove_leftovers(self) -> None:
        """Delete the temporary files of writes a killed process never renamed
        (``atomic_write``'s ``.db.<zone>.<random>.tmp``, and those of the state file and the
        served-zones snapshot): nothing reads them, and each kill could leave one more."""
        if not self.directory.is_dir():
            return
        removed = []
        for path in self.directory.glob(".*.tmp"):
            if path.name.startswith((".db.", "..dockzone-")):
                try:
                    path.unlink()
                except OSError:
                    continue
                removed.append(path.name)
        if removed:
            log.info(
                "removed %d temporary files left by an interrupted write in %s: %s",
                len(removed),
                self.directory,
                ", ".join(sorted(removed)),
            )

    def _load_state(self) -> dict[str, int]:
        try:
            data = json.loads((self.directory / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}

    def _save_state(self, state: dict[str, int]) -> None:
        text = json.dumps(dict(sorted(state.items())), indent=1) + "\n"
        path = self.directory / STATE_FILE
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except OSError:
            pass
        try:
            atomic_write(path, text)
        except OSError as exc:
            # The zone files hold their serials too (``_book`` reads them); this file only
            # adds the serials of deleted zones, and the next write saves it again.
            log.warning("cannot record the zone serials in %s: %s", path, exc.strerror or exc)
