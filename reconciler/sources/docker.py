"""Running Docker containers as records, with dnsdock's, registrator's and discover's rules.

Each container is one group of records (keyed by container id). The first load lists the
running containers (one API call) and inspects each once (its environment and image
reference are only in ``inspect``; cached by id). After that the event stream does the work,
as dnsdock does: an event about one container (start, unpause, health_status, rename,
network connect/disconnect) costs one ``inspect`` of that container in the events thread,
and die, stop, ``kill -9``, destroy and pause drop its group without any call. The events
thread queues these updates and wakes the loop at once; ``load()`` drains the queue and
returns only the groups that changed, so a container start costs one inspect and no list,
however many containers run.

The full list stays for the first load, for ``load(full=True)`` (the periodic resync) and
after the event stream broke: the stream is reopened with ``since`` set just before the last
event seen, and the next load lists everything afresh, so nothing is missed.

Health couples containers: an unhealthy container is not published unless every container
of its name is unhealthy ("health never empties a name"). A name -> container ids index
lets a change recompute only the containers sharing the changed container's names.

When the daemon cannot be reached, ``load()`` reports the problem and changes nothing (the
last good records stay, ``stale``); the watcher reconnects with backoff and wakes the loop
once it is back. Used by the daemon (``dockzone run``) when a Docker endpoint is configured
or found.

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
dev.dockzone.hostname        label only, ``true``/``false``: publish (or not) the
                             docker_ddns name, whatever ``--hostname-names`` says
===========================  ==========================================================

Docker Compose containers also get ``<service>.<project>.<domain>``. With
``--hostname-names`` (docker_ddns), a container given a host name (``docker run -h web``,
``--domainname``) also gets ``<hostname>[.<domainname>].<domain>``, TTL 60.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.tls
import requests.exceptions

from reconciler.core import names
from reconciler.core.model import Owner, Record, ServiceRecord
from reconciler.core.triggers import Wakeup
from reconciler.definitions import NameDefaults
from reconciler.sources import Snapshot

log = logging.getLogger(__name__)

HEALTH_POLICIES = ("healthy", "starting", "ignore")
INSPECT_ACTIONS = frozenset({"start", "unpause", "restart"})
"""Container events after which the container runs (again): inspect it."""
REFRESH_ACTIONS = frozenset({"health_status", "rename", "update", "connect", "disconnect"})
"""Events that may change what a running container publishes: inspect it if it runs."""
DROP_ACTIONS = frozenset({"die", "stop", "destroy", "pause"})
"""Events after which a container publishes nothing (no call needed). ``kill`` only with
SIGKILL: another signal (``docker kill -s HUP``) leaves the container running."""
_SIGKILL = frozenset({"9", "KILL", "SIGKILL"})
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
    hostname_names: bool = False
    """docker_ddns: also publish ``<hostname>.<domain>`` (the ``dev.dockzone.hostname``
    label decides per container)."""
    stop_grace: float = 0.0
    """Seconds a stopped container stays published, so a restart (a restart policy,
    ``docker restart``) does not make resolvers cache NXDOMAIN; removal is immediate."""


HOSTNAME_LABEL = "dev.dockzone.hostname"
HOSTNAME_TTL = 60
"""docker_ddns's TTL for ``<hostname>.<domain>``; DNSDOCK_TTL still wins."""


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
    """``healthy``, ``unhealthy``, ``starting`` or ``none`` (no health check), from a list
    summary (its ``Status`` text) or from inspect data (``State.Health.Status``)."""
    state = summary.get("State")
    if isinstance(state, Mapping):
        status = str((state.get("Health") or {}).get("Status") or "none")
        return status if status in ("healthy", "unhealthy", "starting") else "none"
    status = str(summary.get("Status") or "")
    if "(healthy)" in status:
        return "healthy"
    if "(unhealthy)" in status:
        return "unhealthy"
    if "(health: starting)" in status:
        return "starting"
    return "none"


