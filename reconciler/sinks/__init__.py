"""Sinks: where the plan is applied. A sink is two methods (STYLE.md 5.2)."""

from __future__ import annotations

from typing import Protocol

from reconciler.core.model import ZoneSet
from reconciler.core.plan import Changes


class Sink(Protocol):
    """Something that holds zones: ``current()`` tells what it holds, ``apply()`` changes it.
    ``apply`` of an empty ``Changes`` writes nothing."""

    name: str

    async def current(self) -> ZoneSet: ...

    async def apply(self, changes: Changes) -> object: ...
