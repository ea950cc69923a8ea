"""The cyclic garbage collector around work that builds long-lived data.

A pass, a warm start or a zone load makes hundreds of thousands of objects that live on
(records, claims, RRsets, the server's answers). CPython's cyclic collector runs every few
hundred allocations and, now and then, walks every tracked object: with the heap growing
inside the pass, those walks were a third of a cold pass at 10,000 services, for almost
nothing to collect (the data is acyclic; reference counting frees what a pass drops).

``building(freeze=...)`` pauses the collector for the work and restores it afterwards;
with ``freeze`` the survivors then move to the permanent generation (``gc.freeze``), so
later collections walk only what was made since. Frozen objects are still freed by
reference counting; only a cycle among them would stay, and dockzone's data makes none
(the YAML loader's cycles are broken where it is used).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_resume = False


@contextmanager
def building(freeze: bool = False) -> Iterator[None]:
    """Run the body with the cyclic collector paused; freeze what survives if asked.
    Nests, also across coroutines that interleave: the collector resumes when the last
    body ends (and only if it was running when the first began)."""
    global _depth, _resume  # noqa: PLW0603 - the collector itself is process-wide
    if _depth == 0:
        _resume = gc.isenabled()
        gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if freeze:
            gc.freeze()
        if _depth == 0 and _resume:
            gc.enable()
