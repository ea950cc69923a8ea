"""Container -> records, as pure functions over the shapes the Docker API returns, and the
Docker source's groups kept up to date from events, against a fake client (the integration
tests check the same rules against a real dockerd)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import queue
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest
import requests.exceptions
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.model import ServiceRecord
from reconciler.core.triggers import Wakeup
from reconciler.definitions import NameDefaults
from reconciler.sources import Snapshot, SourceView
from reconciler.sources.docker import (
    DockerOptions,
    DockerSource,
    container_records,
    event_target,
    health_of,
    image_label,
    subnets,
    summary_from_inspect,
)
from tests.helpers import eventually

OPTIONS = DockerOptions(url="unix:///nowhere.sock")
DEFAULTS = NameDefaults(("docker.",))


def summary(
    name: str = "web1",
    *,
    labels: dict[str, str] | None = None,
    ip: str = "172.20.0.5",
    status: str = "Up 3 seconds",
    ports: list[dict[str, Any]] | None = None,
    network_mode: str = "default",
    networks: dict[str, dict[str, str]] | None = None,
    cid: str = "0123456789abcdef",
) -> dict[str, Any]:
    return {
        "Id": cid,
        "Names": [f"/{name}"],
        "Image": "registry.local:5000/team/nginx:1.27",
        "Labels": labels or {},
        "Status": status,
        "Ports": ports or [],
        "HostConfig": {"NetworkMode": network_mode},
        "NetworkSettings": {
            "Networks": networks
            if networks is not None
            else {"bridge": {"IPAddress": ip, "GlobalIPv6Address": ""}}
        },
    }


def inspect(
    env: dict[str, str] | None = None, image: str = "registry.local:5000/team/nginx:1.27"
) -> dict[str, Any]:
    return {"Config": {"Env": [f"{k}={v}" for k, v in (env or {}).items()], "Image": image}}


def names_of(records: list[ServiceRecord]) -> list[str]:
    return sorted({r.name for r in records})


NAMING = [
    ({}, {}, ["web1.nginx.docker."]),
    ({"DNSDOCK_NAME": "api"}, {}, ["api.nginx.docker."]),
    ({"DNSDOCK_NAME": "api", "DNSDOCK_IMAGE": "svc"}, {}, ["api.svc.docker."]),
    ({"DNSDOCK_IMAGE": ""}, {}, ["web1.docker."]),
    (
        {"SERVICE_NAME": "db", "SERVICE_TAGS": "primary,backup", "SERVICE_REGION": "east"},
        {},
        ["primary.db.east.docker."],
    ),
    ({"SERVICE_NAME": "db", "SERVICE_TAGS": ""}, {}, ["db.docker."]),
    ({"DNSDOCK_NAME": "from-env"}, {"DNSDOCK_NAME": "from-label"}, ["from-label.nginx.docker."]),
    (
        {},
        {"com.dnsdock.name": "x", "com.dnsdock.image": "y", "com.dnsdock.region": "west"},
        ["x.y.west.docker."],
    ),
    ({}, {"com.dnsdock.tags": "blue"}, ["blue.nginx.docker."]),
    (
        {},
        {"com.docker.compose.project": "shop", "com.docker.compose.service": "front"},
        ["front.shop.docker.", "web1.nginx.docker."],
    ),
]


@pytest.mark.parametrize(
    ("env", "labels", "expected"), NAMING, ids=[f"naming-{i}" for i in range(len(NAMING))]
)
def test_container_names_follow_dnsdock_and_registrator(
    env: dict[str, str], labels: dict[str, str], expected: list[str]
) -> None:
    records, problems = container_records(summary(labels=labels), inspect(env), OPTIONS, DEFAULTS)
    assert problems == []
    assert names_of(records) == expected


def test_environment_label_is_inserted() -> None:
    records, _ = container_records(
        summary(), inspect(), OPTIONS, NameDefaults(("docker.",), "prod")
    )
    assert names_of(records) == ["web1.nginx.prod.docker."]


@pytest.mark.parametrize("key", ["DNSDOCK_IGNORE", "SERVICE_IGNORE"])
def test_ignore_keys_hide_the_container(key: str) -> None:
    assert container_records(summary(), inspect({key: "1"}), OPTIONS, DEFAULTS) == ([], [])
    assert container_records(
        summary(labels={"com.dnsdock.ignore": ""}), inspect(), OPTIONS, DEFAULTS
    ) == ([], [])


def test_aliases_ttl_ip_override_and_prefix() -> None:
    records, problems = container_records(
        summary(labels={"com.dnsdock.ip_addr": "203.0.113.9"}),
        inspect({"DNSDOCK_ALIAS": "db.docker, sql.example.test.", "DNSDOCK_TTL": "7"}),
        OPTIONS,
        DEFAULTS,
    )
    assert problems == []
    [record] = records
    assert (record.host, record.ttl, record.aliases) == (
        "203.0.113.9",
        7,
        ("db.docker.", "sql.example.test."),
    )
    two = {"a": {"IPAddress": "10.1.0.2"}, "b": {"IPAddress": "10.2.0.2"}}
    records, _ = container_records(
        summary(labels={"com.dnsdock.prefix": "10.2."}, networks=two), inspect(), OPTIONS, DEFAULTS
    )
    assert [r.host for r in records] == ["10.2.0.2"]


def test_every_network_address_in_a_stable_order_and_network_filter() -> None:
    nets = {
        "zeta": {"IPAddress": "10.9.0.2", "GlobalIPv6Address": "fd00::2"},
        "alpha": {"IPAddress": "10.1.0.2"},
    }
    records, _ = container_records(summary(networks=nets), inspect(), OPTIONS, DEFAULTS)
    assert [r.host for r in records] == ["10.1.0.2", "10.9.0.2", "fd00::2"]
    only = DockerOptions(url="x", networks=("zeta",))
    records, _ = container_records(summary(networks=nets), inspect(), only, DEFAULTS)
    assert [r.host for r in records] == ["10.9.0.2", "fd00::2"]


def test_containers_without_an_address_are_reported_not_published() -> None:
    records, problems = container_records(summary(networks={}), inspect(), OPTIONS, DEFAULTS)
    assert records == []
    assert problems == ["container web1 (0123456789ab) has no address; not published"]
    records, problems = container_records(
        summary(network_mode="host", networks={}), inspect(), OPTIONS, DEFAULTS
    )
    assert problems == [
        "container web1 (0123456789ab) uses the host network; set --host-address to publish it; not published"
    ]
    host = DockerOptions(url="x", host_address="192.0.2.10")
    records, _ = container_records(
        summary(network_mode="host", networks={}), inspect(), host, DEFAULTS
    )
    assert [r.host for r in records] == ["192.0.2.10"]


def test_a_mistyped_address_label_is_reported() -> None:
    records, problems = container_records(
        summary(labels={"com.dnsdock.ip_addr": "10.0.0.300"}), inspect(), OPTIONS, DEFAULTS
    )
    assert problems == [
        "container web1 (0123456789ab): com.dnsdock.ip_addr '10.0.0.300' is not a valid "
        "IPv4 address"
    ]
    assert [r.host for r in records] == ["172.20.0.5"]  # the label is ignored, as before


def test_an_address_that_is_not_one_is_not_published() -> None:
    nets = {"odd": {"IPAddress": "10.0.0.300", "IPPrefixLen": 24}}
    records, problems = container_records(summary(networks=nets), inspect(), OPTIONS, DEFAULTS)
    assert records == []
    assert problems == ["container web1 (0123456789ab) has no address; not published"]
    assert subnets(summary(networks=nets), OPTIONS) == set()


def test_discover_publishes_srv_to_the_host_binding() -> None:
    ports = [
        {"PrivatePort": 8080, "PublicPort": 32768, "Type": "tcp", "IP": "127.0.0.1"},
        {"PrivatePort": 8125, "PublicPort": 32769, "Type": "udp", "IP": "0.0.0.0"},
    ]
    env = {"DISCOVER": "svc:8080, stats:8125/udp, nope:9999, bad"}
    records, problems = container_records(
        summary(ports=ports),
        inspect(env),
        DockerOptions(url="x", host_address="192.0.2.10"),
        DEFAULTS,
    )
    srv = {(r.name, r.host, r.port, r.protocol, r.reverse) for r in records if r.port}
    assert srv == {
        ("svc.docker.", "127.0.0.1", 32768, "tcp", False),
        ("stats.docker.", "192.0.2.10", 32769, "udp", False),
    }
    assert problems == [
        "container web1 (0123456789ab): DISCOVER 'nope:9999': port 9999/tcp is not published",
        "container web1 (0123456789ab): DISCOVER item 'bad' is not 'name:port[/udp]'",
    ]


@pytest.mark.parametrize(
    ("reference", "label"),
    [
        ("redis", "redis"),
        ("redis:7", "redis"),
        ("library/redis:7", "redis"),
        ("registry.local:5000/team/My_App:1@sha256:abc", "my_app"),
    ],
)
def test_image_label_is_the_last_path_part_without_tag(reference: str, label: str) -> None:
    assert image_label(reference) == label


@pytest.mark.parametrize(
    ("status", "health"),
    [
        ("Up 3 seconds", "none"),
        ("Up 3 seconds (healthy)", "healthy"),
        ("Up 3 seconds (unhealthy)", "unhealthy"),
        ("Up 1 second (health: starting)", "starting"),
    ],
)
def test_health_from_status(status: str, health: str) -> None:
    assert health_of(summary(status=status)) == health


# -- the source: groups per container, updated from events -----------------------------
#
# FakeDocker answers the calls DockerSource makes (containers, inspect_container, events)
# from its own state, in the shapes dockerd returns, and queues the events dockerd would
# send for each operation. It cannot fail by accident, so these tests can make it fail
# (outages, a stream that breaks) where a real dockerd cannot be made to.


class FakeStream:
    def __init__(self, fake: FakeDocker) -> None:
        self.fake = fake
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while not self.closed:
            try:
                item = self.fake.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self.closed = True


class FakeDocker:
    """A Docker API client over an in-memory daemon; ``calls`` counts each API call."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.queue: queue.Queue[Any] = queue.Queue()
        self.pending: list[dict[str, Any]] = []
        """Events not yet handed over: ``pump`` gives them to a source directly."""
        self.down = False
        self.deaf = False
        """Events are not sent (lost on the way)."""
        self.serial = itertools.count(2)

    # the client side (what DockerSource calls)
    def containers(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        self.calls["list"] += 1
        self._up()
        assert filters == {"status": "running"}
        return [self._summary(c) for c in self.state.values() if c["State"]["Status"] == "running"]

    def inspect_container(self, cid: str) -> dict[str, Any]:
        self.calls["inspect"] += 1
        self._up()
        if cid not in self.state:
            raise docker.errors.NotFound(f"No such container: {cid}")
        return copy.deepcopy(self.state[cid])

    def events(self, **_: Any) -> FakeStream:
        self.calls["events"] += 1
        self._up()
        return FakeStream(self)

    def close(self) -> None:
        pass

    def _up(self) -> None:
        if self.down:
            raise requests.exceptions.ConnectionError("connection refused")

    # the daemon side (what a user does)
    def run(
        self,
        name: str,
        *,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        networks: tuple[str, ...] = ("dzt",),
        health: str | None = None,
    ) -> str:
        cid = hashlib.sha256(name.encode() + str(next(self.serial)).encode()).hexdigest()
        self.state[cid] = {
            "Id": cid,
            "Name": f"/{name}",
            "State": {
                "Status": "created",
                "Running": False,
                "Paused": False,
                "Restarting": False,
                **({"Health": {"Status": health, "FailingStreak": 0, "Log": []}} if health else {}),
            },
            "Config": {
                "Env": [f"{k}={v}" for k, v in (env or {}).items()],
                "Image": "dockzone-test/busybox:latest",
                "Labels": labels or {},
                "Hostname": cid[:12],
            },
            "HostConfig": {"NetworkMode": networks[0] if networks else "none"},
            "NetworkSettings": {"Networks": {}, "Ports": {}},
        }
        self._event("container", "create", cid)
        for network in networks:
            self.connect(cid, network)
        self.state[cid]["State"].update(Status="running", Running=True)
        self._event("container", "start", cid)
        return cid

    def connect(self, cid: str, network: str) -> None:
        self.state[cid]["NetworkSettings"]["Networks"][network] = {
            "IPAddress": f"{self._prefix(network)}.{(n := next(self.serial)) // 250}.{n % 250 + 1}",
            "IPPrefixLen": 16,
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
        }
        self._event("network", "connect", cid, network=network)

    def disconnect(self, cid: str, network: str) -> None:
        del self.state[cid]["NetworkSettings"]["Networks"][network]
        self._event("network", "disconnect", cid, network=network)

    def rename(self, cid: str, name: str) -> None:
        self.state[cid]["Name"] = f"/{name}"
        self._event("container", "rename", cid)

    def health(self, cid: str, status: str) -> None:
        self.state[cid]["State"]["Health"]["Status"] = status
        self._event("container", f"health_status: {status}", cid)

    def kill(self, cid: str, signal: str = "9") -> None:
        self._event("container", "kill", cid, signal=signal)
        if signal == "9":
            self.state[cid]["State"].update(Status="exited", Running=False)
            self._event("container", "die", cid)

    def stop(self, cid: str) -> None:
        self.kill(cid, "15")
        self.state[cid]["State"].update(Status="exited", Running=False)
        self._event("container", "die", cid)
        for network in list(self.state[cid]["NetworkSettings"]["Networks"]):
            self.disconnect(cid, network)
        self._event("container", "stop", cid)

    def remove(self, cid: str) -> None:
        """``docker rm -f``."""
        if self.state[cid]["State"]["Status"] == "running":
            self.kill(cid, "9")
        for network in list(self.state[cid]["NetworkSettings"]["Networks"]):
            self.disconnect(cid, network)
        self._event("container", "destroy", cid)
        del self.state[cid]

    def pause(self, cid: str, paused: bool) -> None:
        self.state[cid]["State"].update(Status="paused" if paused else "running", Paused=paused)
        self._event("container", "pause" if paused else "unpause", cid)

    def _prefix(self, network: str) -> str:
        return f"10.{sum(network.encode()) % 250}"

    def _event(self, kind: str, action: str, cid: str, **attributes: str) -> None:
        if kind == "network":
            actor = {"ID": "net-" + attributes["network"], "Attributes": {"container": cid}}
        else:
            actor = {"ID": cid, "Attributes": {"name": self.state[cid]["Name"][1:], **attributes}}
        event = {"Type": kind, "Action": action, "Actor": actor, "time": int(time.time())}
        if kind == "container":
            event.update(status=action, id=cid)
        self.pending.append(event)
        if not self.deaf:
            self.queue.put(event)

    def _summary(self, inspect: dict[str, Any]) -> dict[str, Any]:
        """The list call's entry, written out the way dockerd writes it."""
        health = (inspect["State"].get("Health") or {}).get("Status")
        status = "Up 2 seconds" + (
            f" (health: {health})" if health == "starting" else f" ({health})" if health else ""
        )
        ports = []
        for key, bindings in inspect["NetworkSettings"]["Ports"].items():
            port, _, protocol = key.partition("/")
            for binding in bindings or [{}]:
                entry = {"PrivatePort": int(port), "Type": protocol}
                if binding:
                    entry.update(IP=binding["HostIp"], PublicPort=int(binding["HostPort"]))
                ports.append(entry)
        return {
            "Id": inspect["Id"],
            "Names": [inspect["Name"]],
            "Image": inspect["Config"]["Image"],
            "ImageID": "sha256:0000",
            "Labels": inspect["Config"]["Labels"],
            "State": inspect["State"]["Status"],
            "Status": status,
            "Ports": ports,
            "HostConfig": {"NetworkMode": inspect["HostConfig"]["NetworkMode"]},
            "NetworkSettings": {"Networks": copy.deepcopy(inspect["NetworkSettings"]["Networks"])},
        }


def make_source(fake: FakeDocker, **options: Any) -> DockerSource:
    return DockerSource(DockerOptions(url="fake://", **options), DEFAULTS, lambda _: fake)


def pump(source: DockerSource, fake: FakeDocker) -> list[str]:
    """Hand the queued events to the source, as its events thread does; the wake reasons."""
    events, fake.pending = fake.pending, []
    return [r for r in (source.handle(fake, e) for e in events) if r is not None]


def hosts(snapshot: Snapshot | SourceView, name: str) -> list[str]:
    return sorted(r.host for r in snapshot.records if r.name == name and not r.port)


def subnet(fake: FakeDocker, network: str) -> str:
    return f"{fake._prefix(network)}.0.0/16"


def full_view(fake: FakeDocker, **options: Any) -> dict[str, tuple[Any, ...]]:
    """What a fresh source lists: the oracle incremental loads must agree with."""
    snapshot = make_source(fake, **options).load()
    assert snapshot.complete
    return dict(snapshot.groups)


def test_inspect_alone_gives_the_records_the_list_gave() -> None:
    fake = FakeDocker()
    labels = {"com.docker.compose.project": "shop", "com.docker.compose.service": "front"}
    cid = fake.run("web", env={"DNSDOCK_ALIAS": "www.docker", "DISCOVER": "http:80"}, labels=labels)
    fake.connect(cid, "second")
    fake.state[cid]["NetworkSettings"]["Ports"] = {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "81/tcp": None,
    }
    inspected = fake.inspect_container(cid)
    from_list = container_records(fake._summary(inspected), inspected, OPTIONS, DEFAULTS)
    from_inspect = container_records(None, inspected, OPTIONS, DEFAULTS)
    assert from_inspect == from_list
    assert len(from_list[0]) == 5  # 2 addresses x 2 names + the DISCOVER SRV
    assert health_of(summary_from_inspect(inspected)) == "none"


@pytest.mark.parametrize("status", ["healthy", "unhealthy", "starting"])
def test_health_from_inspect(status: str) -> None:
    fake = FakeDocker()
    inspected = fake.inspect_container(fake.run("h", health=status))
    assert health_of(summary_from_inspect(inspected)) == status
    assert health_of(fake._summary(inspected)) == status


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"Type": "container", "Action": "start", "Actor": {"ID": "c1"}},
            ("c1", "start", "inspect"),
        ),
        (
            {"Type": "container", "Action": "unpause", "Actor": {"ID": "c1"}},
            ("c1", "unpause", "inspect"),
        ),
        (
            {"Type": "container", "Action": "health_status: unhealthy", "Actor": {"ID": "c1"}},
            ("c1", "health_status", "refresh"),
        ),
        (
            {"Type": "container", "Action": "rename", "Actor": {"ID": "c1"}},
            ("c1", "rename", "refresh"),
        ),
        (
            {
                "Type": "network",
                "Action": "connect",
                "Actor": {"ID": "n1", "Attributes": {"container": "c1"}},
            },
            ("c1", "connect", "refresh"),
        ),
        (
            {
                "Type": "network",
                "Action": "disconnect",
                "Actor": {"ID": "n1", "Attributes": {"container": "c1"}},
            },
            ("c1", "disconnect", "refresh"),
        ),
        ({"Type": "container", "Action": "die", "Actor": {"ID": "c1"}}, ("c1", "die", "drop")),
        ({"Type": "container", "Action": "pause", "Actor": {"ID": "c1"}}, ("c1", "pause", "drop")),
        (
            {"Type": "container", "Action": "destroy", "Actor": {"ID": "c1"}},
            ("c1", "destroy", "drop"),
        ),
        (
            {
                "Type": "container",
                "Action": "kill",
                "Actor": {"ID": "c1", "Attributes": {"signal": "9"}},
            },
            ("c1", "kill", "drop"),
        ),
        (
            {
                "Type": "container",
                "Action": "kill",
                "Actor": {"ID": "c1", "Attributes": {"signal": "1"}},
            },
            None,
        ),
        (
            {"Type": "container", "Action": "exec_start: /bin/sh -c true", "Actor": {"ID": "c1"}},
            None,
        ),
        ({"Type": "container", "Action": "create", "Actor": {"ID": "c1"}}, None),
        ({"Type": "network", "Action": "create", "Actor": {"ID": "n1"}}, None),
        ({"status": "start", "id": "c1"}, ("c1", "start", "inspect")),  # the old event format
    ],
)
def test_event_targets(event: dict[str, Any], expected: tuple[str, str, str] | None) -> None:
    assert event_target(event) == expected


