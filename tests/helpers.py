"""Test helpers: real BIND tools, polling with a deadline, checking zone directories, the
machine's network state."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import socket
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
    """Call ``check`` until it returns without AssertionError and does not return False,
    or the deadline passes. ``False`` means "not yet", so ``eventually(lambda: a == b)``
    waits for the equality; at the deadline it fails naming the check."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        else:
            if result is not False:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"still False after {timeout:g} s: {_describe(check)}"
                ) from None
        time.sleep(interval)


def _describe(check: Callable[[], object]) -> str:
    """The source line of a check (a lambda shows its body), else its name."""
    try:
        return inspect.getsource(check).strip()
    except (OSError, TypeError):
        return getattr(check, "__qualname__", repr(check))


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


# Interfaces that Docker engines create and delete as containers and networks come and go
# (any engine's, on a shared machine too), the default bridges of hack/dockerd, and
# if<index>: how `ip route` names a device deleted while it lists.
_TRANSIENT_DEVICE = re.compile(r"^(veth[0-9a-f]+|br-[0-9a-f]{12}|dz[0-9]+|if[0-9]+)(@\S+)?$")


def network_state(prefix: tuple[str, ...] = (), *, transient: bool = True) -> dict[str, list[str]]:
    """What ``ip -o link``, ``ip route`` and ``ip -6 route`` say (run under ``prefix``,
    nsenter into a namespace for instance), one sorted list each, plus IP forwarding.
    ``transient=False`` leaves out the interfaces engines create and delete all the time
    (veth*, br-<id>, dz<n>) and the routes through them, so other work on the machine does
    not show; route lifetimes (``expires 1790sec``) are left out."""
    ip = require_binary("ip")
    state: dict[str, list[str]] = {}
    for key, args in (
        ("links", ["-o", "link"]),
        ("routes", ["route"]),
        ("routes6", ["-6", "route"]),
    ):
        result = subprocess.run(
            [*prefix, ip, *args], capture_output=True, text=True, check=True, timeout=30
        )
        lines = []
        for raw in result.stdout.splitlines():
            line = re.sub(r" expires \d+sec", "", raw).strip()
            if key == "links":
                device = line.split(":")[1].strip()
            else:
                words = line.split()
                device = words[words.index("dev") + 1] if "dev" in words else ""
            if transient or not _TRANSIENT_DEVICE.match(device):
                lines.append(line)
        # an interrupted dump ("Dump was interrupted and may be inconsistent", under
        # interface churn) can repeat a line: compare the set of lines
        state[key] = sorted(set(lines))
    forwarding = subprocess.run(
        [*prefix, "cat", "/proc/sys/net/ipv4/ip_forward"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    state["ip_forward"] = [forwarding.stdout.strip()]
    return state


def network_changes(before: dict[str, list[str]], after: dict[str, list[str]]) -> str:
    """The lines that went and came between two ``network_state`` results, "" if none."""
    out = []
    for key, lines in before.items():
        gone = sorted(set(lines) - set(after[key]))
        new = sorted(set(after[key]) - set(lines))
        out += [f"{key} - {line}" for line in gone] + [f"{key} + {line}" for line in new]
    return "\n".join(out)


def recv_exact(conn: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from a stream socket (a DNS-over-TCP length or message); fails
    when the peer closes the connection first."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


CHROMIUM_OPTIONS = (
    "--headless=new",
    "--no-sandbox",  # root in CI
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--window-size=1280,900",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    # and no traffic beyond loopback: no sync, no field trials, no name resolved but 127.0.0.1
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-default-browser-check",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)
"""Headless Debian chromium for the status page's tests and `hack/bench status`: no
sandbox (root in CI), and no traffic beyond loopback (no sync, field trials or updates,
no name resolved but 127.0.0.1)."""
