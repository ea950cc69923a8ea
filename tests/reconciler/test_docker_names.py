"""Container -> records, as pure functions over the shapes the Docker API returns (the
integration tests check the same rules against a real dockerd)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.model import ServiceRecord
from reconciler.definitions import NameDefaults
from reconciler.sources.docker import (
    DockerOptions,
    container_records,
    health_of,
    image_label,
)

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
