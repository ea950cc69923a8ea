"""The HTTP API: dnsdock's ``/services`` and ``/set/ttl``, plus ``/status``, ``/zones``,
``/healthz``, ``/readyz`` and ``/metrics``. An aiohttp application served by ``daemon.run``
in the loop's own event loop.

Records created through the API are ServiceRecord definitions written atomically to
``<definitions>/api/servicerecord-<id>.yaml``, which the files source reads like any
other definition: a restart (even after SIGKILL) loses nothing and ``dockzone diff`` shows
them. A mutation answers once its file is on disk and a reconcile pass that read it has
been applied, so the name answers over DNS as soon as the response arrives.

A body is a dnsdock service when it has an ``image``, ``ip`` or ``IPs`` key (any case):
``{"name", "image", "ip", "ttl", "aliases"}`` publishes ``<name>.<image>.<environment>.
<domain>``. Any other body is a ServiceRecord ``spec`` (``{"name", "host", "port", ...}``),
validated by ``definitions.from_document`` so the rules are the same as for files.
Records of every other source (files, containers, etcd) are listed too, read-only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from reconciler import __version__
from reconciler.atomicio import atomic_write, fsync_directory
from reconciler.config import API_DIRECTORY, Settings, api_settings_path
from reconciler.core import names
from reconciler.core.model import Owner, Record, ServiceRecord
from reconciler.core.triggers import Wakeup
from reconciler.definitions import (
    SERVICE_API,
    DefinitionProblems,
    Document,
    from_document,
)
from reconciler.errors import DefinitionError
from reconciler.loop import PassReport, Reconciler
from reconciler.metrics import CONTENT_TYPE
from reconciler.sinks.zonefiles import zone_file_name
from reconciler.sources import MergedSource, details

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
"""Largest request body accepted (413 above)."""
PASS_LINES = 20
"""Plan lines ``/status`` shows per recent pass."""
MAX_CONFLICTS = 200
"""Conflicts ``/status`` lists (``last_reconcile.conflicts`` counts them all)."""
APPLY_TIMEOUT = 10.0
"""Seconds a mutation waits for the pass that applies it (202 after that)."""
NAME_ANNOTATION = "dockzone.dev/dnsdock-name"
IMAGE_ANNOTATION = "dockzone.dev/dnsdock-image"
DNSDOCK_KEYS = ("name", "image", "ip", "ips", "ttl", "alias", "aliases")
OUTPUT_KEYS = (
    "id",
    "fqdn",
    "names",
    "owner",
    "readonly",
    "source",
    "spec",
    "ignoredbyuser",
    "conflicts",
)
"""Keys ``GET`` adds to a service; ignored in a dnsdock body so a GET can be PUT back."""
JSON_TYPES = ("", "application/json", "application/x-www-form-urlencoded", "text/plain")
"""Content types read as JSON: dnsdock's own examples use ``curl --data-ascii``, which
sends the form type."""
_HEX = re.compile(r"^[0-9a-f]{4,64}$")
_DNSDOCK_FIELDS = {"spec.host": "ip", "spec.name": "name", "spec.ttl": "ttl", "metadata.name": "id"}


class ApiError(Exception):
    """A request that fails with ``status`` and a JSON body naming the field."""

    def __init__(self, status: int, message: str, field: str = "", **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.message}
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return web.json_response(body, status=self.status, headers=headers)


@dataclass(slots=True)
class Service:
    """One entry of ``/services``: the records of one owner."""

    id: str
    owner: Owner
    records: list[Record]
    document: Mapping[str, Any] | None = None
    """The stored definition (API records only)."""

    @property
    def readonly(self) -> bool:
        return self.document is None


class QueryRate:
    """Queries per second over the last minute, from the totals each ``/status`` read saw."""

    WINDOW = 60.0

    def __init__(self) -> None:
        self.samples: collections.deque[tuple[float, int]] = collections.deque()

    def observe(self, now: float, total: int) -> float | None:
        """Record ``total`` at ``now``; the rate since the oldest sample in the window, None
        until two samples a second apart exist."""
        samples = self.samples
        samples.append((now, total))
        while len(samples) > 2 and now - samples[1][0] >= self.WINDOW:
            samples.popleft()
        first_time, first_total = samples[0]
        if now - first_time < 1.0 or total < first_total:
            return None
        return (total - first_total) / (now - first_time)


@dataclass(slots=True)
class ApiState:
    """What the API reads and drives."""

    settings: Settings
    reconciler: Reconciler
    source: MergedSource
    wakeup: Wakeup
    token: str = ""
    metrics: Callable[[], bytes] | None = None
    serials: Callable[[], Mapping[str, int]] = dict
    dns: Callable[[], tuple[list[str], int]] | None = None
    """The DNS server's listeners (``ADDR:PORT``) and the queries it has answered."""
    rate: QueryRate = dataclasses.field(default_factory=QueryRate)
    started: float = dataclasses.field(default_factory=time.time)
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    reports: dict[int, tuple[PassReport, dict[str, Any], dict[str, Any]]] = dataclasses.field(
        default_factory=dict
    )
    """Per pass number: the report, its ``changes`` counts and its ``recent`` entry (a
    report never changes once made; counting a 10,000-name pass's plan takes tens of ms)."""

    @property
    def directory(self) -> Path:
        return self.settings.definitions / API_DIRECTORY

    def path(self, service_id: str) -> Path:
        return self.directory / f"servicerecord-{service_id}.yaml"

    def label(self, service_id: str) -> str:
        return f"{API_DIRECTORY}/servicerecord-{service_id}.yaml"