def is_running(inspect: Mapping[str, Any]) -> bool:
    """Whether inspect data shows a running container (not paused, not restarting): the
    containers the list call with ``status=running`` returns."""
    state = inspect.get("State") or {}
    status = state.get("Status")
    if status is not None:
        return bool(status == "running")
    return bool(state.get("Running") and not state.get("Paused") and not state.get("Restarting"))


def trim_inspect(inspect: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an inspect result the records are made of (what is cached)."""
    config = inspect.get("Config") or {}
    state = inspect.get("State") or {}
    settings = inspect.get("NetworkSettings") or {}
    health = state.get("Health")
    return {
        "Id": inspect.get("Id", ""),
        "Name": inspect.get("Name", ""),
        "State": {
            "Status": state.get("Status"),
            "Running": state.get("Running"),
            "Paused": state.get("Paused"),
            "Restarting": state.get("Restarting"),
            **({"Health": {"Status": health.get("Status")}} if health else {}),
        },
        "Config": {
            "Env": config.get("Env") or [],
            "Image": config.get("Image") or "",
            "Labels": config.get("Labels") or {},
            "Hostname": config.get("Hostname") or "",
            "Domainname": config.get("Domainname") or "",
        },
        "HostConfig": {"NetworkMode": (inspect.get("HostConfig") or {}).get("NetworkMode")},
        "NetworkSettings": {
            "Networks": settings.get("Networks") or {},
            "Ports": settings.get("Ports") or {},
        },
    }


def summary_from_inspect(inspect: Mapping[str, Any]) -> dict[str, Any]:
    """What the list call says about a container, made from its inspect result: the same
    keys (``Names``, ``Labels``, ``Ports`` as a list, ``HostConfig.NetworkMode``,
    ``NetworkSettings.Networks``), with ``State`` as inspect has it (for ``health_of``)."""
    config = inspect.get("Config") or {}
    settings = inspect.get("NetworkSettings") or {}
    name = str(inspect.get("Name") or "")
    ports: list[dict[str, Any]] = []
    for key, bindings in sorted((settings.get("Ports") or {}).items()):
        port_text, _, protocol = str(key).partition("/")
        if not port_text.isdigit():
            continue
        private = {"PrivatePort": int(port_text), "Type": protocol or "tcp"}
        if not bindings:
            ports.append(private)
        for binding in bindings or ():
            host_port = str(binding.get("HostPort") or "")
            ports.append(
                {
                    **private,
                    "IP": binding.get("HostIp") or "",
                    **({"PublicPort": int(host_port)} if host_port.isdigit() else {}),
                }
            )
    return {
        "Id": inspect.get("Id", ""),
        "Names": ["/" + name.lstrip("/")] if name else [],
        "Image": config.get("Image") or "",
        "Labels": config.get("Labels") or {},
        "State": inspect.get("State") or {},
        "Ports": ports,
        "HostConfig": {"NetworkMode": (inspect.get("HostConfig") or {}).get("NetworkMode")},
        "NetworkSettings": {"Networks": settings.get("Networks") or {}},
    }


def _container_name(summary: Mapping[str, Any], cid: str) -> str:
    """The container's own name: the list gives legacy link names (``/app/db``) too."""
    found = [str(n) for n in summary.get("Names") or ()]
    own = [n for n in found if n.count("/") <= 1]
    return (own or found or ["/" + cid])[0].lstrip("/")


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
            if value and names.parse_ip(str(value)) is not None:
                found.append((network, str(value)))
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
                with contextlib.suppress(ValueError):  # not an address: not published either
                    interface = ipaddress.ip_interface(f"{settings[address]}/{settings[length]}")
                    found.add(str(interface.network))
    return found


def container_records(
    summary: Mapping[str, Any] | None,
    inspect: Mapping[str, Any],
    options: DockerOptions,
    defaults: NameDefaults,
) -> tuple[list[ServiceRecord], list[str]]:
    """The records one running container publishes, and problems to report.

    Pure: ``summary`` is the container's entry in the list call, ``inspect`` its inspect
    result (only ``Config.Env`` and ``Config.Image`` are read from it when there is a
    summary). Without a summary (after an event), everything comes from ``inspect``.
    """
    if summary is None:
        summary = summary_from_inspect(inspect)
    cid = str(summary.get("Id", ""))[:12]
    raw_name = _container_name(summary, cid)
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
            problem = names.address_typo(str(override_ip), host_name=False)
            problem = problem or f"{override_ip!r} is not an address"
            problems.append(f"{who}: com.dnsdock.ip_addr {problem}")
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
        _hostname_records(
            summary,
            inspect,
            options,
            defaults,
            found,
            owner=owner,
            ttl=ttl,
            problems=problems,
            who=who,
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


def hostname_name(
    inspect: Mapping[str, Any], container_id: str, domains: tuple[str, ...]
) -> str | None:
    """docker_ddns's name for a container: its host name (``docker run -h web``) and
    domain name (``--domainname``), absolute when that lies in one of ``domains``
    (``-h web --domainname prod.docker``), else below the first: ``web.docker.``,
    ``web.example.docker.``. None when the host name is Docker's default (the short id)."""
    config = inspect.get("Config") or {}
    host = str(config.get("Hostname") or "").strip(".").lower()
    if not host or host == container_id[:12].lower():
        return None
    domain = str(config.get("Domainname") or "").strip(".").lower()
    name = f"{host}.{domain}." if domain else f"{host}."
    zone = names.zone_for(name, domains)
    if zone is not None and zone != name:
        return name
    return names.absolute(name.rstrip("."), domains[0])


def _hostname_records(
    summary: Mapping[str, Any],
    inspect: Mapping[str, Any],
    options: DockerOptions,
    defaults: NameDefaults,
    found: list[tuple[str, str]],
    *,
    owner: Owner,
    ttl: int | None,
    problems: list[str],
    who: str,
) -> list[ServiceRecord]:
    """The A/AAAA records at ``hostname_name`` when ``--hostname-names`` or the
    container's ``dev.dockzone.hostname`` label asks for them (no PTR: that stays with
    the dnsdock name)."""
    labels = summary.get("Labels") or {}
    wanted = options.hostname_names
    flag = labels.get(HOSTNAME_LABEL)
    if flag is not None:
        text = str(flag).strip().lower()
        if text in ("true", "1", "yes", "on"):
            wanted = True
        elif text in ("false", "0", "no", "off"):
            wanted = False
        else:
            problems.append(f"{who}: label {HOSTNAME_LABEL} {flag!r} is not true or false; ignored")
    if not wanted:
        return []
    name = hostname_name(inspect, str(summary.get("Id", "")), defaults.domains)
    if name is None:
        return []
    problem = names.name_problem(name)
    if problem:
        problems.append(f"{who}: host name {problem}")
        return []
    zone = names.zone_for(name, defaults.domains) or defaults.domains[0]
    return [
        ServiceRecord(
            name=name,
            zone=zone,
            owner=Owner(owner.source, owner.object, f"{owner.location} hostname.{number}"),
            host=str(names.parse_ip(address)),
            ttl=HOSTNAME_TTL if ttl is None else ttl,
            reverse=False,
        )
        for number, (_, address) in enumerate(found)
    ]


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
                owner=Owner(
                    owner.source,
                    owner.object,
                    f"{owner.location} DISCOVER {service}:{port_text}/{protocol}",
                ),
                host=host_ip,
                port=int(binding["PublicPort"]),
                protocol=protocol,
                ttl=ttl,
                reverse=False,
            )
        )
    return records


