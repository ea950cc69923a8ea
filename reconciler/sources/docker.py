"""Running Docker containers as records, with dnsdock's, registrator's and discover's rules.

Each pass lists the running containers (one API call) and turns them into ServiceRecords;
a container's environment and image reference come from one ``inspect``, cached by
container id, so a pass over unchanged containers costs no inspect calls. The event stream
(start, die, stop, rename, network connect/disconnect, destroy, health changes) only wakes
the loop. It is opened with ``since`` set to the time just before the first list, so
nothing that happens between the list and the subscription is missed.

When the daemon cannot be reached, ``load()`` returns the last good records marked stale;
the watcher reconnects with backoff and wakes the loop once it is back. Used by the
daemon (``dockzone run``) when a Docker endpoint is configured or found.

Naming (DESIGN.md, dnsdock): ``<container>.<image>.<environment>.<domain>``.

===========================  ==========================================================
key (env or label; labels    effect
win; ``com.dnsdock.*``
labels too)
===========================  ==========================================================
DNSDOCK_NAME / .name         replaces the container label of the name
SERVICE_TAGS / .tags         the first tag replaces the container label (registrator)
DNSDOCK_IMAGE / SERVICE_NAME replaces the image label (``.image``); empty drops it
SERVICE_REGION / .region     appended to the image label: ``<tag>.<name>.<region>``
DNSDOCK_ALIAS / .alias       comma list of extra names (absolute with or without dot)
DNSDOCK_TTL / .ttl           TTL of the container's records
DNSDOCK_IGNORE /             the container is not published
SERVICE_IGNORE / .ignore
com.dnsdock.ip_addr          publish this address instead of the container's
com.dnsdock.prefix           publish only addresses starting with this text
DISCOVER                     ``svc:8080, svc2:8125/udp``: SRV at ``svc.<domain>`` to the
                             host-side binding of the published port
===========================  ==========================================================

Docker Compose containers also get ``<service>.<project>.<domain>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.tls
import requests.exceptions

from reconciler.core import names
from reconciler.core.model import Owner, ServiceRecord
from reconciler.core.triggers import Wakeup
from reconciler.definitions import NameDefaults
from reconciler.sources import Snapshot

log = logging.getLogger(__name__)

HEALTH_POLICIES = ("healthy", "starting", "ignore")
EVENT_ACTIONS = frozenset(
    {
        "start",
        "die",
        "stop",
        "kill",
        "pause",
        "unpause",
        "rename",
        "destroy",
        "connect",
        "disconnect",
        "health_status",
        "update",
        "restart",
    }
)
_DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


@dataclass(frozen=True, slots=True)
class DockerOptions:
    """How to reach the Docker daemon and which containers' addresses to publish."""

    url: str
    tls_verify: bool = False
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    host_address: str = ""
    networks: tuple[str, ...] = ()
    health: str = "healthy"


class _APIClient(docker.APIClient):  # type: ignore[misc]  # docker ships no types
    """The Docker API client, trusting the configured CA over the environment's.

    requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` replace a session's CA file on
    every request, so in an environment that sets them (many images and CI runners do) the
    ``--tlscacert`` of the Docker daemon would be ignored and verification would fail.
    """

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> Any:
        settings = super().merge_environment_settings(*args, **kwargs)
        if isinstance(self.verify, str):
            settings["verify"] = self.verify
        return settings


def connect(options: DockerOptions) -> Any:
    """An API client for ``options.url``; the API version is negotiated, never pinned."""
    tls: docker.tls.TLSConfig | bool = False
    if options.tls_verify or options.tls_cert:
        tls = docker.tls.TLSConfig(
            client_cert=(options.tls_cert, options.tls_key) if options.tls_cert else None,
            ca_cert=options.tls_ca or None,
            verify=options.tls_ca if options.tls_verify and options.tls_ca else options.tls_verify,
        )
    return _APIClient(base_url=options.url, version="auto", tls=tls, timeout=10)


def _settings(summary: Mapping[str, Any], inspect: Mapping[str, Any]) -> dict[str, str]:
    """The container's DNSDOCK_*/SERVICE_*/DISCOVER keys: env first, labels win."""
    values: dict[str, str] = {}
    for item in (inspect.get("Config") or {}).get("Env") or []:
        key, _, value = item.partition("=")
        values[key] = value
    labels = summary.get("Labels") or {}
    values.update(labels)
    return values


def _first(values: Mapping[str, str], *keys: str) -> str | None:
    for key in keys:
        if key in values:
            return values[key]
    return None


