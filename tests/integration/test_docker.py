"""The Docker source against a real dockerd: containers started by the test, answers read
with dig from a running ``dockzone run``. Every container a test creates is removed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.rcode
import docker
import docker.errors
import docker.models.containers
import docker.types
import pytest
import requests.exceptions

from reconciler.core.triggers import Wakeup
from reconciler.definitions import NameDefaults
from reconciler.sources import MergedSource, Snapshot, SourceView
from reconciler.sources.docker import DockerOptions, DockerSource, connect
from tests.dockerimage import IMAGE, ensure_image
from tests.helpers import eventually
from tests.integration.test_etcd import EtcdServer
from tests.servers import Daemon, DockerDaemon, dig_answers, free_port, make_certs, query

_names = itertools.count()


@pytest.fixture(scope="module")
def dockerd() -> Iterator[DockerDaemon]:
    daemon = DockerDaemon.start_new()
    ensure_image(daemon.url)
    try:
        yield daemon
    finally:
        daemon.remove()


@pytest.fixture(scope="module")
def dockzone(dockerd: DockerDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    workdir = tmp_path_factory.mktemp("dockzone")
    definitions = workdir / "definitions"
    definitions.mkdir()
    daemon = Daemon.start(
        workdir, definitions, "--docker", dockerd.url, "--host-address", "127.0.0.1"
    )
    try:
        yield daemon
    finally:
        assert daemon.stop() == 0, daemon.output()


@pytest.fixture
def run(dockerd: DockerDaemon) -> Iterator[Any]:
    """Start a container on the test network; removed when the test ends."""
    client = dockerd.client()
    started: list[docker.models.containers.Container] = []

    def start(name: str | None = None, **kwargs: Any) -> docker.models.containers.Container:
        kwargs.setdefault("network", dockerd.network)
        container = client.containers.run(
            IMAGE, detach=True, name=name or f"c{next(_names)}", **kwargs
        )
        started.append(container)
        container.reload()
        return container

    yield start
    for container in started:
        with contextlib.suppress(docker.errors.NotFound):  # the test removed it
            container.remove(force=True)
    client.close()


def address(container: docker.models.containers.Container, network: str = "dzt") -> str:
    return str(container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def answers(port: int, name: str, rdtype: str = "A") -> list[str]:
    return [line.split()[-1] for line in dig_answers(port, name, rdtype)]


def expect(port: int, name: str, values: list[str], rdtype: str = "A") -> None:
    eventually(lambda: _equal(answers(port, name, rdtype), sorted(values)), timeout=10)


def _equal(got: list[str], want: list[str]) -> None:
    assert got == want


def test_default_name_and_image_aggregation(dockzone: Daemon, run: Any) -> None:
    one = run("web-one")
    two = run("web-two")
    expect(dockzone.port, "web-one.busybox.docker", [address(one)])
    expect(dockzone.port, "busybox.docker", sorted([address(one), address(two)]))
    [ptr] = answers(
        dockzone.port, ".".join(reversed(address(one).split("."))) + ".in-addr.arpa", "PTR"
    )
    assert ptr == "web-one.busybox.docker."


NAMING = [
    ({"environment": {"DNSDOCK_NAME": "api", "DNSDOCK_IMAGE": "svc"}}, "api.svc.docker"),
    (
        {"environment": {"DNSDOCK_NAME": "env"}, "labels": {"DNSDOCK_NAME": "label"}},
        "label.busybox.docker",
    ),
    ({"labels": {"com.dnsdock.name": "x", "com.dnsdock.image": "y"}}, "x.y.docker"),
    (
        {
            "environment": {
                "SERVICE_NAME": "db",
                "SERVICE_TAGS": "primary",
                "SERVICE_REGION": "east",
            }
        },
        "primary.db.east.docker",
    ),
    (
        {"labels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "front"}},
        "front.shop.docker",
    ),
    ({"environment": {"DNSDOCK_ALIAS": "alias-one.docker"}}, "alias-one.docker"),
]


@pytest.mark.parametrize(("kwargs", "name"), NAMING, ids=[n for _, n in NAMING])
def test_env_and_label_naming(
    dockzone: Daemon, run: Any, kwargs: dict[str, Any], name: str
) -> None:
    container = run(**kwargs)
    expect(dockzone.port, name, [address(container)])


def test_ttl_ip_override_and_ignore(dockzone: Daemon, run: Any) -> None:
    run("ttl7", environment={"DNSDOCK_TTL": "7"})
    eventually(
        lambda: _equal(
            [line.split()[1] for line in dig_answers(dockzone.port, "ttl7.busybox.docker")], ["7"]
        ),
        timeout=10,
    )
    run("fixed", labels={"com.dnsdock.ip_addr": "203.0.113.9"})
    expect(dockzone.port, "fixed.busybox.docker", ["203.0.113.9"])
    run("typo", labels={"com.dnsdock.ip_addr": "203.0.113.300"})
    eventually(
        lambda: _logged(
            dockzone, "com.dnsdock.ip_addr '203.0.113.300' is not a valid IPv4 address"
        ),
        timeout=10,
    )
    run("hidden", environment={"DNSDOCK_IGNORE": "1"})
    seen = run("seen")  # started after the ignored one: once it answers, both were seen
    expect(dockzone.port, "seen.busybox.docker", [address(seen)])
    assert answers(dockzone.port, "hidden.busybox.docker") == []


def test_discover_srv_points_at_the_published_port(dockzone: Daemon, run: Any) -> None:
    port = free_port()
    run("disc", environment={"DISCOVER": "metrics:8080"}, ports={"8080/tcp": ("127.0.0.1", port)})
    eventually(
        lambda: _equal(
            dig_answers(dockzone.port, "metrics.docker", "SRV"),
            [f"metrics.docker. 30 IN SRV 10 100 {port} metrics.docker."],
        ),
        timeout=10,
    )
    assert answers(dockzone.port, "metrics.docker") == ["127.0.0.1"]


def test_a_hostname_label_publishes_the_docker_ddns_name(dockzone: Daemon, run: Any) -> None:
    """Without ``--hostname-names``, the label asks for ``<hostname>.<domain>``."""
    labelled = run(hostname="web-label", labels={"dev.dockzone.hostname": "true"})
    run(hostname="web-plain")
    seen = run("hn-seen")  # started last: once it answers, the others were seen
    expect(dockzone.port, "hn-seen.busybox.docker", [address(seen)])
    eventually(
        lambda: _equal(
            dig_answers(dockzone.port, "web-label.docker"),
            [f"web-label.docker. 60 IN A {address(labelled)}"],
        ),
        timeout=10,
    )
    assert dns_rcode(dockzone.port, "web-plain.docker") == "NXDOMAIN"


def test_hostname_names_like_docker_ddns(dockerd: DockerDaemon, run: Any, tmp_path: Path) -> None:
    """``--hostname-names``: ``docker run -h web`` answers ``web.docker`` with TTL 60,
    ``--domainname`` is part of the name, two containers with one host name are a pool,
    and the label opts a container out."""
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    daemon = Daemon.start(
        tmp_path, definitions, "--docker", dockerd.url, "--hostname-names", "--log-level", "INFO"
    )
    try:
        web = run(hostname="web")
        api = run(hostname="api", domainname="prod")
        pool = [run(hostname="pool"), run(hostname="pool")]
        run(hostname="quiet", labels={"dev.dockzone.hostname": "false"})
        eventually(
            lambda: _equal(
                dig_answers(daemon.port, "web.docker"), [f"web.docker. 60 IN A {address(web)}"]
            ),
            timeout=10,
        )
        expect(daemon.port, "api.prod.docker", [address(api)])
        expect(daemon.port, "pool.docker", sorted(address(c) for c in pool))
        assert dns_rcode(daemon.port, "quiet.docker") == "NXDOMAIN"
        # the container's dnsdock name keeps the PTR
        reverse = ".".join(reversed(address(web).split("."))) + ".in-addr.arpa"
        assert answers(daemon.port, reverse, "PTR") == [f"{web.name}.busybox.docker."]
    finally:
        assert daemon.stop() == 0, daemon.output()


def test_discover_udp_is_published_in_totem_discovers_layout(
    dockerd: DockerDaemon, run: Any, tmp_path: Path
) -> None:
    """``DISCOVER=statsd:8125/udp`` gives ``udp://ip:port`` under the configured realm,
    and the key goes when the container stops (a real etcd)."""
    (tmp_path / "etcd").mkdir()
    etcd = EtcdServer.start(tmp_path / "etcd")
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    daemon = Daemon.start(
        tmp_path,
        definitions,
        *("--docker", dockerd.url, "--etcd", etcd.url, "--instance-id", "host-a"),
        *("--etcd-discover-prefix", "/discover", "--etcd-discover-realm", "my-realm"),
    )
    try:
        port = free_port()
        container = run(
            environment={"DISCOVER": "statsd:8125/udp"}, ports={"8125/udp": ("127.0.0.1", port)}
        )

        def published() -> list[tuple[str, str]]:
            return [
                (key.rpartition("/")[0], value)
                for key, value in etcd.published("/discover/").items()
            ]

        eventually(
            lambda: _equal(
                published(),
                [("/discover/service/statsd/my-realm/host-a", f"udp://127.0.0.1:{port}")],
            ),
            timeout=15,
        )
        assert answers(daemon.port, "statsd.docker", "SRV") == ["statsd.docker."]
        container.stop(timeout=0)
        eventually(lambda: _equal(published(), []), timeout=15)
    finally:
        assert daemon.stop() == 0, daemon.output()
        etcd.stop()


def test_a_stopped_container_goes_when_its_stop_grace_is_over(dockzone: Daemon, run: Any) -> None:
    """The default ``--stop-grace`` (5 s): still answered right after ``docker stop``, gone
    after; ``docker rm`` is immediate."""
    container = run("short")
    removed = run("removed")
    expect(dockzone.port, "short.busybox.docker", [address(container)])
    expect(dockzone.port, "removed.busybox.docker", [address(removed)])
    container.stop(timeout=0)
    stopped = time.monotonic()
    removed.remove(force=True)
    expect(dockzone.port, "removed.busybox.docker", [])
    if time.monotonic() - stopped < 4:  # a loaded machine may take longer than the grace
        assert answers(dockzone.port, "short.busybox.docker") == [address(container)]
    expect(dockzone.port, "short.busybox.docker", [])
    assert time.monotonic() - stopped >= 4.5  # the grace began as the container died
    assert dns_rcode(dockzone.port, "short.busybox.docker") == "NXDOMAIN"


def test_docker_restart_under_a_query_loop_never_gives_nxdomain(dockzone: Daemon, run: Any) -> None:
    """dnsdock's long-standing complaint: a restarting container made resolvers cache
    NXDOMAIN. Within ``--stop-grace`` the name keeps answering throughout."""
    bouncy = run("bouncy")
    # exits after 2 s; its restart policy starts it again
    crashy = run(
        "crashy", command=["sh", "-c", "sleep 2; exit 1"], restart_policy={"Name": "always"}
    )
    expect(dockzone.port, "bouncy.busybox.docker", [address(bouncy)])
    expect(dockzone.port, "crashy.busybox.docker", [address(crashy)])
    seen: Counter[tuple[str, str]] = Counter()
    done = threading.Event()

    def ask() -> None:
        while not done.is_set():
            for name in ("bouncy", "crashy"):
                seen[(name, dns_rcode(dockzone.port, f"{name}.busybox.docker"))] += 1

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    try:
        bouncy.restart(timeout=0)
        eventually(lambda: _restarted(crashy), timeout=15)
        bouncy.reload()
        expect(dockzone.port, "bouncy.busybox.docker", [address(bouncy)])
        expect(dockzone.port, "crashy.busybox.docker", [address(crashy)])
    finally:
        done.set()
        asker.join(timeout=10)
    assert seen[("bouncy", "NOERROR")] > 0
    assert seen[("crashy", "NOERROR")] > 0
    assert not [key for key in seen if key[1] != "NOERROR"], seen


def _restarted(container: docker.models.containers.Container) -> None:
    container.reload()
    assert container.attrs["RestartCount"] >= 1
    assert container.attrs["State"]["Status"] == "running"


def test_renamed_container_follows(dockzone: Daemon, run: Any) -> None:
    container = run("before")
    expect(dockzone.port, "before.busybox.docker", [address(container)])
    container.rename("after")
    expect(dockzone.port, "after.busybox.docker", [address(container)])
    expect(dockzone.port, "before.busybox.docker", [])


def test_network_connect_adds_the_address(
    dockzone: Daemon, dockerd: DockerDaemon, run: Any
) -> None:
    client = dockerd.client()
    network = client.networks.create(f"extra{next(_names)}", driver="bridge")
    try:
        container = run("multi")
        expect(dockzone.port, "multi.busybox.docker", [address(container)])
        network.connect(container)
        container.reload()
        both = sorted([address(container), address(container, network.name)])
        expect(dockzone.port, "multi.busybox.docker", both)
        network.disconnect(container)
        expect(dockzone.port, "multi.busybox.docker", [address(container)])
    finally:
        network.remove()
        client.close()


def test_health_policy(dockzone: Daemon, run: Any) -> None:
    check = {"interval": 200_000_000, "timeout": 1_000_000_000, "retries": 1, "start_period": 0}
    good = run(
        "hc-good",
        healthcheck={"test": ["CMD", "true"], **check},
        environment={"DNSDOCK_NAME": "hc"},
    )
    bad = run(
        "hc-bad",
        healthcheck={"test": ["CMD", "false"], **check},
        environment={"DNSDOCK_NAME": "hc"},
    )
    lonely = run("hc-lonely", healthcheck={"test": ["CMD", "false"], **check})
    # Once the checks ran: the healthy one is published, the unhealthy one beside it is not.
    expect(dockzone.port, "hc.busybox.docker", [address(good)])
    # An unhealthy container alone at its name is kept rather than leaving the name empty.
    eventually(lambda: _unhealthy(lonely), timeout=15)
    expect(dockzone.port, "hc-lonely.busybox.docker", [address(lonely)])
    assert address(bad) not in answers(dockzone.port, "hc.busybox.docker")


def _unhealthy(container: docker.models.containers.Container) -> None:
    container.reload()
    assert container.attrs["State"]["Health"]["Status"] == "unhealthy"


def dns_rcode(port: int, name: str) -> str:
    return dns.rcode.to_text(query("127.0.0.1", port, name + ".", "A").rcode())


def test_a_pass_over_unchanged_containers_inspects_nothing(dockerd: DockerDaemon, run: Any) -> None:
    for _ in range(3):
        run()
    source = DockerSource(DockerOptions(url=dockerd.url), NameDefaults())
    first = source.load()
    assert first.complete
    calls = source.inspect_calls
    assert calls >= 3
    second = source.load()  # no events followed: nothing changed, no call
    assert (second.groups, second.complete) == ({}, False)
    again = source.load(full=True)  # a resync lists afresh; inspects stay cached
    source.close()
    assert source.inspect_calls == calls
    assert again.complete
    assert again.groups == first.groups


# -- the source against the real dockerd, following its events ---------------------------


class Counted:
    """A real API client whose calls are counted; ``cut`` breaks the event stream and
    refuses new ones, ``lossy`` makes a new stream start now (the events while it was cut
    are lost, as after a dockerd restart): only the full list can then see them."""

    def __init__(self, inner: Any, follower: Follower) -> None:
        self.inner = inner
        self.follower = follower

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def containers(self, *args: Any, **kwargs: Any) -> Any:
        self.follower.counts["list"] += 1
        return self.inner.containers(*args, **kwargs)

    def inspect_container(self, *args: Any, **kwargs: Any) -> Any:
        self.follower.counts["inspect"] += 1
        return self.inner.inspect_container(*args, **kwargs)

    def events(self, *args: Any, **kwargs: Any) -> Any:
        follower = self.follower
        if follower.cut:
            raise requests.exceptions.ConnectionError("the test cut the event stream")
        if follower.lossy:
            kwargs["since"] = int(time.time())
        stream = self.inner.events(*args, **kwargs)
        follower.streams.append(stream)
        follower.counts["events"] += 1
        return stream


class Woken(Wakeup):
    """A Wakeup that keeps every reason it was given (nothing waits on the Follower's)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def set(self, reason: str) -> None:
        self.seen.append(reason)
        super().set(reason)


class Follower:
    """A DockerSource whose watcher runs in its own event loop thread, and what it holds
    (``view``), updated by ``load``."""

    def __init__(self, url: str, **options: Any) -> None:
        self.counts: Counter[str] = Counter()
        self.cut = False
        self.lossy = False
        self.streams: list[Any] = []
        self.source = DockerSource(
            DockerOptions(url=url, **options),
            NameDefaults(),
            lambda o: Counted(connect(o), self),
        )
        self.view = SourceView()
        self.snapshots: list[Snapshot] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.load()
        self.stop = asyncio.Event()
        self.wakeup = Woken()
        self.watcher = asyncio.run_coroutine_threadsafe(
            self.source.watch(self.wakeup, self.stop), self.loop
        )
        eventually(lambda: _positive(self.counts["events"]), timeout=10)
        time.sleep(0.5)  # the events replayed from just before the first list: handled
        self.load()
        self.counts.clear()

    def load(self, full: bool = False) -> Snapshot:
        snapshot = self.source.load(full)
        self.snapshots.append(snapshot)
        self.view.take(snapshot)
        return snapshot

    def hosts(self, name: str) -> list[str]:
        """The addresses at ``name`` after one more load."""
        self.load()
        return sorted(r.host for r in self.view.records if r.name == name and not r.port)

    def expect(self, name: str, values: list[str], timeout: float = 10) -> None:
        eventually(lambda: _equal(self.hosts(name), sorted(values)), timeout=timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.watcher.result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def _positive(value: int) -> None:
    assert value > 0


@pytest.fixture
def follower(dockerd: DockerDaemon) -> Iterator[Follower]:
    following = Follower(dockerd.url)
    try:
        yield following
    finally:
        following.close()


def converged(follower: Follower, url: str) -> None:
    """What the events built is what a fresh list gives."""
    follower.load()
    source = DockerSource(DockerOptions(url=url), NameDefaults())
    fresh = source.load()
    source.close()
    assert follower.view.groups == dict(fresh.groups)
    assert follower.view.problems == fresh.problems


def test_a_start_costs_one_inspect_and_no_list(
    follower: Follower, dockerd: DockerDaemon, run: Any
) -> None:
    container = run("evt-start")
    follower.expect("evt-start.busybox.docker.", [address(container)])
    assert follower.counts == {"inspect": 1}
    changed = [s.groups for s in follower.snapshots if s.groups]
    assert changed[-1].keys() == {container.id}
    assert not any(s.complete for s in follower.snapshots[2:])
    converged(follower, dockerd.url)


def test_rm_f_removes_the_name_without_a_call(
    follower: Follower, dockerd: DockerDaemon, run: Any
) -> None:
    container = run("evt-rm")
    follower.expect("evt-rm.busybox.docker.", [address(container)])
    follower.counts.clear()
    container.remove(force=True)
    follower.expect("evt-rm.busybox.docker.", [])
    assert follower.counts == {}
    converged(follower, dockerd.url)


def test_rename_moves_the_name(follower: Follower, dockerd: DockerDaemon, run: Any) -> None:
    container = run("evt-before")
    follower.expect("evt-before.busybox.docker.", [address(container)])
    follower.counts.clear()
    container.rename("evt-after")
    follower.expect("evt-after.busybox.docker.", [address(container)])
    assert follower.hosts("evt-before.busybox.docker.") == []
    assert follower.counts == {"inspect": 1}
    converged(follower, dockerd.url)


def test_network_connect_and_disconnect_change_the_addresses(
    follower: Follower, dockerd: DockerDaemon, run: Any
) -> None:
    client = dockerd.client()
    network = client.networks.create(f"evtnet{next(_names)}", driver="bridge", ipam=dockerd.ipam(2))
    try:
        container = run("evt-multi")
        follower.expect("evt-multi.busybox.docker.", [address(container)])
        follower.counts.clear()
        network.connect(container)
        container.reload()
        both = [address(container), address(container, network.name)]
        follower.expect("evt-multi.busybox.docker.", both)
        assert dockerd.subnet(2) in follower.view.networks
        network.disconnect(container)
        follower.expect("evt-multi.busybox.docker.", [address(container)])
        assert follower.counts["list"] == 0
        assert follower.counts["inspect"] in (2, 3)  # dockerd may send the disconnect twice
        assert dockerd.subnet(2) not in follower.view.networks
        converged(follower, dockerd.url)
    finally:
        network.remove()
        client.close()


def test_changes_while_the_stream_is_broken_converge_after_reconnecting(
    follower: Follower, dockerd: DockerDaemon, run: Any
) -> None:
    stays, goes, renamed = run("brk-stays"), run("brk-goes"), run("brk-old")
    follower.expect("brk-old.busybox.docker.", [address(renamed)])
    follower.cut = True
    follower.lossy = True  # the events of the outage are lost: only the list sees them
    for stream in follower.streams:
        stream.close()
    goes.remove(force=True)
    renamed.rename("brk-new")
    late = run("brk-late")
    follower.counts.clear()
    follower.cut = False
    follower.expect("brk-late.busybox.docker.", [address(late)])
    assert follower.counts["list"] >= 1  # the load after the break listed everything
    assert follower.hosts("brk-goes.busybox.docker.") == []
    assert follower.hosts("brk-old.busybox.docker.") == []
    assert follower.hosts("brk-new.busybox.docker.") == [address(renamed)]
    assert follower.hosts("brk-stays.busybox.docker.") == [address(stays)]
    converged(follower, dockerd.url)


def test_status_names_the_docker_endpoint_and_its_api_version(
    dockzone: Daemon, dockerd: DockerDaemon
) -> None:
    """/status (and the status page's sources table) say which daemon and API version."""
    client = dockerd.client()
    try:
        version = client.version()["ApiVersion"]
    finally:
        client.close()
    with urllib.request.urlopen(f"http://{dockzone.http}/status", timeout=10) as response:
        details = json.load(response)["sources"]["docker"]["details"]
    assert details == {"endpoint": dockerd.url, "api version": version}


def test_a_resync_right_after_the_last_container_went_does_not_hold_its_name(
    dockerd: DockerDaemon, run: Any
) -> None:
    """The deletion budget holds back a complete read that comes back empty, but not the
    removal of a container whose destroy event came: when a resync pass's list is the first
    read after ``docker rm`` of the last container, its name goes at once (hack/soak saw it
    answer up to a resync late)."""
    client = dockerd.client()
    client.networks.create("dzbudget")
    follower = Follower(dockerd.url, networks=("dzbudget",))
    merged = MergedSource([follower.source])
    try:
        only = run("budget-only", network="dzbudget")
        eventually(lambda: _equal(_merged_names(merged), ["budget-only.busybox.docker."]))
        only.remove(force=True)
        eventually(lambda: _positive(follower.wakeup.seen.count("docker destroy")))
        merged.load(full=True)
        assert merged.held() == {}
        assert sorted(record.name for record in merged.records()) == []
    finally:
        follower.close()
        client.networks.get("dzbudget").remove()
        client.close()


def _merged_names(merged: MergedSource) -> list[str]:
    merged.load()
    return sorted(record.name for record in merged.records())


def test_health_changes_follow_the_policy(
    follower: Follower, dockerd: DockerDaemon, run: Any
) -> None:
    """Health checks that pass while /tmp/ok exists; removing it makes a container
    unhealthy. The healthy container keeps the name alone; when none is healthy, the
    unhealthy ones stay; health_status events get there without a list."""
    check = {
        "test": ["CMD", "cat", "/tmp/ok"],
        "interval": 200_000_000,
        "timeout": 1_000_000_000,
        "retries": 1,
        "start_period": 0,
    }
    command = ["sh", "-c", "echo > /tmp/ok; exec sleep 3600"]
    shared = {"DNSDOCK_NAME": "evt-hc"}
    one = run("evt-hc-1", command=command, healthcheck=check, environment=shared)
    two = run("evt-hc-2", command=command, healthcheck=check, environment=shared)
    both = [address(one), address(two)]
    follower.expect("evt-hc.busybox.docker.", both)
    eventually(lambda: _health(one, "healthy"), timeout=15)
    eventually(lambda: _health(two, "healthy"), timeout=15)
    follower.counts.clear()
    one.exec_run(["/bin/busybox", "rm", "/tmp/ok"])
    follower.expect("evt-hc.busybox.docker.", [address(two)])
    two.exec_run(["/bin/busybox", "rm", "/tmp/ok"])
    follower.expect("evt-hc.busybox.docker.", both)  # health never empties a name
    assert "evt-hc.busybox.docker. has no healthy container; keeping the unhealthy ones" in (
        follower.view.problems
    )
    one.exec_run(["sh", "-c", "echo > /tmp/ok"])
    follower.expect("evt-hc.busybox.docker.", [address(one)])
    assert follower.counts["list"] == 0
    converged(follower, dockerd.url)


def _health(container: docker.models.containers.Container, status: str) -> None:
    container.reload()
    assert container.attrs["State"]["Health"]["Status"] == status


def test_daemon_outage_keeps_answers_then_converges(tmp_path: Path) -> None:
    """Stop and restart dockerd under a running dockzone: answers keep coming during the
    outage (the last good records, marked stale), and records converge afterwards."""
    dockerd = DockerDaemon.start_new()
    ensure_image(dockerd.url)
    client = dockerd.client()
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    daemon = Daemon.start(tmp_path, definitions, "--docker", dockerd.url)
    try:
        kept = client.containers.run(
            IMAGE,
            detach=True,
            name="kept",
            network=dockerd.network,
            restart_policy={"Name": "always"},
        )
        kept.reload()
        expect(daemon.port, "kept.busybox.docker", [address(kept)])
        client.close()
        dockerd.stop()
        daemon.signal(signal.SIGHUP)  # force a pass while dockerd is down
        eventually(lambda: _logged(daemon, "serving the last known containers"), timeout=15)
        assert answers(daemon.port, "kept.busybox.docker") == [address(kept)]
        dockerd = DockerDaemon.start(dockerd.directory)
        client = dockerd.client()
        late = client.containers.run(IMAGE, detach=True, name="late", network=dockerd.network)
        late.reload()
        expect(daemon.port, "late.busybox.docker", [address(late)])
        expect(daemon.port, "kept.busybox.docker", [address(client.containers.get("kept"))])
    finally:
        assert daemon.stop() == 0, daemon.output()
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.close()
        dockerd.remove()


def _logged(daemon: Daemon, text: str) -> None:
    assert text in daemon.output()


def test_a_container_gets_the_address_on_the_network_it_shares(
    dockerd: DockerDaemon, tmp_path: Path
) -> None:
    """A container on two networks; clients on each network ask dockzone (on each
    network's gateway, the host) and get the address on their own network."""
    client = dockerd.client()
    other = client.networks.create(f"side{next(_names)}", driver="bridge", ipam=dockerd.ipam(1))
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    main_gw, side_gw = dockerd.gateway(0), dockerd.gateway(1)
    also = f"--listen-also={main_gw}:53,{side_gw}:53"
    daemon = Daemon.start(tmp_path, definitions, "--docker", dockerd.url, also)
    started = []
    try:
        both = client.containers.run(IMAGE, detach=True, name="both", network=dockerd.network)
        started.append(both)
        other.connect(both)
        both.reload()
        on_main, on_side = address(both), address(both, other.name)
        expect(daemon.port, "both.busybox.docker", sorted([on_main, on_side]))

        def asked_from(network: str, server: str) -> list[str]:
            output = client.containers.run(
                IMAGE, ["nslookup", "both.busybox.docker", server], network=network, remove=True
            ).decode()
            return sorted(
                line.split()[-1] for line in output.splitlines()[2:] if line.startswith("Address")
            )

        assert asked_from(dockerd.network, main_gw) == [on_main]
        assert asked_from(other.name, side_gw) == [on_side]
        assert sorted(answers(daemon.port, "both.busybox.docker")) == sorted(
            [on_main, on_side]
        )  # loopback: no shared network
    finally:
        assert daemon.stop() == 0, daemon.output()
        for container in started:
            container.remove(force=True)
        other.remove()
        client.close()


def test_tcp_with_tls_by_flags_and_by_docker_environment(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    port = free_port()
    dockerd = DockerDaemon.start_new(
        "-H",
        f"tcp://127.0.0.1:{port}",
        "--tlsverify",
        "--tlscacert",
        str(certs["ca"]),
        "--tlscert",
        str(certs["server-cert"]),
        "--tlskey",
        str(certs["server-key"]),
    )
    try:
        ensure_image(dockerd.url)
        client = dockerd.client()
        container = client.containers.run(
            IMAGE, detach=True, name="secure", network=dockerd.network
        )
        container.reload()
        client.close()
        url = f"tcp://127.0.0.1:{port}"
        runs = {
            "flags": (
                [
                    "--docker",
                    url,
                    "--tlsverify",
                    "--tlscacert",
                    str(certs["ca"]),
                    "--tlscert",
                    str(certs["cert"]),
                    "--tlskey",
                    str(certs["key"]),
                ],
                None,
            ),
            "environment": (
                [],
                {
                    "DOCKER_HOST": url,
                    "DOCKER_TLS_VERIFY": "1",
                    "DOCKER_CERT_PATH": str(certs["ca"].parent),
                },
            ),
            "no client certificate": (
                ["--docker", url, "--tlsverify", "--tlscacert", str(certs["ca"])],
                None,
            ),
        }
        for label, (args, env) in runs.items():
            workdir = tmp_path / label.replace(" ", "-")
            (workdir / "definitions").mkdir(parents=True)
            daemon = Daemon.start(workdir, workdir / "definitions", *args, env=env)
            try:
                if label == "no client certificate":
                    eventually(lambda d=daemon: _logged(d, f"docker at {url}:"), timeout=15)
                    assert answers(daemon.port, "secure.busybox.docker") == []
                else:
                    expect(daemon.port, "secure.busybox.docker", [address(container)])
            finally:
                assert daemon.stop() == 0, daemon.output()
    finally:
        dockerd.remove()
