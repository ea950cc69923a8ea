"""Fixtures shared by every test package."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import assert_zone_files_valid, eventually, network_changes, network_state


@pytest.fixture(scope="session", autouse=True)
def machine_network_untouched() -> Iterator[None]:
    """The tests leave the machine's interfaces, routes and IP forwarding as they found
    them (a private dockerd with --bridge=none used to delete the host engine's docker0).
    Interfaces that engines make and drop as they run (veth*, br-<id>, hack/dockerd's
    dz<n>) are left out: other work on a shared machine changes those;
    tests/integration/test_host_network.py checks them in a namespace of its own."""
    if shutil.which("ip") is None and not Path("/usr/sbin/ip").exists():
        yield  # no iproute2 (hack/deps installs it): nothing to compare with
        return
    before = network_state(transient=False)
    yield

    def unchanged() -> None:  # polled: a device being deleted shows for a moment
        after = network_state(transient=False)
        assert after == before, (
            "the test session changed the machine's network:\n" + network_changes(before, after)
        )

    eventually(unchanged, timeout=5, interval=0.5)


@pytest.fixture
def zones_dir(tmp_path: Path) -> Iterator[Path]:
    """A zone directory; every zone file left in it must pass named-checkzone."""
    directory = tmp_path / "zones"
    yield directory
    if directory.exists():
        assert_zone_files_valid(directory)