def test_a_start_costs_one_inspect_and_returns_only_its_group() -> None:
    fake = FakeDocker()
    for i in range(5):
        fake.run(f"bg{i}")
    source = make_source(fake)
    first = source.load()
    assert first.complete
    assert len(first.groups) == 5
    assert fake.calls == {"list": 1, "inspect": 5}
    fake.pending.clear()
    fake.calls.clear()
    assert source.load() == Snapshot({}, False, ())  # nothing happened: no call, no change

    cid = fake.run("new")
    assert pump(source, fake) == ["docker start"]  # the connect before start: no inspect
    snapshot = source.load()
    assert fake.calls == {"inspect": 1}
    assert not snapshot.complete
    assert list(snapshot.groups) == [cid]
    assert hosts(snapshot, "new.busybox.docker.") == [
        fake.state[cid]["NetworkSettings"]["Networks"]["dzt"]["IPAddress"]
    ]
    assert source.load().groups == {}


def test_rm_f_and_stop_drop_the_group_without_a_call() -> None:
    fake = FakeDocker()
    one, two = fake.run("one"), fake.run("two")
    source = make_source(fake)
    source.load()
    fake.pending.clear()
    fake.calls.clear()
    fake.remove(one)
    fake.stop(two)
    pump(source, fake)
    assert fake.calls == {}
    assert source.load().groups == {one: (), two: ()}