def image_label(reference: str) -> str:
    """``registry:5000/team/redis:7@sha256:…`` -> ``redis``."""
    reference = reference.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    return names.dns_safe_label(last.split(":", 1)[0])


def health_of(summary: Mapping[str, Any]) -> str:
    """``healthy``, ``unhealthy``, ``starting`` or ``none`` (no health check)."""
    status = str(summary.get("Status") or "")
    if "(healthy)" in status:
        return "healthy"
    if "(unhealthy)" in status:
        return "unhealthy"
    if "(health: starting)" in status:
        return "starting"
    return "none"


def addresses(
    summary: Mapping[str, Any], options: DockerOptions
) -> tuple[list[tuple[str, str]], str | None]:
    """The container's (network, address) pairs in a stable order, or why there are none."""
    mode = str((summary.get("HostConfig") or {}).get("NetworkMode") or "")
    if mode == "host":
        if options.host_address:
            return [("host", options.host_address)], None
        return [], "uses the host network; set --host-address to publish it"
    networks = (summary.get("NetworkSettings") or {}).get("Networks") or {}
    found: list[tuple[str, str]] = []
    for network in sorted(networks):
        if options.networks and network not in options.networks:
            continue
        settings = networks[network] or {}
        for key in ("IPAddress", "GlobalIPv6Address"):
            value = settings.get(key)
            if value:
                found.append((network, value))
    if not found:
        where = f" on {', '.join(options.networks)}" if options.networks else ""
        return [], f"has no address{where}"
    return found, None


def subnets(summary: Mapping[str, Any], options: DockerOptions) -> set[str]:
    """The subnets (CIDR) of the networks whose addresses the container publishes."""
    found = set()
    networks = (summary.get("NetworkSettings") or {}).get("Networks") or {}
    for network, settings in networks.items():
        if options.networks and network not in options.networks:
            continue
        for address, length in (
            ("IPAddress", "IPPrefixLen"),
            ("GlobalIPv6Address", "GlobalIPv6PrefixLen"),
        ):
            if (settings or {}).get(address) and (settings or {}).get(length):
                interface = ipaddress.ip_interface(f"{settings[address]}/{settings[length]}")
                found.add(str(interface.network))
    return found


