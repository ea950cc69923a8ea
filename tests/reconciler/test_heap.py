"""The collector pause around passes: it must always come back on, however bodies nest."""

from __future__ import annotations

import asyncio
import gc

import pytest

from reconciler import heap


def test_the_collector_resumes_after_nested_and_interleaved_bodies() -> None:
    assert gc.isenabled()

    async def body(delay: float) -> None:
        with heap.building():
            assert not gc.isenabled()
            await asyncio.sleep(delay)
            assert not gc.isenabled()

    async def both() -> None:
        # The first to start ends first: the collector stays paused until the second ends.
        await asyncio.gather(body(0.01), body(0.05))

    asyncio.run(both())
    assert gc.isenabled()


def test_an_error_in_the_body_still_resumes_the_collector() -> None:
    with pytest.raises(RuntimeError), heap.building(freeze=True):
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.unfreeze()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    try:
        with heap.building():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
