"""Atomic file writes: readers (CoreDNS, BIND, dockzone itself) see the old file or the new
one, never a part. Used by the zone file sink, the Corefile writer and ``dockzone apply``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path``: a temporary file in the same directory, fsync, rename
    over ``path``, then fsync the directory so the rename survives a crash."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename or unlink in it) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_if_changed(path: Path, data: str) -> bool:
    """``atomic_write`` unless ``path`` already holds exactly ``data``; True when written."""
    try:
        if path.read_text(encoding="utf-8") == data:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    atomic_write(path, data)
    return True
