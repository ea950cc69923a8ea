"""Read and validate definitions: ServiceRecord and ExternalDNS DNSEndpoint YAML documents.

A definitions file may hold several YAML documents; a definitions directory is read
recursively (``*.yaml`` and ``*.yml``, hidden files and directories skipped, in sorted
order). Each document is validated on its own: every problem in it is collected as a
``DefinitionError`` naming file, document index and field, the document is set aside, and
all other documents still apply. Called by the CLI (``render``, ``diff``, ``apply``) and,
later, by the files source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.core import names, rdata
from reconciler.core.model import Endpoint, Owner, Record, ServiceRecord
from reconciler.errors import DefinitionError

SERVICE_API = "dockzone.dev/v1alpha1"
ENDPOINT_API = "externaldns.k8s.io/v1alpha1"
ZONE_ANNOTATION = "dockzone.dev/zone"
"""DNSEndpoint metadata annotation naming the zone its names belong to."""

ENDPOINT_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SRV", "TXT")

SERVICE_FIELDS = (
    "name",
    "zone",
    "host",
    "port",
    "protocol",
    "priority",
    "weight",
    "ttl",
    "text",
    "mail",
    "targetStrip",
    "group",
    "aliases",
)
ENDPOINT_FIELDS = (
    "dnsName",
    "recordType",
    "targets",
    "recordTTL",
    "labels",
    "providerSpecific",
    "setIdentifier",
)
MAX_TTL = 2**31 - 1  # RFC 2181 section 8
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class NameDefaults:
    """How relative names resolve: against ``<environment>.<zone>``, where the zone is
    ``spec.zone`` or the first of ``domains``."""

    domains: tuple[str, ...] = ("docker.",)
    environment: str = ""

    def origin(self, zone: str) -> str:
        return f"{self.environment}.{zone}" if self.environment else zone


@dataclass(frozen=True, slots=True)
class Document:
    """One valid document: its identity (``kind/name``), where it was read, its records."""

    kind: str
    name: str
    location: str
    records: tuple[Record, ...]
    body: Any = field(compare=False, repr=False)

    @property
    def object(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True, slots=True)
class Definitions:
    """Everything read from a set of files: valid documents and the problems found."""

    documents: tuple[Document, ...] = ()
    errors: tuple[DefinitionError, ...] = ()

    @property
    def records(self) -> tuple[Record, ...]:
        return tuple(record for document in self.documents for record in document.records)


def load_definitions(
    path: Path, defaults: NameDefaults, *, relative_to: Path | None = None
) -> Definitions:
    """Read a file or a directory tree of definitions.

    File names in errors and owners are relative to ``relative_to`` (default: ``path``
    itself when it is a directory). A missing path is an error, not an empty set.
    """
    if not path.exists():
        return Definitions(
            errors=(DefinitionError(str(path), None, "", "no such file or directory"),)
        )
    base = relative_to if relative_to is not None else (path if path.is_dir() else path.parent)
    files = definition_files(path)
    documents: list[Document] = []
    errors: list[DefinitionError] = []
    for file in files:
        found = load_file(file, _label(file, base), defaults)
        documents.extend(found.documents)
        errors.extend(found.errors)
    return merge_documents(documents, errors)


def load_file(file: Path, label: str, defaults: NameDefaults) -> Definitions:
    """The definitions in one file; ``label`` names it in errors and owners."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Definitions(errors=(DefinitionError(label, None, "", f"cannot read: {exc}"),))
    return parse_definitions(text, label, defaults)


def definition_files(path: Path) -> list[Path]:
    """The definitions files at ``path``: the file itself, or every ``*.yaml``/``*.yml``
    below the directory, hidden ones skipped, sorted."""
    return sorted(_yaml_files(path)) if path.is_dir() else [path]


def _yaml_files(directory: Path) -> Iterable[Path]:
    for entry in directory.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _yaml_files(entry)
        elif entry.suffix in (".yaml", ".yml") and entry.is_file():
            yield entry


def _label(file: Path, base: Path) -> str:
    try:
        return str(file.relative_to(base))
    except ValueError:
        return str(file)


