"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import assert_zone_files_valid


@pytest.fixture
def zones_dir(tmp_path: Path) -> Iterator[Path]:
    """A zone directory; every zone file left in it must pass named-checkzone."""
    directory = tmp_path / "zones"
    yield directory
    if directory.exists():
        assert_zone_files_valid(directory)
