"""Every manifest parses; the generated ones are current; every example ServiceRecord
validates against the CRD's schema with a real JSON Schema validator; schema and model
(definitions.from_document) accept and reject the same records; the sidecar Corefile serves
the zones the operator writes; the Dockerfile and the compose example say what they must."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from pathlib import Path
from typing import Any

import jsonschema
import kopf
import pytest
import yaml

from reconciler import crd
from reconciler.cli import build_parser
from reconciler.config import resolve
from reconciler.core import names
from reconciler.core.model import ZoneSettings
from reconciler.core.triggers import Wakeup
from reconciler.definitions import (
    DefinitionProblems,
    NameDefaults,
    from_document,
    load_definitions,
)
from reconciler.loop import Reconciler
from reconciler.operator import RecordHandlers
from reconciler.sinks.zonefiles import ZoneFileSink
from reconciler.sources.kubernetes import KubernetesSource
from tests.helpers import service

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "manifests").rglob("*.yaml"))
DEFAULTS = NameDefaults(("docker.", "skydns.local."))


def documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def objects(kind: str) -> list[dict[str, Any]]:
    return [d for path in MANIFESTS for d in documents(path) if d.get("kind") == kind]


def crd_schema() -> dict[str, Any]:
    (definition,) = objects("CustomResourceDefinition")
    (version,) = definition["spec"]["versions"]
    return crd.to_json_schema(version["schema"]["openAPIV3Schema"])


VALIDATOR = jsonschema.Draft202012Validator(crd_schema())


@pytest.mark.parametrize("path", MANIFESTS, ids=[str(p.relative_to(ROOT)) for p in MANIFESTS])
def test_every_manifest_parses_into_named_kubernetes_objects(path: Path) -> None:
    for document in documents(path):
        assert isinstance(document, dict), path
        assert {"apiVersion", "kind"} <= document.keys(), path
        if document["kind"] != "Kustomization":
            assert document["metadata"]["name"], path


@pytest.mark.parametrize("name", sorted(crd.GENERATED), ids=sorted(crd.GENERATED))
def test_generated_manifests_are_current(name: str) -> None:
    """Regenerate with ``python -m reconciler.crd manifests/deploy``."""
    assert (ROOT / "manifests" / "deploy" / name).read_text() == crd.GENERATED[name]()


def test_the_crd_schema_is_a_valid_json_schema_with_the_kubernetes_shape() -> None:
    jsonschema.Draft202012Validator.check_schema(crd_schema())
    (definition,) = objects("CustomResourceDefinition")
    spec = definition["spec"]
    assert (spec["group"], spec["scope"], spec["names"]["kind"]) == (
        "dockzone.dev",
        "Namespaced",
        "ServiceRecord",
    )
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:4] == ["Name", "Host", "Port", "Ready"]
    properties = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert properties["port"]["minimum"] == 1
    assert properties["port"]["maximum"] == 65535


def example_records() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((ROOT / "manifests" / "examples").rglob("*.yaml")):
        for index, document in enumerate(documents(path)):
            if document.get("kind") == "ServiceRecord":
                found.append((f"{path.relative_to(ROOT)}#{index}", document))
    for path in sorted((ROOT / "docs").glob("*.md")):
        for number, block in enumerate(re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)):
            for document in yaml.safe_load_all(block):
                if isinstance(document, dict) and document.get("kind") == "ServiceRecord":
                    found.append((f"{path.relative_to(ROOT)}[{number}]", document))
    return found


EXAMPLES = example_records()


def test_there_are_example_service_records() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize(("label", "document"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_example_service_record_validates_against_the_crd(
    label: str, document: dict[str, Any]
) -> None:
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in VALIDATOR.iter_errors(document)]
    assert errors == [], label


def model_accepts(document: dict[str, Any]) -> bool:
    try:
        from_document(document, "table", 0, DEFAULTS)
    except DefinitionProblems:
        return False
    return True


AGREE = [
    ("minimal", {"host": "10.0.0.1"}, True),
    ("ipv6 host", {"host": "2003::8:1", "port": 8080}, True),
    ("host name target", {"host": "db.example.com", "port": 5432}, True),
    ("text only", {"text": "v=1"}, True),
    ("text list", {"text": ["a", "b"]}, True),
    (
        "every field",
        {
            "zone": "skydns.local.",
            "host": "10.0.0.1",
            "port": 1,
            "protocol": "udp",
            "priority": 0,
            "weight": 65535,
            "ttl": 0,
            "text": "t",
            "mail": True,
            "targetStrip": 127,
            "group": "g1",
            "aliases": ["x.docker."],
        },
        True,
    ),
    ("max ttl", {"host": "10.0.0.1", "ttl": 2**31 - 1}, True),
    ("mail false without host", {"text": "x", "mail": False}, True),
    ("apex name", {"name": "@", "host": "10.0.0.1"}, True),
    ("no host and no text", {}, False),
    ("port 0", {"host": "10.0.0.1", "port": 0}, False),
    ("port 65536", {"host": "10.0.0.1", "port": 65536}, False),
    ("port as string", {"host": "10.0.0.1", "port": "80"}, False),
    ("port as boolean", {"host": "10.0.0.1", "port": True}, False),
    ("negative ttl", {"host": "10.0.0.1", "ttl": -1}, False),
    ("ttl over 2^31-1", {"host": "10.0.0.1", "ttl": 2**31}, False),
    ("priority over 65535", {"host": "10.0.0.1", "priority": 65536}, False),
    ("weight negative", {"host": "10.0.0.1", "weight": -1}, False),
    ("targetStrip 128", {"host": "10.0.0.1", "targetStrip": 128}, False),
    ("protocol sctp", {"host": "10.0.0.1", "protocol": "sctp"}, False),
    ("mail as string", {"host": "10.0.0.1", "mail": "yes"}, False),
    ("text of numbers", {"text": [1, 2]}, False),
    ("text as mapping", {"text": {"a": "b"}}, False),
    ("aliases as string", {"host": "10.0.0.1", "aliases": "x.docker."}, False),
    ("alias with a space", {"host": "10.0.0.1", "aliases": ["bad name"]}, False),
    ("group too long", {"host": "10.0.0.1", "group": "g" * 64}, False),
    ("group with a newline", {"host": "10.0.0.1", "group": "a\nb"}, False),
    ("unknown field", {"host": "10.0.0.1", "hots": "x"}, False),
    ("port without host", {"text": "x", "port": 80}, False),
    ("mail without host", {"text": "x", "mail": True}, False),
    ("host with a space", {"host": "a b"}, False),
    ("host label starting with -", {"host": "-a.example.com"}, False),
    ("label over 63", {"name": "a" * 64, "host": "10.0.0.1"}, False),
    ("empty label", {"name": "a..b", "host": "10.0.0.1"}, False),
]


@pytest.mark.parametrize(("label", "spec", "valid"), AGREE, ids=[row[0] for row in AGREE])
def test_schema_and_model_accept_and_reject_the_same_records(
    label: str, spec: dict[str, Any], valid: bool
) -> None:
    document = service("web", **spec)
    if "name" in spec:
        document["spec"]["name"] = spec["name"]
    assert model_accepts(document) is valid, label
    assert VALIDATOR.is_valid(document) is valid, label


MODEL_ONLY = [
    ("name outside every domain", {"name": "web.example.org.", "host": "10.0.0.1"}),
    ("name outside its zone", {"name": "web.docker.", "zone": "skydns.local.", "host": "1.2.3.4"}),
    ("query wildcard label", {"name": "web.any", "host": "10.0.0.1"}),
    ("alias equal to the name", {"host": "10.0.0.1", "aliases": ["web.docker."]}),
]


@pytest.mark.parametrize(("label", "spec"), MODEL_ONLY, ids=[row[0] for row in MODEL_ONLY])
def test_rules_the_schema_cannot_express_are_left_to_the_operator(
    label: str, spec: dict[str, Any]
) -> None:
    """These depend on the operator's --domain or on name semantics: the API server accepts
    them, the operator marks them Invalid."""
    document = service("web", **spec)
    assert VALIDATOR.is_valid(document), label
    assert not model_accepts(document), label


def test_the_sidecar_corefile_serves_the_zone_directory_and_every_zone_the_operator_writes(
    tmp_path: Path,
) -> None:
    (deployment,) = objects("Deployment")
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    # The kubelet expands $(POD_IP) from the downward API before dockzone sees it.
    args = [a.replace("$(POD_IP)", "10.244.0.7") for a in containers["operator"]["args"]]
    parsed = build_parser().parse_args(args)
    settings = resolve(vars(parsed), {}, None)
    assert settings.zones == crd.SIDECAR_ZONES_DIR
    mounts = {
        name: {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        for name, c in containers.items()
    }
    assert mounts["operator"]["zones"] == mounts["coredns"]["zones"] == str(settings.zones)
    (configmap,) = objects("ConfigMap")
    corefile = configmap["data"]["Corefile"]
    assert f"directory {settings.zones} " in corefile
    served = [key.rpartition(":")[0] for key in corefile.split("{")[0].split("\n")[-1].split()]

    # The zones the operator writes for the example records, with the Deployment's settings.
    source = KubernetesSource()
    handlers = RecordHandlers(source, Wakeup(), NameDefaults(settings.domain))
    for _, document in EXAMPLES:
        if names.zone_for(names.fqdn(document["spec"].get("zone") or "docker."), ["docker."]):
            body = {**document, "metadata": {**document["metadata"], "generation": 1}}
            kbody = kopf.Body(body)
            asyncio.run(
                handlers.changed(
                    body=kbody, meta=kbody.metadata, status=kbody.status, patch=kopf.Patch()
                )
            )
    zones = tmp_path / "zones"
    zone_settings = ZoneSettings(domains=settings.domain)
    report = asyncio.run(Reconciler(source, zone_settings, [ZoneFileSink(zones)]).run_once())
    written = [path.name[3:] + "." for path in zones.glob("db.*")]
    assert report.errors == []
    assert "docker." in written
    for origin in written:
        assert names.zone_for(origin, served), f"the Corefile does not serve {origin}"
    ports = {p["containerPort"] for p in containers["coredns"]["ports"]}
    assert ports == {crd.SIDECAR_PORT}
    assert f":{crd.SIDECAR_PORT} " in corefile


def test_rbac_grants_only_what_the_operator_uses() -> None:
    (role,) = objects("ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]
        assert not {"delete", "deletecollection", "create"} & set(rule["verbs"]) or rule[
            "resources"
        ] == ["events"]
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "secrets" not in resources
    (deployment,) = objects("Deployment")
    (account,) = objects("ServiceAccount")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )
    kustomization = documents(ROOT / "manifests" / "kustomization.yaml")[0]
    for binding in objects("ClusterRoleBinding") + objects("RoleBinding"):
        (subject,) = binding["subjects"]
        assert subject["name"] == account["metadata"]["name"]
        assert subject["namespace"] == kustomization["namespace"]
    (lease_role,) = objects("Role")
    lease_rules = {tuple(rule["verbs"]) for rule in lease_role["rules"]}
    assert lease_rules == {("create",), ("get", "update")}
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-lease=dockzone-operator" in args
    assert "dockzone-operator" in lease_role["rules"][1]["resourceNames"]


def test_the_kustomization_lists_every_deploy_manifest() -> None:
    kustomization = documents(ROOT / "manifests" / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    present = {f"deploy/{p.name}" for p in (ROOT / "manifests" / "deploy").glob("*.yaml")}
    assert listed == present


def test_the_dockerfile_installs_dockzone_and_runs_it_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    # The wheel (with the C module of the batched UDP I/O) is built where gcc is, and the
    # slim image installs it.
    assert re.search(r"^FROM python:3\.\d+ AS build$", text, re.M)
    assert "pip wheel --no-deps --wheel-dir /wheels ." in text
    assert "COPY pyproject.toml setup.py" in text
    assert re.search(r"^FROM python:3\.\d+-slim$", text, re.M)
    assert "pip install /wheels/*.whl" in text
    assert re.search(r"^USER 10001", text, re.M)
    assert 'ENTRYPOINT ["dockzone"]' in text
    assert "docker.sock:ro" in text


COMPOSE = ROOT / "examples" / "compose" / "docker-compose.yml"


def test_the_compose_example_runs_dockzone_as_the_dns_of_two_services() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"dockzone", "web", "db"}
    dockzone = services["dockzone"]
    address = dockzone["networks"]["discovery"]["ipv4_address"]
    for name in ("web", "db"):
        assert services[name]["dns"] == [address]
        assert "discovery" in services[name]["networks"]
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in dockzone["volumes"]
    definitions = next(v for v in dockzone["volumes"] if v.startswith("./definitions:"))
    parsed = build_parser().parse_args(dockzone["command"])
    settings = resolve(vars(parsed), {}, None)
    assert settings.dns == "0.0.0.0:53"
    assert str(settings.definitions) == definitions.split(":")[1]
    subnet = compose["networks"]["discovery"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)


def test_the_compose_example_definitions_are_valid() -> None:
    found = load_definitions(COMPOSE.parent / "definitions", DEFAULTS)
    assert found.errors == ()
    assert found.documents
