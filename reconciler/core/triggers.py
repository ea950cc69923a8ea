"""``Wakeup``: the one event every trigger feeds (definition files, timer, signals, later
Docker events, the API and kopf). Triggers only wake the loop; a burst of them collapses
into one pass. Used by ``loop`` and the CLI's ``run``."""

from __future__ import annotations

import asyncio


class Wakeup:
    """Set by triggers with a reason; ``wait`` returns every reason since the last pass."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._reasons: set[str] = set()

    def set(self, reason: str) -> None:
        """Wake the loop (call from the loop's thread; see ``set_threadsafe``)."""
        self._reasons.add(reason)
        self._event.set()

    def set_threadsafe(self, loop: asyncio.AbstractEventLoop, reason: str) -> None:
        """Wake the loop from another thread."""
        loop.call_soon_threadsafe(self.set, reason)

    async def wait(self) -> frozenset[str]:
        """Wait for a trigger; returns every reason set since the last call. No quiet window:
        the first trigger after idle starts a pass at once, and the triggers that arrive
        while that pass runs are all returned by the next call (one pass for a burst)."""
        await self._event.wait()
        self._event.clear()
        reasons = frozenset(self._reasons)
        self._reasons.clear()
        return reasons


async def next_wakeup(wakeup: Wakeup, stop: asyncio.Event) -> frozenset[str] | None:
    """The reasons of the next burst of wakeups, or None once ``stop`` is set."""
    if stop.is_set():
        return None
    waiter = asyncio.ensure_future(wakeup.wait())
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if stopper in done:
        waiter.cancel()
        return None
    stopper.cancel()
    return waiter.result()