def _end_stream(stream: Any) -> None:
    """Close an event stream and its HTTP response. The SDK's ``close()`` only shuts the
    socket down (that is what unblocks a reader in another thread); the response still
    holds the socket's file until it is closed too, or the descriptor leaks until garbage
    collection (one per reconnect)."""
    with contextlib.suppress(*_DOCKER_ERRORS, AttributeError):
        stream.close()
    response = getattr(stream, "_response", None)
    if response is not None:
        with contextlib.suppress(*_DOCKER_ERRORS):
            response.close()


def event_target(event: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """What an event from the stream means for one container: (container id, action, what
    to do: ``inspect``, ``refresh`` (inspect if it runs) or ``drop``); None for events that
    change no record (create, exec_*, attach, network create...)."""
    action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0].strip()
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    if event.get("Type", "container") == "network":
        container = str(attributes.get("container") or "")
        if action in ("connect", "disconnect") and container:
            return container, action, "refresh"
        return None
    if event.get("Type", "container") != "container":
        return None
    container = str(actor.get("ID") or event.get("id") or "")
    if not container:
        return None
    if action in INSPECT_ACTIONS:
        return container, action, "inspect"
    if action in REFRESH_ACTIONS:
        return container, action, "refresh"
    if action in DROP_ACTIONS or (
        action == "kill" and str(attributes.get("signal", "")).upper() in _SIGKILL
    ):
        return container, action, "drop"
    return None