# --- reading ------------------------------------------------------------------------------


def _service_id(owner: Owner) -> str:
    """The id under which a record of another source is listed: a ServiceRecord's object
    name, a container's short id, else ``<source>-<object>`` made URL-safe."""
    kind, _, name = owner.object.partition("/")
    if owner.source == "file" and kind == "servicerecord":
        return name
    if owner.source == "docker" and owner.location.startswith("container "):
        return owner.location.split()[1]
    return re.sub(r"[^a-z0-9.-]+", "-", f"{owner.source}-{owner.object}".lower()).strip("-")


def _is_api(owner: Owner) -> bool:
    return owner.source == "file" and owner.location.startswith(f"{API_DIRECTORY}/")


def other_services(state: ApiState) -> dict[str, Service]:
    """The services of every source but the API, from the last pass's snapshots."""
    found: dict[str, Service] = {}
    for view in list(state.source.snapshots.values()):
        for record in view.records:
            if _is_api(record.owner):
                continue
            service_id = _service_id(record.owner)
            service = found.get(service_id)
            if service is None:
                found[service_id] = Service(service_id, record.owner, [record])
            elif record not in service.records:
                service.records.append(record)
    return found


def _load_document(state: ApiState, service_id: str) -> Document | None:
    path = state.path(service_id)
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
        return from_document(body, state.label(service_id), 0, state.settings.name_defaults())
    except (OSError, yaml.YAMLError, DefinitionProblems):
        return None


def api_services(state: ApiState) -> dict[str, Service]:
    """The services stored through the API, read from their files."""
    found: dict[str, Service] = {}
    if not state.directory.is_dir():
        return found
    for path in sorted(state.directory.glob("servicerecord-*.yaml")):
        service_id = path.name[len("servicerecord-") : -len(".yaml")]
        document = _load_document(state, service_id)
        if document is not None and document.records:
            owner = Owner("api", f"servicerecord/{service_id}", state.label(service_id))
            found[service_id] = Service(
                service_id, owner, list(document.records), dict(document.body)
            )
    return found


def all_services(state: ApiState) -> dict[str, Service]:
    services = other_services(state)
    services.update(api_services(state))
    return dict(sorted(services.items()))


