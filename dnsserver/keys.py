"""DNSSEC keys of the served zones: where they are kept and when they change.

`KeyStore.keys(zone)` is what the signer asks on every reconcile pass and signature
refresh: the DNSKEY RRset's members, the keys that sign it, the keys that sign the rest,
and when the next timed change is due. It makes a zone's first keys on first use, moves the
rollover state machine to the clock, saves what changed, and returns the same `ZoneKeys`
object as long as nothing did (the signer compares by identity).

On disk, per zone, in ``<directory>/<zone without its final dot, or "root">/`` (0700):
one private key per file, ``K<zone>+<algorithm>+<tag>.pem`` (PKCS#8, 0600, BIND's naming),
and ``keys.json`` with each key's role, state and timestamps (epoch seconds), written
atomically. A changed ``keys.json`` (another process, such as ``dockzone dnssec roll``,
rewrote it) is read again at the next call: one ``stat`` per call tells. A damaged or
missing file is a `KeyFileError` naming the file and field; new keys are never made over
existing ones.

Key states and the timings between them (RFC 7583 names in brackets)::

    state        in DNSKEY  signs  next                              after
    ds-pending   no         no     published (CSK) / active (KSK)    ds-seen + ds_ttl + margin
    published    yes        no     active (the old key: retired)     dnskey_ttl + margin [Ipub]
    active       yes        yes    -
    retired      yes        no     removed (file deleted)            max_zone_ttl + margin [Iret]

- ZSK, pre-publication (RFC 6781 §4.1.1.1, RFC 7583 §3.2.1): the successor is made and
  published ``dnskey_ttl + margin`` before the active ZSK's lifetime ends (or at once by
  `roll`), so every cached DNSKEY RRset holds it when it starts signing; the old ZSK stays
  published until its signatures have left the caches.
- KSK, double-DS (RFC 6781 §4.1.2, RFC 7583 §3.3.2), on command only: the new KSK's DS
  goes to the parent first (`ZoneKeys.ds` holds both keys); once the user confirms the
  parent publishes it (`ds_seen`) and ``ds_ttl + margin`` passed, the new KSK replaces the
  old one in the DNSKEY RRset and the old is removed. The old DS can then go.
- CSK: double-DS as a KSK, then pre-publication as a ZSK, since a CSK also signs the zone's
  data: a resolver holding the old DNSKEY RRset must never see data signed by a key it
  lacks. The old DS can go once the new CSK is active.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm

from dnsserver.dnssec import ALGORITHMS, ECDSAP256SHA256, SEP, ZONE_KEY, SigningKey, ds_text
from dnsserver.errors import KeyFileError, KeyStoreError
from dnsserver.journalfile import write_file

log = logging.getLogger(__name__)

DAY = 86400
CSK, KSK, ZSK = "CSK", "KSK", "ZSK"
ROLES = (CSK, KSK, ZSK)
DS_PENDING, PUBLISHED, ACTIVE, RETIRED = "ds-pending", "published", "active", "retired"
STATES = (DS_PENDING, PUBLISHED, ACTIVE, RETIRED)
STATE_FILE = "keys.json"
FORMAT = 1
MNEMONICS = {number: name for name, number in ALGORITHMS.items()}
_TIMES = ("published", "active", "retired", "removed", "ds_seen")
_NEEDS = {
    DS_PENDING: (),
    PUBLISHED: ("published", "active"),
    ACTIVE: ("published", "active"),
    RETIRED: ("published", "retired", "removed"),
}
"""The times a key in each state must have."""


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """How a zone's keys are made and rolled. Times in seconds.

    `split`: False, one combined signing key (CSK, flags 257) signs everything; True, a
    KSK (257) signs the DNSKEY RRset and a ZSK (256) the rest. `zsk_lifetime` 0: the ZSK
    rolls only on command. `margin` is RFC 7583's publish- and retire-safety.
    `algorithm` and `split` apply to a zone's first keys; a roll keeps the algorithm of the
    key it replaces (an algorithm roll, RFC 6781 §4.1.4, is not done).
    """

    algorithm: int = ECDSAP256SHA256
    split: bool = False
    zsk_lifetime: float = 30 * DAY
    dnskey_ttl: int = 3600
    margin: float = 3600
    max_zone_ttl: int = DAY
    ds_ttl: int = DAY

    def __post_init__(self) -> None:
        if self.algorithm not in MNEMONICS:
            raise ValueError(f"unsupported DNSSEC algorithm {self.algorithm}")
        if self.zsk_lifetime and self.zsk_lifetime <= self.publish_wait:
            raise ValueError(
                f"a ZSK lifetime must be 0 (no scheduled roll) or more than the DNSKEY TTL "
                f"plus the margin ({self.publish_wait:g} s)"
            )

    @property
    def publish_wait(self) -> float:
        """From publication to signing: every cached DNSKEY RRset then holds the key."""
        return self.dnskey_ttl + self.margin

    @property
    def retire_wait(self) -> float:
        """From retirement to removal: every cached signature by the key has expired."""
        return max(self.max_zone_ttl, self.dnskey_ttl) + self.margin

    @property
    def ds_wait(self) -> float:
        """From the DS at the parent to the key's use: every cached DS RRset holds it."""
        return self.ds_ttl + self.margin


