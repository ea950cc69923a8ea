"""Exceptions raised by dockzone's reconciler.

The tree (every class's docstring is its default message)::

    DockzoneError
    ├── ConfigError          bad option, environment variable or config file key
    ├── DefinitionError      one problem in one definitions document (file, index, field)
    ├── ZoneWriteError       a zone file could not be written, or is not ours to write
    └── TransientError       a backend is unreachable for now; the next pass retries

Callers format these themselves: the CLI prints ``str(err)``, later the API and the operator
read the attributes.
"""

from __future__ import annotations


class DockzoneError(Exception):
    """dockzone failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(DockzoneError):
    """Invalid configuration."""


class DefinitionError(DockzoneError):
    """Invalid definition.

    Prints as ``defs/web.yaml#2 spec.port: must be 1..65535``: the file, the index of the
    YAML document in it (from 0), the field path and the problem.
    """

    def __init__(self, path: str, index: int | None, field: str, problem: str) -> None:
        self.path = path
        self.index = index
        self.field = field
        self.problem = problem
        where = path if index is None else f"{path}#{index}"
        super().__init__(f"{where} {field}: {problem}" if field else f"{where}: {problem}")


class ZoneWriteError(DockzoneError):
    """A zone file could not be written (the loop retries the sink every second)."""

    def __init__(self, zone: str, path: str, problem: str) -> None:
        self.zone = zone
        self.path = path
        self.problem = problem
        super().__init__(f"zone {zone} ({path}): {problem}")


class TransientError(DockzoneError):
    """A backend is unreachable for now; the next pass retries."""
