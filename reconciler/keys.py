"""DNSSEC keys from the settings, and the ``dockzone dnssec`` command (keys, ds, roll,
ds-seen) over ``dnsserver.keys.KeyStore``.

`key_store(settings)` is what the daemon (``run``, ``serve``) hands the signer; ``cli``
imports this module only when a ``dnssec`` command runs (``cryptography`` loads with it).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from dnsserver.dnssec import ALGORITHMS
from dnsserver.errors import KeyStoreError
from dnsserver.keys import KeyPolicy, KeyStore, zone_origin
from dnsserver.signer import Signer, SigningPolicy
from reconciler.cli import INVALID, OK, USAGE, Context
from reconciler.config import Settings
from reconciler.core import names
from reconciler.errors import ConfigError


def key_policy(settings: Settings) -> KeyPolicy:
    """The `KeyPolicy` of ``--dnssec-algorithm``, ``--dnssec-split-keys`` and
    ``--dnssec-zsk-lifetime``. Raises ConfigError naming the option."""
    try:
        return KeyPolicy(
            algorithm=ALGORITHMS[settings.dnssec_algorithm],
            split=settings.dnssec_split_keys,
            zsk_lifetime=settings.dnssec_zsk_lifetime,
        )
    except ValueError as exc:
        raise ConfigError(f"--dnssec-zsk-lifetime: {exc}") from None


def key_store(settings: Settings) -> KeyStore:
    """The key store in ``--dnssec-keys`` with `key_policy`. Raises ConfigError."""
    return KeyStore(settings.dnssec_keys, key_policy(settings))


def signer(settings: Settings) -> Signer | None:
    """The signer of ``--dnssec`` (None when no zone is signed), with its keys from
    `key_store` and the signature timing of ``--signature-validity`` and
    ``--signature-refresh``. Raises ConfigError, also when the keys of a zone it signs
    are damaged (the daemon would otherwise retry its passes, serving nothing)."""
    if not settings.dnssec:
        return None
    keys = key_store(settings)
    wanted = frozenset(settings.dnssec)
    for zone in keys.zones():
        if "all" in wanted or zone in wanted:
            try:
                keys.keys(zone)
            except KeyStoreError as exc:
                raise ConfigError(f"--dnssec-keys: {exc}") from None
    policy = SigningPolicy(
        validity=settings.signature_validity,
        refresh=settings.signature_refresh,
        dnskey_ttl=keys.policy.dnskey_ttl,
    )
    if "all" in wanted:
        return Signer(keys.keys, policy=policy)
    return Signer(keys.keys, wanted.__contains__, policy)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _run(ctx: Context, args: argparse.Namespace, action: Callable[[KeyStore, str], int]) -> int:
    """`action` on the key store of the settings and the zone argument (``""``: none);
    errors printed, with their exit code."""
    zone = ""
    if args.zone:
        problem = names.name_problem(args.zone)
        if problem:
            ctx.error(f"{args.zone!r}: {problem}")
            return INVALID
        zone = zone_origin(args.zone)
    try:
        store = key_store(ctx.settings)
    except ConfigError as exc:
        ctx.error(str(exc))
        return USAGE
    try:
        return action(store, zone)
    except KeyStoreError as exc:
        ctx.error(str(exc))
        return INVALID


def cmd_keys(ctx: Context, args: argparse.Namespace) -> int:
    """The keys of ZONE, or of every zone with keys, their state and next event."""
    return _run(ctx, args, lambda store, zone: _print_keys(ctx, store, zone))


def _print_keys(ctx: Context, store: KeyStore, zone: str) -> int:
    rows = store.describe(zone or None)
    if not rows:
        where = f"for {zone} " if zone else ""
        print(f"no DNSSEC keys {where}in {store.directory}", file=ctx.out)
        return OK
    print(
        f"{'ZONE':<24} {'TAG':>5}  {'ROLE':<4}  {'ALGORITHM':<15}  {'STATE':<10}  NEXT EVENT",
        file=ctx.out,
    )
    for row in rows:
        when = _when(row.when)
        event = f"{row.next_event} at {when}" if when else row.next_event
        print(
            f"{row.zone:<24} {row.tag:>5}  {row.role:<4}  {row.algorithm:<15}  "
            f"{row.state:<10}  {event}",
            file=ctx.out,
        )
    return OK


def cmd_ds(ctx: Context, args: argparse.Namespace) -> int:
    """The DS records the parent should hold now (makes the zone's keys if it has none)."""

    def ds(store: KeyStore, zone: str) -> int:
        for record in store.ds_records(zone):
            print(record, file=ctx.out)
        return OK

    return _run(ctx, args, ds)


def cmd_roll(ctx: Context, args: argparse.Namespace) -> int:
    """Start a ZSK roll (pre-publication) or a KSK/CSK roll (double-DS) now."""
    return _run(ctx, args, lambda store, zone: _change(ctx, store, zone, args.kind))


def cmd_ds_seen(ctx: Context, args: argparse.Namespace) -> int:
    """The parent publishes the new KSK/CSK's DS: let the key in after the DS TTL."""
    return _run(ctx, args, lambda store, zone: _change(ctx, store, zone, ""))


def _change(ctx: Context, store: KeyStore, zone: str, kind: str) -> int:
    """`roll` of `kind`, or (no kind) `ds_seen`; prints the keys on their way in."""
    if zone not in store.zones():
        ctx.error(
            f"{zone} has no DNSSEC keys in {store.directory} (dockzone dnssec ds {zone} makes them)"
        )
        return INVALID
    keys = store.roll(zone, kind) if kind else store.ds_seen(zone)
    for timing in keys.timings:
        if timing.state in ("ds-pending", "published"):
            due = timing.published if timing.state == "ds-pending" else timing.active
            step = "in the DNSKEY RRset" if timing.state == "ds-pending" else "signing"
            later = f"{step} from {_when(due)}" if due else "its DS goes to the parent"
            print(f"{zone} {timing.role} {timing.tag} {timing.state}: {later}", file=ctx.out)
    if any(t.state == "ds-pending" and t.published is None for t in keys.timings):
        print(
            f"next: give the parent the records of `dockzone dnssec ds {zone}`, then, once it "
            f"serves them, run `dockzone dnssec ds-seen {zone}`",
            file=ctx.out,
        )
    return OK
