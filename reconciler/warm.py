"""Warm start: the DNS socket first, serving the zone files of the last run.

``dockzone run`` calls ``start(settings)`` before it imports anything heavy (aiohttp,
docker, kopf come in with ``daemon``): it loads the zone files dockzone wrote last time
into a ``ZoneStore`` and starts the DNS server on them, so names answer while the first
pass reads the sources. The first pass then patches those zones (``InProcessSink.adopt``).
Only files with dockzone's first line are served; one that cannot be parsed is skipped
(the first pass rewrites it and serves its zone). A clean stop saves what the server holds
(``save_served``: ``.dockzone-served`` beside the zone files, in wire form, each zone
stamped with its file's size, mtime and inode); a zone whose file is unchanged since then loads
from there, several times faster than parsing its file. Also home of ``start_dns`` and
``make_forwarder``, which ``serve`` uses too, and of ``start_journal``: the IXFR journal
(``dnsserver.journal``), loaded from beside the zone files when it can be trusted and
written there by its own thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dnsserver import (
    DNSService,
    Forwarder,
    Notifier,
    TransferKey,
    TransferPolicy,
    Transfers,
    ZoneLoadError,
    ZoneStore,
    load_zone_file,
    snapshot,
)
from dnsserver.errors import KeyStoreError
from dnsserver.journal import Journal
from dnsserver.journalfile import JournalWriter, load_journals
from dnsserver.rrl import RateLimiter
from reconciler import heap
from reconciler.atomicio import atomic_write
from reconciler.config import Settings, listen_addresses, rrl_rate
from reconciler.errors import ConfigError
from reconciler.render import ZONE_HEADER

if TYPE_CHECKING:
    from dnsserver.signer import Signer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Early:
    """What ``start`` set up: the store, the server (None with ``--dns off``), and what was
    loaded."""

    store: ZoneStore
    service: DNSService | None
    journal: JournalWriter | None = None
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


def make_rate_limiter(settings: Settings) -> RateLimiter | None:
    """Response rate limiting as ``--rrl`` and its companions say (``rrl_rate``: by default
    off on loopback, on beyond it); None when off. The subnets of the Docker networks
    dockzone watches are exempt by the server itself (``DNSService.networks``): containers
    behind one bridge share a /24 and would otherwise be limited together."""
    rate = rrl_rate(settings)
    if not rate:
        return None
    return RateLimiter(
        rate,
        slip=settings.rrl_slip,
        window=settings.rrl_window,
        exempt=[ipaddress.ip_network(cidr) for cidr in settings.rrl_exempt],
    )


def start_dns(settings: Settings, store: ZoneStore) -> DNSService | None:
    """Start the DNS server on ``--dns`` (None for ``off``), with zone transfers as
    ``--allow-transfer`` and ``--transfer-key`` say and NOTIFY to ``--also-notify``.
    Raises OSError."""
    listen = listen_addresses(settings.dns)
    if not listen:
        return None
    rrl = make_rate_limiter(settings)
    keys = [TransferKey(key.name, key.algorithm, key.secret) for key in settings.transfer_key]
    service = DNSService(
        store,
        listen,
        forwarder=make_forwarder(settings),
        rotate=settings.rotate,
        cookies=settings.cookies,
        require_cookie=settings.require_cookie,
        nsid=settings.nsid.encode(),
        tcp_idle_timeout=settings.tcp_idle_timeout,
        rrl=rrl,
        transfers=Transfers(TransferPolicy(settings.allow_transfer, keys)),
        notifier=Notifier(store, settings.also_notify, keys[0] if keys else None)
        if settings.also_notify
        else None,
    )
    service.start()
    if rrl is not None:
        log.info(
            "response rate limiting: %s (clients on watched Docker networks are exempt too)",
            rrl.describe(),
        )
    return service


def start_journal(
    settings: Settings, store: ZoneStore, service: DNSService | None
) -> JournalWriter | None:
    """Keep a journal of ``store``'s changes for ``service``'s incremental transfers: load
    the journal files in ``--zones`` that end at the serials served now, journal every
    swap from here on, and write the files on their own thread (stop it after the server).
    None when DNS is off or ``--journal-size 0``."""
    if service is None or settings.journal_size == 0:
        return None
    journal = Journal(settings.journal_size)
    directory = settings.zones
    loaded = load_journals(directory, journal, store.snapshot().zones)
    store.track(journal.record)
    service.transfers.journal = journal
    writer = JournalWriter(journal, directory)
    writer.start()
    log.debug("IXFR journal: %d zones loaded from %s", loaded, directory)
    return writer


SNAPSHOT = ".dockzone-served"
"""The served zones as the daemon stopped (``save_served``), beside the zone files."""


def _zone_files(directory: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(directory.glob("db.*")):
        yield (path.name[3:] + "." if path.name != "db.root" else "."), path


def _stamp(path: Path) -> tuple[int, int, int]:
    """Size, mtime and inode: every write of a zone file is a new inode (atomic rename), so
    a rewrite of the same size within one mtime tick, or a restore that keeps the old
    mtime, still changes the stamp."""
    stat = path.stat()
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


def load_written_zones(directory: Path, store: ZoneStore) -> tuple[int, int, int]:
    """Serve the zone files dockzone wrote in ``directory``: (zones, records, zones taken
    from the snapshot) loaded. A zone
    whose file is exactly as it was when the daemon last stopped comes from the snapshot
    of what it served then (``save_served``), the rest from its file."""
    zones = {}
    records = reused = 0
    if not directory.is_dir():
        return 0, 0, 0
    try:
        saved = snapshot.load((directory / SNAPSHOT).read_bytes())
    except OSError:
        saved = {}
    for origin, path in _zone_files(directory):
        try:
            known = saved.get(origin)
            if known is not None and known[0] == _stamp(path):
                zone = known[1]
                reused += 1
            else:
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
    return len(zones), records, reused


def save_served(directory: Path, store: ZoneStore) -> None:
    """At a clean stop: write what ``store`` serves of the zone files in ``directory``,
    each zone stamped with its file's size, mtime and inode, for the next warm start. A zone whose
    file changes afterwards (or a daemon killed before this ran) is loaded from its file."""
    served = store.snapshot().zones
    zones = {}
    for origin, path in _zone_files(directory):
        zone = served.get(origin)
        if zone is not None:
            with contextlib.suppress(OSError):
                zones[origin] = (_stamp(path), zone)
    target = directory / SNAPSHOT
    try:
        if zones:
            atomic_write(target, snapshot.dump(zones), mode=0o600)
        else:
            target.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot save the served zones for the next start in %s: %s", target, exc)


def make_signer(settings: Settings) -> Signer | None:
    """The DNSSEC signer of ``--dnssec`` (None without). Raises ConfigError."""
    if not settings.dnssec:
        return None
    from reconciler.keys import signer  # noqa: PLC0415 (cryptography: only when signing)

    return signer(settings)


def start(settings: Settings) -> Early:
    """Load the last written zones and start DNS on them. Raises OSError (DNS socket),
    ConfigError (the DNSSEC options or a damaged key file)."""
    started = time.monotonic()
    store = ZoneStore(signer=make_signer(settings))
    zones = records = reused = 0
    if settings.dns != "off":
        with heap.building(freeze=True):
            try:
                zones, records, reused = load_written_zones(settings.zones, store)
            except KeyStoreError as exc:  # a damaged key file: nothing is signed with new keys
                raise ConfigError(f"--dnssec-keys: {exc}") from None
    service = start_dns(settings, store)
    journal = start_journal(settings, store, service)
    early = Early(store, service, journal, zones, records, time.monotonic() - started)
    if zones:
        log.info(
            "warm start: serving %d zones (%d records) from %s, %d as saved at the last "
            "stop, loaded in %.3fs",
            zones,
            records,
            settings.zones,
            reused,
            early.seconds,
        )
    return early
