"""The files source for real: a temp directory, real files, real watchfiles. A load reports
the groups (one per definitions object) that changed, reads only the files marked changed,
and parses only the documents whose text changed."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import definitions
from reconciler.core.model import Record, ServiceRecord
from reconciler.core.triggers import Wakeup
from reconciler.definitions import NameDefaults, load_definitions
from reconciler.sources import Snapshot, SourceView
from reconciler.sources import files as files_module
from reconciler.sources.files import FilesSource
from tests.helpers import service

DEFAULTS = NameDefaults(("docker.",))


def doc(name: str, host: str = "10.0.0.1", **spec: Any) -> dict[str, Any]:
    return service(name, host=host, **spec)


def write(path: Path, *docs: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            f"---\n{d if isinstance(d, str) else yaml.safe_dump(d, sort_keys=False)}" for d in docs
        )
    )
    return path


def hosts(snapshot: Snapshot) -> dict[str, list[str]]:
    return {
        key: [r.host for r in records if isinstance(r, ServiceRecord)]
        for key, records in snapshot.groups.items()
    }


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every document the files source parses, in order."""
    seen: list[Any] = []
    real = definitions.load_documents

    def spy(text: str) -> Iterator[Any]:
        for body in real(text):
            seen.append(body)
            yield body

    monkeypatch.setattr(files_module, "load_documents", spy)
    return seen


