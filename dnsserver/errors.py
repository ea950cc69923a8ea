"""Errors raised by the dnsserver package.

    DnsServerError                 root: catch this to catch everything below
     ├── ZoneError                 zone content is invalid (no SOA, CNAME beside data, ...)
     │    └── ZoneLoadError        the same, or a syntax error, found in a zone file
     ├── MessageError              a DNS message that cannot be parsed
     └── KeyStoreError             DNSSEC keys: a request that cannot be done now (a roll
          │                        already under way, a ZSK roll of a zone with one key)
          └── KeyFileError         a key file or a zone's keys.json is missing or damaged

Fields are attributes so callers (the CLI, the reconciler, logs) can format them.
"""

from __future__ import annotations


class DnsServerError(Exception):
    """dnsserver failed."""


class ZoneError(DnsServerError):
    """The zone content is invalid.

    `line` is an opaque position handed in by the caller (a line number for zone files,
    the record's index for `Zone.from_records`), or None.
    """

    def __init__(self, origin: str, reason: str, line: int | None = None) -> None:
        self.origin = origin
        self.reason = reason
        self.line = line
        where = f" (record {line})" if line is not None else ""
        super().__init__(f"zone {origin}{where}: {reason}")


class ZoneLoadError(ZoneError):
    """A zone file cannot be loaded; prints as `zones/db.docker:12: <reason>`."""

    def __init__(self, path: str, line: int, reason: str, origin: str = "") -> None:
        self.path = path
        self.origin = origin
        self.reason = reason
        self.line = line
        Exception.__init__(self, f"{path}:{line}: {reason}")


class MessageError(DnsServerError):
    """A DNS message is malformed.

    `header` is True when the 12-byte header could be read, so a FORMERR can be sent back.
    """

    def __init__(self, reason: str, header: bool = True) -> None:
        self.reason = reason
        self.header = header
        super().__init__(reason)


class KeyStoreError(DnsServerError):
    """The DNSSEC key store cannot do what was asked."""

    def __init__(self, zone: str, reason: str) -> None:
        self.zone = zone
        self.reason = reason
        super().__init__(f"DNSSEC keys of {zone}: {reason}")


class KeyFileError(KeyStoreError):
    """A file of the key store is missing or damaged; prints as
    `keys/docker/keys.json: keys[0].state: must be one of ...`. Never repaired by making new
    keys: the zone's keys stay as they were until the file is fixed."""

    def __init__(self, path: str, field: str, reason: str, zone: str = "") -> None:
        self.path = path
        self.field = field
        self.zone = zone
        self.reason = reason
        where = f"{path}: {field}" if field else path
        Exception.__init__(self, f"{where}: {reason}")
