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

    async def wait(self, quiet: float = 0.02) -> frozenset[str]:
        """Wait for a trigger, then until ``quiet`` seconds pass without another one (or a
        tenth of a second in all), so a burst costs one pass. Returns the reasons."""
        await self._event.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(quiet * 5, 0.1)
        while True:
            self._event.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._event.wait(), timeout=min(quiet, remaining))
            except TimeoutError:
                break
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
