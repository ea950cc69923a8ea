"""The deletion budget (--max-delete-fraction): a source that errored or came back empty
does not wipe its records in one read; a resync pass or an operator confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

from reconciler.core.model import Owner, ServiceRecord, ZoneSettings
from reconciler.core.triggers import Wakeup
from reconciler.loop import Reconciler
from reconciler.sinks.zonefiles import ZoneFileSink
from reconciler.sources import MergedSource, Snapshot


def record(n: int) -> ServiceRecord:
    return ServiceRecord(
        f"web{n}.docker.", "docker.", Owner("docker", f"container/{n}"), f"10.0.0.{n}"
    )


def complete(*numbers: int) -> Snapshot:
    return Snapshot({f"c{n}": (record(n),) for n in numbers}, True)


class ScriptedSource:
    """A source that hands out the snapshots it is given, one per load (the last one again
    when the script runs out), like the Docker source: a list after an error."""

    name = "docker"

    def __init__(self, *snapshots: Snapshot) -> None:
        self.script = list(snapshots)
        self.last = Snapshot()

    def then(self, *snapshots: Snapshot) -> None:
        self.script.extend(snapshots)

    def load(self, full: bool = False) -> Snapshot:
        if self.script:
            self.last = self.script.pop(0)
        return self.last

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        await stop.wait()


STALE = Snapshot({}, False, ("docker at unix:///x: connection refused",), stale=True)


def held_names(merged: MergedSource) -> list[str]:
    return sorted(r.name for r in merged.records())


def test_a_source_that_comes_back_empty_keeps_its_records_until_a_full_pass() -> None:
    source = ScriptedSource(complete(1, 2, 3, 4), complete())
    merged = MergedSource([source])
    merged.load(full=True)
    snapshot = merged.load()
    assert snapshot.groups == {}  # nothing removed
    assert held_names(merged) == [f"web{n}.docker." for n in (1, 2, 3, 4)]
    [problem] = snapshot.problems
    assert problem.startswith(
        "docker: held back a read that would remove 4 of its 4 records (100%, over "
        "--max-delete-fraction) after the source came back empty"
    )
    assert merged.held()["docker"].removed == 4
    confirmed = merged.load(full=True)  # the resync pass reads it again: still empty
    assert held_names(merged) == []
    assert confirmed.problems == ()
    assert merged.held() == {}


def test_a_source_that_errored_and_lists_a_quarter_is_held_but_three_quarters_are_taken() -> None:
    source = ScriptedSource(complete(1, 2, 3, 4), STALE, complete(1))
    merged = MergedSource([source])
    merged.load(full=True)
    assert merged.load().stale
    merged.load()
    assert merged.held()["docker"].reason == "errored"
    assert len(held_names(merged)) == 4
    source.then(complete(1, 2, 3))  # the daemon has restored three of its containers
    changed = merged.load()
    assert changed.groups == {"docker:c4": ()}
    assert merged.held() == {}
    assert held_names(merged) == ["web1.docker.", "web2.docker.", "web3.docker."]


def test_removals_reported_one_by_one_are_never_held() -> None:
    """A container's die event, a deleted file: what the user did, applied at once."""
    source = ScriptedSource(complete(1, 2), Snapshot({"c1": (), "c2": ()}, False))
    merged = MergedSource([source])
    merged.load(full=True)
    assert merged.load().groups == {"docker:c1": (), "docker:c2": ()}
    assert merged.held() == {}


def test_a_complete_read_that_drops_groups_the_source_saw_go_is_taken() -> None:
    """A resync's list is the first read after the last container's destroy event: that
    removal was seen one by one (``gone``), so the empty read is not held; a group that
    vanished without one still is."""
    source = ScriptedSource(
        complete(1, 2),
        Snapshot({}, True, gone=frozenset({"c1", "c2"})),
        complete(3, 4, 5),
        Snapshot({}, True, gone=frozenset({"c3"})),
    )
    merged = MergedSource([source])
    merged.load(full=True)
    assert merged.load(full=True).groups == {}
    assert merged.held() == {}
    assert held_names(merged) == []
    merged.load()
    assert merged.load().groups == {}  # c4 and c5 went without an event: held
    assert merged.held()["docker"].removed == 2
    assert held_names(merged) == ["web3.docker.", "web4.docker.", "web5.docker."]


def test_an_operator_confirms_and_the_next_read_is_taken() -> None:
    source = ScriptedSource(complete(1, 2, 3), complete())
    merged = MergedSource([source])
    merged.load(full=True)
    merged.load()
    assert merged.confirm("etcd") == ()
    assert merged.confirm("docker") == ("docker",)
    assert merged.load().groups == {"docker:c1": (), "docker:c2": (), "docker:c3": ()}
    assert merged.held() == {}


def test_a_source_that_recovers_clears_the_hold() -> None:
    source = ScriptedSource(complete(1, 2), complete(), complete(1, 2))
    merged = MergedSource([source])
    merged.load(full=True)
    merged.load()
    assert merged.held()
    assert merged.load().groups == {}
    assert merged.held() == {}
    assert merged.confirm() == ()


def test_a_fraction_of_one_never_holds() -> None:
    source = ScriptedSource(complete(1, 2), complete())
    merged = MergedSource([source], max_delete_fraction=1.0)
    merged.load(full=True)
    assert merged.load().groups == {"docker:c1": (), "docker:c2": ()}


def test_the_zone_files_keep_the_records_while_a_read_is_held(tmp_path: Path) -> None:
    """What a user checks: db.docker still names every container after the source came
    back empty, and loses them once a resync pass confirms."""
    source = ScriptedSource(complete(1, 2, 3), complete())
    zones = tmp_path / "zones"
    reconciler = Reconciler(
        MergedSource([source]), ZoneSettings(reverse=False), [ZoneFileSink(zones)]
    )

    def names() -> Iterator[str]:
        return (line.split()[0] for line in (zones / "db.docker").read_text().splitlines())

    asyncio.run(reconciler.run_once())
    assert "web3.docker." in names()
    report = asyncio.run(reconciler.run_once())
    assert not report.changed
    assert report.problems == 1
    assert {"web1.docker.", "web2.docker.", "web3.docker."} <= set(names())
    report = asyncio.run(reconciler.run_once(full=True, reasons=("resync",)))
    assert report.changed
    assert not {"web1.docker.", "web2.docker.", "web3.docker."} & set(names())
