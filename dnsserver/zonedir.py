"""A directory of `db.<origin>` zone files kept in a `ZoneStore` (CoreDNS `auto` style).

`ZoneDirectory.rescan()` reloads only files whose (mtime, size, inode) changed, keeps the
last good zone of a file that fails to parse (one WARNING naming file and line; retried
only when the file changes again), drops zones whose files are gone, and swaps the store
once. The caller decides when to rescan (a timer, watchfiles, the reconciler after a pass).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from dnsserver.errors import ZoneLoadError
from dnsserver.name import parse_name
from dnsserver.zone import Zone
from dnsserver.zonefile import load_zone_file
from dnsserver.zonestore import ZoneStore

log = logging.getLogger(__name__)

PREFIX = "db."
# Editor backups, temporary files of atomic writes, BIND journals: never zones.
_IGNORED_SUFFIXES = ("~", ".swp", ".tmp", ".jnl", ".bak", ".new")


@dataclass(frozen=True, slots=True)
class Rescan:
    """What one rescan changed."""

    loaded: tuple[str, ...] = ()  # origins (re)loaded from a changed file
    removed: tuple[str, ...] = ()  # origins dropped because their file is gone
    failed: tuple[ZoneLoadError, ...] = ()  # files that failed; their old zone stays

    @property
    def changed(self) -> bool:
        """True when the store was swapped."""
        return bool(self.loaded or self.removed)


@dataclass(frozen=True, slots=True)
class _Seen:
    signature: tuple[int, int, int]
    origin: str


def origin_for(filename: str) -> str | None:
    """The origin a file name serves (`db.docker` -> `docker.`), or None if not a zone file."""
    if not filename.startswith(PREFIX) or filename.endswith(_IGNORED_SUFFIXES):
        return None
    rest = filename[len(PREFIX) :]
    if not rest:
        return None
    try:
        return parse_name(rest if rest.endswith(".") else rest + ".")
    except ValueError:
        return None


class ZoneDirectory:
    """Loads `db.*` files from `path` into `store`."""

    def __init__(self, path: str | os.PathLike[str], store: ZoneStore) -> None:
        self.path = os.fspath(path)
        self.store = store
        self._seen: dict[str, _Seen] = {}  # file name -> last signature handled
        self._zones: dict[str, Zone] = {}  # origin -> last good zone

    def rescan(self) -> Rescan:
        """Reload changed files and swap the store if anything changed."""
        try:
            names = sorted(os.listdir(self.path))
        except OSError as exc:
            log.warning("cannot list zone directory %s: %s", self.path, exc)
            names = []
        loaded: list[str] = []
        failed: list[ZoneLoadError] = []
        present: dict[str, str] = {}
        for filename in names:
            origin = origin_for(filename)
            if origin is None:
                continue
            full = os.path.join(self.path, filename)
            try:
                st = os.stat(full)
            except OSError:
                continue
            present[filename] = origin
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            seen = self._seen.get(filename)
            if seen is not None and seen.signature == signature:
                continue
            self._seen[filename] = _Seen(signature, origin)
            try:
                zone = load_zone_file(full, origin)
            except ZoneLoadError as exc:
                kept = "keeping the last good version" if origin in self._zones else "not served"
                log.warning("zone %s: %s (%s)", origin, exc, kept)
                failed.append(exc)
                continue
            self._zones[origin] = zone
            loaded.append(origin)
        removed: list[str] = []
        for filename in list(self._seen):
            if filename not in present:
                origin = self._seen.pop(filename).origin
                if origin not in present.values() and self._zones.pop(origin, None) is not None:
                    removed.append(origin)
        result = Rescan(tuple(loaded), tuple(removed), tuple(failed))
        if result.changed:
            self.store.replace(dict(self._zones))
            log.info(
                "zones reloaded: %s%s",
                ", ".join(loaded) or "-",
                f"; removed {', '.join(removed)}" if removed else "",
            )
        return result
