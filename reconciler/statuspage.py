"""The status page at ``GET /``: zones, the names table with owners, the last passes,
problems, sources and sinks; ``/ui/explain`` shows what ``dockzone explain`` shows.

Server-rendered with jinja2 (``templates/status.html.j2``, autoescaped) and readable without
JavaScript; ``/ui/status.js`` polls ``/ui/poll`` every two seconds and, when a pass has run,
fetches the page again and swaps its sections in. The names table is searched (``?q=``)
and paginated on the server, so a page stays small whatever the zone size.

Token rule, as the API's: with no token configured (loopback, or ``--insecure-api``) the
page is open; with one, requests from loopback are open and any other needs the token,
given once as ``?token=`` (or through the login form), kept in an HttpOnly cookie.
``daemon.start_api`` adds these routes to the API's application.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import ipaddress
import itertools
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reconciler.api import STATE, ApiState, bearer, status_json, token_matches
from reconciler.core.model import ZoneContent, ZoneSet
from reconciler.explain import explain, resolve_name

if TYPE_CHECKING:
    import jinja2

PAGE_SIZE = 100
"""Rows of the names table per page."""
MAX_DATA = 120
"""Characters of record data shown in the table (explain shows all)."""
COOKIE = "dockzone_token"
STATIC = {"status.css": "text/css", "status.js": "text/javascript"}


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # noqa: PLC0415 - jinja2 loads when a page is first rendered

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(importlib.resources.files("reconciler.templates"))),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _static(name: str) -> bytes:
    return (importlib.resources.files("reconciler.templates") / name).read_bytes()


# --- the names table ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One RR of the names table."""

    name: str
    rdtype: str
    ttl: int
    data: str
    owners: tuple[str, ...]
    """Who made it: ``location (object) field`` per owner, aggregated ones with ``via``."""


def _zone_order(origin: str) -> tuple[bool, tuple[str, ...]]:
    return (origin.endswith(".arpa."), tuple(reversed(origin.rstrip(".").split("."))))


_SEP = "\0"


@dataclass(frozen=True, slots=True)
class _Searchable:
    """One zone's RRs in table order, each with its search text built once: the name, the
    lowercased data and every owner's location and object, joined by NULs. ``query in
    text`` rejects almost every RR cheaply; a hit is confirmed field by field (a query with
    a NUL could otherwise match across two fields)."""

    zone: ZoneContent
    entries: tuple[tuple[int, str, str, str], ...]
    """(RRset index, rdata, lowercased type, search text)."""

    @classmethod
    def build(cls, zone: ZoneContent) -> _Searchable:
        provenance = zone.provenance
        entries = []
        for number, rrset in enumerate(zone.rrsets):
            for rdata in rrset.rdatas:
                owners = provenance.get((rrset.name, rrset.rdtype, rdata), ())
                text = _SEP.join(
                    (
                        rrset.name,
                        rdata.lower(),
                        *(p.owner.location.lower() for p in owners),
                        *(p.owner.object.lower() for p in owners),
                    )
                )
                entries.append((number, rdata, rrset.rdtype.lower(), text))
        return cls(zone, tuple(entries))


_searchable: dict[str, _Searchable] = {}
"""The last search's index by origin; a zone a pass replaced is indexed again when next
searched (zones are immutable, so identity says whether an index is current)."""


def _index(zones: ZoneSet) -> dict[str, _Searchable]:
    global _searchable  # noqa: PLW0603 - one reference, swapped whole (readers in threads)
    known = _searchable
    fresh = {}
    for origin, zone in zones.items():
        cached = known.get(origin)
        fresh[origin] = (
            cached if cached is not None and cached.zone is zone else _Searchable.build(zone)
        )
    _searchable = fresh  # zones gone since are dropped with the old mapping
    return fresh


def _matches(zones: ZoneSet, query: str) -> Iterator[tuple[str, int, str]]:
    """(origin, RRset index, rdata) of every RR matching ``query`` (a substring of the name,
    the data or an owner's location or object; a type by its exact name), in zone order."""
    if not query:
        for origin in sorted(zones, key=_zone_order):
            for number, rrset in enumerate(zones[origin].rrsets):
                for rdata in rrset.rdatas:
                    yield origin, number, rdata
        return
    index = _index(zones)
    for origin in sorted(zones, key=_zone_order):
        searchable = index[origin]
        zone = searchable.zone
        rrsets, provenance = zone.rrsets, zone.provenance
        for number, rdata, rdtype, text in searchable.entries:
            if query == rdtype or (
                query in text  # else no field holds it; a hit is confirmed field by field
                and (
                    query in (rrset := rrsets[number]).name
                    or query in rdata.lower()
                    or any(
                        query in p.owner.location.lower() or query in p.owner.object.lower()
                        for p in provenance.get((rrset.name, rrset.rdtype, rdata), ())
                    )
                )
            ):
                yield origin, number, rdata


def _row(zones: ZoneSet, origin: str, number: int, rdata: str) -> Row:
    zone = zones[origin]
    rrset = zone.rrsets[number]
    owners = tuple(
        dict.fromkeys(str(p) for p in zone.provenance.get((rrset.name, rrset.rdtype, rdata), ()))
    )
    return Row(rrset.name, rrset.rdtype, rrset.ttl, rdata, owners)