@dataclass(frozen=True, slots=True)
class KeyTiming:
    """One key's entry in ``keys.json``: what it is, where it is in its life, and when each
    step happened (past) or is due (future). None: not scheduled."""

    tag: int
    role: str
    algorithm: int
    state: str
    created: float
    published: float | None = None
    active: float | None = None
    retired: float | None = None
    removed: float | None = None
    ds_seen: float | None = None

    @property
    def flags(self) -> int:
        return ZONE_KEY if self.role == ZSK else ZONE_KEY | SEP

    @property
    def sep(self) -> bool:
        return self.role != ZSK

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "tag": self.tag,
            "role": self.role,
            "algorithm": MNEMONICS[self.algorithm],
            "flags": self.flags,
            "state": self.state,
            "created": self.created,
        }
        data.update({name: getattr(self, name) for name in _TIMES})
        return data


@dataclass(frozen=True, slots=True, eq=False)
class ZoneKeys:
    """A zone's keys at one moment; compared by identity (a new object means a change).

    `published`: the DNSKEY RRset's members, KSK/CSK first, then by age. `ksk`: the keys
    that sign the DNSKEY RRset. `zsk`: the keys that sign every other RRset (with a CSK, the
    same key as `ksk`). `ds`: the keys whose DS belongs at the parent now. `next_event`:
    when the next timed change is due (epoch seconds), None when none is.
    """

    zone: str
    published: tuple[SigningKey, ...]
    ksk: tuple[SigningKey, ...]
    zsk: tuple[SigningKey, ...]
    ds: tuple[SigningKey, ...]
    next_event: float | None
    timings: tuple[KeyTiming, ...]


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One line of `dockzone dnssec keys`. `when` is None for an event that waits for a
    command (``ds-seen``) or when nothing is due."""

    zone: str
    tag: int
    role: str
    algorithm: str
    state: str
    next_event: str
    when: float | None


@dataclass(slots=True)
class _Zone:
    keys: ZoneKeys
    signing: dict[int, SigningKey]
    path: str
    """The zone's keys.json."""
    stamp: tuple[int, int, int] | None
    """``keys.json`` as last read or written (inode, mtime, size)."""


def zone_origin(zone: str) -> str:
    """`zone` lower-case with its final dot (``docker`` -> ``docker.``)."""
    name = zone.strip().lower().rstrip(".")
    return name + "." if name else "."


def zone_dirname(origin: str) -> str:
    """The folder of a zone's keys: the name without its final dot, ``root`` for the root."""
    return origin.rstrip(".") or "root"