def test_a_signal_other_than_kill_leaves_the_container_published() -> None:
    fake = FakeDocker()
    cid = fake.run("hup")
    source = make_source(fake)
    source.load()
    fake.pending.clear()
    fake.kill(cid, "1")
    assert pump(source, fake) == []
    assert source.load().groups == {}


def test_rename_moves_the_name_and_network_changes_the_addresses() -> None:
    fake = FakeDocker()
    cid = fake.run("before")
    source = make_source(fake)
    view = SourceView()
    view.take(source.load())
    fake.pending.clear()
    fake.rename(cid, "after")
    pump(source, fake)
    view.take(source.load())
    address = fake.state[cid]["NetworkSettings"]["Networks"]["dzt"]["IPAddress"]
    assert hosts(view, "after.busybox.docker.") == [address]
    assert hosts(view, "before.busybox.docker.") == []
    fake.connect(cid, "extra")
    pump(source, fake)
    snapshot = source.load()
    view.take(snapshot)
    extra = fake.state[cid]["NetworkSettings"]["Networks"]["extra"]["IPAddress"]
    assert hosts(view, "after.busybox.docker.") == sorted([address, extra])
    assert snapshot.networks == tuple(sorted([subnet(fake, "dzt"), subnet(fake, "extra")]))
    fake.disconnect(cid, "extra")
    pump(source, fake)
    snapshot = source.load()
    view.take(snapshot)
    assert hosts(view, "after.busybox.docker.") == [address]
    assert snapshot.networks == (subnet(fake, "dzt"),)
    assert view.groups == full_view(fake)