def parse_definitions(text: str, label: str, defaults: NameDefaults) -> Definitions:
    """Validate every YAML document in ``text``; ``label`` names the file in errors.

    A YAML syntax error ends the file: the documents before it still count.
    """
    documents: list[Document] = []
    errors: list[DefinitionError] = []
    index = 0
    try:
        for index, body in enumerate(yaml.safe_load_all(text)):
            if body is None:
                continue
            try:
                documents.append(from_document(body, label, index, defaults))
            except DefinitionProblems as problems:
                errors.extend(problems.errors)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        errors.append(DefinitionError(label, None, "", f"YAML syntax error at {where}{problem}"))
    return merge_documents(documents, errors)


def merge_documents(documents: list[Document], errors: list[DefinitionError]) -> Definitions:
    """Two documents of one kind and name are one object defined twice: the first read
    (sorted file order, then document order) is kept."""
    seen: dict[str, Document] = {}
    kept: list[Document] = []
    problems = list(errors)
    for document in documents:
        first = seen.get(document.object)
        if first is not None:
            path, _, index = document.location.rpartition("#")
            problems.append(
                DefinitionError(
                    path,
                    int(index),
                    "metadata.name",
                    f"{document.kind} {document.name!r} is already defined at {first.location}",
                )
            )
            continue
        seen[document.object] = document
        kept.append(document)
    return Definitions(tuple(kept), tuple(problems))


