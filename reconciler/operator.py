"""``dockzone operator``: kopf handlers for ServiceRecord CRs, beside the reconcile loop.

The handlers only translate: a CR body is validated by ``definitions.from_document`` (the
same rules as a YAML file), its records go into the in-memory ``KubernetesSource``, and the
loop is woken; the loop writes the zone files a CoreDNS sidecar serves. Each handler writes
``status``: ``observedGeneration``, the ``fqdns`` the record answers at, and the conditions
``Ready`` and ``Invalid`` (with every validation problem in the message).

Services annotated ``dockzone.dev/hostname`` (external-dns's habit) are published too
(``records_from_service``): their load-balancer or cluster addresses as A/AAAA (a load
balancer's host name, an ExternalName: CNAME), named ports as SRV. They are followed with
a kopf event handler, which writes nothing on the Service.

Errors map onto kopf's: a ``DefinitionProblems`` is a ``kopf.PermanentError`` (retrying
cannot help; the next change of the CR is handled again), a ``TransientError`` a
``kopf.TemporaryError``. Delete handlers are optional (no finalizer): the source is rebuilt
from ``resume`` events on every start, so a deletion missed while no operator ran is
repaired then.

Only one replica writes zones at a time: ``run`` first takes a coordination.k8s.io Lease
(``reconciler.lease``), then starts kopf and the loop, and stops when it loses the Lease.
Called by ``cli`` (``cmd_operator``); tests call the handler methods directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import aiohttp
import kopf

from reconciler.config import Settings
from reconciler.core.model import Owner, Record, ServiceRecord
from reconciler.core.triggers import Wakeup
from reconciler.daemon import make_sinks
from reconciler.definitions import DefinitionProblems, NameDefaults, from_document
from reconciler.errors import DefinitionError, TransientError
from reconciler.loop import Reconciler, resync_timer
from reconciler.sources.kubernetes import KubernetesSource

log = logging.getLogger(__name__)

GROUP = "dockzone.dev"
VERSION = "v1alpha1"
PLURAL = "servicerecords"
LEADER_FILE = ".leader"
"""In the zone directory while this replica leads; the pod's readiness probe checks it, so a
standby (whose CoreDNS sidecar has no current zones) takes no DNS traffic."""
RETRY_DELAY = 10.0
"""Seconds kopf waits before retrying a handler after a TransientError."""


def _plain(value: Any) -> Any:
    """A kopf body view (nested Mappings) as plain dicts and lists, as YAML would give it."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def object_key(meta: Mapping[str, Any]) -> str:
    """``namespace/name`` of a CR."""
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def records_from_cr(body: Mapping[str, Any], defaults: NameDefaults) -> tuple[Record, ...]:
    """The records of one ServiceRecord CR body, owned by ``kubernetes servicerecord/ns/name``.

    Raises ``DefinitionProblems`` with every problem of the CR (fields as ``spec.port``).
    """
    meta = body.get("metadata") or {}
    key = object_key(meta)
    document = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": meta.get("name")},
        "spec": _plain(body.get("spec")),
    }
    found = from_document(document, key, 0, defaults)
    owner = Owner("kubernetes", f"servicerecord/{key}")
    return tuple(dataclasses.replace(record, owner=owner) for record in found.records)


HOSTNAME_ANNOTATION = "dockzone.dev/hostname"
"""On a Service: the names to publish it at, comma-separated (external-dns's habit)."""