def test_pause_drops_and_unpause_restores() -> None:
    fake = FakeDocker()
    cid = fake.run("p")
    source = make_source(fake)
    held = source.load().groups[cid]
    fake.pending.clear()
    fake.pause(cid, True)
    pump(source, fake)
    assert source.load().groups == {cid: ()}
    fake.pause(cid, False)
    pump(source, fake)
    assert source.load().groups == {cid: held}


def test_health_changes_follow_the_policy_and_touch_only_the_name() -> None:
    fake = FakeDocker()
    shared = {"DNSDOCK_NAME": "hc"}
    good = fake.run("hc-good", env=shared, health="healthy")
    bad = fake.run("hc-bad", env=shared, health="healthy")
    lonely = fake.run("lonely", health="healthy")
    bystander = fake.run("other")
    source = make_source(fake)
    view = SourceView()
    view.take(source.load())
    fake.pending.clear()
    assert hosts(view, "hc.busybox.docker.") == sorted(
        fake.state[c]["NetworkSettings"]["Networks"]["dzt"]["IPAddress"] for c in (good, bad)
    )

    fake.health(bad, "unhealthy")
    pump(source, fake)
    snapshot = source.load()
    assert snapshot.groups == {bad: ()}  # the healthy one beside it keeps the name
    view.take(snapshot)

    fake.health(good, "unhealthy")  # now every container of the name is unhealthy: both stay
    pump(source, fake)
    snapshot = source.load()
    assert set(snapshot.groups) == {bad}  # good's group is what it was; bad comes back
    view.take(snapshot)
    assert len(hosts(view, "hc.busybox.docker.")) == 2
    assert snapshot.problems == (
        "hc.busybox.docker. has no healthy container; keeping the unhealthy ones",
    )

    fake.health(lonely, "unhealthy")  # alone at its name: kept
    pump(source, fake)
    snapshot = source.load()
    assert snapshot.groups == {}
    assert len(snapshot.problems) == 2

    fake.health(good, "healthy")
    pump(source, fake)
    snapshot = source.load()
    assert set(snapshot.groups) == {bad}
    assert bystander not in snapshot.groups
    view.take(snapshot)
    assert view.groups == full_view(fake)