@dataclass(frozen=True, slots=True)
class _Container:
    """One running container: its records before the health policy, its problems, the
    subnets of its published addresses, whether its health lets it publish on its own."""

    records: tuple[ServiceRecord, ...]
    problems: tuple[str, ...]
    subnets: frozenset[str]
    healthy: bool

    @property
    def names(self) -> frozenset[str]:
        return frozenset(record.name for record in self.records)


Update = Mapping[str, Any] | None
"""A queued change of one container: its (trimmed) inspect data, None when it is gone."""


class DockerSource:
    """The containers of one Docker daemon, one group per container id."""

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
        self._client: Any = None  # a docker.APIClient once connected (used by load())
        self._inspected: dict[str, Mapping[str, Any]] = {}
        self._containers: dict[str, _Container] = {}
        self._by_name: dict[str, set[str]] = {}
        """Record name -> ids of the running containers with a record there."""
        self._healthy: dict[str, int] = {}
        """Record name -> how many of those containers may publish on their own."""
        self._groups: dict[str, tuple[Record, ...]] = {}
        """What the source reported last, by container id (no empty groups)."""
        self._problems: tuple[str, ...] | None = ()
        self._networks: tuple[str, ...] = ()
        self._networks_dirty = False
        self._since: float | None = None
        # Shared with the events thread, under _lock:
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[int, Update]] = {}
        self._sequence = 0
        self._full = True  # the next load lists everything (first load, stream broke)
        self._running: set[str] = set()  # ids the events thread treats as running
        self._removed: set[str] = set()  # ids whose last event removed the container
        self._grace: dict[str, float] = {}
        """Stopped containers still published (``stop_grace``): id -> monotonic deadline.
        Changed only by ``load()``; the grace timer reads copies."""
        self._listing = False  # a full load is under way
        self._stream: Any = None
        self.inspect_calls = 0
        self.list_calls = 0

    def _api(self) -> Any:
        if self._client is None:
            self._client = self.client_factory(self.options)
        return self._client

    def details(self) -> dict[str, str]:
        """The endpoint and, once connected, the API version negotiated with the daemon."""
        found = {"endpoint": self.options.url}
        client = self._client
        version = getattr(client, "api_version", None) if client is not None else None
        if isinstance(version, str):
            found["api version"] = version
        return found

    def close(self) -> None:
        """Close the client ``load()`` uses (the next load connects again)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*_DOCKER_ERRORS):
                client.close()

    # -- load ---------------------------------------------------------------------------

    def load(self, full: bool = False) -> Snapshot:
        """The containers' groups: all of them on the first load, with ``full`` and after
        the event stream broke (a list call); otherwise the groups the events changed since
        the previous load (no call). When the daemon cannot be reached: nothing changes,
        the last good records stay (``stale``)."""
        with self._lock:
            if full or self._full:
                self._full = False
                self._listing = True
                mark = self._sequence
                listing = True
            else:
                updates = {cid: data for cid, (_, data) in self._pending.items()}
                removed, self._removed = self._removed, set()
                self._pending = {}
                listing = False
        if listing:
            return self._load_all(mark)
        now = time.monotonic()
        for cid, deadline in list(self._grace.items()):
            if deadline <= now:  # stopped and not back in time: unpublish it now
                updates.setdefault(cid, None)
                removed.add(cid)
        changed = self._apply(updates, removed)
        return Snapshot(changed, False, self._current_problems(), networks=self._new_networks())

    def _load_all(self, mark: int) -> Snapshot:
        started = time.time()
        stopped = set(self._grace)  # seen stopping by an event: not removals to hold back
        try:
            api = self._api()
            listed = api.containers(filters={"status": "running"})
            self.list_calls += 1
            current = {summary["Id"]: summary for summary in listed}
            for cid in list(current):
                if cid not in self._inspected:
                    self.inspect_calls += 1
                    try:
                        self._inspected[cid] = trim_inspect(api.inspect_container(cid))
                    except docker.errors.NotFound:  # removed since the list
                        del current[cid]
            kept = self._kept_in_grace(api, current)
        except _DOCKER_ERRORS as exc:
            self.close()
            with self._lock:
                self._full = True
                self._listing = False
            if self._since is None:  # let the watcher connect and wake the loop when it can
                self._since = started
            problem = f"docker at {self.options.url}: {exc}; serving the last known containers"
            return Snapshot({}, False, (problem, *self._current_problems()), stale=True)
        for dropped in set(self._inspected) - set(current) - set(kept):
            del self._inspected[dropped]
        self._containers = {
            cid: self._container(current[cid], self._inspected[cid]) for cid in sorted(current)
        }
        self._containers.update(kept)
        self._by_name, self._healthy = {}, {}
        for cid, container in self._containers.items():
            self._index(cid, container, +1)
        self._groups = {}
        self._problems = None
        self._networks_dirty = True
        self._regroup(self._containers)
        with self._lock:  # changes seen after the list started go on top of it
            gone = stopped | self._removed
            gone.update(cid for cid, (_, data) in self._pending.items() if data is None)
            later = {cid: data for cid, (seq, data) in self._pending.items() if seq > mark}
            self._pending = {}
            self._apply(later, self._removed)
            self._removed = set()
            self._running = set(self._containers) - set(self._grace)
            self._listing = False
        if self._since is None:  # now the watcher may subscribe (events from before the
            self._since = started  # list are replayed, with the running set in place)
        self._new_networks()
        return Snapshot(
            dict(self._groups),
            True,
            self._current_problems(),
            networks=self._networks,
            gone=frozenset(gone - set(self._groups)),
        )

    def _kept_in_grace(self, api: Any, listed: Mapping[str, Any]) -> dict[str, _Container]:
        """The stopped containers a full list keeps publishing: within their grace, and
        still there (one inspect each: a container removed while no events came is gone)."""
        now = time.monotonic()
        kept: dict[str, _Container] = {}
        for cid, deadline in list(self._grace.items()):
            held = self._containers.get(cid)
            if cid in listed or deadline <= now or held is None:
                del self._grace[cid]
                continue
            self.inspect_calls += 1
            try:
                api.inspect_container(cid)
            except docker.errors.NotFound:
                del self._grace[cid]
                continue
            kept[cid] = held
        return kept

    def _container(
        self, summary: Mapping[str, Any] | None, inspect: Mapping[str, Any]
    ) -> _Container:
        found, problems = container_records(summary, inspect, self.options, self.defaults)
        shape = summary if summary is not None else summary_from_inspect(inspect)
        return _Container(
            tuple(found),
            tuple(problems),
            frozenset(subnets(shape, self.options)),
            self._published(health_of(shape)),
        )

    def _index(self, cid: str, container: _Container, sign: int) -> None:
        for name in container.names:
            if sign > 0:
                self._by_name.setdefault(name, set()).add(cid)
                if container.healthy:
                    self._healthy[name] = self._healthy.get(name, 0) + 1
                continue
            members = self._by_name.get(name)
            if members is not None:
                members.discard(cid)
                if not members:
                    del self._by_name[name]
            if container.healthy:
                left = self._healthy.get(name, 0) - 1
                if left > 0:
                    self._healthy[name] = left
                else:
                    self._healthy.pop(name, None)

    def _apply(
        self, updates: Mapping[str, Update], removed: Collection[str] = ()
    ) -> dict[str, tuple[Record, ...]]:
        """Apply per-container updates; the groups that changed (empty: gone). A container
        that stopped (not one in ``removed``) stays published for ``stop_grace`` seconds."""
        if not updates:
            return {}
        touched: set[str] = set()
        names: set[str] = set()
        grace = self.options.stop_grace
        for cid, data in updates.items():
            running = data is not None and is_running(data)
            if not running and grace > 0 and cid not in removed and cid in self._containers:
                self._grace.setdefault(cid, time.monotonic() + grace)
                continue  # still answers until it is back or its grace is over
            self._grace.pop(cid, None)
            old = self._containers.pop(cid, None)
            if old is not None:
                self._index(cid, old, -1)
                names |= old.names
            if data is not None and is_running(data):
                self._inspected[cid] = data
                new = self._container(None, data)
                self._containers[cid] = new
                self._index(cid, new, +1)
                names |= new.names
            else:
                self._inspected.pop(cid, None)
            touched.add(cid)
        self._problems = None  # both are cheap to recompute from what is held
        self._networks_dirty = True
        # Health couples the containers of a name: recompute those that depend on others.
        for name in names:
            for other in self._by_name.get(name, ()):
                if not self._containers[other].healthy:
                    touched.add(other)
        return self._regroup(touched)

    def _regroup(self, ids: Iterable[str]) -> dict[str, tuple[Record, ...]]:
        changed: dict[str, tuple[Record, ...]] = {}
        for cid in ids:
            group = self._group(cid)
            if group == self._groups.get(cid, ()):
                continue
            changed[cid] = group
            if group:
                self._groups[cid] = group
            else:
                del self._groups[cid]
        return changed

    def _group(self, cid: str) -> tuple[Record, ...]:
        """What container ``cid`` publishes: its records if its health allows; an unhealthy
        container only at names where no container is healthy (health never empties a name)."""
        container = self._containers.get(cid)
        if container is None:
            return ()
        if container.healthy:
            return container.records
        return tuple(r for r in container.records if r.name not in self._healthy)

    def _current_problems(self) -> tuple[str, ...]:
        if self._problems is None:
            problems = [
                p for cid in sorted(self._containers) for p in self._containers[cid].problems
            ]
            problems.extend(
                f"{name} has no healthy container; keeping the unhealthy ones"
                for name in sorted(self._by_name)
                if name not in self._healthy
            )
            self._problems = tuple(problems)
        return self._problems

    def _new_networks(self) -> tuple[str, ...] | None:
        """The subnets of the containers' networks when they changed since last reported."""
        if not self._networks_dirty:
            return None
        self._networks_dirty = False
        found: set[str] = set()
        for container in self._containers.values():
            found |= container.subnets
        networks = tuple(sorted(found))
        if networks == self._networks:
            return None
        self._networks = networks
        return networks

    def _published(self, health: str) -> bool:
        if self.options.health == "ignore" or health in ("none", "healthy"):
            return True
        return self.options.health == "starting" and health == "starting"

    # -- events -------------------------------------------------------------------------

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        """Follow the event stream in a thread: queue each container's change (one inspect
        at most) and wake the loop; reconnect with backoff."""
        loop = asyncio.get_running_loop()
        done = threading.Event()
        thread = threading.Thread(
            target=self._follow, args=(wakeup, loop, done), name="docker-events", daemon=True
        )
        thread.start()
        timer = asyncio.create_task(self._grace_timer(wakeup, stop))
        try:
            await stop.wait()
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            done.set()
            stream = self._stream
            if stream is not None:
                with contextlib.suppress(*_DOCKER_ERRORS, AttributeError):
                    stream.close()  # unblocks the events thread
            # Let it finish (an inspect under way) while the event loop still runs.
            await asyncio.to_thread(thread.join, 2.0)
            self.close()

    async def _grace_timer(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        """Wake the loop when a stopped container's grace is over (the pass unpublishes it)."""
        woken: set[float] = set()
        while not stop.is_set():
            deadlines = self._grace.copy().values()  # a copy: load() changes it in a thread
            now = time.monotonic()
            if any(deadline <= now and deadline not in woken for deadline in deadlines):
                woken = {deadline for deadline in deadlines if deadline <= now}
                wakeup.set("docker stop grace over")
            ahead = [deadline - now for deadline in deadlines if deadline > now]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min([1.0, *ahead]) + 0.01)

    def _follow(
        self, wakeup: Wakeup, loop: asyncio.AbstractEventLoop, done: threading.Event
    ) -> None:
        def wake(reason: str) -> None:
            if not done.is_set():
                with contextlib.suppress(RuntimeError):  # the event loop closed: stopping
                    wakeup.set_threadsafe(loop, reason)

        delay = 0.5
        while not done.is_set():
            since = self._since
            if since is None:  # the first list has not happened yet: it will set it
                done.wait(0.05)
                continue
            client = stream = None
            try:
                client = self.client_factory(self.options)
                stream = client.events(
                    since=int(since) - 1, decode=True, filters={"type": ["container", "network"]}
                )
                self._stream = stream
                with self._lock:
                    relist = self._full
                if relist:  # back after a break (or before the first good list)
                    wake("docker reconnected")
                delay = 0.5
                for event in stream:
                    if done.is_set():
                        break
                    self._since = time.time()
                    reason = self.handle(client, event)
                    if reason is not None:
                        wake(reason)
            except _DOCKER_ERRORS as exc:
                if done.is_set():
                    return
                log.debug("docker events: %s; retrying in %.1fs", exc, delay)
            except Exception:  # a stream cut under the reader, an event of a new shape
                if done.is_set():
                    return
                log.warning("docker events: unexpected error; reconnecting", exc_info=True)
            finally:
                if stream is not None:
                    _end_stream(stream)
                if client is not None:
                    with contextlib.suppress(*_DOCKER_ERRORS):
                        client.close()
            if done.is_set():
                return
            self._since = time.time()
            with self._lock:
                self._full = True  # events may be lost: the next load lists everything
            wake("docker events interrupted")
            done.wait(delay)
            delay = min(delay * 2, 10.0)

    def handle(self, client: Any, event: Mapping[str, Any]) -> str | None:
        """One event from the stream (called by the events thread): inspect its container
        with ``client`` if needed and queue the change for the next load. Returns the reason
        to wake the loop, None when the event changes nothing."""
        target = event_target(event)
        if target is None:
            return None
        cid, action, what = target
        with self._lock:
            # While a list is under way, the running set may miss what it will find.
            known = cid in self._running or self._listing
        if what == "refresh" and not known:
            return None  # not running (a network connect before start, a rename when stopped)
        data: Update = None
        removed = action == "destroy"  # docker rm: no grace
        if what != "drop":
            try:
                inspected = client.inspect_container(cid)
            except docker.errors.NotFound:
                inspected = None
                removed = True
            finally:
                with self._lock:
                    self.inspect_calls += 1
            if inspected is not None and is_running(inspected):
                data = trim_inspect(inspected)
        log.debug("docker event %s %s: %s%s", action, cid[:12], what, " (removed)" * removed)
        with self._lock:
            self._sequence += 1
            self._pending[cid] = (self._sequence, data)
            if removed:
                self._removed.add(cid)
            else:
                self._removed.discard(cid)
            if data is None:
                self._running.discard(cid)
            else:
                self._running.add(cid)
        return f"docker {action}"
