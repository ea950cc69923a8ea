"""Read and validate definitions: ServiceRecord and ExternalDNS DNSEndpoint YAML documents.

A definitions file may hold several YAML documents; a definitions directory is read
recursively (``*.yaml`` and ``*.yml``, hidden files and directories skipped, in sorted
order). Each document is validated on its own: every problem in it is collected as a
``DefinitionError`` naming file, document index and field, the document is set aside, and
all other documents still apply. Called by the CLI (``render``, ``diff``, ``apply``) and by
the files source (``sources/files.py``), which keeps what it parsed and re-reads only what
changed.

Speed (issue 10: 10,000 documents read in a fraction of a second): YAML is parsed by
libyaml, and ``load_documents`` builds the common documents (plain mappings, lists and
scalars) straight from libyaml's events; anything else (anchors, tags, merge keys) goes
through PyYAML's own ``CSafeLoader``, so the values are always the ones ``yaml.safe_load``
gives. ``from_document`` checks a ServiceRecord in one pass that only accepts documents
with nothing to report; any other document goes through the field-by-field checker, which
words every problem. ``tests/reconciler/test_definitions.py`` holds both to the same result.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from sys import intern
from typing import Any

import yaml
from yaml.events import (
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

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
    object: str = field(init=False, compare=False, repr=False)
    """``kind/name`` in lowercase kind: ``servicerecord/web`` (the object's identity)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "object", f"{self.kind.lower()}/{self.name}")


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
        text, _ = read_text(file)
    except (OSError, UnicodeDecodeError) as exc:
        return Definitions(errors=(cannot_read(label, exc),))
    return parse_definitions(text, label, defaults)


def read_text(file: str | Path) -> tuple[str, os.stat_result]:
    """The text of ``file`` (UTF-8, universal newlines, as ``Path.read_text`` reads it) and
    its ``stat`` from the same open file. Raises OSError or UnicodeDecodeError."""
    with open(file, "rb") as stream:
        stat = os.fstat(stream.fileno())
        text = stream.read().decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, stat


def cannot_read(label: str, exc: Exception) -> DefinitionError:
    return DefinitionError(label, None, "", f"cannot read: {exc}")


def definition_files(path: Path) -> list[Path]:
    """The definitions files at ``path``: the file itself, or every ``*.yaml``/``*.yml``
    below the directory, hidden ones skipped, sorted."""
    if not path.is_dir():
        return [path]
    return sorted(Path(file) for _, file in walk_definitions(str(path)))


def walk_definitions(directory: str, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(label, path)`` of every definitions file below ``directory``, unsorted: the path
    relative to ``directory`` (after ``prefix``) and the path to open."""
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if entry.is_dir():
                yield from walk_definitions(entry.path, f"{prefix}{name}{os.sep}")
            elif name.endswith(YAML_SUFFIXES) and entry.is_file():
                yield prefix + name, entry.path


YAML_SUFFIXES = (".yaml", ".yml")


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
    try:
        for index, body in enumerate(load_documents(text)):
            found = check_document(body, label, index, defaults)
            if isinstance(found, Document):
                documents.append(found)
            elif found is not None:
                errors.extend(found)
    except yaml.YAMLError as exc:
        errors.append(syntax_error(label, exc))
    return merge_documents(documents, errors)


def check_document(
    body: Any, label: str, index: int, defaults: NameDefaults
) -> Document | tuple[DefinitionError, ...] | None:
    """One parsed document: its ``Document``, its problems, or None for an empty one."""
    if body is None:
        return None
    try:
        return from_document(body, label, index, defaults)
    except DefinitionProblems as problems:
        return tuple(problems.errors)


def syntax_error(label: str, exc: yaml.YAMLError) -> DefinitionError:
    """A YAML syntax error as a problem of the file, with its line and column."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return DefinitionError(label, None, "", f"YAML syntax error at {where}{problem}")


# Reading YAML -------------------------------------------------------------------------------

LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = (
    yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
)
"""PyYAML's safe loader on libyaml when the wheel has it (about 10x the pure-Python one)."""


class _Unsupported(Exception):
    """A document ``_fast_documents`` leaves to PyYAML's constructor."""


_STR_TAG = "tag:yaml.org,2002:str"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("null", "bool", "int", "float", "timestamp")
)
_plain_values: dict[str, tuple[Any]] = {}
"""Plain scalars that may resolve to something other than a string (``8080``, ``true``,
``null``) -> their value; the same keys and numbers recur in every document."""
_PLAIN_CACHE_SIZE = 1 << 16


def load_documents(text: str) -> Iterator[Any]:
    """Every YAML document in ``text``, as ``yaml.safe_load_all`` reads it (libyaml's
    wording in syntax errors). Raises ``yaml.YAMLError`` after the documents before it."""
    if LOADER is yaml.SafeLoader:
        yield from yaml.load_all(text, Loader=LOADER)
        return
    done = 0
    try:
        for body in _fast_documents(text):
            yield body
            done += 1
    except _Unsupported:
        for index, body in enumerate(yaml.load_all(text, Loader=LOADER)):
            if index >= done:
                yield body


def _fast_documents(text: str) -> Iterator[Any]:
    """libyaml's events straight to dicts, lists and scalars, for documents without
    anchors, aliases, tags, merge keys or collections as keys (those raise
    ``_Unsupported``). Plain scalars resolve with the safe loader's own resolver and
    constructors, so every value is the one ``yaml.safe_load`` gives."""
    parser = yaml.CSafeLoader(text)
    get = parser.get_event
    typed = frozenset(parser.yaml_implicit_resolvers)
    if None in typed or parser.yaml_path_resolvers:
        raise _Unsupported
    plain = _plain_values

    def node(event: Any) -> Any:
        kind = type(event)
        if kind is ScalarEvent:
            if event.anchor is not None or event.tag is not None:
                raise _Unsupported
            value = event.value
            if event.implicit[0] and value[:1] in typed:
                hit = plain.get(value)
                return hit[0] if hit is not None else _plain_value(parser, value)
            return value
        if event.anchor is not None or event.tag is not None:
            raise _Unsupported
        if kind is MappingStartEvent:
            mapping: dict[Any, Any] = {}
            while True:
                event = get()
                kind = type(event)
                if kind is ScalarEvent and event.anchor is None and event.tag is None:
                    # A key is almost always a plain string: inline. Interned, the same
                    # keys of thousands of documents are one string each.
                    key = intern(event.value)
                    if event.implicit[0] and key[:1] in typed:
                        hit = plain.get(key)
                        key = hit[0] if hit is not None else _plain_value(parser, key)
                elif kind is MappingEndEvent:
                    return mapping
                else:
                    key = node(event)
                    if type(key) is dict or type(key) is list:
                        raise _Unsupported
                mapping[key] = node(get())
        if kind is SequenceStartEvent:
            sequence: list[Any] = []
            while True:
                event = get()
                if type(event) is SequenceEndEvent:
                    return sequence
                sequence.append(node(event))
        raise _Unsupported  # an alias

    try:
        get()  # StreamStartEvent
        while type(get()) is not StreamEndEvent:  # DocumentStartEvent
            body = node(get())
            get()  # DocumentEndEvent
            yield body
    finally:
        # ``node`` calls itself through its closure, and the parser holds bound methods of
        # itself: both are cycles that only the cyclic collector would free, one per file.
        node = None  # type: ignore[assignment]
        parser.dispose()


def _plain_value(loader: yaml.CSafeLoader, value: str) -> Any:
    # Resolver.resolve for a plain scalar, without wildcard or path resolvers (checked).
    tag = next(
        (
            tag
            for tag, pattern in loader.yaml_implicit_resolvers.get(value[:1], ())
            if pattern.match(value)
        ),
        _STR_TAG,
    )
    if tag == _STR_TAG:
        result: Any = value
    elif tag in _SCALAR_TAGS:
        result = loader.yaml_constructors[tag](loader, ScalarNode(tag, value))
    else:  # a merge key, '=' (tag:yaml.org,2002:value): the constructor decides
        raise _Unsupported
    if len(_plain_values) >= _PLAIN_CACHE_SIZE:
        _plain_values.clear()
    _plain_values[value] = (result,)
    return result


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
    found = _clean_service(body, path, index, defaults)
    if found is not None:
        return found
    return _checked_document(body, path, index, defaults)


_TOP_FIELDS = frozenset(("apiVersion", "kind", "metadata", "spec", "status"))
_SERVICE_FIELDS = frozenset(SERVICE_FIELDS)
_CLEAN_NAME = re.compile(
    r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?"
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _clean_name(text: str) -> bool:
    """True only for names ``names.name_problem`` accepts (ASCII letters, digits, '-' and
    '_', no wildcard label, within the length limits); False sends the name to it."""
    if not text.isascii():
        return False
    lower = text.lower()
    body = lower[:-1] if lower.endswith(".") else lower
    return len(body) <= 253 and "any" not in lower and _CLEAN_NAME.fullmatch(lower) is not None


def _small_int(value: Any, low: int, high: int) -> bool:
    return value is None or (type(value) is int and low <= value <= high)


def _clean_service(body: Any, path: str, index: int, defaults: NameDefaults) -> Document | None:
    """A ServiceRecord document with nothing to report, read in one pass; None for any
    other document (``_checked_document`` then reads it and words every problem).

    Every test here accepts a subset of what ``_checked_document`` accepts, and computes
    the same values: tests/reconciler/test_definitions.py compares the two.
    """
    if (
        type(body) is not dict
        or body.get("kind") != "ServiceRecord"
        or body.get("apiVersion") != SERVICE_API
        or not body.keys() <= _TOP_FIELDS
    ):
        return None
    metadata = body.get("metadata")
    spec = body.get("spec")
    if type(metadata) is not dict or type(spec) is not dict or not spec.keys() <= _SERVICE_FIELDS:
        return None
    object_name = metadata.get("name")
    if type(object_name) is not str or not object_name or not _K8S_NAME.match(object_name):
        return None
    get = spec.get

    explicit_zone = get("zone")
    if explicit_zone is None:
        explicit_zone = ""
    elif type(explicit_zone) is not str:
        return None
    elif explicit_zone:
        if not _clean_name(explicit_zone):
            return None
        explicit_zone = names.fqdn(explicit_zone)
        if explicit_zone not in defaults.domains:
            return None
    zone = explicit_zone or defaults.domains[0]
    origin = defaults.origin(zone)
    raw_name = get("name")
    if type(raw_name) is not str or not raw_name or not _clean_name(raw_name):
        return None
    name = names.absolute(raw_name, origin)
    if raw_name.endswith(".") and not explicit_zone:
        found = names.zone_for(name, defaults.domains)
        if found is None:
            return None
        zone = found
    elif not names.is_subdomain(name, zone):
        return None

    host = get("host")
    if host is None:
        host = ""
    elif type(host) is not str:
        return None
    elif host and not _CANONICAL_IPV4.fullmatch(host):
        address = names.parse_ip(host)
        if address is not None:
            host = str(address)
        elif _clean_name(host) and names.address_typo(host) is None:
            host = names.fqdn(host)
        else:
            return None

    port = get("port")
    priority = get("priority")
    weight = get("weight")
    ttl = get("ttl")
    target_strip = get("targetStrip")
    if not (
        _small_int(port, 1, 65535)
        and _small_int(priority, 0, 65535)
        and _small_int(weight, 0, 65535)
        and _small_int(ttl, 0, MAX_TTL)
        and _small_int(target_strip, 0, 127)
    ):
        return None
    protocol = get("protocol")
    if protocol is None or protocol == "":
        protocol = "tcp"
    elif protocol not in ("tcp", "udp"):
        return None

    raw_text = get("text")
    text: tuple[str, ...]
    if raw_text is None:
        text = ()
    elif type(raw_text) is str:
        text = (raw_text,)
    elif type(raw_text) is list and all(type(t) is str for t in raw_text):
        text = tuple(raw_text)
    else:
        return None
    mail = get("mail", False)
    group = get("group")
    if group is None:
        group = ""
    if (
        type(mail) is not bool
        or type(group) is not str
        or (group and (len(group) > 63 or not group.isprintable()))
        or (not host and not text)
        or (mail and not host)
        or (port is not None and not host)
    ):
        return None

    aliases: list[str] = []
    raw_aliases = get("aliases")
    if raw_aliases is not None:
        if type(raw_aliases) is not list:
            return None
        for alias in raw_aliases:
            if type(alias) is not str or not _clean_name(alias):
                return None
            absolute = names.absolute(alias, origin)
            if absolute == name:
                return None
            if absolute not in aliases:
                aliases.append(absolute)

    location = f"{path}#{index}"
    record = ServiceRecord(
        name=name,
        zone=zone,
        owner=Owner("file", f"servicerecord/{object_name}", location),
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
    return Document("ServiceRecord", object_name, location, (record,), body)


def _checked_document(body: Any, path: str, index: int, defaults: NameDefaults) -> Document:
    """Every field checked, every problem worded (``from_document`` for any document the
    one-pass reader does not take)."""
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
    if not isinstance(kind, str) or kind not in expected:
        check.fail("kind", f"must be ServiceRecord or DNSEndpoint, not {kind!r}")
        check.done()
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


def _zone(check: _Checker, spec: Mapping[str, Any], field: str, defaults: NameDefaults) -> str:
    text = check.string(spec, "zone", field)
    if not text:
        return ""
    problem = names.name_problem(text)
    if problem:
        check.fail(field, problem)
        return ""
    zone = names.fqdn(text)
    if zone not in defaults.domains:
        check.fail(field, _unconfigured_zone(zone, defaults.domains))
    return zone


def _unconfigured_zone(zone: str, domains: tuple[str, ...]) -> str:
    """The problem of a definition that names a zone the configuration does not serve.

    Zones come from the configuration only (``--domain``, repeatable, or the config file's
    ``domain`` list; reverse zones from the records' addresses): one definition must not
    make dockzone authoritative for ``com.`` and answer NXDOMAIN for every name under it.
    """
    return (
        f"zone {zone} is not served (the configured domains are {', '.join(domains)}); "
        f"to serve it, add --domain {zone} (or {zone} to the config file's domain list)"
    )


def _service(
    spec: Mapping[str, Any], owner: Owner, check: _Checker, defaults: NameDefaults
) -> ServiceRecord:
    check.unknown(spec, SERVICE_FIELDS, "spec")
    explicit_zone = _zone(check, spec, "spec.zone", defaults)
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
                    f"({', '.join(defaults.domains)}); add its zone with --domain",
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
            typo = names.address_typo(host)
            problem = names.name_problem(host)
            if typo:
                check.fail("spec.host", typo)
            elif problem:
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
    for position, alias in enumerate(raw_aliases if isinstance(raw_aliases, list) else []):
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
        elif names.fqdn(zone_hint) not in defaults.domains:
            check.fail(
                f"metadata.annotations.{ZONE_ANNOTATION}",
                _unconfigured_zone(names.fqdn(zone_hint), defaults.domains),
            )
            return
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
