"""The private dockerds the tests and benchmarks start (hack/dockerd) leave the machine's
network as they found it, even beside another Docker engine.

The check runs hack/dockerd in a network namespace of the test's own that holds a
``docker0`` bridge standing for the machine's engine, so the comparison is exact: every
interface, route and the IP forwarding switch, before and after a whole cycle (start,
a network and a container, a live-restore restart, removal)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dockerimage import IMAGE, ensure_image
from tests.helpers import network_changes, network_state, require_binary
from tests.servers import DockerDaemon


def _ip(*args: str) -> None:
    subprocess.run([require_binary("ip"), *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def netns() -> Iterator[str]:
    """A named network namespace with loopback up and an "other engine's" docker0 bridge
    (with its address, route and IPv6 link-local route), IP forwarding off."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a network namespace")
    require_binary("nsenter")
    name = f"dzt-netns-{os.getpid()}"
    _ip("netns", "add", name)
    try:
        inside = ("-n", name)
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "link", "add", "name", "docker0", "type", "bridge")
        _ip(*inside, "addr", "add", "172.17.0.1/16", "dev", "docker0")
        _ip(*inside, "link", "set", "docker0", "up")
        subprocess.run(
            [
                require_binary("nsenter"),
                f"--net=/run/netns/{name}",
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=0",
            ],
            check=True,
            timeout=30,
        )
        yield name
    finally:
        _ip("netns", "delete", name)


def test_a_private_dockerd_leaves_the_other_engines_bridge_and_every_route(netns: str) -> None:
    inside = ("nsenter", f"--net=/run/netns/{netns}")
    before = network_state(inside)
    assert any(": docker0:" in line for line in before["links"])
    directory = Path(tempfile.mkdtemp(prefix="dzn-", dir="/tmp"))
    dockerd = DockerDaemon.start(directory, netns=netns)  # creates the test network
    try:
        ensure_image(dockerd.url)
        running = network_state(inside)
        assert any(": docker0:" in line for line in running["links"]), network_changes(
            before, running
        )
        client = dockerd.client()
        try:
            client.containers.run(IMAGE, ["sleep", "600"], detach=True, network=dockerd.network)
        finally:
            client.close()
        dockerd.stop()  # live-restore: the container lives on
        dockerd = DockerDaemon.start(directory, netns=netns)
    finally:
        dockerd.remove()
        shutil.rmtree(directory, ignore_errors=True)
    after = network_state(inside)
    assert after == before, "hack/dockerd changed the network:\n" + network_changes(before, after)
