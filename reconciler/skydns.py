"""The SkyDNS / CoreDNS-etcd key layout, both ways.

A name maps to a key path of its labels reversed under a prefix (``web.docker.`` ->
``/skydns/docker/web``); each published entry is one key below that path, ending in this
instance's id (``ownership.key_id``), with a JSON value ``{"host", "port", "priority",
"weight", "text", "ttl", "targetstrip", "group", "mail"}``. CoreDNS's etcd plugin and SkyDNS
answer the name and, by prefix, every name above it, so aggregation is theirs.

``entries_from_zones`` turns the desired zones back into entries: only RRs at a record's
own name (provenance without ``via``), not the aggregated copies nor the configuration's
NS glue, and not records this instance learned from etcd; ``entries_at`` does the same for
a few names of one zone (a pass that changed those). ``record_from_entry`` turns another
host's entry into a ``ServiceRecord``. Optionally ``discover_entries`` adds totem/discover's
``/<prefix>/service/<name>/<realm>/<host>/<id>`` = ``proto://ip:port``. Used by the etcd sink
and source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from reconciler.core import names
from reconciler.core.model import Owner, RRset, ServiceRecord, ZoneContent, ZoneSet
from reconciler.core.ownership import key_id
from reconciler.core.zonebuild import CONFIG_OWNER

PUBLISHED_TYPES = ("A", "AAAA", "CNAME", "SRV", "TXT", "MX")


@dataclass(frozen=True, slots=True)
class Entry:
    """One key to publish: the DNS name it serves and its JSON value (and, for
    totem/discover's layout, the protocol of its port)."""

    key: str
    name: str
    value: str
    protocol: str = "tcp"


def key_path(prefix: str, name: str) -> str:
    """``/skydns/docker/web`` for ``web.docker.``."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    return "/".join([prefix.rstrip("/"), *reversed(labels)])


def name_from_key(prefix: str, key: str) -> str | None:
    """``web.docker.`` ... for a key under ``prefix``: every component after the prefix,
    reversed (the last one, an entry id, is the name's first label, as in SkyDNS)."""
    base = prefix.rstrip("/") + "/"
    if not key.startswith(base):
        return None
    labels = [part for part in key[len(base) :].split("/") if part]
    if not labels:
        return None
    return ".".join(reversed(labels)).lower() + "."


@dataclass(slots=True)
class _Group:
    ttl: int
    hosts: list[str] = field(default_factory=list)
    srvs: list[tuple[int, int, int, str]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    mx: int | None = None
    protocol: str = "tcp"


def entries_from_zones(
    zones: ZoneSet, prefix: str, instance: str, skip_sources: Iterable[str] = ("etcd",)
) -> dict[str, Entry]:
    """The entries this instance publishes for ``zones``, by key."""
    return _entries(
        ((content, rrset) for content in zones.values() for rrset in content.rrsets),
        prefix,
        instance,
        skip_sources,
    )


def entries_at(
    content: ZoneContent,
    wanted: Collection[str],
    prefix: str,
    instance: str,
    skip_sources: Iterable[str] = ("etcd",),
) -> dict[str, Entry]:
    """The entries this instance publishes for the ``wanted`` names of one zone, by key:
    what ``entries_from_zones`` gives for them, at the cost of those names only (an entry
    comes from the RRs at its own name)."""
    found = content.rrsets_at(wanted)
    return _entries(
        ((content, rrset) for name in wanted for rrset in found.get(name, ())),
        prefix,
        instance,
        skip_sources,
    )


def _entries(
    rrsets: Iterable[tuple[ZoneContent, RRset]],
    prefix: str,
    instance: str,
    skip_sources: Iterable[str],
) -> dict[str, Entry]:
    skip = set(skip_sources)
    groups: dict[tuple[str, Owner], _Group] = {}
    for content, rrset in rrsets:
        if rrset.rdtype not in PUBLISHED_TYPES:
            continue
        for text in rrset.rdatas:
            for provenance in content.provenance.get((rrset.name, rrset.rdtype, text), ()):
                owner = provenance.owner
                if provenance.via or owner == CONFIG_OWNER or owner.source in skip:
                    continue
                group = groups.setdefault((rrset.name, owner), _Group(rrset.ttl))
                _add(group, rrset.rdtype, text)
                if rrset.rdtype == "SRV" and provenance.protocol:
                    group.protocol = provenance.protocol
    result: dict[str, Entry] = {}
    for (name, owner), group in sorted(groups.items()):
        for value in _values(group):
            key = "/".join(
                [key_path(prefix, name), key_id(instance, owner.source, owner.object, name, value)]
            )
            result[key] = Entry(key, name, value, group.protocol)
    return result


def _add(group: _Group, rdtype: str, text: str) -> None:
    if rdtype in ("A", "AAAA"):
        group.hosts.append(text)
    elif rdtype == "CNAME":
        group.hosts.append(text.rstrip("."))
    elif rdtype == "SRV":
        priority, weight, port, target = text.split()
        group.srvs.append((int(priority), int(weight), int(port), target.rstrip(".")))
    elif rdtype == "TXT":
        group.text.extend(parse_txt(text))
    elif rdtype == "MX":
        group.mx = int(text.split(maxsplit=1)[0])


def _values(group: _Group) -> list[str]:
    hosts = list(group.hosts) or [srv[3] for srv in group.srvs] or [""]
    srv = group.srvs[0] if group.srvs else None
    values = []
    for host in hosts:
        value: dict[str, object] = {"host": host, "ttl": group.ttl}
        if srv is not None:
            value.update(priority=srv[0], weight=srv[1], port=srv[2])
        if group.mx is not None:
            value.update(mail=True, priority=group.mx)
        if group.text:
            value["text"] = " ".join(group.text)
        values.append(json.dumps(value, sort_keys=True, separators=(",", ":")))
    return values


_TXT = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_txt(text: str) -> list[str]:
    """The strings of TXT rdata in master-file form."""
    result = []
    for match in _TXT.finditer(text):
        raw = match.group(1)
        data = bytearray()
        i = 0
        while i < len(raw):
            if raw[i] == "\\" and raw[i + 1 : i + 4].isdigit() and len(raw[i + 1 : i + 4]) == 3:
                data.append(int(raw[i + 1 : i + 4]))
                i += 4
            elif raw[i] == "\\" and i + 1 < len(raw):
                data.extend(raw[i + 1].encode("utf-8"))
                i += 2
            else:
                data.extend(raw[i].encode("utf-8"))
                i += 1
        result.append(data.decode("utf-8", errors="replace"))
    return result


DISCOVER_REALM = "default"
"""The realm when none is configured (totem/discover requires one: ``host:realm``)."""


def discover_entries(
    entries: Iterable[Entry], prefix: str, instance: str, realm: str = DISCOVER_REALM
) -> dict[str, Entry]:
    """totem/discover's layout for entries with an address and a port:
    ``<prefix>/service/<first label>/<realm>/<instance>/<id>`` = ``<protocol>://ip:port``
    (``udp://`` for a udp port, as discover writes ``DISCOVER=svc:8125/udp``). The id is
    the SkyDNS entry's, so ``discover_id`` ties the key to its name."""
    result: dict[str, Entry] = {}
    for entry in entries:
        value = json.loads(entry.value)
        host, port = value.get("host", ""), value.get("port")
        if not port or names.parse_ip(host) is None:
            continue
        service = entry.name.partition(".")[0]
        address = f"[{host}]" if ":" in host else host
        key = "/".join(
            [prefix.rstrip("/"), "service", service, realm, instance, discover_id(entry.key)]
        )
        location = f"{entry.protocol}://{address}:{port}"
        result[key] = Entry(key, entry.name, location, entry.protocol)
    return result


def discover_id(key: str) -> str:
    """The last component of a key: in either layout, the id of the entry it publishes."""
    return key.rpartition("/")[2]


def is_discover_key(prefix: str, key: str) -> bool:
    """Whether ``key`` lies in totem/discover's service tree under ``prefix``."""
    return key.startswith(prefix.rstrip("/") + "/service/")


def record_from_entry(key: str, value: str, prefix: str, zones: Iterable[str]) -> ServiceRecord:
    """Another host's entry as a ServiceRecord owned by ``etcd <key>``. Raises ValueError
    naming the problem (not JSON, outside every zone, a bad field)."""
    name = name_from_key(prefix, key)
    if name is None:
        raise ValueError("not under the prefix")
    problem = names.name_problem(name)
    if problem:
        raise ValueError(problem)
    zone = names.zone_for(name, list(zones))
    if zone is None:
        raise ValueError(f"{name} is outside every zone this instance serves")
    data = json.loads(value)
    if not isinstance(data, dict):
        raise ValueError("the value is not a JSON object")
    host = str(data.get("host") or "").strip()
    address = names.parse_ip(host) if host else None
    if host and address is None:
        typo = names.address_typo(host)
        if typo:
            raise ValueError(f"host {typo}")
        if names.name_problem(host.rstrip(".")):
            raise ValueError(f"host {host!r} is neither an address nor a name")
        host = names.fqdn(host.lower())
    elif address is not None:
        host = str(address)
    port = _int(data, "port", 0, 65535) or None
    ttl = _int(data, "ttl", 0, 2**31 - 1)
    text = str(data.get("text") or "")
    return ServiceRecord(
        name=name,
        zone=zone,
        owner=Owner("etcd", key, f"etcd {key}"),
        host=host,
        port=port,
        priority=_int(data, "priority", 0, 65535, 10),
        weight=_int(data, "weight", 0, 65535),
        ttl=ttl or None,
        text=(text,) if text else (),
        mail=bool(data.get("mail")) and bool(host),
        target_strip=_int(data, "targetstrip", 0, 127),
        group=str(data.get("group") or ""),
    )


def _int(data: dict[str, object], name: str, low: int, high: int, default: int = 0) -> int:
    raw = data.get(name)
    if raw is None or raw == "":
        return default
    try:
        number = int(str(raw))
    except ValueError:
        raise ValueError(f"{name}: not a number: {raw!r}") from None
    if not low <= number <= high:
        raise ValueError(f"{name}: must be {low}..{high}")
    return number