def records_from_service(body: Mapping[str, Any], defaults: NameDefaults) -> tuple[Record, ...]:
    """The records of one Service annotated ``dockzone.dev/hostname``, owned by
    ``kubernetes service/ns/name``; empty when it is not annotated or has no address yet.

    At each name of the annotation: the load balancer's ingress addresses (A/AAAA) or
    host name (CNAME) when it has them, else the cluster IPs (none when headless); an
    ExternalName Service is a CNAME to its external name. Each named port is an SRV at
    ``_<port>._<protocol>.<name>`` pointing at the name. The records go through the same
    validation as a ServiceRecord (a name outside the configured domains is rejected).
    Raises ``DefinitionProblems`` naming the annotation or field at fault.
    """
    meta = body.get("metadata") or {}
    key = f"service/{object_key(meta)}"
    annotation = (meta.get("annotations") or {}).get(HOSTNAME_ANNOTATION)
    if not annotation:
        return ()
    where = f"metadata.annotations[{HOSTNAME_ANNOTATION}]"
    spec = body.get("spec") or {}
    if spec.get("type") == "ExternalName":
        targets = [str(spec.get("externalName") or "")]
    else:
        ingress = ((body.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        targets = [str(i.get("ip") or i.get("hostname") or "") for i in ingress]
        if not any(targets):
            ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
            targets = [str(ip) for ip in ips if ip and ip != "None"]
    targets = [target for target in targets if target]
    ports = [
        port
        for port in spec.get("ports") or []
        if isinstance(port, Mapping) and port.get("name") and port.get("port")
    ]
    documents: list[tuple[str, dict[str, Any]]] = []
    for hostname in (name.strip() for name in str(annotation).split(",")):
        if not hostname:
            continue
        name = hostname.rstrip(".") + "."
        for target in targets:
            documents.append((where, {"name": name, "host": target}))
        if targets:
            for port in ports:
                protocol = str(port.get("protocol") or "TCP").lower()
                srv = f"_{port['name']}._{protocol}.{name}"
                body_of = {"name": srv, "host": name, "port": port["port"], "protocol": protocol}
                documents.append((f"spec.ports[{port['name']}]", body_of))
    records: list[Record] = []
    errors: list[DefinitionError] = []
    owner = Owner("kubernetes", key)
    for field, spec_of in documents:
        document = {
            "apiVersion": "dockzone.dev/v1alpha1",
            "kind": "ServiceRecord",
            "metadata": {"name": meta.get("name")},
            "spec": spec_of,
        }
        try:
            found = from_document(document, key, 0, defaults)
        except DefinitionProblems as problems:
            errors.extend(
                DefinitionError(key, None, field, f"{spec_of['name']}: {error.problem}")
                for error in problems.errors
            )
            continue
        records.extend(dataclasses.replace(record, owner=owner) for record in found.records)
    if errors:
        raise DefinitionProblems(errors)
    return tuple(records)


def fqdns(records: tuple[Record, ...]) -> list[str]:
    """The names a CR's records answer at: the record name, then its aliases."""
    names: list[str] = []
    for record in records:
        extra = record.aliases if isinstance(record, ServiceRecord) else ()
        names.extend(name for name in (record.name, *extra) if name not in names)
    return names


def problems_text(problems: DefinitionProblems) -> str:
    """Every problem as ``spec.port: must be 1..65535``, joined by ``; ``."""
    return "; ".join(
        f"{error.field}: {error.problem}" if error.field else error.problem
        for error in problems.errors
    )


def conditions(
    old: Any, *, valid: bool, message: str, generation: Any, now: str, detail: str = ""
) -> list[dict[str, Any]]:
    """The ``Ready`` and ``Invalid`` conditions. ``lastTransitionTime`` stays as in ``old``
    (the CR's current conditions) for a condition whose status does not change."""
    reason = "Valid" if valid else "Invalid"
    return [
        _condition(old, "Ready", valid, reason, message, generation, now),
        _condition(old, "Invalid", not valid, reason, detail, generation, now),
    ]


def _condition(  # noqa: PLR0917 - private; called twice, above
    old: Any, kind: str, status: bool, reason: str, message: str, generation: Any, now: str
) -> dict[str, Any]:
    text = "True" if status else "False"
    since = now
    for item in old if isinstance(old, list) else ():
        if isinstance(item, Mapping) and item.get("type") == kind and item.get("status") == text:
            since = str(item.get("lastTransitionTime") or now)
    result: dict[str, Any] = {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class RecordHandlers:
    """The kopf handlers, bound to the source they fill and the loop they wake."""

    source: KubernetesSource
    wakeup: Wakeup
    defaults: NameDefaults

    async def changed(
        self,
        body: kopf.Body,
        meta: kopf.Meta,
        status: kopf.Status,
        patch: kopf.Patch,
        **_: Any,
    ) -> None:
        """create / update / resume: validate, hold the records, wake the loop, write status.

        Raises ``kopf.PermanentError`` for an invalid CR (its last valid records stay
        served) and ``kopf.TemporaryError`` for a transient failure.
        """
        key = object_key(meta)
        generation = meta.get("generation")
        old = status.get("conditions")
        now = _now()
        patch.status["observedGeneration"] = generation
        try:
            records = records_from_cr(body, self.defaults)
        except DefinitionProblems as problems:
            message = problems_text(problems)
            kept = self.source.records_of(key)
            served = f"; the last valid version stays served ({', '.join(fqdns(kept))})"
            self.source.invalid(key, message)
            patch.status["conditions"] = conditions(
                old,
                valid=False,
                message=message,
                detail=message + (served if kept else ""),
                generation=generation,
                now=now,
            )
            raise kopf.PermanentError(f"servicerecord {key}: {message}") from problems
        except TransientError as exc:
            raise kopf.TemporaryError(f"servicerecord {key}: {exc}", delay=RETRY_DELAY) from exc
        if self.source.put(key, records):
            self.wakeup.set(f"servicerecord {key}")
        names = fqdns(records)
        patch.status["fqdns"] = names
        message = "served as " + ", ".join(names)
        patch.status["conditions"] = conditions(
            old, valid=True, message=message, generation=generation, now=now
        )

    async def deleted(self, meta: kopf.Meta, **_: Any) -> None:
        """delete: forget the CR's records and wake the loop."""
        key = object_key(meta)
        if self.source.remove(key):
            self.wakeup.set(f"servicerecord {key} deleted")

    async def service_event(self, event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        """Any watch event of a Service: hold the records its ``dockzone.dev/hostname``
        annotation asks for (none: forget them) and wake the loop. An event handler, so
        kopf writes nothing on the Service (read-only, as external-dns)."""
        key = f"service/{object_key(body.get('metadata') or {})}"
        if event.get("type") == "DELETED":
            if self.source.remove(key):
                self.wakeup.set(f"{key} deleted")
            return
        try:
            records = records_from_service(body, self.defaults)
        except DefinitionProblems as problems:
            message = problems_text(problems)
            log.warning("%s: %s", key, message)
            self.source.invalid(key, message)
            return
        if not records:
            if self.source.remove(key):
                self.wakeup.set(f"{key} unpublished")
        elif self.source.put(key, records):
            self.wakeup.set(key)

    def register(self, registry: kopf.OperatorRegistry) -> None:
        """Register the handlers (and a login) on ``registry``."""
        kopf.on.event("v1", "services", registry=registry, id="service")(self.service_event)
        resource = (GROUP, VERSION, PLURAL)
        changed = self.changed
        for decorate in (kopf.on.create, kopf.on.update, kopf.on.resume):
            decorate(*resource, registry=registry, id="servicerecord")(changed)
        kopf.on.delete(*resource, registry=registry, id="servicerecord-deleted", optional=True)(
            self.deleted
        )
        kopf.on.login(registry=registry)(login)


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod the service account; elsewhere ``$KUBECONFIG`` or ``~/.kube/config``."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def operator_settings() -> kopf.OperatorSettings:
    """kopf settings: no kopf peering (the Lease elects), status-friendly progress storage."""
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    return settings


class Conflict(Exception):
    """The Lease changed under us (HTTP 409): someone else wrote it first."""


class LeaseStore(Protocol):
    """One coordination.k8s.io/v1 Lease object: read, create, replace (optimistically,
    by ``metadata.resourceVersion``). ``HTTPLeaseStore`` talks to the API server."""

    async def get(self) -> dict[str, Any] | None: ...

    async def create(self, spec: dict[str, Any]) -> dict[str, Any]: ...

    async def replace(self, lease: dict[str, Any]) -> dict[str, Any]: ...


def _micro_time(moment: float) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class LeaseElector:
    """Leader election on a Lease, as client-go's leaderelection does it.

    A candidate takes the Lease when it is free (no holder, or the holder's ``renewTime`` is
    older than ``leaseDurationSeconds``) and writes it with the resourceVersion it read, so
    of two candidates only one wins (the other gets 409). The leader renews every
    ``renew`` seconds; when it cannot renew within ``duration`` seconds it steps down before
    anyone else may take the Lease, so two replicas never write zones at the same time.
    """

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        *,
        duration: int = 15,
        renew: float = 5.0,
        clock: Any = time.time,
    ) -> None:
        self.store = store
        self.identity = identity
        self.duration = duration
        self.renew = renew
        self.clock = clock
        self.leading = False
        self._last_renewal = 0.0

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; True when we hold it afterwards."""
        now = self.clock()
        lease = await self.store.get()
        mine = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "renewTime": _micro_time(now),
        }
        try:
            if lease is None:
                await self.store.create({**mine, "acquireTime": _micro_time(now)})
            else:
                spec = dict(lease.get("spec") or {})
                holder = spec.get("holderIdentity") or ""
                renewed = _parse_time(spec.get("renewTime")) or 0.0
                lifetime = int(spec.get("leaseDurationSeconds") or self.duration)
                if holder and holder != self.identity and renewed + lifetime > now:
                    self.leading = False
                    return False
                if holder != self.identity:
                    spec["acquireTime"] = _micro_time(now)
                    spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
                await self.store.replace({**lease, "spec": {**spec, **mine}})
        except Conflict:
            self.leading = False
            return False
        self.leading = True
        self._last_renewal = now
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until we lead (True) or ``stop`` is set (False). API errors are retried."""
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    log.info("leading as %s", self.identity)
                    return True
            except (OSError, TransientError) as exc:
                log.warning("Lease: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.renew)
        return False

    async def hold(self, stop: asyncio.Event) -> None:
        """Renew the Lease until ``stop`` is set; returns early when leadership is lost (the
        Lease taken by another, or not renewed within ``duration`` seconds)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.renew)
            if stop.is_set():
                return
            try:
                if not await self.try_acquire():
                    log.error("Lease taken by another replica")
                    return
            except (OSError, TransientError) as exc:
                log.warning("Lease renewal failed: %s", exc)
                if self.clock() - self._last_renewal >= self.duration - self.renew:
                    self.leading = False
                    return

    async def release(self) -> None:
        """Give the Lease up (holder emptied) so a standby takes over at once."""
        if not self.leading:
            return
        self.leading = False
        with contextlib.suppress(Conflict, OSError, TransientError):
            lease = await self.store.get()
            spec = (lease or {}).get("spec") or {}
            if lease is not None and spec.get("holderIdentity") == self.identity:
                await self.store.replace(
                    {**lease, "spec": {**spec, "holderIdentity": "", "leaseDurationSeconds": 1}}
                )


class HTTPLeaseStore:
    """A Lease in the API server, reached with kopf's login (service account or kubeconfig)."""

    def __init__(self, connection: kopf.ConnectionInfo, namespace: str, name: str) -> None:
        self.connection = connection
        self.namespace = namespace
        self.name = name
        base = connection.server.rstrip("/")
        self.collection = f"{base}/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    def _session(self) -> aiohttp.ClientSession:
        headers = {"Accept": "application/json"}
        if self.connection.token:
            headers["Authorization"] = (
                f"{self.connection.scheme or 'Bearer'} {self.connection.token}"
            )
        context: ssl.SSLContext | bool = True
        if self.connection.insecure:
            context = False
        elif self.connection.ca_path or self.connection.ca_data:
            context = ssl.create_default_context(
                cafile=os.fsdecode(self.connection.ca_path) if self.connection.ca_path else None,
                cadata=_text(self.connection.ca_data),
            )
        if isinstance(context, ssl.SSLContext) and self.connection.certificate_path:
            context.load_cert_chain(
                os.fsdecode(self.connection.certificate_path),
                os.fsdecode(self.connection.private_key_path)
                if self.connection.private_key_path
                else None,
            )
        return aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=10),
        )

    async def _call(self, method: str, url: str, body: Any = None) -> dict[str, Any] | None:
        try:
            async with (
                self._session() as session,
                session.request(method, url, json=body) as response,
            ):
                if response.status == 404 and method == "GET":
                    return None
                if response.status == 409:
                    raise Conflict(f"Lease {self.namespace}/{self.name} changed")
                if response.status >= 400:
                    text = await response.text()
                    raise TransientError(
                        f"Lease {self.namespace}/{self.name}: {method} {url}: "
                        f"HTTP {response.status} {text[:200]}"
                    )
                result: dict[str, Any] = await response.json()
                return result
        except aiohttp.ClientError as exc:
            raise TransientError(f"Lease {self.namespace}/{self.name}: {url}: {exc}") from exc

    async def get(self) -> dict[str, Any] | None:
        return await self._call("GET", f"{self.collection}/{self.name}")

    async def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        return await self._call("POST", self.collection, body) or {}

    async def replace(self, lease: dict[str, Any]) -> dict[str, Any]:
        return await self._call("PUT", f"{self.collection}/{self.name}", lease) or {}


def _text(data: str | bytes | None) -> str | None:
    return data.decode() if isinstance(data, bytes) else data


async def run(
    settings: Settings,
    err: TextIO,
    *,
    namespaces: tuple[str, ...] = (),
    elector: LeaseElector | None = None,
) -> int:
    """The operator process: (the Lease), kopf and the reconcile loop until SIGTERM. Returns
    the exit code: 1 when leadership was lost or kopf failed, so the pod restarts."""
    source = KubernetesSource()
    wakeup = Wakeup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    settings.zones.mkdir(parents=True, exist_ok=True)
    leader_file = settings.zones / LEADER_FILE
    leader_file.unlink(missing_ok=True)
    if elector is not None:
        print(f"dockzone: {elector.identity} waiting for the leader Lease", file=err, flush=True)
        if not await elector.acquire(stop):
            return 0
    leader_file.write_text(f"{elector.identity if elector else identity()}\n", encoding="utf-8")
    handlers = RecordHandlers(source, wakeup, settings.name_defaults())
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    reconciler = Reconciler(source, settings.zone_settings(), make_sinks(settings, None))
    where = ", ".join(namespaces) if namespaces else "all namespaces"
    print(f"dockzone: operator for {where}; zones {settings.zones}", file=err, flush=True)
    tasks: dict[str, asyncio.Task[Any]] = {
        "kopf": asyncio.create_task(
            kopf.operator(
                registry=registry,
                settings=operator_settings(),
                standalone=True,
                clusterwide=not namespaces,
                namespaces=list(namespaces),
                stop_flag=stop,
            )
        ),
        "loop": asyncio.create_task(reconciler.run(wakeup, stop)),
        "resync": asyncio.create_task(resync_timer(wakeup, settings.resync, stop)),
    }
    if elector is not None:
        tasks["lease"] = asyncio.create_task(elector.hold(stop))
    code = 0
    try:
        done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            ended = next(name for name, task in tasks.items() if task in done)
            failure = next(iter(done)).exception()
            reason = "lost the leader Lease" if ended == "lease" else f"{ended} ended: {failure}"
            print(f"dockzone: {reason}; stopping", file=err, flush=True)
            code = 1
    finally:
        stop.set()
        for task in tasks.values():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
        leader_file.unlink(missing_ok=True)
        if elector is not None:
            await elector.release()
    log.info("stopped after %d passes", reconciler.passes)
    return code


def lease_location(lease: str, connection: kopf.ConnectionInfo) -> tuple[str, str]:
    """(namespace, name) of the ``--leader-lease`` value: ``NAMESPACE/NAME``, or ``NAME`` in
    ``$POD_NAMESPACE``, the service account's namespace, or ``default``."""
    namespace, _, name = lease.rpartition("/")
    if not namespace:
        namespace = os.environ.get("POD_NAMESPACE") or connection.default_namespace or "default"
    return namespace, name


def identity() -> str:
    """This replica's name in the Lease: ``$POD_NAME`` (the Deployment sets it), else
    ``host-pid``."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


async def main(settings: Settings, err: TextIO) -> int:
    """``dockzone operator``: log in for the Lease (unless ``--leader-lease off``), then
    ``run``. Returns the exit code."""
    elector: LeaseElector | None = None
    if settings.leader_lease != "off":
        kopf_settings = kopf.OperatorSettings()
        connection = login(settings=kopf_settings, logger=log)
        if connection is None:
            print(
                "dockzone: no Kubernetes credentials (no service account token, no "
                "$KUBECONFIG or ~/.kube/config)",
                file=err,
            )
            return 2
        namespace, name = lease_location(settings.leader_lease, connection)
        elector = LeaseElector(HTTPLeaseStore(connection, namespace, name), identity())
    return await run(settings, err, namespaces=settings.namespace, elector=elector)
