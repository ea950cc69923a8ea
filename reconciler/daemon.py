"""``dockzone run`` and ``dockzone serve``: the long-running processes.

``run`` wires the definitions source, the reconcile loop, the zone file sink and (unless
``--dns off``) the in-process DNS server; ``serve`` only serves a zone directory, reloading
changed files. Both stop cleanly on SIGTERM or SIGINT; SIGHUP forces a full pass (``run``)
or a rescan (``serve``). Called by ``cli``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from aiohttp import web
from watchfiles import awatch

from dnsserver import DNSService, ZoneDirectory, ZoneStore
from dnsserver.errors import KeyStoreError
from dnsserver.name import reverse_network
from dnsserver.zonefile import dnssec_text
from reconciler.config import Settings, parse_hostport
from reconciler.core.triggers import Wakeup, next_wakeup
from reconciler.errors import ConfigError
from reconciler.loop import Reconciler, resync_timer
from reconciler.sinks import Sink
from reconciler.sinks.inprocess import InProcessSink
from reconciler.sinks.zonefiles import ZoneFileSink
from reconciler.sources import MergedSource, Snapshot, Source
from reconciler.sources.docker import DockerOptions, DockerSource
from reconciler.sources.files import FilesSource
from reconciler.warm import (
    Early,
    make_signer,
    save_served,
    start,
    start_dns,
    start_journal,
)

if TYPE_CHECKING:
    from reconciler.etcdclient import EtcdClient

log = logging.getLogger(__name__)

SIGNATURE_CHECK = 60.0
"""Seconds between checks for DNSSEC signatures due and key state changes."""


def _signals(stop: asyncio.Event, hup: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hup)


def _where(service: DNSService | None) -> str:
    if service is None:
        return "DNS off"
    return "DNS on " + ", ".join(
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in service.addresses
    )


def make_sources(settings: Settings) -> list[Source]:
    """The sources ``run`` reads: the definitions directory (more come with Docker, etcd)."""
    settings.definitions.mkdir(parents=True, exist_ok=True)
    sources: list[Source] = [FilesSource(settings.definitions, settings.name_defaults())]
    if settings.docker != "off":
        sources.append(DockerSource(docker_options(settings), settings.name_defaults()))
    if settings.etcd and settings.etcd_source:
        from reconciler.sources.etcd import EtcdSource  # noqa: PLC0415

        client = etcd_client(settings)
        sources.append(
            EtcdSource(client, settings.etcd_prefix, settings.instance_id, settings.domain)
        )
    return sources


def etcd_client(settings: Settings) -> EtcdClient:
    """One client for the etcd endpoints of ``--etcd`` (the source and the sink each get
    one: they run in different threads)."""
    from reconciler.etcdclient import EtcdClient, EtcdOptions  # noqa: PLC0415

    return EtcdClient(
        EtcdOptions(
            settings.etcd,
            settings.etcd_ca,
            settings.etcd_cert,
            settings.etcd_key,
            settings.etcd_user,
            settings.etcd_password,
        )
    )


def docker_options(settings: Settings) -> DockerOptions:
    """The Docker source's settings."""
    return DockerOptions(
        url=settings.docker,
        tls_verify=settings.tlsverify,
        tls_ca=settings.tlscacert,
        tls_cert=settings.tlscert,
        tls_key=settings.tlskey,
        host_address=settings.host_address,
        networks=settings.docker_network,
        health=settings.health,
        hostname_names=settings.hostname_names,
        stop_grace=settings.stop_grace,
    )


def make_sinks(settings: Settings, store: ZoneStore | None) -> list[Sink]:
    """The sinks ``run`` converges, in the order they apply: the in-process server's zones
    when DNS is served (with the files' serials), RFC 2136 and etcd when configured, then
    the zone files (rewriting a big zone file costs what the zone holds, so the servers
    fed by the others get the change first; the files' serials are assigned before any
    sink applies, in ``prepare``)."""
    signed = None
    if settings.sign_zone_files and store is not None and store.signer is not None:
        signed = partial(signed_records, store)
    zonefiles = ZoneFileSink(settings.zones, signed=signed)
    sinks: list[Sink] = []
    if store is not None:
        sinks.append(InProcessSink(store, zonefiles.serial))
    if settings.rfc2136_server:
        from reconciler.config import parse_hostport  # noqa: PLC0415
        from reconciler.sinks.rfc2136 import Rfc2136Config, Rfc2136Sink  # noqa: PLC0415

        server = parse_hostport(settings.rfc2136_server)
        zones = settings.rfc2136_zone or settings.domain
        key, instance = settings.tsig_key_file, settings.instance_id
        sinks.append(Rfc2136Sink(Rfc2136Config(server, zones, key, instance)))
    if settings.etcd:
        from reconciler.sinks.etcd import EtcdSink, EtcdSinkConfig  # noqa: PLC0415

        client = etcd_client(settings)
        config = EtcdSinkConfig(
            settings.etcd_prefix,
            settings.instance_id,
            settings.etcd_lease_ttl,
            settings.etcd_discover_prefix,
            settings.etcd_discover_realm,
        )
        sinks.append(EtcdSink(client, config))
    sinks.append(zonefiles)
    return sinks


