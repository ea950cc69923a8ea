"""The ServiceRecord CustomResourceDefinition, generated from the definitions field table.

``FIELDS`` gives every ``spec`` field of ``definitions.SERVICE_FIELDS`` its OpenAPI type,
ranges and description, with the same limits ``definitions`` checks (ports 1..65535, TTL up
to ``definitions.MAX_TTL``, ...). ``custom_resource_definition()`` builds the CRD that
``manifests/deploy/crd.yaml`` holds (with the sidecar's Corefile ConfigMap, both written by
``python -m reconciler.crd manifests/deploy``); a test checks the files are exactly that
output, so the manifests cannot drift from the model or the Corefile template.

``to_json_schema()`` turns the CRD's openAPIV3Schema into plain JSON Schema as the API
server applies it (strict field validation rejects unknown fields; ``nullable``; the CEL
rules in ``x-kubernetes-validations`` replaced by their JSON Schema equivalents in
``CEL_EQUIVALENTS``), so tests can validate examples with a real JSON Schema validator.

What the schema cannot say is left to the operator, which reports it as ``Invalid``:
whether a name falls inside its zone (the configured domains), query wildcard labels
(``*``, ``any``), an alias equal to the record's own name. Called by tests and by hand.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.definitions import MAX_TTL, SERVICE_FIELDS
from reconciler.render import render_corefile

GROUP = "dockzone.dev"
VERSION = "v1alpha1"
KIND = "ServiceRecord"
PLURAL = "servicerecords"

_LABEL = r"[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?"
HOST_NAME = rf"^{_LABEL}(\.{_LABEL})*\.?$"
"""A DNS name, relative or absolute (letters, digits, ``-``, ``_``; labels up to 63)."""
RECORD_NAME = rf"^(@|{_LABEL}(\.{_LABEL})*\.?)$"
"""A record name: a DNS name, or ``@`` for the zone apex."""
HOST = rf"^({_LABEL}(\.{_LABEL})*\.?|[0-9A-Fa-f.:]*:[0-9A-Fa-f.:]*)$"
"""An IPv4 address or host name, or an IPv6 address."""
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

TEXT_RULE = "type(self) == string || (type(self) == list && self.all(t, type(t) == string))"
CEL_EQUIVALENTS: dict[str, dict[str, Any]] = {
    TEXT_RULE: {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
}
"""Each CEL rule the CRD uses, as the JSON Schema that accepts the same values."""


@dataclass(frozen=True, slots=True)
class Field:
    """One ``spec`` field: its OpenAPI schema (without the description) and description."""

    name: str
    schema: dict[str, Any]
    description: str


def _integer(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


FIELDS = (
    Field(
        "name",
        {"type": "string", "minLength": 1, "maxLength": 254, "pattern": RECORD_NAME},
        "Record name, relative to the zone (and environment), or absolute with a trailing dot.",
    ),
    Field(
        "zone",
        {"type": "string", "minLength": 1, "maxLength": 254, "pattern": HOST_NAME},
        "Zone of the record; default: the operator's first --domain.",
    ),
    Field(
        "host",
        {"type": "string", "minLength": 1, "maxLength": 254, "pattern": HOST},
        "IPv4/IPv6 address (A/AAAA) or host name (CNAME, SRV target).",
    ),
    Field("port", _integer(1, 65535), "Port: publishes an SRV record."),
    Field("protocol", {"type": "string", "enum": ["tcp", "udp"]}, "SRV protocol (tcp or udp)."),
    Field("priority", _integer(0, 65535), "SRV priority and MX preference (default 10)."),
    Field("weight", _integer(0, 65535), "SRV weight, normalised per answer set."),
    Field("ttl", _integer(0, MAX_TTL), "TTL in seconds; default: the operator's --ttl."),
    Field(
        "text",
        {
            "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-validations": [
                {"rule": TEXT_RULE, "message": "must be a string or a list of strings"}
            ],
        },
        "TXT data: a string or a list of strings.",
    ),
    Field("mail", {"type": "boolean"}, "Also publish an MX record pointing at host."),
    Field("targetStrip", _integer(0, 127), "SkyDNS TargetStrip for synthesised SRV targets."),
    Field(
        "group",
        {"type": "string", "maxLength": 63, "pattern": PRINTABLE},
        "SkyDNS group: limits aggregation to records of the same group.",
    ),
    Field(
        "aliases",
        {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 254, "pattern": HOST_NAME},
        },
        "Extra names of the record (dnsdock aliases).",
    ),
)

if tuple(f.name for f in FIELDS) != SERVICE_FIELDS:  # pragma: no cover - a coding error
    raise AssertionError("crd.FIELDS must list exactly definitions.SERVICE_FIELDS, in order")

CROSS_FIELD_RULES: list[dict[str, Any]] = [
    # host or text (definitions: "spec.host is required (unless spec.text is given)")
    {"anyOf": [{"required": ["host"]}, {"required": ["text"]}]},
    # port needs host (the SRV target)
    {"anyOf": [{"required": ["host"]}, {"not": {"required": ["port"]}}]},
    # mail: true needs host (the mail exchanger)
    {
        "anyOf": [
            {"required": ["host"]},
            {"not": {"required": ["mail"]}},
            {"properties": {"mail": {"enum": [False]}}},
        ]
    },
]
"""Rules between fields, in the structural-schema subset Kubernetes allows (junctors with
``required``, ``not``, ``enum`` only)."""


def spec_schema() -> dict[str, Any]:
    """The openAPIV3Schema of ``spec``."""
    properties = {f.name: {**f.schema, "description": f.description} for f in FIELDS}
    return {
        "type": "object",
        "description": "One service: its name, address or target, and optional SRV/TXT/MX data.",
        "required": ["name"],
        "properties": properties,
        "allOf": copy.deepcopy(CROSS_FIELD_RULES),
    }


def status_schema() -> dict[str, Any]:
    """The openAPIV3Schema of ``status`` as the operator writes it (kopf may add more)."""
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "observedGeneration": {"type": "integer"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
        },
    }
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "observedGeneration": {"type": "integer"},
            "fqdns": {"type": "array", "items": {"type": "string"}},
            "conditions": {"type": "array", "items": condition},
        },
    }


def open_api_schema() -> dict[str, Any]:
    """The whole object's openAPIV3Schema."""
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
    }


