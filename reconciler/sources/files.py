"""The definitions directory as a source, watched with watchfiles.

A pass costs what changed (issue 10). The source keeps, for every file, its text, its
parsed documents and the objects it defines, and hands the loop one *group* per definitions
object (key ``servicerecord/web``: that object's records). ``load()`` re-reads only the
files marked changed: by ``watch()`` (the paths watchfiles reports), by ``touch()`` (the
HTTP API, after it writes a file) and, a few per pass, by a round-robin ``stat`` of the
known files, which notices an edit whose event was lost. Inside a file, only the documents
whose text changed are parsed again (a file is cut at its ``---`` lines; each piece is
parsed once per distinct text), so one record edited in an 8,000-document file costs one
document's parse. ``load(full=True)``, the periodic resync, lists the directory and reads
every file again; it still parses only text it has not seen.

Duplicates across files keep today's rule: the first definition in sorted (file, document)
order wins, every other one is a problem naming both locations; an index object -> files
defining it re-merges only the objects a changed file defined before or defines now.

It keeps CoreDNS's reload promise for definitions: when a file that was good turns bad (a
syntax error, an invalid document), the objects it last defined correctly stay in force
until the file is fixed or removed, and the problems are reported. A syntax error ends the
file (the documents after it are not read: they keep their last good version); an invalid
document keeps its object's last good version while the other documents of the file apply.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from watchfiles import awatch

from reconciler.core.model import Record
from reconciler.core.triggers import Wakeup
from reconciler.definitions import (
    YAML_SUFFIXES,
    Definitions,
    Document,
    NameDefaults,
    cannot_read,
    check_document,
    load_documents,
    merge_documents,
    read_text,
    syntax_error,
    walk_definitions,
)
from reconciler.errors import DefinitionError
from reconciler.sources import Snapshot

log = logging.getLogger(__name__)

Outcome = Document | tuple[DefinitionError, ...] | None
"""What one document of a file gave: a valid document, its problems, or nothing (empty)."""

_DOCUMENT_START = re.compile(r"^(?=---(?:[ \t\n]|\Z))", re.MULTILINE)
"""A ``---`` at the start of a line always starts a document (YAML forbids it inside one:
an unclosed quote or bracket before it is a syntax error), so a file cut there parses
piece by piece as it does whole. (``split_pieces`` cuts there, faster than this does.)"""
_DIRECTIVE = re.compile(r"(?:^|[\x85\u2028\u2029])%", re.MULTILINE)
"""A ``%YAML``/``%TAG`` directive belongs to the document after it: such files are parsed
whole."""

SWEEP = 64
"""Known files whose ``stat`` each incremental ``load()`` checks, in turn."""


@dataclass(slots=True)
class _Piece:
    """One ``---`` piece of a file's text: its parsed documents, the index of the first one
    in the file, and what they gave (valid for that index)."""

    bodies: tuple[Any, ...]
    first: int
    outcomes: tuple[Outcome, ...]


@dataclass(slots=True)
class _File:
    label: str
    """The path relative to the definitions directory: names the file in problems and
    owners."""
    order: tuple[str, ...]
    """Sort key: the order of ``definition_files`` (path components)."""
    stat: tuple[int, int, int] | None = None
    text: str | None = None
    pieces: dict[str, _Piece] = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)
    """Objects in force from this file: valid now, or kept from the last good version."""
    errors: tuple[DefinitionError, ...] = ()


class FilesSource:
    """ServiceRecord and DNSEndpoint documents under ``path`` (a directory or one file)."""

    name = "files"

    def __init__(self, path: Path, defaults: NameDefaults, *, sweep: int = SWEEP) -> None:
        self.path = path
        self.defaults = defaults
        self.sweep = sweep
        self._files: dict[str, _File] = {}
        self._owners: dict[str, list[_File]] = {}
        """Object -> the files defining it, in file order (the first one wins)."""
        self._winners: dict[str, Document] = {}
        self._duplicates: dict[str, list[tuple[_Place, DefinitionError]]] = {}
        """Object -> its definitions after the first, as problems (with their place)."""
        self._dirs: set[str] = set()
        """Directories (labels) holding known files: a change there may remove some."""
        self._problems: tuple[str, ...] | None = ()
        self._loaded = False
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._sweep_order: list[str] = []
        self._sweep_at = 0
        self._roots: tuple[str, ...] = ()

    # The source protocol ---------------------------------------------------------------

    def load(self, full: bool = False) -> Snapshot:
        """The groups changed since the previous load (every group when ``full`` or on the
        first load); problems name file, document and field."""
        with self._load_lock:
            with self._pending_lock:
                pending, self._pending = self._pending, set()
            affected: set[str] = set()
            base = self._base()
            self._roots = tuple({os.path.abspath(base), os.path.realpath(base)})
            complete = full or not self._loaded
            if complete:
                self._scan(affected)
                self._loaded = True
            else:
                for path in sorted(pending):
                    self._changed(path, affected)
                self._sweep(affected)
            groups = self._merge(affected)
            if complete:
                groups = {obj: document.records for obj, document in self._winners.items()}
            return Snapshot(groups, complete, self.problems())

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        """Mark what watchfiles reports under ``path`` as changed and wake the loop, until
        ``stop`` is set."""
        async for changes in awatch(
            self.path, stop_event=stop, debounce=50, step=10, recursive=True
        ):
            paths = [path for _, path in changes]
            log.debug("definitions changed: %s", sorted(paths))
            self.touch(*paths)
            wakeup.set("definitions")

    def touch(self, *paths: str | os.PathLike[str]) -> None:
        """Mark ``paths`` (files or directories, absolute or relative to the working
        directory) as changed: the next ``load()`` reads them again. For the HTTP API, which
        writes a definitions file and then wakes the loop without waiting for watchfiles.
        Thread-safe."""
        marked = [os.path.abspath(os.fspath(path)) for path in paths]
        with self._pending_lock:
            self._pending.update(marked)

    # What the source holds -----------------------------------------------------------------

    def problems(self) -> tuple[str, ...]:
        """Every current problem: each file's own (in file order), then the duplicates."""
        if self._problems is None:
            errors = [
                error
                for file in sorted(
                    (file for file in self._files.values() if file.errors),
                    key=lambda file: file.order,
                )
                for error in file.errors
            ]
            errors.extend(self._duplicate_errors())
            self._problems = tuple(f"{error} (definition skipped)" for error in errors)
        return self._problems

    def definitions(self) -> Definitions:
        """The documents in force (one per object) and every problem, as ``load_definitions``
        gives them."""
        documents = sorted(
            self._winners.values(), key=lambda document: _place(self._files, document)
        )
        errors = [error for file in self._sorted_files() for error in file.errors]
        errors.extend(self._duplicate_errors())
        return Definitions(tuple(documents), tuple(errors))

    def _sorted_files(self) -> list[_File]:
        return sorted(self._files.values(), key=lambda file: file.order)

    def _duplicate_errors(self) -> list[DefinitionError]:
        found = [item for items in self._duplicates.values() for item in items]
        found.sort(key=lambda item: item[0])
        return [error for _, error in found]

    # Finding what changed ----------------------------------------------------------------

    def _base(self) -> str:
        return str(self.path) if self.path.is_dir() else str(self.path.parent)

    def _scan(self, affected: set[str]) -> None:
        """List the definitions and read every file (the first load, and resyncs)."""
        if self.path.is_dir():
            found = dict(walk_definitions(str(self.path)))
        elif self.path.exists():
            found = {self.path.name: str(self.path)}
        else:
            found = {}
        for label in [label for label in self._files if label not in found]:
            self._remove(label, affected)
        for label, path in found.items():
            self._read(label, path, affected)
        self._dirs = {parent for label in self._files for parent in _parents(label)}

    def _changed(self, path: str, affected: set[str]) -> None:
        """Read again what changed at ``path`` (absolute): a file, or a directory tree."""
        label = self._label(path)
        if label is None:
            return
        if label == "":  # the definitions directory itself
            self._scan(affected)
            return
        if any(part.startswith(".") for part in label.split(os.sep)):
            return
        if not self.path.is_dir():
            if label == self.path.name:
                self._read(label, path, affected)
            return
        if os.path.isdir(path):
            below = dict(walk_definitions(path, label + os.sep))
            self._remove_below(label, below, affected)
            for name, file in below.items():
                self._read(name, file, affected)
        elif label.endswith(YAML_SUFFIXES):
            self._read(label, path, affected)
        elif label in self._dirs:  # a directory that was removed or moved away
            self._remove_below(label, {}, affected)

    def _remove_below(self, label: str, keep: dict[str, str], affected: set[str]) -> None:
        prefix = label + os.sep
        for known in [known for known in self._files if known.startswith(prefix)]:
            if known not in keep:
                self._remove(known, affected)

    def _label(self, path: str) -> str | None:
        """``path`` relative to the definitions directory ("" for the directory itself), or
        None outside it."""
        for root in self._roots:
            if path == root:
                return ""
            if path.startswith(root + os.sep):
                return path[len(root) + 1 :]
        return None

    def _sweep(self, affected: set[str]) -> None:
        """``stat`` the next few known files; read again those whose (mtime, size, inode)
        changed: an edit whose event was lost is found within a few passes."""
        if self.sweep <= 0 or not self._files:
            return
        base = self._base()
        for _ in range(min(self.sweep, len(self._files))):
            if self._sweep_at >= len(self._sweep_order):
                self._sweep_order = list(self._files)
                self._sweep_at = 0
            label = self._sweep_order[self._sweep_at]
            self._sweep_at += 1
            known = self._files.get(label)
            if known is None:
                continue
            path = os.path.join(base, label)
            try:
                stat = os.stat(path)
            except OSError:
                self._read(label, path, affected)
                continue
            if (stat.st_mtime_ns, stat.st_size, stat.st_ino) != known.stat:
                self._read(label, path, affected)

    # Reading one file --------------------------------------------------------------------

    def _read(self, label: str, path: str, affected: set[str]) -> None:
        """Read ``label`` again; what it defines now replaces what it defined."""
        file = self._files.get(label)
        try:
            text, stat = read_text(path)
        except FileNotFoundError:
            self._remove(label, affected)
            return
        except IsADirectoryError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            if file is None:
                file = self._add(label)
            file.stat = None
            file.text = None
            self._settle(file, [], [cannot_read(label, exc)], affected)
            return
        if file is None:
            file = self._add(label)
        file.stat = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if text == file.text:
            return
        file.text = text
        outcomes, error = self._parse(file, text)
        documents = [outcome for outcome in outcomes if isinstance(outcome, Document)]
        errors = [error for outcome in outcomes if isinstance(outcome, tuple) for error in outcome]
        if error is not None:
            errors.append(error)
        self._settle(file, documents, errors, affected)

    def _add(self, label: str) -> _File:
        file = _File(label, tuple(label.split(os.sep)))
        self._files[label] = file
        self._dirs.update(_parents(label))
        return file

    def _parse(self, file: _File, text: str) -> tuple[list[Outcome], DefinitionError | None]:
        """Every document of ``text`` checked, parsing only pieces not seen before."""
        if "%" in text and _DIRECTIVE.search(text):
            file.pieces = {}
            return self._parse_whole(file.label, text)
        # The first piece (before the first '---' line) holds 0 or more documents, every
        # other piece one.
        texts = split_pieces(text)
        old = file.pieces
        known = [old.get(part) for part in texts]
        bodies: list[tuple[Any, ...] | None] = [
            piece.bodies if piece is not None else None for piece in known
        ]
        try:
            if bodies[0] is None:
                bodies[0] = tuple(load_documents(texts[0])) if texts[0] else ()
            missing = [n for n, found in enumerate(bodies) if found is None]
            if missing:
                # Each piece after the first is one document: parse them together, at once.
                parsed = list(load_documents("".join(texts[n] for n in missing)))
                if len(parsed) != len(missing):
                    return self._parse_whole(file.label, text)
                for n, body in zip(missing, parsed, strict=True):
                    bodies[n] = (body,)
        except yaml.YAMLError:
            # Word the error as the whole file gives it (its line, what came before).
            return self._parse_whole(file.label, text)
        pieces: dict[str, _Piece] = {}
        outcomes: list[Outcome] = []
        index = 0
        for part, found, cached in zip(texts, bodies, known, strict=True):
            assert found is not None
            piece = cached
            if piece is None or piece.first != index or piece.bodies is not found:
                checked = tuple(
                    check_document(body, file.label, index + n, self.defaults)
                    for n, body in enumerate(found)
                )
                piece = _Piece(found, index, checked)
            pieces[part] = piece
            outcomes.extend(piece.outcomes)
            index += len(found)
        file.pieces = pieces
        return outcomes, None

    def _parse_whole(self, label: str, text: str) -> tuple[list[Outcome], DefinitionError | None]:
        outcomes: list[Outcome] = []
        try:
            for index, body in enumerate(load_documents(text)):
                outcomes.append(check_document(body, label, index, self.defaults))
        except yaml.YAMLError as exc:
            return outcomes, syntax_error(label, exc)
        return outcomes, None

    def _settle(
        self,
        file: _File,
        documents: list[Document],
        errors: list[DefinitionError],
        affected: set[str],
    ) -> None:
        """Put what ``file`` now defines in force; with errors, its last good objects that
        it no longer defines stay."""
        current = {document.object: document for document in documents}
        if len(current) != len(documents):  # an object defined twice in the file
            found = merge_documents(documents, errors)
            current = {document.object: document for document in found.documents}
            errors = list(found.errors)
        before = file.documents
        if errors:
            for obj, document in before.items():
                if obj not in current:
                    log.debug("%s: keeping the last good %s", file.label, obj)
                    current[obj] = document
        if errors or file.errors:
            file.errors = tuple(errors)
            self._problems = None
        for obj, document in current.items():
            if before.get(obj) is not document:
                affected.add(obj)
                if obj not in before:
                    self._own(obj, file)
        for obj in before:
            if obj not in current:
                affected.add(obj)
                self._disown(obj, file)
        file.documents = current

    def _remove(self, label: str, affected: set[str]) -> None:
        file = self._files.pop(label, None)
        if file is None:
            return
        for obj in file.documents:
            affected.add(obj)
            self._disown(obj, file)
        if file.errors:
            self._problems = None

    def _own(self, obj: str, file: _File) -> None:
        files = self._owners.setdefault(obj, [])
        files.append(file)
        if len(files) > 1:
            files.sort(key=lambda owner: owner.order)

    def _disown(self, obj: str, file: _File) -> None:
        files = self._owners.get(obj)
        if files is None:
            return
        files.remove(file)
        if not files:
            del self._owners[obj]

    # Merging -----------------------------------------------------------------------------

    def _merge(self, affected: Iterable[str]) -> dict[str, tuple[Record, ...]]:
        """Settle who wins each affected object; returns the groups whose records changed."""
        changed: dict[str, tuple[Record, ...]] = {}
        for obj in affected:
            files = self._owners.get(obj)
            before = self._winners.get(obj)
            duplicates = self._duplicates.pop(obj, None)
            winner: Document | None = None
            if files:
                winner = files[0].documents[obj]
                self._winners[obj] = winner
                if len(files) > 1:
                    self._duplicates[obj] = [_duplicate(winner, later, obj) for later in files[1:]]
            else:
                self._winners.pop(obj, None)
            if duplicates or obj in self._duplicates:
                self._problems = None
            if winner is before:
                continue
            records = winner.records if winner is not None else ()
            if before is None or records != before.records:
                changed[obj] = records
        return changed