def test_an_outage_serves_the_last_records_and_relists_after_the_stream_breaks() -> None:
    fake = FakeDocker()
    kept = fake.run("kept")
    gone = fake.run("gone")
    source = make_source(fake)
    view = SourceView()
    view.take(source.load())
    fake.pending.clear()
    fake.down = True
    with source._lock:  # what the events thread does when its stream breaks
        source._full = True
    stale = source.load()
    assert stale.stale
    assert not stale.complete
    assert stale.groups == {}
    assert stale.problems[0].startswith("docker at fake://: connection refused")
    assert view.take(stale) == {}
    assert source.load().stale  # still down: still listing, still stale
    fake.down = False
    fake.remove(gone)  # changes while the stream was down: only the list sees them
    late = fake.run("late")
    fake.pending.clear()
    fake.calls.clear()
    snapshot = source.load()
    assert snapshot.complete
    assert not snapshot.stale
    assert fake.calls == {"list": 1, "inspect": 1}  # kept was inspected before
    changed = view.take(snapshot)
    assert set(changed) == {gone, late}
    assert set(view.groups) == {kept, late}


def test_full_load_lists_afresh_and_keeps_inspects_cached() -> None:
    fake = FakeDocker()
    cid = fake.run("a")
    source = make_source(fake)
    source.load()
    fake.rename(cid, "b")  # an event the source never saw
    fake.calls.clear()
    snapshot = source.load(full=True)
    assert snapshot.complete
    assert fake.calls == {"list": 1}
    assert [r.name for r in snapshot.groups[cid]] == ["b.busybox.docker."]


