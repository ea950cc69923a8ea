"""Documentation is executed: every YAML example in docs/ and manifests/ is loaded and
validated, and the README's first two commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import dnsserver
import reconciler
from reconciler.config import resolve
from reconciler.definitions import NameDefaults, load_definitions, parse_definitions

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = NameDefaults(("docker.", "skydns.local."))
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])


def yaml_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in DOC_FILES:
        for number, match in enumerate(re.finditer(r"```yaml\n(.*?)```", path.read_text(), re.S)):
            blocks.append((f"{path.relative_to(ROOT)}[{number}]", match.group(1)))
    return blocks


BLOCKS = yaml_blocks()


def test_docs_have_yaml_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize(("label", "text"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_yaml_example_in_docs_is_valid(label: str, text: str, tmp_path: Path) -> None:
    documents: list[Any] = [d for d in yaml.safe_load_all(text) if d is not None]
    assert documents, f"{label}: empty"
    if any(isinstance(d, dict) and "kind" in d for d in documents):
        found = parse_definitions(text, label, DOMAINS)
        assert found.errors == (), [str(e) for e in found.errors]
        assert len(found.documents) == len(documents)
    else:
        config = tmp_path / "config.yaml"
        config.write_text(text)
        resolve({}, {}, config)  # raises ConfigError on an unknown key or a bad value


def test_every_manifest_parses_and_examples_validate() -> None:
    manifests = sorted((ROOT / "manifests").rglob("*.yaml"))
    assert manifests
    for path in manifests:
        list(yaml.safe_load_all(path.read_text()))
    examples = load_definitions(ROOT / "manifests" / "examples", DOMAINS)
    assert examples.errors == (), [str(e) for e in examples.errors]
    assert len(examples.documents) >= 10


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    commands = [line.split("#")[0].strip() for line in lines[:5] if line.startswith("    hack/")]
    assert commands == ["hack/run", "hack/test"]
    for command in commands:
        assert (ROOT / command).stat().st_mode & 0o111
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec hack/test" in ci


@pytest.mark.parametrize("package", [reconciler, dnsserver], ids=["reconciler", "dnsserver"])
def test_public_names_exist(package: Any) -> None:
    for name in package.__all__:
        assert hasattr(package, name), f"{package.__name__}.__all__ lists missing {name}"