def key_filename(origin: str, algorithm: int, tag: int) -> str:
    """``Kdocker.+013+12345.pem``: BIND's name for the key, with the PEM suffix."""
    return f"K{origin}+{algorithm:03d}+{tag:05d}.pem"


class KeyStore:
    """The keys of every zone under `directory`; see the module docstring. Thread-safe;
    processes sharing the directory take a lock file per zone while they change it."""

    def __init__(
        self,
        directory: Path,
        policy: KeyPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.policy = policy or KeyPolicy()
        self._clock = clock
        self._zones: dict[str, _Zone] = {}
        self._warned: dict[str, tuple[int, int, int] | None] = {}
        self._lock = threading.Lock()

    def zone_directory(self, zone: str) -> Path:
        return self.directory / zone_dirname(zone_origin(zone))

    def keys(self, zone: str) -> ZoneKeys:
        """The zone's keys now: made on first use, moved to the clock, saved when changed.

        Raises KeyFileError when the zone's files are damaged and this store has not read
        them before; when it has, it logs a WARNING and keeps the keys it holds (nothing
        moves on until the files are fixed)."""
        origin = zone_origin(zone)
        now = self._clock()
        cached = self._zones.get(origin)
        if cached is not None:
            due = cached.keys.next_event
            if (due is None or now < due) and _stamp(cached.path) == cached.stamp:
                return cached.keys
        return self._change(origin, now, None)

    def roll(self, zone: str, kind: str) -> ZoneKeys:
        """Start a roll now. `kind` ``zsk``: pre-publish a new ZSK; ``ksk`` or ``csk``: make
        the new SEP key, whose DS goes to the parent (`ds_seen` then lets it in).

        Raises KeyStoreError when a roll of that kind is under way, or for a ZSK roll of a
        zone with a combined key."""
        kind = kind.lower()
        if kind not in ("zsk", "ksk", "csk"):
            raise ValueError(f"roll kind must be zsk, ksk or csk, not {kind!r}")
        origin = zone_origin(zone)

        def start(keys: list[KeyTiming], signing: dict[int, SigningKey], now: float) -> None:
            sep = kind != "zsk"
            current = [k for k in keys if k.sep == sep and k.state == ACTIVE]
            if not current:
                raise KeyStoreError(
                    origin, "the zone has a combined signing key (CSK): roll it with --ksk"
                )
            pending = [k for k in keys if k.sep == sep and k.state in (DS_PENDING, PUBLISHED)]
            if pending:
                raise KeyStoreError(
                    origin,
                    f"a {pending[0].role} roll is already under way "
                    f"(key {pending[0].tag} is {pending[0].state})",
                )
            old = current[-1]
            if sep:
                keys.append(self._new_key(old.role, old.algorithm, keys, signing, now))
                new = keys[-1]
                log.info(
                    "DNSSEC %s: %s %d made; its DS goes to the parent", origin, old.role, new.tag
                )
            else:
                keys.append(self._successor(origin, old, keys, signing, now))

        return self._change(origin, self._clock(), start)

    def ds_seen(self, zone: str) -> ZoneKeys:
        """The parent publishes the DS of the pending KSK/CSK: it enters the DNSKEY RRset
        ``ds_ttl + margin`` from now. Raises KeyStoreError when no key waits for its DS."""
        origin = zone_origin(zone)

        def seen(keys: list[KeyTiming], signing: dict[int, SigningKey], now: float) -> None:
            waiting = [i for i, k in enumerate(keys) if k.state == DS_PENDING and not k.ds_seen]
            if not waiting:
                raise KeyStoreError(origin, "no KSK/CSK roll is waiting for its DS")
            for i in waiting:
                keys[i] = replace(keys[i], ds_seen=now, published=now + self.policy.ds_wait)

        return self._change(origin, self._clock(), seen)

    def ds_records(self, zone: str, digest_type: int = 2) -> tuple[str, ...]:
        """The DS records the parent should hold now, in master-file form (TTL `ds_ttl`)."""
        keys = self.keys(zone)
        return tuple(
            ds_text(keys.zone, key.dnskey, self.policy.ds_ttl, digest_type) for key in keys.ds
        )

    def zones(self) -> list[str]:
        """The zones that have keys in the directory, sorted."""
        try:
            folders = sorted(p for p in self.directory.iterdir() if (p / STATE_FILE).exists())
        except FileNotFoundError:
            return []
        return [zone_origin("" if p.name == "root" else p.name) for p in folders]

    def describe(self, zone: str | None = None) -> list[KeyRow]:
        """Rows for listing: every key of `zone` (or of every zone with keys), with its next
        event. Makes no keys for a zone that has none."""
        origins = self.zones() if zone is None else [zone_origin(zone)]
        rows: list[KeyRow] = []
        for origin in origins:
            if not self._state_path(origin).exists():
                continue
            keys = self.keys(origin)
            for timing in keys.timings:
                event, when = self._key_event(timing, keys.timings)
                rows.append(
                    KeyRow(
                        origin,
                        timing.tag,
                        timing.role,
                        MNEMONICS[timing.algorithm],
                        timing.state,
                        event,
                        when,
                    )
                )
        return rows

    # --- state machine ------------------------------------------------------------------

    def _key_event(self, key: KeyTiming, keys: tuple[KeyTiming, ...]) -> tuple[str, float | None]:
        if key.state == DS_PENDING:
            if key.published is None:
                return "waiting for its DS at the parent (dnssec ds-seen)", None
            return (ACTIVE if key.role == KSK else PUBLISHED), key.published
        if key.state == PUBLISHED:
            return ACTIVE, key.active
        if key.state == RETIRED:
            return "removed", key.removed
        successor = [k for k in keys if k.role == key.role and k.state in (DS_PENDING, PUBLISHED)]
        if successor:
            after = successor[0]
            if after.state == PUBLISHED:
                return RETIRED, after.active
            if after.state == DS_PENDING and after.published is not None and key.role == KSK:
                return "removed", after.published
            return "replaced by " + str(after.tag), None
        start = self._roll_start(list(keys))
        if key.role == ZSK and start is not None:
            return "successor published", start
        return "-", None

    def _roll_start(self, keys: list[KeyTiming]) -> float | None:
        """When the scheduled ZSK roll publishes the successor, None when not scheduled."""
        lifetime = self.policy.zsk_lifetime
        active = [k.active for k in keys if k.role == ZSK and k.state == ACTIVE and k.active]
        if not lifetime or not active or any(k.role == ZSK and k.state == PUBLISHED for k in keys):
            return None
        return max(active) + lifetime - self.policy.publish_wait

    def _next_event(self, keys: list[KeyTiming]) -> float | None:
        due = [self._roll_start(keys)]
        for key in keys:
            if key.state == DS_PENDING:
                due.append(key.published)
            elif key.state == PUBLISHED:
                due.append(key.active)
            elif key.state == RETIRED:
                due.append(key.removed)
        return min((t for t in due if t is not None), default=None)

    def _advance(
        self, origin: str, keys: list[KeyTiming], signing: dict[int, SigningKey], now: float
    ) -> None:
        """Take every step due at `now`, in order. A step is stamped `now` (not when it was
        due): a key is published or retired only when the signer can see it."""
        policy = self.policy
        while True:
            step = next((k for k in keys if _due(k, now)), None)
            if step is not None:
                index = keys.index(step)
                if step.state == DS_PENDING and step.role == KSK:
                    # Double-DS: the new KSK replaces the old at once (RFC 6781 §4.1.2).
                    new = replace(step, state=ACTIVE, published=now, active=now)
                    gone = {k.tag for k in keys if k.role == KSK and k.state == ACTIVE}
                    keys[:] = [new if k is step else k for k in keys if k.tag not in gone]
                    for tag in sorted(gone):
                        log.info("DNSSEC %s: KSK %d removed", origin, tag)
                    log.info("DNSSEC %s: KSK %d active", origin, step.tag)
                elif step.state == DS_PENDING:
                    active = now + policy.publish_wait
                    keys[index] = replace(step, state=PUBLISHED, published=now, active=active)
                    log.info("DNSSEC %s: %s %d published", origin, step.role, step.tag)
                elif step.state == PUBLISHED:
                    keys[index] = replace(step, state=ACTIVE, active=now)
                    for i, old in enumerate(keys):
                        if old.role == step.role and old.state == ACTIVE and i != index:
                            removed = now + policy.retire_wait
                            keys[i] = replace(old, state=RETIRED, retired=now, removed=removed)
                            log.info("DNSSEC %s: %s %d retired", origin, old.role, old.tag)
                    log.info("DNSSEC %s: %s %d active", origin, step.role, step.tag)
                else:
                    del keys[index]
                    log.info("DNSSEC %s: %s %d removed", origin, step.role, step.tag)
                continue
            start = self._roll_start(keys)
            if start is None or now < start:
                return
            old = max((k for k in keys if k.role == ZSK and k.state == ACTIVE), key=_age)
            keys.append(self._successor(origin, old, keys, signing, now))

    def _successor(
        self,
        origin: str,
        old: KeyTiming,
        keys: list[KeyTiming],
        signing: dict[int, SigningKey],
        now: float,
    ) -> KeyTiming:
        """A new key of `old`'s role, published now and active after `publish_wait`."""
        key = self._new_key(old.role, old.algorithm, keys, signing, now)
        log.info("DNSSEC %s: %s %d published, replacing %d", origin, key.role, key.tag, old.tag)
        return replace(key, state=PUBLISHED, published=now, active=now + self.policy.publish_wait)

    def _new_key(
        self,
        role: str,
        algorithm: int,
        keys: list[KeyTiming],
        signing: dict[int, SigningKey],
        now: float,
    ) -> KeyTiming:
        """A new key in state ds-pending (callers move it on), with a tag no key of the zone
        has (RFC 6781 §3.1.1: validators try every key of a tag)."""
        flags = ZONE_KEY if role == ZSK else ZONE_KEY | SEP
        taken = {k.tag for k in keys} | set(signing)
        while True:
            private = SigningKey.generate(algorithm, flags)
            if private.tag not in taken:
                break
        signing[private.tag] = private
        return KeyTiming(private.tag, role, algorithm, DS_PENDING, now)

    def _first_keys(
        self, origin: str, signing: dict[int, SigningKey], now: float
    ) -> list[KeyTiming]:
        keys: list[KeyTiming] = []
        roles = (KSK, ZSK) if self.policy.split else (CSK,)
        for role in roles:
            key = self._new_key(role, self.policy.algorithm, keys, signing, now)
            keys.append(replace(key, state=ACTIVE, published=now, active=now))
            log.info("DNSSEC %s: %s %d made", origin, role, key.tag)
        return keys

    # --- files --------------------------------------------------------------------------

    def _state_path(self, origin: str) -> Path:
        return self.directory / zone_dirname(origin) / STATE_FILE

    def _change(
        self,
        origin: str,
        now: float,
        change: Callable[[list[KeyTiming], dict[int, SigningKey], float], None] | None,
    ) -> ZoneKeys:
        with self._lock, self._locked(origin):
            cached = self._zones.get(origin)
            path = self._state_path(origin)
            stamp = _stamp(path)
            signing = dict(cached.signing) if cached is not None else {}
            before: tuple[KeyTiming, ...] = ()
            if cached is not None and stamp == cached.stamp:
                before = cached.keys.timings
            elif stamp is not None:
                try:
                    before = self._load(origin, path, signing)
                except KeyFileError as exc:
                    if cached is None or change is not None:
                        raise
                    # Like a bad zone file: the keys in use stay until the file is fixed.
                    if stamp != self._warned.get(origin):
                        self._warned[origin] = stamp
                        log.warning("%s; keeping the keys in use", exc)
                    return cached.keys
            elif cached is not None:
                log.warning("%s is gone: writing the keys in use back", path)
            else:
                self._refuse_orphans(origin, path)
            if before:
                keys = list(before)
            elif cached is not None:
                keys = list(cached.keys.timings)
            else:
                keys = self._first_keys(origin, signing, now)
            if change is not None:
                change(keys, signing, now)
            self._advance(origin, keys, signing, now)
            if tuple(keys) != before:
                stamp = self._save(origin, keys, signing)
            if cached is not None and tuple(keys) == cached.keys.timings:
                cached.stamp = stamp
                return cached.keys
            zone_keys = self._zone_keys(origin, keys, signing)
            self._zones[origin] = _Zone(zone_keys, signing, str(path), stamp)
            return zone_keys

    def _zone_keys(
        self, origin: str, keys: list[KeyTiming], signing: dict[int, SigningKey]
    ) -> ZoneKeys:
        order = sorted(keys, key=lambda k: (not k.sep, k.created, k.tag))

        def pick(states: tuple[str, ...], roles: tuple[str, ...]) -> tuple[SigningKey, ...]:
            return tuple(signing[k.tag] for k in order if k.state in states and k.role in roles)

        return ZoneKeys(
            zone=origin,
            published=pick((PUBLISHED, ACTIVE, RETIRED), ROLES),
            ksk=pick((ACTIVE,), (CSK, KSK)),
            zsk=pick((ACTIVE,), (CSK, ZSK)),
            ds=pick((DS_PENDING, PUBLISHED, ACTIVE), (CSK, KSK)),
            next_event=self._next_event(keys),
            timings=tuple(keys),
        )

    @contextlib.contextmanager
    def _locked(self, origin: str) -> Iterator[None]:
        """The zone's folder (made 0700) locked against other processes."""
        folder = self.directory / zone_dirname(origin)
        for directory in (self.directory, folder):
            if not directory.is_dir():
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                directory.chmod(0o700)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _refuse_orphans(self, origin: str, path: Path) -> None:
        """No keys.json: make keys only when the folder holds no key files either."""
        orphans = sorted(path.parent.glob("K*.pem"))
        if orphans:
            raise KeyFileError(
                str(path),
                "",
                f"missing while key files are there ({', '.join(p.name for p in orphans)}): "
                "restore it; new keys are never made over existing ones",
                origin,
            )

    def _save(
        self, origin: str, keys: list[KeyTiming], signing: dict[int, SigningKey]
    ) -> tuple[int, int, int] | None:
        """New key files first, then keys.json, then the files of removed keys go."""
        folder = self.directory / zone_dirname(origin)
        for key in keys:
            pem = folder / key_filename(origin, key.algorithm, key.tag)
            if not pem.exists():
                write_file(pem, signing[key.tag].to_pem())
        document = {"format": FORMAT, "zone": origin, "keys": [k.to_json() for k in keys]}
        path = folder / STATE_FILE
        write_file(path, (json.dumps(document, indent=2) + "\n").encode())
        kept = {k.tag for k in keys}
        for tag in [tag for tag in signing if tag not in kept]:
            private = signing.pop(tag)
            with contextlib.suppress(FileNotFoundError):
                (folder / key_filename(origin, private.algorithm, tag)).unlink()
        return _stamp(path)

    def _load(
        self, origin: str, path: Path, signing: dict[int, SigningKey]
    ) -> tuple[KeyTiming, ...]:
        """keys.json and the key files it names; `signing` keeps the keys already loaded."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(str(path), "", f"cannot read: {exc.strerror}", origin) from exc
        keys = parse_state(str(path), data, origin)
        loaded: dict[int, SigningKey] = {}
        for index, key in enumerate(keys):
            known = signing.get(key.tag)
            if known is not None and (known.algorithm, known.flags) == (key.algorithm, key.flags):
                loaded[key.tag] = known
                continue
            pem = path.parent / key_filename(origin, key.algorithm, key.tag)
            loaded[key.tag] = _load_key(pem, key, index, origin)
        signing.clear()
        signing.update(loaded)
        return keys


def parse_state(path: str, data: bytes, origin: str) -> tuple[KeyTiming, ...]:
    """The keys in a keys.json. Raises KeyFileError naming `path` and the field at fault."""

    def fail(field: str, reason: str) -> KeyFileError:
        return KeyFileError(path, field, reason, origin)

    try:
        document = json.loads(data)
    except ValueError as exc:
        raise fail("", f"not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise fail("", "must be a JSON object")
    if document.get("format") != FORMAT:
        raise fail("format", f"must be {FORMAT}, not {document.get('format')!r}")
    if document.get("zone") != origin:
        raise fail("zone", f"must be {origin!r}, not {document.get('zone')!r}")
    items = document.get("keys")
    if not isinstance(items, list) or not items:
        raise fail("keys", "must be a non-empty list of keys")
    keys: list[KeyTiming] = []
    for index, item in enumerate(items):
        where = f"keys[{index}]"
        if not isinstance(item, dict):
            raise fail(where, "must be an object")

        def get(name: str, valid: Callable[[object], bool], problem: str) -> object:
            value = item.get(name)  # noqa: B023 - called within this iteration only
            if not valid(value):
                raise fail(f"{where}.{name}", f"{problem}, not {value!r}")  # noqa: B023
            return value

        tag = get("tag", _tag, "must be 0..65535")
        role = get("role", ROLES.__contains__, "must be one of " + ", ".join(ROLES))
        mnemonic = get(
            "algorithm", ALGORITHMS.__contains__, "must be one of " + ", ".join(ALGORITHMS)
        )
        state = get("state", STATES.__contains__, "must be one of " + ", ".join(STATES))
        created = get("created", _number, "must be a time in epoch seconds")
        times = {
            name: get(name, _optional_number, "must be epoch seconds or null") for name in _TIMES
        }
        key = KeyTiming(
            int(str(tag)),
            str(role),
            ALGORITHMS[str(mnemonic)],
            str(state),
            float(str(created)),
            **{name: None if value is None else float(str(value)) for name, value in times.items()},
        )
        flags = item.get("flags", key.flags)
        if flags != key.flags:
            raise fail(f"{where}.flags", f"must be {key.flags} for a {key.role}, not {flags!r}")
        for name in _NEEDS[key.state]:
            if getattr(key, name) is None:
                raise fail(f"{where}.{name}", f"must be set for a key in state {key.state}")
        if key.state == DS_PENDING and key.role == ZSK:
            raise fail(f"{where}.state", "a ZSK is never ds-pending")
        if any(k.tag == key.tag for k in keys):
            raise fail(f"{where}.tag", f"{key.tag} is taken by another key")
        keys.append(key)
    return tuple(keys)


def _load_key(pem: Path, key: KeyTiming, index: int, origin: str) -> SigningKey:
    try:
        private = SigningKey.from_pem(pem.read_bytes(), key.algorithm, key.flags)
    except FileNotFoundError:
        raise KeyFileError(
            str(pem), "", f"missing: the private key of keys[{index}] (tag {key.tag})", origin
        ) from None
    except OSError as exc:
        raise KeyFileError(str(pem), "", f"cannot read: {exc.strerror}", origin) from exc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(str(pem), "", f"not a usable private key: {exc}", origin) from None
    if private.tag != key.tag:
        raise KeyFileError(
            str(pem), "", f"holds the key with tag {private.tag}, keys.json says {key.tag}", origin
        )
    return private


def _due(key: KeyTiming, now: float) -> bool:
    due = {DS_PENDING: key.published, PUBLISHED: key.active, RETIRED: key.removed}
    when = due.get(key.state)
    return when is not None and now >= when


def _age(key: KeyTiming) -> float:
    return key.active or 0.0


def _tag(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional_number(value: object) -> bool:
    return value is None or _number(value)


def _stamp(path: Path | str) -> tuple[int, int, int] | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_mtime_ns, status.st_size)