def custom_resource_definition() -> dict[str, Any]:
    """The ServiceRecord CRD: namespaced, status subresource, printer columns."""
    ready = '.status.conditions[?(@.type=="Ready")].status'
    columns = [
        ("Name", "string", ".spec.name"),
        ("Host", "string", ".spec.host"),
        ("Port", "integer", ".spec.port"),
        ("Ready", "string", ready),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["srec"],
                "categories": ["dockzone"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": name, "type": kind, "jsonPath": path}
                        for name, kind, path in columns
                    ],
                    "schema": {"openAPIV3Schema": open_api_schema()},
                }
            ],
        },
    }


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (the Corefile) as literal blocks, as people write them."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _string)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, width=100)


def render_crd() -> str:
    """The CRD as the YAML text of ``manifests/deploy/crd.yaml``."""
    header = "# Generated by `python -m reconciler.crd manifests/deploy`; do not edit.\n"
    return header + _dump(custom_resource_definition())


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an openAPIV3Schema) as plain JSON Schema that accepts what the API server
    accepts: objects with ``properties`` reject unknown fields (strict field validation)
    unless ``x-kubernetes-preserve-unknown-fields``; ``nullable: true`` also allows null;
    CEL rules become their ``CEL_EQUIVALENTS``. Raises KeyError for an unknown CEL rule."""
    result: dict[str, Any] = {}
    rules: list[dict[str, Any]] = []
    for key, value in schema.items():
        if key == "x-kubernetes-validations":
            rules.extend(CEL_EQUIVALENTS[rule["rule"]] for rule in value)
        elif key.startswith("x-kubernetes-") or key == "nullable":
            continue
        elif key == "properties":
            result[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key == "items":
            result[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            result[key] = [to_json_schema(sub) for sub in value]
        elif key == "not":
            result[key] = to_json_schema(value)
        else:
            result[key] = copy.deepcopy(value)
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    strict = not schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and schema.get("type") == "object" and strict:
        result["additionalProperties"] = False
    if rules:
        result["allOf"] = [*result.get("allOf", []), *rules]
    return result


SIDECAR_ZONES_DIR = Path("/var/lib/dockzone/zones")
"""Where the Deployment mounts the zone volume, in both containers."""
SIDECAR_ZONES = ["docker.", "in-addr.arpa.", "ip6.arpa."]
"""The zones the sidecar serves: the operator's --domain and the reverse trees it writes."""
SIDECAR_PORT = 1053
"""CoreDNS's port in the pod (unprivileged); the Service maps 53 to it."""


def render_corefile_configmap() -> str:
    """The ConfigMap holding the sidecar's Corefile, rendered by ``render_corefile``."""
    corefile = render_corefile(SIDECAR_ZONES_DIR, SIDECAR_ZONES, listen=[("0.0.0.0", SIDECAR_PORT)])
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dockzone-corefile", "labels": {"app.kubernetes.io/name": "dockzone"}},
        "data": {"Corefile": corefile},
    }
    header = "# Generated by `python -m reconciler.crd manifests/deploy`; do not edit.\n"
    return header + _dump(configmap)


GENERATED = {"crd.yaml": render_crd, "corefile.yaml": render_corefile_configmap}
"""The manifests in manifests/deploy made by this module."""


def main(argv: list[str] | None = None) -> None:
    """Write the generated manifests into the directory given, or print the CRD."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stdout.write(render_crd())
        return
    for name, render in GENERATED.items():
        (Path(args[0]) / name).write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