def test_the_first_load_is_complete_with_one_group_per_object(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", doc("web"), doc("db", "10.0.0.2"))
    write(tmp_path / "team" / "b.yml", doc("api", "10.0.0.3"))
    source = FilesSource(tmp_path, DEFAULTS)
    snapshot = source.load()
    assert snapshot.complete
    assert hosts(snapshot) == {
        "servicerecord/web": ["10.0.0.1"],
        "servicerecord/db": ["10.0.0.2"],
        "servicerecord/api": ["10.0.0.3"],
    }
    assert snapshot.problems == ()
    [record] = snapshot.groups["servicerecord/api"]
    assert record.owner.location == "team/b.yml#0"
    nothing = source.load()
    assert not nothing.complete
    assert nothing.groups == {}


def test_an_edit_to_one_document_of_a_big_file_reports_and_parses_only_it(
    tmp_path: Path, parsed: list[Any]
) -> None:
    docs = [doc(f"svc-{n}", f"10.0.{n // 250}.{n % 250}") for n in range(300)]
    big = write(tmp_path / "big.yaml", *docs)
    source = FilesSource(tmp_path, DEFAULTS)
    assert len(source.load().groups) == 300
    assert len(parsed) == 300
    docs[123] = doc("svc-123", "192.0.2.1")
    write(big, *docs)
    source.touch(big)
    parsed.clear()
    snapshot = source.load()
    assert not snapshot.complete
    assert hosts(snapshot) == {"servicerecord/svc-123": ["192.0.2.1"]}
    assert [body["metadata"]["name"] for body in parsed] == ["svc-123"]


def test_a_document_inserted_at_the_top_moves_the_others(tmp_path: Path) -> None:
    big = write(tmp_path / "big.yaml", doc("a"), doc("b"))
    source = FilesSource(tmp_path, DEFAULTS)
    source.load()
    write(big, doc("new", "10.0.0.9"), doc("a"), doc("b"))
    source.touch(big)
    snapshot = source.load()
    assert sorted(snapshot.groups) == ["servicerecord/a", "servicerecord/b", "servicerecord/new"]
    assert snapshot.groups["servicerecord/b"][0].owner.location == "big.yaml#2"


def test_a_new_file_adds_its_groups_and_a_deleted_one_removes_them(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", doc("web"))
    source = FilesSource(tmp_path, DEFAULTS)
    source.load()
    new = write(tmp_path / "new.yaml", doc("x", "10.0.0.7"), doc("y", "10.0.0.8"))
    source.touch(new)
    assert hosts(source.load()) == {
        "servicerecord/x": ["10.0.0.7"],
        "servicerecord/y": ["10.0.0.8"],
    }
    new.unlink()
    source.touch(new)
    assert source.load().groups == {"servicerecord/x": (), "servicerecord/y": ()}


def test_a_directory_moved_in_and_out(tmp_path: Path) -> None:
    root = tmp_path / "defs"
    write(root / "a.yaml", doc("web"))
    outside = write(tmp_path / "elsewhere" / "team" / "b.yaml", doc("api", "10.0.0.3")).parent
    source = FilesSource(root, DEFAULTS)
    source.load()
    shutil.move(outside, root / "team")
    source.touch(root / "team")
    assert hosts(source.load()) == {"servicerecord/api": ["10.0.0.3"]}
    shutil.move(root / "team", outside)
    source.touch(root / "team")
    assert source.load().groups == {"servicerecord/api": ()}


def test_hidden_and_other_files_are_ignored(tmp_path: Path) -> None:
    source = FilesSource(tmp_path, DEFAULTS)
    source.load()
    hidden = write(tmp_path / ".web.yaml", doc("hidden"))
    notes = write(tmp_path / "notes.txt", doc("notes"))
    in_git = write(tmp_path / ".git" / "x.yaml", doc("git"))
    source.touch(hidden, notes, in_git, tmp_path / ".git", "/elsewhere/x.yaml")
    assert source.load().groups == {}
    assert source.load(full=True).groups == {}


def test_a_broken_file_keeps_its_last_good_objects_and_reports_why(tmp_path: Path) -> None:
    path = write(tmp_path / "keep.yaml", doc("a"), doc("b"), doc("c"))
    source = FilesSource(tmp_path, DEFAULTS)
    source.load()

    # An invalid document: its object keeps its last good version; the others apply.
    write(path, doc("a", "10.0.0.5"), doc("b", "10.0.0.6", port=0), doc("c"))
    source.touch(path)
    snapshot = source.load()
    assert hosts(snapshot) == {"servicerecord/a": ["10.0.0.5"]}
    assert snapshot.problems == (
        "keep.yaml#1 spec.port: must be 1..65535, not 0 (definition skipped)",
    )

    # A syntax error ends the file: the documents after it keep their last good version.
    write(path, doc("a", "10.0.0.7"), "spec: [unclosed\n", doc("c", "10.0.0.8"))
    source.touch(path)
    snapshot = source.load()
    assert hosts(snapshot) == {"servicerecord/a": ["10.0.0.7"]}
    [problem] = snapshot.problems
    assert problem.startswith("keep.yaml: YAML syntax error at line 11 column 1: ")
    assert source.load(full=True).problems == snapshot.problems

    write(path, doc("a", "10.0.0.7"), doc("c", "10.0.0.8"))
    source.touch(path)
    snapshot = source.load()
    assert hosts(snapshot) == {"servicerecord/b": [], "servicerecord/c": ["10.0.0.8"]}
    assert snapshot.groups["servicerecord/b"] == ()
    assert snapshot.problems == ()


def test_a_file_that_cannot_be_decoded_keeps_its_objects(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", doc("web"))
    source = FilesSource(tmp_path, DEFAULTS)
    source.load()
    path.write_bytes(b"\xff\xfe garbage")
    source.touch(path)
    snapshot = source.load()
    assert snapshot.groups == {}
    [problem] = snapshot.problems
    assert problem.startswith("a.yaml: cannot read: 'utf-8' codec can't decode")


def test_a_duplicate_is_reported_and_takes_over_when_the_first_goes(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", doc("web", "10.0.0.1"))
    write(tmp_path / "b.yaml", doc("other"), doc("web", "10.0.0.2"))
    source = FilesSource(tmp_path, DEFAULTS)
    snapshot = source.load()
    assert hosts(snapshot)["servicerecord/web"] == ["10.0.0.1"]
    duplicate = (
        "b.yaml#1 metadata.name: ServiceRecord 'web' is already defined at a.yaml#0 "
        "(definition skipped)"
    )
    assert snapshot.problems == (duplicate,)

    later = write(tmp_path / "c.yaml", doc("web", "10.0.0.3"))
    source.touch(later)
    snapshot = source.load()
    assert snapshot.groups == {}
    assert snapshot.problems == (
        duplicate,
        "c.yaml#0 metadata.name: ServiceRecord 'web' is already defined at a.yaml#0 "
        "(definition skipped)",
    )

    first.unlink()
    source.touch(first)
    snapshot = source.load()
    assert hosts(snapshot) == {"servicerecord/web": ["10.0.0.2"]}
    assert snapshot.groups["servicerecord/web"][0].owner.location == "b.yaml#1"
    assert snapshot.problems == (
        "c.yaml#0 metadata.name: ServiceRecord 'web' is already defined at b.yaml#1 "
        "(definition skipped)",
    )


def test_files_sort_as_paths_for_duplicates(tmp_path: Path) -> None:
    """``a/b.yaml`` comes before ``a.yaml`` (path order, as ``definition_files`` sorts)."""
    write(tmp_path / "a.yaml", doc("web", "10.0.0.1"))
    write(tmp_path / "a" / "b.yaml", doc("web", "10.0.0.2"))
    source = FilesSource(tmp_path, DEFAULTS)
    snapshot = source.load()
    assert hosts(snapshot) == {"servicerecord/web": ["10.0.0.2"]}
    assert load_definitions(tmp_path, DEFAULTS).records == snapshot.records


def test_a_full_load_finds_an_edit_nobody_signalled(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", doc("web"))
    source = FilesSource(tmp_path, DEFAULTS, sweep=0)
    source.load()
    write(path, doc("web", "10.0.0.9"))
    write(tmp_path / "new.yaml", doc("new"))
    assert source.load().groups == {}  # nothing marked: nothing read
    snapshot = source.load(full=True)
    assert snapshot.complete
    assert hosts(snapshot) == {"servicerecord/web": ["10.0.0.9"], "servicerecord/new": ["10.0.0.1"]}


def test_touch_makes_load_read_the_file_again(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", doc("web"))
    source = FilesSource(tmp_path, DEFAULTS, sweep=0)
    source.load()
    write(path, doc("web", "10.0.0.9"))
    source.touch(str(path))
    assert hosts(source.load()) == {"servicerecord/web": ["10.0.0.9"]}
    # relative paths are taken against the working directory
    write(path, doc("web", "10.0.0.10"))
    source.touch(os.path.relpath(path))
    assert hosts(source.load()) == {"servicerecord/web": ["10.0.0.10"]}


def test_the_stat_sweep_finds_an_edit_whose_event_was_lost(tmp_path: Path) -> None:
    paths = [write(tmp_path / f"f{n}.yaml", doc(f"s{n}")) for n in range(10)]
    source = FilesSource(tmp_path, DEFAULTS, sweep=3)
    source.load()
    write(paths[7], doc("s7", "10.0.0.77", port=80))
    found: dict[str, tuple[Record, ...]] = {}
    for _ in range(4):  # 10 files, 3 per load
        found.update(source.load().groups)
    assert hosts(Snapshot(found)) == {"servicerecord/s7": ["10.0.0.77"]}


def test_a_single_file_as_the_path(tmp_path: Path) -> None:
    path = write(tmp_path / "only.yaml", doc("web"))
    write(tmp_path / "other.yaml", doc("other"))
    source = FilesSource(path, DEFAULTS)
    assert hosts(source.load()) == {"servicerecord/web": ["10.0.0.1"]}
    write(path, doc("web", "10.0.0.2"))
    source.touch(path, tmp_path / "other.yaml")
    snapshot = source.load()
    assert hosts(snapshot) == {"servicerecord/web": ["10.0.0.2"]}
    assert snapshot.groups["servicerecord/web"][0].owner.location == "only.yaml#0"


def test_files_with_directives_are_read_whole(tmp_path: Path) -> None:
    body = yaml.safe_dump(doc("web"))
    path = tmp_path / "d.yaml"
    path.write_text(f"%YAML 1.1\n---\n{body}...\n%TAG !d! tag:yaml.org,2002:\n--- !d!map\n{body}")
    source = FilesSource(tmp_path, DEFAULTS)
    snapshot = source.load()
    assert snapshot.problems == (
        "d.yaml#1 metadata.name: ServiceRecord 'web' is already defined at d.yaml#0 "
        "(definition skipped)",
    )
    path.write_text(f"%YAML 1.1\n---\n{body}---\n{body.replace('web', 'api')}")
    source.touch(path)
    assert sorted(source.load().groups) == ["servicerecord/api"]


def test_watch_marks_what_watchfiles_reports_and_wakes_the_loop(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", doc("web"))
    source = FilesSource(tmp_path, DEFAULTS, sweep=0)
    source.load()

    async def scenario() -> frozenset[str]:
        wakeup = Wakeup()
        stop = asyncio.Event()
        watcher = asyncio.create_task(source.watch(wakeup, stop))
        try:
            await asyncio.sleep(0.3)  # the watcher is set up
            await asyncio.to_thread(write, tmp_path / "team" / "new.yaml", doc("new", "10.0.0.4"))
            return await asyncio.wait_for(wakeup.wait(), timeout=10)
        finally:
            stop.set()
            await asyncio.wait_for(watcher, timeout=10)

    assert asyncio.run(scenario()) == {"definitions"}
    assert hosts(source.load()) == {"servicerecord/new": ["10.0.0.4"]}


def test_incremental_loads_equal_a_full_read_after_random_edits(tmp_path: Path) -> None:
    """The oracle: after each random step (touching what it changed), the groups the source
    reported add up to what a fresh full read of the directory gives."""
    chooser = random.Random(7)
    names = [f"s{n}" for n in range(40)]
    contents: dict[str, list[dict[str, Any]]] = {}
    source = FilesSource(tmp_path, DEFAULTS)
    view = SourceView()
    view.take(source.load())
    for step in range(150):
        label = f"{chooser.choice(['', 'team/', 'team/deep/'])}f{chooser.randrange(8)}.yaml"
        path = tmp_path / label
        action = chooser.random()
        if action < 0.2 and path.exists():
            path.unlink()
            contents.pop(label, None)
        elif action < 0.5 and contents.get(label):
            docs = contents[label]
            n = chooser.randrange(len(docs))
            docs[n] = doc(docs[n]["metadata"]["name"], f"10.1.{step}.{n}")
            write(path, *docs)
        else:
            # distinct names in a file: a file with a problem keeps its last good objects,
            # which a fresh read cannot know
            docs = [
                doc(name, f"10.2.{step}.{n}")
                for n, name in enumerate(chooser.sample(names, chooser.randrange(1, 6)))
            ]
            contents[label] = docs
            write(path, *docs)
        source.touch(path)
        view.take(source.load())
        fresh = FilesSource(tmp_path, DEFAULTS).load()
        assert view.groups == dict(fresh.groups), step
        assert view.problems == fresh.problems, step
        expected = load_definitions(tmp_path, DEFAULTS)
        assert sorted(view.records, key=_where) == sorted(expected.records, key=_where)
        assert set(view.problems) == {f"{e} (definition skipped)" for e in expected.errors}
        held = source.definitions()
        assert held.documents == expected.documents
        assert [str(e) for e in held.errors] == [str(e) for e in expected.errors]
    full = source.load(full=True)
    assert dict(full.groups) == view.groups


def _where(record: Record) -> str:
    return record.owner.location


def test_split_pieces_cuts_where_a_document_starts() -> None:
    chooser = random.Random(3)
    atoms = ["---", "\n", " ", "\t", "-", "a", "x: 1", "...", "--", "----", "\r"]
    for _ in range(20000):
        text = "".join(chooser.choice(atoms) for _ in range(chooser.randrange(12)))
        assert files_module.split_pieces(text) == files_module._DOCUMENT_START.split(text), text
        assert "".join(files_module.split_pieces(text)) == text
