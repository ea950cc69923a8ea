"""Which records in a shared DNS backend are ours (ExternalDNS's "registry").

Zone files and the in-process server are wholly dockzone's; BIND zones updated by RFC 2136
and etcd's SkyDNS tree are shared with other writers, so each marks what it wrote:

- RFC 2136: one ownership TXT per name, at the child name ``_dockzone.<name>``, with the
  text ``heritage=dockzone,dockzone/owner=<instance>``. A child name (like ExternalDNS's
  ``--txt-prefix``) never sits beside a CNAME at ``<name>``, and a name without this TXT,
  or with another instance's, is never changed.
- etcd: every key this instance writes ends in ``<instance>-<digest>`` (see ``key_id``);
  keys with another last component belong to someone else and are never touched.

Used by ``sinks/rfc2136.py``, ``sinks/etcd.py`` and ``sources/etcd.py``.
"""

from __future__ import annotations

import hashlib

OWNERSHIP_LABEL = "_dockzone"
"""The label prepended to a name to form its ownership TXT name."""

HERITAGE = "heritage=dockzone"


def ownership_name(name: str) -> str:
    """The name of ``name``'s ownership TXT: ``_dockzone.web.docker.``."""
    return f"{OWNERSHIP_LABEL}.{name}"


def owned_name(ownership: str) -> str | None:
    """The name an ownership TXT name marks (``web.docker.``), or None when
    ``ownership`` is not one."""
    label, dot, rest = ownership.partition(".")
    if label.lower() != OWNERSHIP_LABEL or not dot or not rest:
        return None
    return rest


def ownership_text(instance: str) -> str:
    """The TXT string that marks a name as ``instance``'s."""
    return f"{HERITAGE},dockzone/owner={instance}"


def parse_ownership(text: str) -> str | None:
    """The instance an ownership TXT string names, or None when it is not dockzone's."""
    fields = dict(part.partition("=")[::2] for part in text.strip().split(","))
    if fields.get("heritage") != "dockzone":
        return None
    return fields.get("dockzone/owner") or None


def key_id(instance: str, *parts: str) -> str:
    """The last key component for one published entry: ``<instance>-<10 hex digits>``,
    the digest of ``parts`` (owner and name), so the key is stable across passes."""
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:10]
    return f"{instance}-{digest}"


def key_instance(key: str) -> str | None:
    """The instance that wrote ``key`` (by its last component), or None when the key does
    not have dockzone's form."""
    last = key.rstrip("/").rpartition("/")[2]
    instance, dash, digest = last.rpartition("-")
    if not dash or not instance or len(digest) != 10:
        return None
    if any(c not in "0123456789abcdef" for c in digest):
        return None
    return instance


def is_own_key(key: str, instance: str) -> bool:
    """True when ``key`` was written by ``instance``."""
    return key_instance(key) == instance
