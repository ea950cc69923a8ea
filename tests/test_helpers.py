"""The test helpers themselves: a check that can never fail is a test that cannot fail."""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import eventually


def test_eventually_waits_while_the_check_returns_false() -> None:
    calls = itertools.count(1)
    assert eventually(lambda: next(calls) >= 3, timeout=5, interval=0.01) is True
    assert next(calls) == 4


def test_eventually_fails_naming_a_check_that_stays_false() -> None:
    with pytest.raises(AssertionError, match=r"still False after 0\.1 s: .*1 == 2"):
        eventually(lambda: 1 == 2, timeout=0.1, interval=0.01)  # noqa: PLR0133


def test_eventually_returns_what_the_check_returns() -> None:
    assert eventually(lambda: [], timeout=0.1) == []
    assert eventually(lambda: None, timeout=0.1) is None