_Place = tuple[tuple[str, ...], int]
"""Where a document sits in the order of definitions: (file order, index in the file)."""


def _duplicate(first: Document, later: _File, obj: str) -> tuple[_Place, DefinitionError]:
    document = later.documents[obj]
    path, _, index = document.location.rpartition("#")
    error = DefinitionError(
        path,
        int(index),
        "metadata.name",
        f"{document.kind} {document.name!r} is already defined at {first.location}",
    )
    return (later.order, int(index)), error


def split_pieces(text: str) -> list[str]:
    """``text`` cut before every line that starts a document (``---`` then a space, a tab,
    a line end or the end): what ``_DOCUMENT_START.split`` gives. The first piece is what
    comes before the first such line ("" when the text starts with one)."""
    parts = text.split("\n---")
    pieces: list[str] = []
    current = parts[0]
    for part in parts[1:]:
        if not part or part[0] in " \t\n":
            pieces.append(current + "\n")
            current = "---" + part
        else:
            current += "\n---" + part
    pieces.append(current)
    if pieces[0].startswith("---") and (len(pieces[0]) == 3 or pieces[0][3] in " \t\n"):
        pieces.insert(0, "")
    return pieces


def _place(files: dict[str, _File], document: Document) -> _Place:
    path, _, index = document.location.rpartition("#")
    file = files.get(path)
    return (file.order if file is not None else (path,), int(index))


def _parents(label: str) -> Iterable[str]:
    parts = label.split(os.sep)
    return (os.sep.join(parts[:n]) for n in range(1, len(parts)))