def test_updates_seen_during_a_list_go_on_top_of_it() -> None:
    """An event handled while the list is under way is newer than the list: kept."""
    fake = FakeDocker()
    early = fake.run("early")
    source = make_source(fake)
    source.load()
    fake.pending.clear()
    listing = fake.containers

    def containers(filters: dict[str, str]) -> list[dict[str, Any]]:
        listed = listing(filters)
        fake.remove(early)  # dies after the list saw it
        pump(source, fake)
        return listed

    fake.containers = containers  # type: ignore[method-assign]
    snapshot = source.load(full=True)
    assert early not in snapshot.groups
    assert source.load().groups == {}


def test_a_network_change_during_a_list_is_not_lost() -> None:
    """A container the events thread does not know yet (its start was lost), changed while
    the list that finds it is under way: the change is inspected and applied on top."""
    fake = FakeDocker()
    source = make_source(fake)
    source.load()
    cid = fake.run("quiet")
    fake.pending.clear()  # its events were lost
    listing = fake.containers

    def containers(filters: dict[str, str]) -> list[dict[str, Any]]:
        listed = listing(filters)
        fake.connect(cid, "extra")  # after the list saw it
        pump(source, fake)
        return listed

    fake.containers = containers  # type: ignore[method-assign]
    view = SourceView()
    view.take(source.load(full=True))
    extra = fake.state[cid]["NetworkSettings"]["Networks"]["extra"]["IPAddress"]
    assert extra in hosts(view, "quiet.busybox.docker.")
    assert view.groups == full_view(fake)


