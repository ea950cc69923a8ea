"""The status page's pure parts: the page for 10,000 names stays under 100 KB, search and
pagination, explain, the token rule (a request from beyond loopback needs the token), and
``dockzone status``'s text."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from reconciler import statuspage
from reconciler.api import STATE, ApiState, make_app, status_json
from reconciler.cli import print_status
from reconciler.config import resolve
from reconciler.core.model import Owner, ServiceRecord
from reconciler.core.triggers import Wakeup
from reconciler.loop import Reconciler
from reconciler.sinks.zonefiles import ZoneFileSink
from reconciler.sources import MergedSource, Snapshot

NAMES = 10_000


class StaticSource:
    """Records held in memory, one group each; every load returns all of them."""

    name = "files"

    def __init__(self, records: list[ServiceRecord]) -> None:
        self.records = records

    def load(self, full: bool = False) -> Snapshot:
        return Snapshot({r.name: (r,) for r in self.records}, complete=True)

    async def watch(self, wakeup: Wakeup, stop: asyncio.Event) -> None:
        await stop.wait()


def record(number: int) -> ServiceRecord:
    label = f"svc{number:05d}"
    return ServiceRecord(
        name=f"{label}.app.docker.",
        zone="docker.",
        owner=Owner("file", f"servicerecord/{label}", f"services.yaml#{number}"),
        host=f"10.{number // 65536}.{number // 256 % 256}.{number % 256}",
    )


def make_state(tmp_path: Path, count: int, token: str = "") -> ApiState:
    settings = resolve({"definitions": str(tmp_path / "defs")}, {}, None)
    source = MergedSource([StaticSource([record(n) for n in range(count)])])
    sink = ZoneFileSink(tmp_path / "zones")
    reconciler = Reconciler(source, settings.zone_settings(), [sink])
    asyncio.run(reconciler.run_once())
    return ApiState(settings, reconciler, source, Wakeup(), token=token)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> ApiState:
    return make_state(tmp_path_factory.mktemp("big"), NAMES)


def test_the_page_for_ten_thousand_names_weighs_under_100_kb(big: ApiState) -> None:
    """Paginated on the server: the first page holds PAGE_SIZE rows whatever the zone size
    (its render time is measured by hand, not asserted: STYLE 4.6)."""
    page = statuspage.render_page(big).encode()
    assert len(page) < 100_000, len(page)
    assert f"1-{statuspage.PAGE_SIZE} of " in page.decode()
    assert "svc00000.app.docker." in page.decode()


def test_search_filters_names_and_paginates(big: ApiState) -> None:
    rows, total = statuspage.name_rows(big.reconciler.zones, "svc0999", 1)
    # svc09990..svc09999: their A, their PTR (data), their share of app.docker.'s A (owner)
    assert total == 30
    assert {row.name for row in rows if row.rdtype == "A"} == {
        "app.docker.",
        *(f"svc0999{n}.app.docker." for n in range(10)),
    }
    owners = statuspage.name_rows(big.reconciler.zones, "services.yaml#42", 1)[0]
    assert owners
    assert all("services.yaml#42" in " ".join(row.owners) for row in owners)
    second, total = statuspage.name_rows(big.reconciler.zones, "", 2)
    assert len(second) == statuspage.PAGE_SIZE
    assert total > NAMES


def test_a_search_sees_the_records_of_the_next_pass(tmp_path: Path) -> None:
    """The search index is built once per zone version: a pass that replaces the zone makes
    the next search index it again, and another state's zones never answer for this one."""
    state = make_state(tmp_path, 3)
    zones = lambda: state.reconciler.zones  # noqa: E731
    assert statuspage.name_rows(zones(), "svc00003", 1)[1] == 0
    (source,) = state.source.sources
    assert isinstance(source, StaticSource)
    source.records.append(record(3))
    asyncio.run(state.reconciler.run_once())
    rows, total = statuspage.name_rows(zones(), "svc00003", 1)
    assert total == 3  # its A, its PTR and its share of app.docker.'s A (by owner)
    assert {(row.name, row.rdtype) for row in rows} == {
        ("svc00003.app.docker.", "A"),
        ("3.0.0.10.in-addr.arpa.", "PTR"),
        ("app.docker.", "A"),
    }
    assert statuspage.name_rows(zones(), "svc00003", 1)[1] == 3  # the index, reused
    other = make_state(tmp_path / "other", 1)
    assert statuspage.name_rows(other.reconciler.zones, "svc00003", 1)[1] == 0
    assert statuspage.name_rows(zones(), "services.yaml#3", 1)[1] >= 1  # by owner