def name_rows(zones: ZoneSet, query: str, page: int) -> tuple[list[Row], int]:
    """The rows of page ``page`` (from 1) of the RRs matching ``query``, and how many match."""
    query = query.strip().lower()
    if not query:  # count without walking every RR
        total = sum(len(r.rdatas) for zone in zones.values() for r in zone.rrsets)
        start = (page - 1) * PAGE_SIZE
        found = list(itertools.islice(_matches(zones, ""), start, start + PAGE_SIZE))
    else:
        every = list(_matches(zones, query))
        total = len(every)
        found = every[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return [_row(zones, origin, number, rdata) for origin, number, rdata in found], total


# --- rendering ----------------------------------------------------------------------------


def _page_number(text: str) -> int:
    try:
        return max(1, int(text))
    except ValueError:
        return 1


def _link(query: str, page: int) -> str:
    params = {"q": query} if query else {}
    if page > 1:
        params["page"] = str(page)
    return "/?" + urllib.parse.urlencode(params) if params else "/"


def render_page(state: ApiState, query: str = "", page: int = 1) -> str:
    """The status page (``GET /``) as HTML."""
    status = status_json(state)
    zones = state.reconciler.zones
    rows, total = name_rows(zones, query, page)
    pages = max(1, -(-total // PAGE_SIZE))
    problems = [
        (name, problem)
        for name, source in status["sources"].items()
        for problem in source["problems"]
    ]
    return (
        _environment()
        .get_template("status.html.j2")
        .render(
            status=status,
            rows=rows,
            total=total,
            query=query,
            page=min(page, pages),
            pages=pages,
            first=(page - 1) * PAGE_SIZE + 1,
            previous=_link(query, page - 1) if page > 1 else "",
            next=_link(query, page + 1) if page < pages else "",
            problems=problems,
            max_data=MAX_DATA,
            quote=urllib.parse.quote,
        )
    )


def render_explain(state: ApiState, text: str, rdtype: str = "") -> str:
    """``/ui/explain``: what ``dockzone explain NAME [TYPE]`` prints, as a page."""
    reconciler = state.reconciler
    zones = reconciler.zones
    settings = state.settings
    lines: list[Any] = []
    name = ""
    result = None
    if text.strip():
        origin = settings.name_defaults().origin(settings.domain[0])
        name = resolve_name(text.strip(), origin, list(zones))
        result = explain(zones, reconciler.conflicts, name, rdtype)
        lines = list(result.lines)
    return (
        _environment()
        .get_template("explain.html.j2")
        .render(
            asked=text,
            rdtype=rdtype.upper(),
            name=name,
            result=result,
            lines=lines,
            text=result.to_text(rdtype.upper()) if result is not None else [],
        )
    )


def render_login(message: str = "") -> str:
    return _environment().get_template("login.html.j2").render(message=message)


# --- access -------------------------------------------------------------------------------


def is_loopback_client(remote: str | None) -> bool:
    """Whether a request came from loopback (an IPv4-mapped ``::ffff:127.0.0.1`` too)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def page_allowed(state: ApiState, remote: str | None, given: str) -> bool:
    """The page's token rule: open without a configured token and on loopback; otherwise
    ``given`` (from the cookie or a bearer header) must be the API's token."""
    if not state.token or is_loopback_client(remote):
        return True
    return bool(given) and token_matches(given, state.token)


def _given(request: web.Request) -> str:
    return request.cookies.get(COOKIE, "") or bearer(request)


def _html(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    )
    return response


def _signed_in(response: web.StreamResponse, token: str) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")


def _guard(request: web.Request) -> web.Response | None:
    """None when the request may see the page; else the response to send instead: a
    redirect that sets the cookie (``?token=`` right) or the login form (401)."""
    state = request.app[STATE]
    offered = request.query.get("token")
    if offered is not None and state.token:
        if token_matches(offered, state.token):
            rest = {k: v for k, v in request.query.items() if k != "token"}
            target = request.path + ("?" + urllib.parse.urlencode(rest) if rest else "")
            redirect = web.HTTPSeeOther(target)
            _signed_in(redirect, state.token)
            raise redirect
        return _html(render_login("That token is not the API's token."), 401)
    if page_allowed(state, request.remote, _given(request)):
        return None
    return _html(render_login(), 401)


# --- handlers -----------------------------------------------------------------------------


async def get_page(request: web.Request) -> web.Response:
    denied = _guard(request)
    if denied is not None:
        return denied
    query = request.query.get("q", "")
    page = _page_number(request.query.get("page", "1"))
    text = await asyncio.to_thread(render_page, request.app[STATE], query, page)
    return _html(text)


async def get_explain(request: web.Request) -> web.Response:
    denied = _guard(request)
    if denied is not None:
        return denied
    name = request.query.get("name", "")
    rdtype = request.query.get("type", "")
    return _html(await asyncio.to_thread(render_explain, request.app[STATE], name, rdtype))


async def post_login(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await request.post()
    given = str(form.get("token", ""))
    if state.token and not token_matches(given, state.token):
        return _html(render_login("That token is not the API's token."), 401)
    redirect = web.HTTPSeeOther("/")
    if state.token:
        _signed_in(redirect, state.token)
    raise redirect


async def get_poll(request: web.Request) -> web.Response:
    """What the page polls: the number of passes (the page is fetched again when it moves)."""
    state = request.app[STATE]
    if not page_allowed(state, request.remote, _given(request)):
        return web.json_response({"error": "the status page needs the API token"}, status=401)
    return web.json_response(
        {"passes": state.reconciler.passes}, headers={"Cache-Control": "no-store"}
    )


async def get_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    response = web.Response(body=_static(name), content_type=STATIC[name])
    response.headers["Cache-Control"] = "max-age=300"
    return response


def add_routes(app: web.Application) -> None:
    """The page's routes on the API's application."""
    app.router.add_get("/", get_page)
    app.router.add_get("/ui/explain", get_explain)
    app.router.add_post("/ui/login", post_login)
    app.router.add_get("/ui/poll", get_poll)
    app.router.add_get("/ui/{name}", get_static)