def signed_records(store: ZoneStore, origin: str, serial: int) -> str:
    """The DNSKEY, RRSIG and NSEC records of ``origin`` as served with ``serial`` (the
    in-process sink, first in the pass, signed it), for its zone file; "" when the
    served zone is not signed or has another serial (the file is then written unsigned,
    and signed at the next pass that writes it)."""
    zone = store.snapshot().zones.get(origin)
    if zone is None or zone.chain is None or zone.serial != serial:
        return ""
    return dnssec_text(zone)


def signatures_due(store: ZoneStore) -> list[str]:
    """The served zones whose signatures are due or whose keys changed."""
    signer = store.signer
    if signer is None:
        return []
    due = []
    for zone in store.snapshot():
        try:
            if signer.signs(zone.origin) and signer.due(zone):
                due.append(zone.origin)
        except KeyStoreError:  # its keys cannot be read now: the zone keeps what it has
            continue
    return due


async def signature_timer(store: ZoneStore, wakeup: Wakeup, stop: asyncio.Event) -> None:
    """Wake the loop when signatures come due or a key changes state (a rollover step, a
    `dockzone dnssec roll` from another process): checked every ``SIGNATURE_CHECK`` s."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=SIGNATURE_CHECK)
        except TimeoutError:
            if signatures_due(store):
                wakeup.set("signatures")


def api_token(settings: Settings) -> str:
    """The API's bearer token: ``--api-token-file``, else ``DOCKZONE_API_TOKEN`` (or the
    config file's ``api_token``); empty when none. Raises ConfigError."""
    path = settings.api_token_file
    if path is None:
        return settings.api_token.strip()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--api-token-file {path}: cannot read: {exc}") from exc
    if not token:
        raise ConfigError(f"--api-token-file {path}: the file is empty")
    return token


def check_api(settings: Settings) -> str:
    """The token for ``--http``; raises ConfigError when the API would listen beyond
    loopback without one (unless ``--insecure-api``)."""
    from reconciler.api import is_loopback  # noqa: PLC0415

    token = api_token(settings)
    if settings.http == "off" or token or settings.insecure_api:
        return token
    host, _ = parse_hostport(settings.http, any_address=True)
    if not is_loopback(host):
        raise ConfigError(
            f"--http {settings.http} listens beyond loopback: API mutations need a token "
            "(--api-token-file FILE or DOCKZONE_API_TOKEN); --insecure-api allows them "
            "to anyone who can connect"
        )
    return token


async def run(settings: Settings, err: TextIO, early: Early | None = None) -> int:
    """The daemon; ``early`` is the DNS server ``warm.start`` already started on the last
    written zones (started here when None). Returns the exit code."""
    try:
        token = check_api(settings)
    except ConfigError as exc:
        print(f"dockzone: {exc}", file=err)
        if early is not None and early.service is not None:
            early.service.stop()
        return 2
    if early is None:
        try:
            early = start(settings)
        except OSError as exc:
            print(f"dockzone: cannot serve DNS on {settings.dns}: {exc.strerror or exc}", file=err)
            return 1
    store, service = early.store, early.service
    source = MergedSource(make_sources(settings), settings.max_delete_fraction)
    sinks = make_sinks(settings, store if service is not None or store.signer else None)
    zonefiles = next(s for s in sinks if isinstance(s, ZoneFileSink))
    for sink in sinks:
        if isinstance(sink, InProcessSink) and early.zones:
            sink.adopt(zonefiles.current)
    owned = reverse_networks(settings)
    if service is not None:
        service.reverse_authority = owned
    reconciler = Reconciler(
        source, settings.zone_settings(), sinks, on_snapshot=network_aware(service, owned)
    )
    if store.signer is not None:
        reconciler.signatures_due = partial(signatures_due, store)
    wakeup = Wakeup()
    stop = asyncio.Event()
    try:
        http = await start_api(
            settings,
            token=token,
            reconciler=reconciler,
            source=source,
            wakeup=wakeup,
            service=service,
        )
    except OSError as exc:
        print(f"dockzone: cannot serve HTTP on {settings.http}: {exc.strerror or exc}", file=err)
        if service is not None:
            service.stop()
        return 1
    _signals(stop, lambda: wakeup.set("SIGHUP"))
    docker = f"docker {settings.docker}" if settings.docker != "off" else "no Docker endpoint"
    where_http = f"HTTP API on {settings.http}" if http is not None else "HTTP API off"
    print(
        f"dockzone: {_where(service)}; {where_http}; definitions {settings.definitions}; "
        f"{docker}; zones {settings.zones}",
        file=err,
        flush=True,
    )
    if settings.ttl_from_api:
        log.info("default TTL %d was set through the API (PUT /set/ttl)", settings.ttl)
    tasks = [
        asyncio.create_task(source.watch(wakeup, stop)),
        asyncio.create_task(resync_timer(wakeup, settings.resync, stop)),
    ]
    if store.signer is not None:
        tasks.append(asyncio.create_task(signature_timer(store, wakeup, stop)))
    try:
        await reconciler.run(wakeup, stop)
    finally:
        await _finish(stop, tasks)
        if http is not None:
            await http.cleanup()
        if service is not None:
            service.stop()
            if early.journal is not None:
                early.journal.stop()
            save_served(settings.zones, store)
    log.info("stopped after %d passes", reconciler.passes)
    return 0