def find_service(state: ApiState, service_id: str) -> Service | None:
    """The service ``service_id``; a container also by a prefix of its id, or by its full
    64-digit id (dnsdock's ids), as dnsdock's getExpandedID."""
    document = _load_document(state, service_id) if _valid_id(service_id) else None
    if document is not None:
        owner = Owner("api", f"servicerecord/{service_id}", state.label(service_id))
        return Service(service_id, owner, list(document.records), dict(document.body))
    services = other_services(state)
    if service_id in services:
        return services[service_id]
    if _HEX.match(service_id):
        for key, service in services.items():
            if service.owner.source == "docker" and (
                key.startswith(service_id) or service_id.startswith(key)
            ):
                return service
    return None


def _valid_id(service_id: str) -> bool:
    return bool(re.match(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", service_id))


def _relative(name: str, origin: str) -> str:
    if name == origin:
        return ""
    if name.endswith("." + origin):
        return name[: -len(origin) - 1]
    return name.rstrip(".")


def _owner_json(owner: Owner) -> dict[str, str]:
    return {"source": owner.source, "object": owner.object, "location": owner.location}


ConflictIndex = dict[tuple[str, str], list[dict[str, Any]]]


def conflict_index(state: ApiState) -> ConflictIndex:
    """The name conflicts the last pass settled, by the owner that lost: each name it lost,
    why, and the owner that kept it (None when nothing could be placed there). Keyed by
    (source, object), and by ("", file) for the definitions the API stores."""
    found: ConflictIndex = {}
    for conflict in state.reconciler.conflicts:
        dropped = conflict.dropped
        entry = {
            "name": conflict.name,
            "reason": conflict.reason,
            "kept": None if conflict.kept is None else _owner_json(conflict.kept),
        }
        found.setdefault((dropped.source, dropped.object), []).append(entry)
        if dropped.source == "file":
            found.setdefault(("", dropped.location.partition("#")[0]), []).append(entry)
    return found


def _conflicts_of(state: ApiState, service: Service, index: ConflictIndex) -> list[dict[str, Any]]:
    if service.document is not None:
        return index.get(("", state.label(service.id)), [])
    return index.get((service.owner.source, service.owner.object), [])


def service_json(
    state: ApiState, service: Service, conflicts: ConflictIndex | None = None
) -> dict[str, Any]:
    """dnsdock's service shape (``Name``, ``Image``, ``IPs``, ``TTL``, ``Aliases``) plus
    dockzone's ``id``, ``fqdn``, ``names``, ``owner``, ``readonly``, ``conflicts`` (the
    names it lost to another owner, see ``conflict_index``) and ``spec``."""
    defaults = state.settings.name_defaults()
    first = service.records[0]
    ips: list[str] = []
    aliases: list[str] = []
    names_: list[str] = []
    for record in service.records:
        if record.name not in names_:
            names_.append(record.name)
        if isinstance(record, ServiceRecord):
            if names.parse_ip(record.host) is not None and record.host not in ips:
                ips.append(record.host)
            aliases.extend(a.rstrip(".") for a in record.aliases if a.rstrip(".") not in aliases)
        elif record.rdtype in ("A", "AAAA"):
            ips.extend(rdata for rdata in record.rdatas if rdata not in ips)
    name = _relative(first.name, defaults.origin(first.zone))
    image = ""
    metadata = (service.document or {}).get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if NAME_ANNOTATION in annotations:
        name = str(annotations[NAME_ANNOTATION])
        image = str(annotations.get(IMAGE_ANNOTATION, ""))
    body: dict[str, Any] = {
        "Name": name,
        "Image": image,
        "IPs": ips,
        "TTL": -1 if first.ttl is None else first.ttl,
        "Aliases": aliases,
        "id": service.id,
        "fqdn": first.name,
        "names": names_,
        "owner": _owner_json(service.owner),
        "readonly": service.readonly,
        "conflicts": _conflicts_of(
            state, service, conflict_index(state) if conflicts is None else conflicts
        ),
    }
    if service.document is not None:
        body["spec"] = service.document.get("spec") or {}
    return body


# --- writing ------------------------------------------------------------------------------


def _lower_keys(body: Mapping[str, Any]) -> dict[str, Any]:
    """A dnsdock body with lower-case keys (Go's JSON decoding ignores case); output-only
    keys dropped."""
    result: dict[str, Any] = {}
    for key, value in body.items():
        lower = key.lower()
        if lower in OUTPUT_KEYS:
            continue
        if lower not in DNSDOCK_KEYS:
            raise ApiError(
                400,
                f"unknown field in a dnsdock service (known: {', '.join(DNSDOCK_KEYS)}); "
                "a ServiceRecord spec has no image or ip",
                key,
            )
        if lower in ("ips", "ip") and ("ip" in result or "ips" in result):
            raise ApiError(400, "the address is given twice", key)
        if lower in ("alias", "aliases") and ("alias" in result or "aliases" in result):
            raise ApiError(400, "the aliases are given twice", key)
        if lower in result:
            raise ApiError(400, f"{lower} is given twice (keys are case-insensitive)", key)
        result["aliases" if lower == "alias" else "ip" if lower == "ips" else lower] = value
    return result


def is_dnsdock(body: Mapping[str, Any]) -> bool:
    """A dnsdock service (``image``, ``ip`` or ``IPs``, any case), not a ServiceRecord spec."""
    return any(key.lower() in ("image", "ip", "ips") for key in body)


def _text_field(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(400, "must be a string", key)
    return value.strip().lower()


def apply_dnsdock(
    spec: dict[str, Any], annotations: dict[str, Any], patch: Mapping[str, Any]
) -> None:
    """Apply dnsdock fields to a ServiceRecord spec and its annotations, in place."""
    if "name" in patch or "image" in patch:
        name = (
            _text_field(patch, "name")
            if "name" in patch
            else str(annotations.get(NAME_ANNOTATION, spec.get("name", "")))
        )
        image = (
            _text_field(patch, "image")
            if "image" in patch
            else str(annotations.get(IMAGE_ANNOTATION, ""))
        )
        if not name:
            raise ApiError(400, "is required", "name")
        spec["name"] = ".".join(part.strip(".") for part in (name, image) if part)
        annotations[NAME_ANNOTATION] = name
        annotations[IMAGE_ANNOTATION] = image
    if "ip" in patch:
        address = patch["ip"]
        if isinstance(address, list):
            if len(address) != 1:
                raise ApiError(
                    400,
                    "one address per service (dnsdock answered with the first only); "
                    "use one id per address",
                    "ip",
                )
            address = address[0]
        if not isinstance(address, str) or names.parse_ip(address) is None:
            problem = isinstance(address, str) and names.address_typo(address, host_name=False)
            raise ApiError(
                400, problem or f"must be an IPv4 or IPv6 address, not {address!r}", "ip"
            )
        spec["host"] = address
    if "ttl" in patch:
        ttl = patch["ttl"]
        if ttl is None or ttl == -1:
            spec.pop("ttl", None)
        else:
            spec["ttl"] = ttl
    if "aliases" in patch:
        aliases = patch["aliases"]
        if isinstance(aliases, str):
            aliases = [a.strip() for a in aliases.split(",") if a.strip()]
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ApiError(400, "must be a list of names", "aliases")
        if aliases:  # dnsdock aliases are full names: db.docker means db.docker.
            spec["aliases"] = [a if a.endswith(".") else a + "." for a in aliases]
        else:
            spec.pop("aliases", None)


def merge_spec(spec: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """JSON merge patch (RFC 7396) of a spec: a null value removes the field."""
    for key, value in patch.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value


def make_document(
    service_id: str, spec: Mapping[str, Any], annotations: Mapping[str, Any]
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": service_id}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": SERVICE_API,
        "kind": "ServiceRecord",
        "metadata": metadata,
        "spec": dict(spec),
    }


def validate(state: ApiState, body: Mapping[str, Any], *, dnsdock: bool) -> None:
    """The same checks as a definitions file; 400 naming the (first) field."""
    try:
        from_document(
            body, state.label(body["metadata"]["name"]), 0, state.settings.name_defaults()
        )
    except DefinitionProblems as problems:
        errors: list[DefinitionError] = problems.errors
        fields = [_api_field(error.field, dnsdock=dnsdock) for error in errors]
        raise ApiError(
            400,
            errors[0].problem,
            fields[0],
            errors=[
                {"field": field, "error": error.problem}
                for field, error in zip(fields, errors, strict=True)
            ],
        ) from None


def _api_field(field: str, *, dnsdock: bool) -> str:
    if field == "metadata.name":
        return "id"
    if not dnsdock:
        return field
    if field.startswith("spec.aliases"):
        return field[len("spec.") :]
    return _DNSDOCK_FIELDS.get(field, field)


# --- handlers -----------------------------------------------------------------------------

STATE = web.AppKey("state", ApiState)


def _state(request: web.Request) -> ApiState:
    return request.app[STATE]


async def read_json(request: web.Request) -> Any:
    """The request body as JSON: 415 for a non-JSON content type, 413 over ``MAX_BODY``,
    400 when it does not parse."""
    if request.content_type.lower() not in JSON_TYPES:
        raise ApiError(415, f"the body must be JSON, not {request.content_type}")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
    raw = await request.read()  # aiohttp's client_max_size raises 413 beyond MAX_BODY
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


def _json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def token_matches(given: str, token: str) -> bool:
    """Whether ``given`` is ``token``, compared in constant time."""
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


def bearer(request: web.Request) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; empty when none."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given if scheme.lower() == "bearer" else ""


def authorize(request: web.Request) -> None:
    """Mutations need ``Authorization: Bearer <token>`` when a token is configured."""
    token = _state(request).token
    if token and not token_matches(bearer(request), token):
        raise ApiError(401, "this API needs Authorization: Bearer <token> to change records")


def _owned_elsewhere(service: Service) -> ApiError:
    owner = service.owner
    where = owner.location or owner.object
    return ApiError(
        409,
        f"service {service.id} belongs to the {owner.source} source ({where}); "
        "it is read-only through the API",
        "id",
        owner=_owner_json(owner),
    )


def _check_id(service_id: str) -> None:
    if not _valid_id(service_id):
        raise ApiError(
            400,
            f"{service_id!r} must be lowercase letters, digits, '-' and '.', at most 253 "
            "characters (it names the definition)",
            "id",
        )


def _check_directory(state: ApiState) -> None:
    if state.settings.definitions.exists() and not state.settings.definitions.is_dir():
        raise ApiError(
            409,
            f"--definitions {state.settings.definitions} is a file; the API stores its records "
            "in a definitions directory",
        )


async def _converge(state: ApiState, reason: str, path: Path | None = None) -> PassReport | None:
    """Tell the sources ``path`` changed (so the next pass reads it without waiting for
    the file watcher), wake the loop and wait for a pass that started after now; None on
    timeout."""
    if path is not None:
        for source in state.source.sources:
            touch = getattr(source, "touch", None)
            if touch is not None:
                touch(path)
    number = state.reconciler.started + 1
    state.wakeup.set(reason)
    try:
        return await asyncio.wait_for(state.reconciler.wait_for_pass(number), APPLY_TIMEOUT)
    except TimeoutError:
        return None


async def list_services(request: web.Request) -> web.Response:
    state = _state(request)
    services = await asyncio.to_thread(all_services, state)
    conflicts = conflict_index(state)
    return web.json_response(
        {key: service_json(state, s, conflicts) for key, s in services.items()}
    )


async def get_service(request: web.Request) -> web.Response:
    state = _state(request)
    service_id = request.match_info["id"]
    service = await asyncio.to_thread(find_service, state, service_id)
    if service is None:
        raise ApiError(404, f"no service {service_id}", "id")
    return web.json_response(service_json(state, service))


async def put_service(request: web.Request) -> web.Response:
    authorize(request)
    state = _state(request)
    service_id = request.match_info["id"]
    _check_id(service_id)
    body = _json_object(await read_json(request))
    dnsdock = is_dnsdock(body)
    spec: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    if dnsdock:
        fields = _lower_keys(body)
        for key in ("name", "ip"):
            if key not in fields:
                raise ApiError(400, "is required", key)
        apply_dnsdock(spec, annotations, fields)
    else:
        spec = dict(body)
    return await _store(request, state, service_id, make_document(service_id, spec, annotations))


async def patch_service(request: web.Request) -> web.Response:
    authorize(request)
    state = _state(request)
    service_id = request.match_info["id"]
    body = _json_object(await read_json(request))
    current = await asyncio.to_thread(find_service, state, service_id)
    if current is None:
        raise ApiError(404, f"no service {service_id}", "id")
    if current.document is None:
        raise _owned_elsewhere(current)
    spec = dict(current.document.get("spec") or {})
    metadata = current.document.get("metadata") or {}
    annotations = dict(metadata.get("annotations") or {})
    stored_dnsdock = NAME_ANNOTATION in annotations
    keys = {key.lower() for key in body} - set(OUTPUT_KEYS)
    dnsdock = is_dnsdock(body) or (stored_dnsdock and keys <= set(DNSDOCK_KEYS))
    if dnsdock:
        apply_dnsdock(spec, annotations, _lower_keys(body))
    else:
        merge_spec(spec, body)
        if "name" in body:  # no longer <name>.<image>
            annotations.pop(NAME_ANNOTATION, None)
            annotations.pop(IMAGE_ANNOTATION, None)
    return await _store(
        request, state, service_id, make_document(service_id, spec, annotations), dnsdock
    )


async def _store(
    request: web.Request,
    state: ApiState,
    service_id: str,
    document: dict[str, Any],
    dnsdock: bool | None = None,
) -> web.Response:
    """Validate, write the definition atomically, wait for the pass that applies it."""
    if dnsdock is None:
        dnsdock = NAME_ANNOTATION in document["metadata"].get("annotations", {})
    _check_directory(state)
    async with state.lock:
        existing = await asyncio.to_thread(find_service, state, service_id)
        if existing is not None and existing.document is None:
            raise _owned_elsewhere(existing)
        validate(state, document, dnsdock=dnsdock)
        path = state.path(service_id)
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        await asyncio.to_thread(atomic_write, path, text)
        log.info("API: %s %s", "replaced" if existing else "created", state.label(service_id))
        report = await _converge(state, "api", path)
    service = await asyncio.to_thread(find_service, state, service_id)
    assert service is not None
    status = 202 if report is None else (200 if existing else 201)
    return web.json_response(service_json(state, service), status=status)


async def delete_service(request: web.Request) -> web.Response:
    authorize(request)
    state = _state(request)
    service_id = request.match_info["id"]
    async with state.lock:
        service = await asyncio.to_thread(find_service, state, service_id)
        path = state.path(service_id)
        if service is None and not (_valid_id(service_id) and path.exists()):
            raise ApiError(404, f"no service {service_id}", "id")
        if service is not None and service.document is None:
            raise _owned_elsewhere(service)
        await asyncio.to_thread(_unlink, path)
        log.info("API: deleted %s", state.label(service_id))
        report = await _converge(state, "api", path)
    return web.json_response(
        {"id": service_id, "deleted": True}, status=202 if report is None else 200
    )


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_directory(path.parent)


async def put_ttl(request: web.Request) -> web.Response:
    """dnsdock's ``PUT /set/ttl``: a plain number, the TTL of records without their own."""
    authorize(request)
    state = _state(request)
    value = await read_json(request)
    if isinstance(value, dict) and set(value) == {"ttl"}:
        value = value["ttl"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
        raise ApiError(400, f"must be a number of seconds 0..2147483647, not {value!r}", "ttl")
    _check_directory(state)
    async with state.lock:
        path = api_settings_path(state.settings.definitions)
        text = json.dumps({"ttl": value}) + "\n"
        await asyncio.to_thread(atomic_write, path, text)
        reconciler = state.reconciler
        reconciler.settings = dataclasses.replace(reconciler.settings, default_ttl=value)
        log.info("API: default TTL set to %d", value)
        report = await _converge(state, "api ttl")
    return web.json_response({"ttl": value}, status=202 if report is None else 200)


async def post_confirm(request: web.Request) -> web.Response:
    """``POST /confirm[/{source}]``: let the reads the deletion budget holds back (of one
    source, or all) through, with a full pass; 404 when none is held."""
    authorize(request)
    state = _state(request)
    name = request.match_info.get("source", "")
    async with state.lock:
        held = {source: str(hold) for source, hold in state.source.held().items()}
        confirmed = state.source.confirm(name)
        if not confirmed:
            where = f" for source {name!r}" if name else ""
            raise ApiError(404, f"no read is held back{where}", "source" if name else "")
        log.warning("API: held-back deletions of %s confirmed", ", ".join(confirmed))
        report = await _converge(state, "confirm")
    body = {"confirmed": {source: held[source] for source in confirmed}}
    return web.json_response(body, status=202 if report is None else 200)


async def get_ttl(request: web.Request) -> web.Response:
    return web.json_response({"ttl": _state(request).reconciler.settings.default_ttl})


def _time(seconds: float) -> str | None:
    if not seconds:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_json(state: ApiState) -> dict[str, Any]:
    """``/status``: sources, the last reconcile pass, zones."""
    reconciler = state.reconciler
    report = reconciler.last_report
    last: dict[str, Any] | None = None
    if report is not None:
        last = {
            "time": _time(report.finished),
            "seconds": round(report.seconds, 6),
            "changed": report.changed,
            "changes": _report_json(state, report)[0],
            "errors": list(report.errors),
            "problems": report.problems,
            "conflicts": report.conflicts,
            "stale": report.stale,
        }
    described = {source.name: details(source) for source in state.source.sources}
    sources = {
        name: {
            "details": described.get(name, {}),
            "records": len(snapshot.records),
            "problems": list(snapshot.problems),
            "stale": snapshot.stale,
            "last_read": _time(report.finished) if report else None,
            "held": None
            if snapshot.held is None
            else {
                "removed": snapshot.held.removed,
                "records": snapshot.held.records,
                "reason": snapshot.held.reason,
                "since": _time(snapshot.held.since),
            },
        }
        for name, snapshot in list(state.source.snapshots.items())
    }
    serials = state.serials()
    zones = {
        origin: {"serial": serials.get(origin), "records": zone.record_count}
        for origin, zone in sorted(reconciler.zones.items())
    }
    failing = reconciler.failing
    conflicts = reconciler.conflicts
    dns: dict[str, Any] | None = None
    if state.dns is not None:
        listeners, queries = state.dns()
        rate = state.rate.observe(time.monotonic(), queries)
        dns = {
            "listeners": listeners,
            "queries": queries,
            "rate": None if rate is None else round(rate, 1),
        }
    return {
        "version": __version__,
        "started": _time(state.started),
        "ready": reconciler.passes > 0,
        "passes": reconciler.passes,
        "default_ttl": reconciler.settings.default_ttl,
        "last_reconcile": last,
        "recent": [_report_json(state, report)[1] for report in reversed(reconciler.recent)],
        "sources": sources,
        "sinks": {sink.name: {"error": failing.get(sink.name)} for sink in reconciler.sinks},
        "docker": state.settings.docker,
        "dns": dns,
        "conflicts": [str(conflict) for conflict in conflicts[:MAX_CONFLICTS]],
        "zones": zones,
    }


def _report_json(state: ApiState, report: PassReport) -> tuple[dict[str, Any], dict[str, Any]]:
    """A report's ``changes`` counts per sink and its ``recent`` entry, made once."""
    kept = state.reports.get(report.number)
    if kept is not None and kept[0] is report:
        return kept[1], kept[2]
    changes = {
        sink: {
            "zones": len(plan.zones),
            **{
                what: sum(zone.count(what) for zone in plan.zones)
                for what in ("added", "removed", "changed")
            },
        }
        for sink, plan in report.changes.items()
    }
    made = (report, changes, pass_json(report))
    keep = {r.number for r in state.reconciler.recent}
    for number in [n for n in state.reports if n not in keep]:
        del state.reports[number]
    state.reports[report.number] = made
    return made[1], made[2]


def pass_json(report: PassReport) -> dict[str, Any]:
    """One pass for ``/status``'s ``recent``: when, why, how long, RRset counts and the
    first ``PASS_LINES`` plan lines (``+``/``-``/``~``) of the first sink it changed."""
    changes = next((c for c in report.changes.values() if not c.is_empty), None)
    lines: list[str] = []
    counts = dict.fromkeys(("added", "removed", "changed"), 0)
    if changes is not None:
        for zone in changes.zones:
            for what in counts:
                counts[what] += zone.count(what)
            for change in zone.rrsets:
                if len(lines) >= PASS_LINES:
                    break
                lines.extend(change.lines()[: PASS_LINES - len(lines)])
    return {
        "number": report.number,
        "time": _time(report.finished),
        "seconds": round(report.seconds, 6),
        "reasons": list(report.reasons) or (["start"] if report.number == 1 else []),
        "full": report.full,
        "changed": report.changed,
        "rrsets": counts,
        "lines": lines,
        "errors": list(report.errors),
    }


async def get_status(request: web.Request) -> web.Response:
    state = _state(request)
    return web.json_response(await asyncio.to_thread(status_json, state))


async def get_zone(request: web.Request) -> web.Response:
    state = _state(request)
    text = request.match_info["zone"]
    if not text or names.name_problem(text.rstrip(".") or "x"):
        raise ApiError(400, f"{text!r} is not a zone name", "zone")
    origin = names.fqdn(text.lower())
    path = state.settings.zones / zone_file_name(origin)
    try:
        body = await asyncio.to_thread(path.read_text, encoding="utf-8")
    except FileNotFoundError:
        raise ApiError(404, f"no zone {origin}", "zone") from None
    return web.Response(text=body, content_type="text/plain")


async def healthz(request: web.Request) -> web.Response:
    """200 while the loop runs: its last pass is recent (a pass runs every ``--resync``)."""
    state = _state(request)
    report = state.reconciler.last_report
    limit = 3 * state.settings.resync + 60
    if report is not None and time.time() - report.finished > limit:
        return web.json_response(
            {"status": "stalled", "error": f"no reconcile pass for over {limit:.0f} seconds"},
            status=503,
        )
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """503 until the first pass has been applied."""
    if _state(request).reconciler.passes == 0:
        return web.json_response({"status": "starting", "error": "no pass yet"}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    render = _state(request).metrics
    if render is None:
        raise ApiError(404, "metrics are not enabled")
    body = await asyncio.to_thread(render)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error as JSON: ``{"error": "...", "field": "..."}``."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason
        if exc.status == 413:
            message = f"the body is larger than {MAX_BODY} bytes"
        body = {"error": message}
        return web.json_response(body, status=exc.status, headers=_allow(exc))


def _allow(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None


def make_app(state: ApiState) -> web.Application:
    """The aiohttp application over ``state``."""
    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    app[STATE] = state
    app.router.add_get("/services", list_services)
    app.router.add_get("/services/{id}", get_service)
    app.router.add_put("/services/{id}", put_service)
    app.router.add_patch("/services/{id}", patch_service)
    app.router.add_delete("/services/{id}", delete_service)
    app.router.add_put("/set/ttl", put_ttl)
    app.router.add_get("/set/ttl", get_ttl)
    app.router.add_post("/confirm", post_confirm)
    app.router.add_post("/confirm/{source}", post_confirm)
    app.router.add_get("/status", get_status)
    app.router.add_get("/zones/{zone}", get_zone)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP address) is a loopback address; 0.0.0.0 and :: are not."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` (``""``: every address) in the running loop. Raises
    OSError."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host or None, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
