"""The kopf handlers, called directly with real CR bodies (no API server runs here), the
zone files that result, and the Lease election against an in-memory Lease (the only mock:
the Kubernetes API)."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import kopf
import pytest

from reconciler.core.model import Owner, ServiceRecord, ZoneSettings
from reconciler.core.triggers import Wakeup
from reconciler.definitions import NameDefaults
from reconciler.loop import Reconciler
from reconciler.operator import Conflict, LeaseElector, RecordHandlers, records_from_cr
from reconciler.sinks.zonefiles import ZoneFileSink
from reconciler.sources.kubernetes import KubernetesSource

DEFAULTS = NameDefaults(("docker.", "skydns.local."))


def cr(
    object_name: str, generation: int = 1, /, namespace: str = "default", **spec: Any
) -> dict[str, Any]:
    """A ServiceRecord as the API server hands it to kopf (with server-set metadata)."""
    return {
        "apiVersion": "dockzone.dev/v1alpha1",
        "kind": "ServiceRecord",
        "metadata": {
            "name": object_name,
            "namespace": namespace,
            "uid": f"uid-{object_name}",
            "generation": generation,
            "resourceVersion": "4711",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
        },
        "spec": spec,
    }


class Operator:
    """The handlers with their source and wakeup, as ``operator.run`` wires them."""

    def __init__(self) -> None:
        self.source = KubernetesSource()
        self.wakeup = Wakeup()
        self.handlers = RecordHandlers(self.source, self.wakeup, DEFAULTS)

    def change(self, raw: dict[str, Any]) -> kopf.Patch:
        """Call the create/update/resume handler like kopf does; returns the patch."""
        body = kopf.Body(copy.deepcopy(raw))
        patch = kopf.Patch()
        asyncio.run(
            self.handlers.changed(
                body=body,
                meta=body.metadata,
                spec=body.spec,
                status=body.status,
                patch=patch,
                logger=None,
            )
        )
        return patch

    def delete(self, raw: dict[str, Any]) -> None:
        body = kopf.Body(copy.deepcopy(raw))
        asyncio.run(self.handlers.deleted(body=body, meta=body.metadata, logger=None))


def condition(patch: kopf.Patch, kind: str) -> dict[str, Any]:
    return next(c for c in patch["status"]["conditions"] if c["type"] == kind)


def test_a_created_record_is_held_by_the_source_and_marked_ready() -> None:
    operator = Operator()
    patch = operator.change(cr("web", 3, port=80, name="web.nginx", host="172.17.0.4"))
    (record,) = operator.source.load().records
    assert record == ServiceRecord(
        name="web.nginx.docker.",
        zone="docker.",
        owner=Owner("kubernetes", "servicerecord/default/web"),
        host="172.17.0.4",
        port=80,
    )
    status = patch["status"]
    assert status["observedGeneration"] == 3
    assert status["fqdns"] == ["web.nginx.docker."]
    ready = condition(patch, "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Valid", 3)
    assert condition(patch, "Invalid")["status"] == "False"


def test_an_invalid_record_is_a_permanent_error_with_every_problem_in_status() -> None:
    operator = Operator()
    raw = cr("bad", 2, name="web", host="-bad-", port=70000, protocol="sctp")
    with pytest.raises(kopf.PermanentError) as caught:
        operator.change(raw)
    message = str(caught.value)
    assert "spec.port: must be 1..65535, not 70000" in message
    assert "spec.protocol: must be tcp or udp" in message
    assert "spec.host: must be an IPv4/IPv6 address or a host name" in message
    assert operator.source.load().records == ()
    assert operator.source.load().problems[0].startswith("servicerecord default/bad: spec.host")


def test_the_status_patch_of_an_invalid_record_says_invalid_and_not_ready() -> None:
    operator = Operator()
    body = kopf.Body(cr("bad", 2, name="web", host="10.0.0.1", port=0))
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        asyncio.run(
            operator.handlers.changed(
                body=body, meta=body.metadata, status=body.status, patch=patch
            )
        )
    assert patch["status"]["observedGeneration"] == 2
    assert condition(patch, "Ready")["status"] == "False"
    invalid = condition(patch, "Invalid")
    assert invalid["status"] == "True"
    assert invalid["message"] == "spec.port: must be 1..65535, not 0"


def test_an_update_that_breaks_a_record_keeps_the_last_valid_version_served() -> None:
    operator = Operator()
    operator.change(cr("web", 1, name="web", host="10.0.0.1"))
    body = kopf.Body(cr("web", 2, name="web", host="10.0.0.1", ttl=-1))
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        asyncio.run(
            operator.handlers.changed(
                body=body, meta=body.metadata, status=body.status, patch=patch
            )
        )
    assert [r.host for r in operator.source.load().records] == ["10.0.0.1"]
    assert "last valid version stays served (web.docker.)" in condition(patch, "Invalid")["message"]


def test_a_change_wakes_the_loop_and_an_unchanged_resume_does_not() -> None:
    async def woken(wakeup: Wakeup) -> bool:
        try:
            await asyncio.wait_for(wakeup.wait(), timeout=0.2)
        except TimeoutError:
            return False
        return True

    async def scenario() -> list[bool]:
        operator = Operator()
        results = []
        for _ in range(2):  # create, then a resume of the same generation
            body = kopf.Body(cr("web", 1, name="web", host="10.0.0.1"))
            await operator.handlers.changed(
                body=body, meta=body.metadata, status=body.status, patch=kopf.Patch()
            )
            results.append(await woken(operator.wakeup))
        return results

    assert asyncio.run(scenario()) == [True, False]


def test_last_transition_time_stays_while_the_status_does_not_change() -> None:
    operator = Operator()
    raw = cr("web", 1, name="web", host="10.0.0.1")
    since = "2020-01-01T00:00:00Z"
    raw["status"] = {
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": since},
            {"type": "Invalid", "status": "True", "lastTransitionTime": since},
        ]
    }
    patch = operator.change(raw)
    assert condition(patch, "Ready")["lastTransitionTime"] == since
    assert condition(patch, "Invalid")["lastTransitionTime"] != since


def test_records_of_the_same_name_in_two_namespaces_are_two_owners() -> None:
    operator = Operator()
    operator.change(cr("web", namespace="a", name="web", host="10.0.0.1"))
    operator.change(cr("web", namespace="b", name="web", host="10.0.0.2"))
    owners = [r.owner.object for r in operator.source.load().records]
    assert owners == ["servicerecord/a/web", "servicerecord/b/web"]


def test_deleting_a_record_removes_it_from_the_source() -> None:
    operator = Operator()
    raw = cr("web", name="web", host="10.0.0.1")
    operator.change(raw)
    operator.delete(raw)
    assert operator.source.load().records == ()
    operator.delete(raw)  # a second delete (or one for an unknown CR) is harmless


def test_aliases_and_absolute_names_are_the_rendered_fqdns() -> None:
    operator = Operator()
    patch = operator.change(
        cr(
            "rails",
            name="1.rails.production.east",
            zone="skydns.local.",
            host="10.0.1.1",
            aliases=["rails.docker.", "db"],
        )
    )
    assert patch["status"]["fqdns"] == [
        "1.rails.production.east.skydns.local.",
        "rails.docker.",
        "db.skydns.local.",
    ]


def test_a_record_outside_every_domain_is_invalid() -> None:
    with pytest.raises(Exception, match=r"outside every configured domain"):
        records_from_cr(cr("x", name="web.example.org.", host="10.0.0.1"), DEFAULTS)


def test_a_record_in_a_zone_the_operator_does_not_serve_is_invalid() -> None:
    """The same rule as for files and the API: --domain decides the zones, not a CR."""
    operator = Operator()
    with pytest.raises(kopf.PermanentError) as caught:
        operator.change(cr("hijack", name="www.google", zone="com.", host="10.0.0.1"))
    assert "spec.zone: zone com. is not served" in str(caught.value)
    assert "add --domain com." in str(caught.value)
    assert operator.source.load().records == ()


def test_handled_records_become_valid_zone_files(zones_dir: Path) -> None:
    """The whole path: CR bodies -> handlers -> source -> one reconciler pass -> db.* files
    (named-checkzone runs on them in the zones_dir fixture)."""
    operator = Operator()
    operator.change(cr("redis-1", name="redis1.redis", host="172.17.0.2", port=6379))
    operator.change(cr("redis-2", name="redis2.redis", host="172.17.0.3", port=6379))
    operator.change(cr("mail", name="mx1", host="172.17.0.5", mail=True, text="v=spf1 -all"))
    gone = cr("gone", name="gone", host="172.17.0.9")
    operator.change(gone)
    operator.delete(gone)
    reconciler = Reconciler(operator.source, ZoneSettings(), [ZoneFileSink(zones_dir)])
    report = asyncio.run(reconciler.run_once())
    assert report.errors == []
    zone = (zones_dir / "db.docker").read_text()
    assert "redis.docker." in zone
    assert "172.17.0.3" in zone
    assert "IN SRV" in zone
    assert "IN MX" in zone
    assert "gone.docker." not in zone
    assert (zones_dir / "db.0.17.172.in-addr.arpa").exists()
    again = asyncio.run(reconciler.run_once())
    assert not again.changed


class MemoryLeases:
    """One Lease with the API server's optimistic concurrency (resourceVersion, 409)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0

    async def get(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.lease)

    async def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise Conflict("exists")
        self.version += 1
        self.lease = {"metadata": {"resourceVersion": str(self.version)}, "spec": spec}
        return copy.deepcopy(self.lease)

    async def replace(self, lease: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is not None
        if lease["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise Conflict("changed")
        self.version += 1
        self.lease = {**lease, "metadata": {"resourceVersion": str(self.version)}}
        return copy.deepcopy(self.lease)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_of_two_replicas_only_one_leads_until_the_leader_stops_renewing() -> None:
    leases, clock = MemoryLeases(), Clock()
    first = LeaseElector(leases, "pod-a", duration=15, clock=clock)
    second = LeaseElector(leases, "pod-b", duration=15, clock=clock)

    async def scenario() -> list[bool]:
        steps = [await first.try_acquire(), await second.try_acquire()]
        clock.now += 10
        steps += [await first.try_acquire(), await second.try_acquire()]  # renewed in time
        clock.now += 16  # pod-a stops renewing: its lease expires
        steps += [await second.try_acquire(), await first.try_acquire()]
        return steps

    assert asyncio.run(scenario()) == [True, False, True, False, True, False]
    assert leases.lease is not None
    assert leases.lease["spec"]["holderIdentity"] == "pod-b"
    assert leases.lease["spec"]["leaseTransitions"] == 1


def test_a_write_race_for_a_free_lease_has_one_winner() -> None:
    leases, clock = MemoryLeases(), Clock()
    candidates = [LeaseElector(leases, f"pod-{n}", clock=clock) for n in range(3)]

    async def race() -> list[bool]:
        return list(await asyncio.gather(*(c.try_acquire() for c in candidates)))

    assert sorted(asyncio.run(race())) == [False, False, True]


def test_a_released_lease_is_taken_over_at_once() -> None:
    leases, clock = MemoryLeases(), Clock()
    first = LeaseElector(leases, "pod-a", clock=clock)
    second = LeaseElector(leases, "pod-b", clock=clock)

    async def scenario() -> tuple[bool, bool]:
        await first.try_acquire()
        before = await second.try_acquire()
        await first.release()
        clock.now += 1.5
        return before, await second.try_acquire()

    assert asyncio.run(scenario()) == (False, True)


def test_a_leader_whose_lease_is_taken_stops_holding() -> None:
    leases, clock = MemoryLeases(), Clock()
    leader = LeaseElector(leases, "pod-a", renew=0.01, clock=clock)

    async def scenario() -> bool:
        await leader.try_acquire()
        assert leases.lease is not None
        leases.lease["spec"]["holderIdentity"] = "pod-b"  # another replica took over
        leases.lease["spec"]["renewTime"] = "2100-01-01T00:00:00.000000Z"
        await asyncio.wait_for(leader.hold(asyncio.Event()), timeout=5)
        return leader.leading

    assert asyncio.run(scenario()) is False


def k8s_service(
    name: str,
    hostname: str | None,
    *,
    namespace: str = "default",
    cluster_ip: str = "10.96.0.10",
    ports: list[dict[str, Any]] | None = None,
    ingress: list[dict[str, str]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A core/v1 Service as the API server hands it to kopf."""
    annotations = {"dockzone.dev/hostname": hostname} if hostname is not None else {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "resourceVersion": "99",
            "annotations": annotations,
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": ports if ports is not None else [],
            **spec,
        },
        "status": {"loadBalancer": {"ingress": ingress} if ingress else {}},
    }


def service_event(operator: Operator, raw: dict[str, Any], kind: str = "MODIFIED") -> None:
    """Call the Service event handler as kopf does for a watch event."""
    body = kopf.Body(copy.deepcopy(raw))
    event = {"type": kind, "object": copy.deepcopy(raw)}
    asyncio.run(operator.handlers.service_event(event=event, body=body, logger=None))


def _published(operator: Operator) -> list[tuple[str, str, int | None]]:
    return sorted((r.name, r.host, r.port) for r in operator.source.load().records)  # type: ignore[union-attr]


def test_an_annotated_service_publishes_its_cluster_ip_and_named_ports() -> None:
    operator = Operator()
    ports = [
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"port": 9090},  # unnamed: no SRV
    ]
    service_event(operator, k8s_service("web", "web.docker", ports=ports), "ADDED")
    assert _published(operator) == [
        ("_dns._udp.web.docker.", "web.docker.", 53),
        ("_http._tcp.web.docker.", "web.docker.", 80),
        ("web.docker.", "10.96.0.10", None),
    ]
    owners = {r.owner for r in operator.source.load().records}
    assert owners == {Owner("kubernetes", "service/default/web")}


def test_a_load_balancer_is_published_by_its_ingress_and_a_host_name_as_cname() -> None:
    operator = Operator()
    lb = k8s_service(
        "lb", "lb.docker,www.docker", type="LoadBalancer", ingress=[{"ip": "203.0.113.7"}]
    )
    service_event(operator, lb)
    assert _published(operator) == [
        ("lb.docker.", "203.0.113.7", None),
        ("www.docker.", "203.0.113.7", None),
    ]
    elb = k8s_service(
        "elb", "elb.docker", type="LoadBalancer", ingress=[{"hostname": "abc.elb.example."}]
    )
    service_event(operator, elb)
    assert ("elb.docker.", "abc.elb.example.", None) in _published(operator)
    external = k8s_service("ext", "ext.docker", type="ExternalName", externalName="db.example.org")
    service_event(operator, external)
    assert ("ext.docker.", "db.example.org.", None) in _published(operator)


def test_a_service_without_the_annotation_or_an_address_publishes_nothing() -> None:
    operator = Operator()
    service_event(operator, k8s_service("plain", None))
    service_event(operator, k8s_service("headless", "headless.docker", cluster_ip="None"))
    pending = k8s_service("pending", "pending.docker", type="LoadBalancer", cluster_ip="")
    service_event(operator, pending)
    assert operator.source.load().records == ()


def test_removing_the_annotation_or_the_service_unpublishes_it() -> None:
    operator = Operator()
    service_event(operator, k8s_service("web", "web.docker"), "ADDED")
    assert _published(operator) == [("web.docker.", "10.96.0.10", None)]
    service_event(operator, k8s_service("web", None))
    assert operator.source.load().records == ()
    service_event(operator, k8s_service("web", "web.docker"))
    service_event(operator, k8s_service("web", "web.docker"), "DELETED")
    assert operator.source.load().records == ()


def test_a_service_name_outside_the_served_zones_is_a_problem_naming_the_annotation() -> None:
    operator = Operator()
    service_event(operator, k8s_service("web", "web.docker"))
    service_event(operator, k8s_service("web", "web.example.com"))
    (problem,) = operator.source.load().problems
    assert problem.startswith(
        "service/default/web: metadata.annotations[dockzone.dev/hostname]: web.example.com.:"
    ), problem
    # the last valid version stays served
    assert _published(operator) == [("web.docker.", "10.96.0.10", None)]


def test_annotated_services_become_valid_zone_files(zones_dir: Path) -> None:
    operator = Operator()
    ports = [{"name": "http", "port": 80, "protocol": "TCP"}]
    service_event(operator, k8s_service("web", "web.docker", ports=ports))
    service_event(
        operator,
        k8s_service(
            "elb", "elb.docker", type="LoadBalancer", ingress=[{"hostname": "abc.elb.example."}]
        ),
    )
    reconciler = Reconciler(operator.source, ZoneSettings(), [ZoneFileSink(zones_dir)])
    assert asyncio.run(reconciler.run_once()).errors == []
    lines = {" ".join(line.split()) for line in (zones_dir / "db.docker").read_text().splitlines()}
    assert "web.docker. 30 IN A 10.96.0.10" in lines
    assert "_http._tcp.web.docker. 30 IN SRV 10 100 80 web.docker." in lines
    assert "elb.docker. 30 IN CNAME abc.elb.example." in lines


def test_the_service_handler_is_registered_as_a_read_only_event_handler() -> None:
    registry = kopf.OperatorRegistry()
    Operator().handlers.register(registry)
    handlers = registry._watching.get_all_handlers()
    ids = {handler.id for handler in handlers}
    assert "service" in ids, ids