def test_watch_wakes_the_loop_at_once_and_relists_after_a_break() -> None:
    fake = FakeDocker()
    fake.run("first")
    source = make_source(fake)

    async def scenario() -> None:
        wakeup, stop = Wakeup(), asyncio.Event()
        view = SourceView()
        view.take(source.load())
        watcher = asyncio.create_task(source.watch(wakeup, stop))
        try:
            await asyncio.sleep(0.2)  # subscribed; the replayed start changes nothing
            await _drain(wakeup)
            view.take(source.load())
            fake.calls.clear()
            cid = fake.run("second")
            reasons = await asyncio.wait_for(wakeup.wait(), 5)
            assert "docker start" in reasons
            view.take(source.load())
            assert hosts(view, "second.busybox.docker.")
            assert fake.calls["list"] == 0
            fake.deaf = True  # the stream misses this change; only the list sees it
            fake.remove(cid)
            fake.queue.put(requests.exceptions.ConnectionError("stream broke"))
            fake.deaf = False
            reasons = await asyncio.wait_for(wakeup.wait(), 5)
            assert "docker events interrupted" in reasons
            snapshot = source.load()
            assert snapshot.complete
            view.take(snapshot)
            assert hosts(view, "second.busybox.docker.") == []
            assert view.groups == full_view(fake)
        finally:
            stop.set()
            await asyncio.wait_for(watcher, 5)

    asyncio.run(scenario())


def test_an_event_of_an_unknown_shape_reconnects_instead_of_stopping_the_watcher() -> None:
    fake = FakeDocker()
    source = make_source(fake)

    async def scenario() -> None:
        wakeup, stop = Wakeup(), asyncio.Event()
        source.load()
        watcher = asyncio.create_task(source.watch(wakeup, stop))
        try:
            await asyncio.sleep(0.2)
            await _drain(wakeup)
            fake.queue.put({"Type": "container", "Action": "start", "Actor": "?"})
            reasons = await asyncio.wait_for(wakeup.wait(), 5)
            assert "docker events interrupted" in reasons
            assert source.load().complete  # events may be lost: listed afresh
            cid = fake.run("after")
            reasons = await asyncio.wait_for(wakeup.wait(), 5)
            while "docker start" not in reasons:  # the reconnection may wake it first
                reasons = await asyncio.wait_for(wakeup.wait(), 5)
            assert cid in source.load().groups
        finally:
            stop.set()
            await asyncio.wait_for(watcher, 5)

    asyncio.run(scenario())


async def _drain(wakeup: Wakeup) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wakeup.wait(), 0.3)


OPERATIONS = [
    "run",
    "remove",
    "stop",
    "rename",
    "connect",
    "disconnect",
    "health",
    "pause",
    "kill-hup",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 7), st.integers(0, 3)), max_size=40
    )
)
def test_incremental_loads_agree_with_a_full_list(steps: list[tuple[str, int, int]]) -> None:
    """After any sequence of container changes, the groups the events produced are the
    groups a fresh list gives (names shared between containers, health, networks)."""
    fake = FakeDocker()
    source = make_source(fake)
    view = SourceView()
    view.take(source.load())
    for operation, pick, value in steps:
        running = [c for c, i in fake.state.items() if i["State"]["Status"] == "running"]
        paused = [c for c, i in fake.state.items() if i["State"]["Status"] == "paused"]
        target = running[pick % len(running)] if running else None
        if operation == "run" or target is None:
            fake.run(
                f"c{pick}",
                env={"DNSDOCK_NAME": f"n{value}"} if value < 2 else {},
                health=["healthy", "unhealthy", "starting", None][value],
            )
        elif operation == "remove":
            fake.remove(target)
        elif operation == "stop":
            fake.stop(target)
        elif operation == "rename":
            fake.rename(target, f"r{pick}-{value}")
        elif operation == "connect":
            if f"net{value}" not in fake.state[target]["NetworkSettings"]["Networks"]:
                fake.connect(target, f"net{value}")
        elif operation == "disconnect":
            networks = list(fake.state[target]["NetworkSettings"]["Networks"])
            if networks:
                fake.disconnect(target, networks[value % len(networks)])
        elif operation == "health":
            if "Health" in fake.state[target]["State"]:
                fake.health(target, ["healthy", "unhealthy", "starting", "healthy"][value])
        elif operation == "pause":
            if paused and value % 2:
                fake.pause(paused[0], False)
            else:
                fake.pause(target, True)
        else:
            fake.kill(target, "1")
        pump(source, fake)
        if pick % 3 == 0:  # several changes in one load, sometimes
            snapshot = source.load()
            assert not snapshot.complete
            view.take(snapshot)
    view.take(source.load())
    oracle = make_source(fake).load()
    assert view.groups == dict(oracle.groups)
    assert view.problems == oracle.problems
    assert view.networks == oracle.networks