def test_a_query_does_not_match_across_fields(big: ApiState) -> None:
    zones = big.reconciler.zones
    assert statuspage.name_rows(zones, "svc00001.app.docker.\0", 1)[1] == 0
    assert statuspage.name_rows(zones, "PTR", 1)[1] == NAMES  # a type by its name


def test_explain_shows_the_owning_file(tmp_path: Path) -> None:
    state = make_state(tmp_path, 3)
    page = statuspage.render_explain(state, "svc00001.app")
    assert "svc00001.app.docker. 30 IN A 10.0.0.1" in page
    assert "from services.yaml#1 (servicerecord/svc00001) spec.host" in page


def test_status_lists_the_recent_passes_with_their_plan_lines(tmp_path: Path) -> None:
    status = status_json(make_state(tmp_path, 2))
    (first,) = status["recent"]
    assert first["number"] == 1
    assert first["reasons"] == ["start"]
    assert "+ svc00000.app.docker. 30 IN A 10.0.0.0" in first["lines"]
    out = io.StringIO()
    print_status(status, out)
    text = out.getvalue()
    assert "docker." in text
    assert "problems: none" in text
    assert "#1 " in text
    assert "+ svc00001.app.docker. 30 IN A 10.0.0.1" in text


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("198.51.100.7", False),
        ("2001:db8::1", False),
        (None, False),
    ],
)
def test_loopback_clients(remote: str | None, loopback: bool) -> None:
    assert statuspage.is_loopback_client(remote) is loopback


class _Transport:
    def __init__(self, peer: str) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.peer, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


def _get(state: ApiState, path: str, peer: str, headers: dict[str, str] | None = None) -> Any:
    app = make_app(state)
    statuspage.add_routes(app)
    request = make_mocked_request("GET", path, headers=headers, app=app, transport=_Transport(peer))
    assert request.app[STATE] is state
    try:
        return asyncio.run(statuspage.get_page(request))
    except web.HTTPException as exc:
        return exc


@pytest.mark.parametrize(
    "case",
    [
        ("", "198.51.100.7", "/", {}, 200),
        ("s3cret", "127.0.0.1", "/", {}, 200),
        ("s3cret", "198.51.100.7", "/", {}, 401),
        ("s3cret", "198.51.100.7", "/", {"Cookie": "dockzone_token=nope"}, 401),
        ("s3cret", "198.51.100.7", "/", {"Cookie": "dockzone_token=s3cret"}, 200),
        ("s3cret", "198.51.100.7", "/", {"Authorization": "Bearer s3cret"}, 200),
        ("s3cret", "198.51.100.7", "/?token=s3cret&q=web", {}, 303),
        ("s3cret", "198.51.100.7", "/?token=nope", {}, 401),
    ],
    ids=[
        "no-token-configured",
        "loopback",
        "beyond-loopback-refused",
        "wrong-cookie",
        "cookie",
        "bearer",
        "token-link-sets-cookie",
        "wrong-token-link",
    ],
)
def test_the_page_needs_the_token_beyond_loopback(
    tmp_path: Path, case: tuple[str, str, str, dict[str, str], int]
) -> None:
    token, peer, path, headers, status = case
    response = _get(make_state(tmp_path, 1, token), path, peer, headers)
    assert response.status == status
    if status == 401:
        assert "Token needed" in response.text
        assert "svc00000" not in response.text
    if status == 303:
        assert response.location == "/?q=web"  # the token leaves the address bar
        cookie = response.cookies["dockzone_token"]
        assert cookie.value == token
        assert cookie["httponly"]
