"""Warm start: the DNS socket first, serving the zone files of the last run.

``dockzone run`` calls ``start(settings)`` before it imports anything heavy (aiohttp,
docker, kopf come in with ``daemon``): it loads the zone files dockzone wrote last time
into a ``ZoneStore`` and starts the DNS server on them, so names answer while the first
pass reads the sources. The first pass then patches those zones (``InProcessSink.adopt``).
Only files with dockzone's first line are served; one that cannot be parsed is skipped
(the first pass rewrites it and serves its zone). Also home of ``start_dns`` and
``make_forwarder``, which ``serve`` uses too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from dnsserver import DNSService, Forwarder, ZoneLoadError, ZoneStore, load_zone_file
from reconciler import heap
from reconciler.config import Settings, listen_addresses
from reconciler.render import ZONE_HEADER

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Early:
    """What ``start`` set up: the store, the server (None with ``--dns off``), and what was
    loaded."""

    store: ZoneStore
    service: DNSService | None
    zones: int = 0
    records: int = 0
    seconds: float = 0.0


def make_forwarder(settings: Settings) -> Forwarder | None:
    """The upstreams for names outside the zones: ``--nameserver``, else the system's
    resolv.conf; None with ``--no-rec`` (REFUSED) or when there is none."""
    if settings.no_rec:
        return None
    if settings.nameserver:
        return Forwarder(list(settings.nameserver))
    return Forwarder.from_resolv_conf()


def start_dns(settings: Settings, store: ZoneStore) -> DNSService | None:
    """Start the DNS server on ``--dns`` (None for ``off``). Raises OSError."""
    listen = listen_addresses(settings.dns)
    if not listen:
        return None
    service = DNSService(store, listen, forwarder=make_forwarder(settings), rotate=settings.rotate)
    service.start()
    return service


def load_written_zones(directory: Path, store: ZoneStore) -> tuple[int, int]:
    """Serve the zone files dockzone wrote in ``directory``: (zones, records) loaded."""
    zones = {}
    records = 0
    if not directory.is_dir():
        return 0, 0
    for path in sorted(directory.glob("db.*")):
        origin = path.name[3:] + "." if path.name != "db.root" else "."
        try:
            with path.open("rb") as file:
                if file.read(len(ZONE_HEADER)) != ZONE_HEADER.encode():
                    continue
            zone = load_zone_file(path, origin)
        except (OSError, ZoneLoadError) as exc:
            log.warning("warm start: %s not served until the first pass: %s", path, exc)
            continue
        zones[origin] = zone
        records += len(zone)
    store.replace(zones)
    return len(zones), records


def start(settings: Settings) -> Early:
    """Load the last written zones and start DNS on them. Raises OSError (DNS socket)."""
    started = time.monotonic()
    store = ZoneStore()
    zones = records = 0
    if settings.dns != "off":
        with heap.building(freeze=True):
            zones, records = load_written_zones(settings.zones, store)
    service = start_dns(settings, store)
    early = Early(store, service, zones, records, time.monotonic() - started)
    if zones:
        log.info(
            "warm start: serving %d zones (%d records) from %s, loaded in %.3fs",
            zones,
            records,
            settings.zones,
            early.seconds,
        )
    return early
