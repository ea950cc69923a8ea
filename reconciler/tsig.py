"""TSIG keys from BIND key files (``key "name" { algorithm hmac-sha256; secret "..."; };``),
as ``tsig-keygen`` writes them. Used by the RFC 2136 sink; the secret is never logged and
never part of an error message.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import ConfigError

ALGORITHMS = (
    "hmac-md5",
    "hmac-sha1",
    "hmac-sha224",
    "hmac-sha256",
    "hmac-sha384",
    "hmac-sha512",
)

_KEY = re.compile(r'key\s+"?([^"\s{]+)"?\s*\{(.*?)\}\s*;', re.S)
_STATEMENT = re.compile(r'(algorithm|secret)\s+(?:"([^"]*)"|([^";\s]+))\s*;')


@dataclass(frozen=True, slots=True)
class TsigKey:
    """One key: its name (absolute), algorithm and secret (bytes; hidden from repr)."""

    name: str
    algorithm: str
    secret: bytes = field(repr=False)


def parse_key_file(text: str, where: str) -> TsigKey:
    """The first key in BIND key-file ``text``; ``where`` names the file in errors.
    The algorithm defaults to hmac-sha256."""
    text = re.sub(r"(#|//)[^\n]*", "", text)
    match = _KEY.search(text)
    if match is None:
        raise ConfigError(f'{where}: no key "name" {{ ... }}; statement found')
    name = match.group(1).rstrip(".").lower() + "."
    values = {word: quoted or bare for word, quoted, bare in _STATEMENT.findall(match.group(2))}
    algorithm = values.get("algorithm", "hmac-sha256").lower()
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"{where}: key {name!r}: unsupported algorithm {algorithm!r} "
            f"(known: {', '.join(ALGORITHMS)})"
        )
    if "secret" not in values:
        raise ConfigError(f"{where}: key {name!r} has no secret")
    try:
        secret = base64.b64decode(values["secret"], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: key {name!r}: the secret is not base64") from None
    return TsigKey(name, algorithm, secret)


def load_key_file(path: Path) -> TsigKey:
    """The key in the BIND key file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read TSIG key file: {exc.strerror}") from exc
    return parse_key_file(text, str(path))