HOSTNAMES = [
    # (Hostname, Domainname, label, --hostname-names) -> names besides web1.nginx.docker.
    ("web", "", None, True, ["web.docker."]),
    ("web", "", None, False, []),
    ("web", "", "true", False, ["web.docker."]),
    ("web", "", "false", True, []),
    ("web", "prod", None, True, ["web.prod.docker."]),
    ("web", "docker", None, True, ["web.docker."]),
    ("web", "example.com", None, True, ["web.example.com.docker."]),
    ("Web.Lab", "", None, True, ["web.lab.docker."]),
    ("0123456789ab", "", None, True, []),  # Docker's default: the short id
    ("", "", None, True, []),
]


@pytest.mark.parametrize(
    ("hostname", "domainname", "label", "flag", "expected"),
    HOSTNAMES,
    ids=[f"{h or '-'}/{d or '-'}/{lab}/{f}" for h, d, lab, f, _ in HOSTNAMES],
)
def test_hostname_names_follow_docker_ddns(
    hostname: str, domainname: str, label: str | None, flag: bool, expected: list[str]
) -> None:
    details = inspect()
    details["Config"].update(Hostname=hostname, Domainname=domainname)
    labels = {"dev.dockzone.hostname": label} if label is not None else {}
    options = DockerOptions(url="x", hostname_names=flag)
    records, problems = container_records(summary(labels=labels), details, options, DEFAULTS)
    assert problems == []
    assert names_of(records) == sorted(["web1.nginx.docker.", *expected])
    for record in records:
        if record.name in expected:
            assert (record.ttl, record.reverse, record.host) == (60, False, "172.20.0.5")


def test_hostname_name_ttl_label_and_other_zones() -> None:
    details = inspect({"DNSDOCK_TTL": "5"})
    details["Config"].update(Hostname="db", Domainname="skydns.local")
    defaults = NameDefaults(("docker.", "skydns.local."))
    options = DockerOptions(url="x", hostname_names=True)
    records, problems = container_records(summary(), details, options, defaults)
    assert problems == []
    [hostname] = [r for r in records if r.name == "db.skydns.local."]
    assert (hostname.zone, hostname.ttl) == ("skydns.local.", 5)
    labels = {"dev.dockzone.hostname": "maybe"}
    records, problems = container_records(summary(labels=labels), details, options, defaults)
    assert problems == [
        "container web1 (0123456789ab): label dev.dockzone.hostname 'maybe' is not true or "
        "false; ignored"
    ]
    assert "db.skydns.local." in names_of(records)


def _start_again(fake: FakeDocker, cid: str) -> None:
    """``docker start`` of a stopped container (a restart policy, ``docker restart``)."""
    fake.connect(cid, "dzt")
    fake.state[cid]["State"].update(Status="running", Running=True)
    fake._event("container", "start", cid)


def test_a_stopped_container_stays_published_for_its_grace() -> None:
    """``--stop-grace``: a stopped container keeps its records until it is back or its grace
    is over, through incremental and full loads; ``docker rm`` is immediate."""
    fake = FakeDocker()
    back, gone, removed = fake.run("back"), fake.run("gone"), fake.run("removed")
    source = make_source(fake, stop_grace=1.0)
    source.load()
    fake.pending.clear()
    fake.stop(back)
    fake.stop(gone)
    fake.remove(removed)
    pump(source, fake)
    assert source.load().groups == {removed: ()}
    full = source.load(full=True)
    assert sorted(full.groups) == sorted([back, gone])
    _start_again(fake, back)
    pump(source, fake)
    snapshot = source.load()
    address = fake.state[back]["NetworkSettings"]["Networks"]["dzt"]["IPAddress"]
    assert hosts(snapshot, "back.busybox.docker.") == [address]  # its new address

    def dropped() -> None:
        assert source.load().groups == {gone: ()}

    eventually(dropped, timeout=5)
    assert sorted(source.load(full=True).groups) == [back]
