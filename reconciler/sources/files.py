"""The definitions directory as a source, watched with watchfiles.

``load()`` reads every definitions file. It keeps CoreDNS's reload promise for
definitions: when a file that was good turns bad (a syntax error, an invalid document), the
objects it last defined correctly stay in force until the file is fixed or removed, and the
problems are reported. ``watch()`` wakes the loop when anything under the directory
changes. Used by the ``run`` loop.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from watchfiles import awatch

from reconciler.core.triggers import Wakeup
from reconciler.definitions import (
    Definitions,
    Document,
    NameDefaults,
    definition_files,
    load_file,
    merge_documents,
)
from reconciler.errors import DefinitionError
from reconciler.sources import Snapshot

log = logging.getLogger(__name__)


class FilesSource:
    """ServiceRecord and DNSEndpoint documents under ``path`` (a directory or one file)."""

    name = "files"

    def __init__(self, path: Path, defaults: NameDefaults) -> None:
        self.path = path
        self.defaults = defaults
        self._good: dict[str, dict[str, Document]] = {}

    def load(self) -> Snapshot:
        """Every definition's records, with the last good version of documents now broken;
        each problem names file, document and field."""
        definitions = self.load_definitions()
        problems = tuple(f"{error} (definition skipped)" for error in definitions.errors)
        return Snapshot(definitions.records, problems)

    def load_definitions(self) -> Definitions:
        """Every definition, with the last good version of documents now broken."""
        documents: list[Document] = []
        errors: list[DefinitionError] = []
        good: dict[str, dict[str, Document]] = {}
        base = self.path if self.path.is_dir() else self.path.parent
        files = definition_files(self.path) if self.path.exists() else []
        for file in files:
            label = str(file.relative_to(base))
            found = load_file(file, label, self.defaults)
            current = {document.object: document for document in found.documents}
            if found.errors:
                for obj, document in self._good.get(label, {}).items():
                    if obj not in current:
                        log.debug("%s: keeping the last good %s", label, obj)
                        current[obj] = document
            good[label] = current
            documents.extend(current.values())
            errors.extend(found.errors)
        self._good = good
        return merge_documents(documents, errors)

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        """Wake the loop on every change under ``path`` until ``stop`` is set."""
        async for changes in awatch(
            self.path, stop_event=stop, debounce=50, step=10, recursive=True
        ):
            log.debug("definitions changed: %s", sorted(str(path) for _, path in changes))
            wakeup.set("definitions")