class DefinitionProblems(Exception):
    """All problems of one document."""

    def __init__(self, errors: list[DefinitionError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


class _Checker:
    """Collects the problems of one document while reading its fields."""

    def __init__(self, path: str, index: int) -> None:
        self.path = path
        self.index = index
        self.errors: list[DefinitionError] = []

    def fail(self, field: str, problem: str) -> None:
        self.errors.append(DefinitionError(self.path, self.index, field, problem))

    def mapping(self, value: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(field, f"must be a mapping, not {_kind(value)}")
            return {}
        return value

    def unknown(self, body: Mapping[str, Any], allowed: Iterable[str], prefix: str) -> None:
        allowed = set(allowed)
        for key in body:
            if key not in allowed:
                self.fail(f"{prefix}.{key}", f"unknown field (known: {', '.join(sorted(allowed))})")

    def string(
        self, body: Mapping[str, Any], key: str, field: str, *, required: bool = False
    ) -> str:
        value = body.get(key)
        if value is None:
            if required:
                self.fail(field, "is required")
            return ""
        if not isinstance(value, str):
            self.fail(field, f"must be a string, not {_kind(value)}")
            return ""
        if required and not value:
            self.fail(field, "must not be empty")
        return value

    def integer(
        self, body: Mapping[str, Any], key: str, field: str, low: int, high: int
    ) -> int | None:
        value = body.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(field, f"must be an integer {low}..{high}, not {_kind(value)}")
            return None
        if not low <= value <= high:
            self.fail(field, f"must be {low}..{high}, not {value}")
            return None
        return value

    def name(self, text: str, field: str, origin: str, *, wildcards: bool = False) -> str:
        problem = names.name_problem(text, wildcards=wildcards)
        if problem:
            self.fail(field, problem)
            return ""
        return names.absolute(text, origin)

    def done(self) -> None:
        if self.errors:
            raise DefinitionProblems(self.errors)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def from_document(body: Any, path: str, index: int, defaults: NameDefaults) -> Document:
    """Validate one parsed YAML document. Raises ``DefinitionProblems`` with every problem."""
    check = _Checker(path, index)
    if not isinstance(body, Mapping):
        check.fail(
            "",
            "a definition must be a mapping with apiVersion, kind, metadata and spec, "
            f"not {_kind(body)}",
        )
        check.done()
    kind = body.get("kind")
    api = body.get("apiVersion")
    expected = {"ServiceRecord": SERVICE_API, "DNSEndpoint": ENDPOINT_API}
    if kind not in expected:
        check.fail("kind", f"must be ServiceRecord or DNSEndpoint, not {kind!r}")
        check.done()
    assert isinstance(kind, str)
    if api != expected[kind]:
        check.fail("apiVersion", f"must be {expected[kind]!r} for {kind}, not {api!r}")
    check.unknown(body, ("apiVersion", "kind", "metadata", "spec", "status"), "")
    metadata = check.mapping(body.get("metadata"), "metadata")
    name = check.string(metadata, "name", "metadata.name", required=True)
    if name and not _K8S_NAME.match(name):
        check.fail(
            "metadata.name",
            f"{name!r} must be lowercase letters, digits, '-' and '.', at most 253 characters "
            "(a Kubernetes object name)",
        )
    spec = check.mapping(body.get("spec"), "spec")
    owner = Owner("file", f"{kind.lower()}/{name}", f"{path}#{index}")
    records: tuple[Record, ...]
    if kind == "ServiceRecord":
        records = (_service(spec, owner, check, defaults),)
    else:
        annotations = metadata.get("annotations") or {}
        zone_hint = annotations.get(ZONE_ANNOTATION) if isinstance(annotations, Mapping) else None
        records = tuple(_endpoints(spec, owner, check, defaults, zone_hint))
    check.done()
    return Document(kind, name, f"{path}#{index}", records, body)


def _zone(check: _Checker, spec: Mapping[str, Any], field: str) -> str:
    text = check.string(spec, "zone", field)
    if not text:
        return ""
    problem = names.name_problem(text)
    if problem:
        check.fail(field, problem)
        return ""
    return names.fqdn(text)


def _service(
    spec: Mapping[str, Any], owner: Owner, check: _Checker, defaults: NameDefaults
) -> ServiceRecord:
    check.unknown(spec, SERVICE_FIELDS, "spec")
    explicit_zone = _zone(check, spec, "spec.zone")
    zone = explicit_zone or defaults.domains[0]
    origin = defaults.origin(zone)
    raw_name = check.string(spec, "name", "spec.name", required=True)
    name = check.name(raw_name, "spec.name", origin) if raw_name else ""
    if name:
        if raw_name.endswith(".") and not explicit_zone:
            found = names.zone_for(name, defaults.domains)
            if found is None:
                check.fail(
                    "spec.name",
                    f"{name} is outside every configured domain "
                    f"({', '.join(defaults.domains)}); set spec.zone",
                )
            else:
                zone = found
        elif not names.is_subdomain(name, zone):
            check.fail("spec.name", f"{name} is outside its zone {zone}")

    host = check.string(spec, "host", "spec.host")
    if host:
        address = names.parse_ip(host)
        if address is not None:
            host = str(address)
        else:
            problem = names.name_problem(host)
            if problem:
                check.fail("spec.host", f"must be an IPv4/IPv6 address or a host name: {problem}")
            host = names.fqdn(host)

    port = check.integer(spec, "port", "spec.port", 1, 65535)
    protocol = check.string(spec, "protocol", "spec.protocol") or "tcp"
    if protocol not in ("tcp", "udp"):
        check.fail("spec.protocol", f"must be tcp or udp, not {protocol!r}")
    priority = check.integer(spec, "priority", "spec.priority", 0, 65535)
    weight = check.integer(spec, "weight", "spec.weight", 0, 65535)
    ttl = check.integer(spec, "ttl", "spec.ttl", 0, MAX_TTL)
    target_strip = check.integer(spec, "targetStrip", "spec.targetStrip", 0, 127)

    text: tuple[str, ...] = ()
    raw_text = spec.get("text")
    if isinstance(raw_text, str):
        text = (raw_text,)
    elif isinstance(raw_text, list) and all(isinstance(t, str) for t in raw_text):
        text = tuple(raw_text)
    elif raw_text is not None:
        check.fail("spec.text", f"must be a string or a list of strings, not {_kind(raw_text)}")

    mail = spec.get("mail", False)
    if not isinstance(mail, bool):
        check.fail("spec.mail", f"must be true or false, not {_kind(mail)}")
        mail = False
    group = check.string(spec, "group", "spec.group")
    if group and (len(group) > 63 or not group.isprintable()):
        check.fail("spec.group", "must be at most 63 printable characters")

    if not host and not text:
        check.fail("spec.host", "is required (unless spec.text is given)")
    if mail and not host:
        check.fail("spec.mail", "needs spec.host: the mail exchanger")
    if port is not None and not host:
        check.fail("spec.port", "needs spec.host: the SRV target")

    aliases: list[str] = []
    raw_aliases = spec.get("aliases")
    if raw_aliases is not None and not isinstance(raw_aliases, list):
        check.fail("spec.aliases", f"must be a list of names, not {_kind(raw_aliases)}")
    for position, alias in enumerate(raw_aliases or []):
        field = f"spec.aliases[{position}]"
        if not isinstance(alias, str):
            check.fail(field, f"must be a string, not {_kind(alias)}")
            continue
        absolute = check.name(alias, field, origin)
        if absolute and absolute == name:
            check.fail(field, f"{absolute} is the record's own name")
        elif absolute and absolute not in aliases:
            aliases.append(absolute)

    return ServiceRecord(
        name=name,
        zone=zone,
        owner=owner,
        host=host,
        port=port,
        protocol=protocol,
        priority=10 if priority is None else priority,
        weight=0 if weight is None else weight,
        ttl=ttl,
        text=text,
        mail=mail,
        target_strip=target_strip or 0,
        group=group,
        aliases=tuple(aliases),
    )


def _endpoints(
    spec: Mapping[str, Any],
    owner: Owner,
    check: _Checker,
    defaults: NameDefaults,
    zone_hint: Any,
) -> Iterable[Endpoint]:
    check.unknown(spec, ("endpoints",), "spec")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        check.fail("spec.endpoints", "must be a non-empty list of endpoints")
        return
    zones = defaults.domains
    if zone_hint is not None:
        if not isinstance(zone_hint, str) or names.name_problem(zone_hint):
            check.fail(f"metadata.annotations.{ZONE_ANNOTATION}", "must be a zone name")
        else:
            zones = (names.fqdn(zone_hint),)
    for position, item in enumerate(endpoints):
        prefix = f"spec.endpoints[{position}]"
        body = check.mapping(item, prefix)
        if not body:
            continue
        check.unknown(body, ENDPOINT_FIELDS, prefix)
        raw_name = check.string(body, "dnsName", f"{prefix}.dnsName", required=True)
        name = (
            check.name(names.fqdn(raw_name), f"{prefix}.dnsName", ".", wildcards=True)
            if raw_name
            else ""
        )
        zone = names.zone_for(name, zones) if name else None
        if name and zone is None:
            check.fail(
                f"{prefix}.dnsName",
                f"{name} is outside every configured domain ({', '.join(zones)}); "
                f"add it with --domain or the {ZONE_ANNOTATION} annotation",
            )
        rdtype = check.string(body, "recordType", f"{prefix}.recordType", required=True).upper()
        if rdtype and rdtype not in ENDPOINT_TYPES:
            check.fail(
                f"{prefix}.recordType",
                f"must be one of {', '.join(ENDPOINT_TYPES)}, not {rdtype!r}",
            )
            rdtype = ""
        ttl = check.integer(body, "recordTTL", f"{prefix}.recordTTL", 0, MAX_TTL)
        targets = body.get("targets")
        if not isinstance(targets, list) or not targets:
            check.fail(f"{prefix}.targets", "must be a non-empty list")
            continue
        texts: list[str] = []
        for number, target in enumerate(targets):
            field = f"{prefix}.targets[{number}]"
            if not isinstance(target, str):
                check.fail(field, f"must be a string, not {_kind(target)}")
            elif rdtype:
                try:
                    texts.append(rdata.from_target(rdtype, target))
                except ValueError as exc:
                    check.fail(field, str(exc))
        if rdtype == "CNAME" and len(targets) > 1:
            check.fail(f"{prefix}.targets", "a CNAME has exactly one target")
        if name and zone and rdtype and texts:
            yield Endpoint(name, zone, rdtype, tuple(sorted(set(texts))), owner, prefix, ttl)
