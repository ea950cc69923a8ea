"""Test helpers: real BIND tools, polling with a deadline, checking zone directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

# Strict checks, and no look-ups of out-of-zone names (those would go to the machine's
# resolver): -i local checks MX/SRV/NS targets only inside the zone.
NAMED_CHECKZONE_FLAGS = [
    "-i",
    "local",
    "-k",
    "fail",
    "-n",
    "fail",
    "-m",
    "fail",
    "-M",
    "fail",
    "-S",
    "fail",
    "-r",
    "fail",
]


def require_binary(name: str) -> str:
    """The path of ``name``; a missing binary skips locally and fails under CI=true."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        message = f"{name} is not installed (hack/deps installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def named_checkzone(origin: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Run BIND's named-checkzone on one zone file."""
    binary = require_binary("named-checkzone")
    return subprocess.run(
        [binary, *NAMED_CHECKZONE_FLAGS, origin, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def assert_zone_files_valid(directory: Path) -> int:
    """Every ``db.*`` file in ``directory`` passes named-checkzone; returns how many."""
    count = 0
    for path in sorted(directory.glob("db.*")):
        origin = path.name[3:] + "."
        result = named_checkzone(origin, path)
        assert result.returncode == 0, (
            f"named-checkzone rejected {path}:\n{result.stdout}{result.stderr}\n"
            f"--- {path.name} ---\n{path.read_text()}"
        )
        count += 1
    return count


def eventually(check: Callable[[], T], timeout: float = 5.0, interval: float = 0.05) -> T:
    """Call ``check`` until it returns without AssertionError, or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def service(object_name: str, /, **spec: object) -> dict[str, object]:
    """A ServiceRecord document as a mapping. ``spec.name`` is ``name`` when given, else
    ``dns_name``, else the object name; ``dns_name=None`` leaves it out."""
    body: dict[str, object] = {}
    dns_name = spec.pop("dns_name", object_name)
    if "name" not in spec and dns_name is not None:
        body["name"] = dns_name
    body.update(spec)
    return {
        "apiVersion": "dockzone.dev/v1alpha1",
        "kind": "ServiceRecord",
        "metadata": {"name": object_name},
        "spec": body,
    }