def container_records(
    summary: Mapping[str, Any],
    inspect: Mapping[str, Any],
    options: DockerOptions,
    defaults: NameDefaults,
) -> tuple[list[ServiceRecord], list[str]]:
    """The records one running container publishes, and problems to report.

    Pure: ``summary`` is the container's entry in the list call, ``inspect`` its inspect
    result (only ``Config.Env`` and ``Config.Image`` are read from it).
    """
    cid = str(summary.get("Id", ""))[:12]
    raw_name = str((summary.get("Names") or ["/" + cid])[0]).lstrip("/")
    values = _settings(summary, inspect)
    who = f"container {raw_name} ({cid})"
    if _first(values, "com.dnsdock.ignore", "DNSDOCK_IGNORE", "SERVICE_IGNORE") is not None:
        return [], []
    problems: list[str] = []
    owner = Owner("docker", f"container/{raw_name}", f"container {cid}")
    zone = defaults.domains[0]
    origin = defaults.origin(zone)

    # Labels beat env: look labels up first by listing their keys before the env keys.
    labels = summary.get("Labels") or {}

    def pick(label_key: str, *env_keys: str) -> str | None:
        if label_key in labels:
            return str(labels[label_key])
        for key in env_keys:
            if key in labels:
                return str(labels[key])
        return _first(values, *env_keys)

    container = names.dns_safe_label(raw_name)
    tags = pick("com.dnsdock.tags", "SERVICE_TAGS")
    explicit = pick("com.dnsdock.name", "DNSDOCK_NAME")
    if tags is not None:
        container = names.dns_safe_label(tags.split(",")[0]) if tags else ""
    elif explicit is not None:
        container = explicit.strip(".").lower()
    image_ref = str((inspect.get("Config") or {}).get("Image") or summary.get("Image") or "")
    image = image_label(image_ref)
    override = pick("com.dnsdock.image", "DNSDOCK_IMAGE", "SERVICE_NAME")
    if override is not None:
        image = override.strip(".").lower()
    region = pick("com.dnsdock.region", "SERVICE_REGION")
    if region:
        image = f"{image}.{region.strip('.').lower()}" if image else region.strip(".").lower()
    relative = ".".join(part for part in (container, image) if part)

    ttl: int | None = None
    raw_ttl = pick("com.dnsdock.ttl", "DNSDOCK_TTL")
    if raw_ttl:
        if raw_ttl.isdigit() and int(raw_ttl) <= 2**31 - 1:
            ttl = int(raw_ttl)
        else:
            problems.append(f"{who}: TTL {raw_ttl!r} is not a number of seconds; default used")

    found, why = addresses(summary, options)
    override_ip = labels.get("com.dnsdock.ip_addr")
    if override_ip:
        parsed = names.parse_ip(str(override_ip))
        if parsed is None:
            problems.append(f"{who}: com.dnsdock.ip_addr {override_ip!r} is not an address")
        else:
            found, why = [("label", str(parsed))], None
    prefix = labels.get("com.dnsdock.prefix")
    if prefix:
        found = [(net, ip) for net, ip in found if ip.startswith(str(prefix))]
        if not found:
            why = f"has no address starting with {prefix!r} (com.dnsdock.prefix)"
    if why:
        problems.append(f"{who} {why}; not published")
        return [], problems

    aliases: list[str] = []
    raw_aliases = pick("com.dnsdock.alias", "DNSDOCK_ALIAS") or ""
    for alias in filter(None, (a.strip() for a in raw_aliases.split(","))):
        problem = names.name_problem(alias)
        if problem:
            problems.append(f"{who}: alias {problem}")
        else:
            aliases.append(names.fqdn(alias))

    records: list[ServiceRecord] = []
    main_names = [relative] if relative else []
    project = labels.get("com.docker.compose.project")
    service_name = labels.get("com.docker.compose.service")
    if project and service_name:
        main_names.append(f"{names.dns_safe_label(service_name)}.{names.dns_safe_label(project)}")
    for index, relative_name in enumerate(main_names):
        problem = names.name_problem(relative_name)
        if problem:
            problems.append(f"{who}: name {problem}")
            continue
        for number, (_, address) in enumerate(found):
            records.append(
                ServiceRecord(
                    name=names.absolute(relative_name, origin),
                    zone=zone,
                    owner=Owner(owner.source, owner.object, f"{owner.location} #{index}.{number}"),
                    host=str(names.parse_ip(address)),
                    ttl=ttl,
                    aliases=tuple(aliases) if index == 0 else (),
                    reverse=index == 0,  # one PTR per address: the dnsdock name
                )
            )
    records.extend(
        _discover(
            values,
            summary,
            options,
            origin=origin,
            zone=zone,
            owner=owner,
            ttl=ttl,
            problems=problems,
            who=who,
        )
    )
    return records, problems


def _discover(
    values: Mapping[str, str],
    summary: Mapping[str, Any],
    options: DockerOptions,
    *,
    origin: str,
    zone: str,
    owner: Owner,
    ttl: int | None,
    problems: list[str],
    who: str,
) -> list[ServiceRecord]:
    """DISCOVER=``svc:8080, svc2:8125/udp``: SRV to the host side of each published port."""
    spec = values.get("DISCOVER", "")
    records = []
    ports = summary.get("Ports") or []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        service, _, rest = item.partition(":")
        port_text, _, protocol = rest.partition("/")
        protocol = protocol or "tcp"
        if not service or not port_text.isdigit() or protocol not in ("tcp", "udp"):
            problems.append(f"{who}: DISCOVER item {item!r} is not 'name:port[/udp]'")
            continue
        bindings = [
            p
            for p in ports
            if p.get("PrivatePort") == int(port_text)
            and p.get("Type") == protocol
            and p.get("PublicPort")
        ]
        if not bindings:
            problems.append(
                f"{who}: DISCOVER {item!r}: port {port_text}/{protocol} is not published"
            )
            continue
        binding = sorted(bindings, key=lambda p: (":" in str(p.get("IP", "")), str(p.get("IP"))))[0]
        host_ip = str(binding.get("IP") or "0.0.0.0")
        if host_ip in ("0.0.0.0", "::", ""):
            if not options.host_address:
                problems.append(
                    f"{who}: DISCOVER {item!r} is bound to all addresses; set --host-address"
                )
                continue
            host_ip = options.host_address
        records.append(
            ServiceRecord(
                name=names.absolute(names.dns_safe_label(service), origin),
                zone=zone,
                owner=Owner(owner.source, owner.object, f"{owner.location} DISCOVER {service}"),
                host=host_ip,
                port=int(binding["PublicPort"]),
                protocol=protocol,
                ttl=ttl,
                reverse=False,
            )
        )
    return records