async def start_api(
    settings: Settings,
    *,
    token: str,
    reconciler: Reconciler,
    source: MergedSource,
    wakeup: Wakeup,
    service: DNSService | None,
) -> web.AppRunner | None:
    """Serve the HTTP API and ``/metrics`` on ``--http`` (None for ``off``). Raises
    OSError."""
    if settings.http == "off":
        return None
    from reconciler import api, metrics, statuspage  # noqa: PLC0415

    zonefiles = next((s for s in reconciler.sinks if isinstance(s, ZoneFileSink)), None)

    def serials() -> dict[str, int]:
        return zonefiles.serials() if zonefiles is not None else {}

    def zones() -> dict[str, metrics.ZoneFigures]:
        known = serials()
        return {
            origin: metrics.ZoneFigures(known.get(origin, 0), zone.record_count)
            for origin, zone in reconciler.zones.items()
        }

    stats = metrics.ReconcileStats()
    reconciler.on_report.append(stats.observe)
    signer = service.store.signer if service is not None else None
    collector = metrics.DockzoneCollector(
        metrics.Sources(
            dns=service.stats if service is not None else lambda: None,
            reconcile=stats,
            records=lambda: {n: s.count() for n, s in list(source.snapshots.items())},
            held=lambda: {
                n: s.held.removed if s.held else 0 for n, s in list(source.snapshots.items())
            },
            zones=zones,
            signatures=lambda: signer.signatures if signer is not None else 0,
        ),
        settings.metrics_namespace,
        settings.metrics_subsystem,
    )
    registry = metrics.make_registry(collector)

    def dns() -> tuple[list[str], int]:
        if service is None:
            return [], 0
        listeners = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in service.addresses]
        return listeners, sum(service.stats().requests.values())

    state = api.ApiState(
        settings,
        reconciler,
        source,
        wakeup,
        token=token,
        metrics=lambda: metrics.render_metrics(registry),
        serials=serials,
        dns=dns,
    )
    app = api.make_app(state)
    statuspage.add_routes(app)
    host, port = parse_hostport(settings.http, any_address=True)
    return await api.start(app, host, port)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def reverse_networks(settings: Settings) -> tuple[IPNetwork, ...]:
    """The networks of the ``--reverse-zone`` zones: dockzone answers every PTR question
    there itself."""
    found = (reverse_network(origin) for origin in settings.reverse_zone)
    return tuple(network for network in found if network is not None)


def network_aware(
    service: DNSService | None, owned: tuple[IPNetwork, ...] = ()
) -> Callable[[Snapshot], None] | None:
    """Hand the sources' subnets (Docker networks) to the DNS server after every read, so
    clients get the addresses on their own network, and the reverse zones speak for the
    whole of those subnets (besides ``owned``); PTR misses elsewhere go upstream."""
    if service is None:
        return None

    def update(snapshot: Snapshot) -> None:
        if snapshot.networks is not None:
            service.networks = [ipaddress.ip_network(cidr) for cidr in snapshot.networks]
            service.reverse_authority = owned + tuple(service.networks)

    return update


async def _finish(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Stop the background tasks and wait for them."""
    stop.set()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def serve(settings: Settings, err: TextIO) -> int:
    """Serve the zone files in ``--zones``, reloading changed files. Returns the exit code."""
    directory: Path = settings.zones
    directory.mkdir(parents=True, exist_ok=True)
    try:
        store = ZoneStore(signer=make_signer(settings))
        zones = ZoneDirectory(directory, store)
        zones.rescan()
    except (ConfigError, KeyStoreError) as exc:
        print(f"dockzone: {exc}", file=err)
        return 2
    try:
        service = start_dns(settings, store)
    except OSError as exc:
        print(f"dockzone: cannot serve DNS on {settings.dns}: {exc.strerror or exc}", file=err)
        return 1
    if service is None:
        print("dockzone: serve needs --dns ADDR:PORT, not off", file=err)
        return 2
    journal = start_journal(settings, store, service)
    print(f"dockzone: {_where(service)}; zones {directory}", file=err, flush=True)
    wakeup = Wakeup()
    stop = asyncio.Event()
    _signals(stop, lambda: wakeup.set("SIGHUP"))

    async def watch() -> None:
        async for _ in awatch(directory, stop_event=stop, debounce=50, step=10):
            wakeup.set("zone files")

    tasks = [
        asyncio.create_task(watch()),
        asyncio.create_task(resync_timer(wakeup, settings.resync, stop)),
    ]
    try:
        while await next_wakeup(wakeup, stop) is not None:
            await asyncio.to_thread(zones.rescan)
            if store.signer is not None:  # signatures due, key changes: a new serial each
                await asyncio.to_thread(store.resign)
    finally:
        await _finish(stop, tasks)
        service.stop()
        if journal is not None:
            journal.stop()
    return 0