class DockerSource:
    """The containers of one Docker daemon."""

    name = "docker"

    def __init__(
        self,
        options: DockerOptions,
        defaults: NameDefaults,
        client_factory: Callable[[DockerOptions], Any] = connect,
    ) -> None:
        self.options = options
        self.defaults = defaults
        self.client_factory = client_factory
        self._client: Any = None  # a docker.APIClient once connected
        self._inspected: dict[str, Mapping[str, Any]] = {}
        self._last: Snapshot = Snapshot()
        self._since: float | None = None
        self.inspect_calls = 0

    def _api(self) -> Any:
        if self._client is None:
            self._client = self.client_factory(self.options)
        return self._client

    def load(self) -> Snapshot:
        """The records of the running containers; the last good ones (stale) when the
        daemon cannot be reached."""
        started = time.time()
        try:
            api = self._api()
            listed = api.containers(filters={"status": "running"})
            current = {c["Id"] for c in listed}
            for summary in listed:
                if summary["Id"] not in self._inspected:
                    self._inspected[summary["Id"]] = api.inspect_container(summary["Id"])
                    self.inspect_calls += 1
        except _DOCKER_ERRORS as exc:
            self._client = None
            problem = f"docker at {self.options.url}: {exc}; serving the last known containers"
            self._last = Snapshot(self._last.records, (problem,), stale=True)
            return self._last
        if self._since is None:
            self._since = started
        for gone in set(self._inspected) - current:
            del self._inspected[gone]
        self._last = self._records(listed)
        return self._last

    def _records(self, listed: list[Mapping[str, Any]]) -> Snapshot:
        records: list[ServiceRecord] = []
        problems: list[str] = []
        networks: set[str] = set()
        unhealthy: dict[str, list[ServiceRecord]] = {}
        for summary in sorted(listed, key=lambda c: str(c.get("Id"))):
            found, issues = container_records(
                summary, self._inspected[summary["Id"]], self.options, self.defaults
            )
            problems.extend(issues)
            networks.update(subnets(summary, self.options))
            health = health_of(summary)
            if self._published(health):
                records.extend(found)
            else:
                for record in found:
                    unhealthy.setdefault(record.name, []).append(record)
        # Health never empties a name: when every member of a name is unhealthy, they stay.
        published = {record.name for record in records}
        for name, members in unhealthy.items():
            if name not in published:
                records.extend(members)
                problems.append(f"{name} has no healthy container; keeping the unhealthy ones")
        return Snapshot(tuple(records), tuple(problems), networks=tuple(sorted(networks)))

    def _published(self, health: str) -> bool:
        if self.options.health == "ignore" or health in ("none", "healthy"):
            return True
        return self.options.health == "starting" and health == "starting"

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        """Wake the loop on container and network events, reconnecting with backoff."""
        loop = asyncio.get_running_loop()
        done = threading.Event()
        thread = threading.Thread(
            target=self._follow, args=(wakeup, loop, done), name="docker-events", daemon=True
        )
        thread.start()
        try:
            await stop.wait()
        finally:
            done.set()
            client = self._client
            if client is not None:
                with contextlib.suppress(*_DOCKER_ERRORS):
                    client.close()  # unblocks the events stream

    def _follow(
        self, wakeup: Wakeup, loop: asyncio.AbstractEventLoop, done: threading.Event
    ) -> None:
        delay = 0.5
        while not done.is_set():
            since = self._since
            if since is None:  # the first list has not happened yet: it will set it
                done.wait(0.05)
                continue
            try:
                client = self.client_factory(self.options)
                stream = client.events(
                    since=int(since) - 1, decode=True, filters={"type": ["container", "network"]}
                )
                if delay > 0.5:
                    wakeup.set_threadsafe(loop, "docker reconnected")
                delay = 0.5
                for event in stream:
                    if done.is_set():
                        break
                    self._since = time.time()
                    action = str(event.get("Action") or event.get("status") or "").split(":")[0]
                    if action in EVENT_ACTIONS:
                        wakeup.set_threadsafe(loop, f"docker {action}")
                stream.close()
            except _DOCKER_ERRORS as exc:
                if done.is_set():
                    return
                log.debug("docker events: %s; retrying in %.1fs", exc, delay)
            self._since = time.time()
            if not done.is_set():
                wakeup.set_threadsafe(loop, "docker events interrupted")
            done.wait(delay)
            delay = min(delay * 2, 10.0)
