"""Domain names: canonical text form and wire form.

A name inside dnsserver is a `str` in canonical presentation form: absolute (trailing dot),
ASCII lowercase, special bytes escaped as RFC 1035 §5.1 says (`\\.`, `\\DDD`). Two names are
equal iff their canonical texts are equal, so names are plain dict keys.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

ROOT = "."

# Names made only of these characters need no escape handling (the common case, fast:
# one character class, then the label checks in `simple_name`).
SIMPLE_NAME = r"[A-Za-z0-9_*-][A-Za-z0-9_*.-]*"
_SIMPLE = re.compile(SIMPLE_NAME)
_LABEL_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_*/+=:,!#%&'<>?[]^`{|}~")
_SAFE_BYTES = bytes(sorted(_LABEL_SAFE))
_DOTS = [b"." * n for n in range(128)]
_LENGTH = [bytes((n,)) for n in range(64)]
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


def parse_name(text: str, origin: str | None = None) -> str:
    """Canonical form of a name as written in a zone file (relative to `origin` if given).

    Raises ValueError for empty labels, labels over 63 bytes, names over 255 bytes, and
    relative names without an origin.
    """
    if text == "@":
        if origin is None:
            raise ValueError("@ used without an origin")
        return origin
    if _SIMPLE.fullmatch(text) is not None:
        return simple_name(text, origin)
    return _parse_escaped(text, origin)


def simple_name(text: str, origin: str | None = None) -> str:
    """`parse_name` of a text that matches `SIMPLE_NAME` (the caller made sure)."""
    low = text.lower()
    if ".." in low or (len(low) > 63 and max(map(len, low.split("."))) > 63):
        return _parse_escaped(text, origin)  # raises the precise error
    if not low.endswith("."):
        if origin is None:
            raise ValueError(f"relative name {text!r} without an origin")
        low = low + "." + origin if origin != ROOT else low + "."
    if len(low) > 254:
        raise ValueError(f"name too long: {text!r}")
    return low


def _parse_escaped(text: str, origin: str | None) -> str:
    if text == ROOT:
        return ROOT
    labels = _labels_from_text(text)
    absolute = _ends_absolute(text)
    if not absolute:
        if origin is None:
            raise ValueError(f"relative name {text!r} without an origin")
        labels = labels + _labels_from_text(origin)
    return labels_to_text(labels)


def _ends_absolute(text: str) -> bool:
    """True when `text` ends in an unescaped dot."""
    if not text.endswith("."):
        return False
    backslashes = len(text) - 1 - len(text[:-1].rstrip("\\"))
    return backslashes % 2 == 0


def _labels_from_text(text: str) -> list[bytes]:
    """Labels (lowercased bytes) of a presentation-form name; the root label is omitted."""
    if text == ROOT:
        return []
    labels: list[bytes] = []
    cur = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 3 < n and text[i + 1 : i + 4].isdigit():
                value = int(text[i + 1 : i + 4])
                if value > 255:
                    raise ValueError(f"bad escape in {text!r}")
                cur.append(value)
                i += 4
                continue
            if i + 1 >= n:
                raise ValueError(f"dangling backslash in {text!r}")
            cur.extend(text[i + 1].encode("latin-1", "strict"))
            i += 2
            continue
        if c == ".":
            if not cur:
                raise ValueError(f"empty label in {text!r}")
            labels.append(bytes(cur).translate(_LOWER))
            cur = bytearray()
            i += 1
            continue
        try:
            cur.extend(c.encode("ascii"))
        except UnicodeEncodeError as exc:
            raise ValueError(f"non-ASCII character in name {text!r}") from exc
        i += 1
    if cur:
        labels.append(bytes(cur).translate(_LOWER))
    for label in labels:
        if len(label) > 63:
            raise ValueError(f"label longer than 63 bytes in {text!r}")
    if sum(len(label) + 1 for label in labels) + 1 > 255:
        raise ValueError(f"name longer than 255 bytes: {text!r}")
    return labels


def label_to_text(label: bytes) -> str:
    """Presentation form of one (already lowercased) label."""
    if all(b in _LABEL_SAFE for b in label):
        return label.decode("ascii")
    out: list[str] = []
    for b in label:
        if b in _LABEL_SAFE:
            out.append(chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append("\\" + chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def labels_to_text(labels: list[bytes]) -> str:
    """Canonical text of a name given as lowercased labels (root omitted)."""
    if not labels:
        return ROOT
    joined = b".".join(labels)
    # The common name: only safe bytes beside the dots that join the labels (a dot inside a
    # label is left too, and is escaped below): one decode.
    if joined.translate(None, _SAFE_BYTES) == _DOTS[len(labels) - 1]:
        return joined.decode("ascii") + "."
    return ".".join(label_to_text(label) for label in labels) + "."


@lru_cache(maxsize=65536)
def name_to_wire(name: str) -> bytes:
    """Uncompressed wire form of a canonical name."""
    if name == ROOT:
        return b"\x00"
    if "\\" not in name:
        # Each label after its length byte; the empty label after the last dot is the root.
        return b"".join([_LENGTH[len(label)] + label for label in name.encode("ascii").split(b".")])
    wire = bytearray()
    for raw in _labels_from_text(name):
        wire.append(len(raw))
        wire.extend(raw)
    wire.append(0)
    return bytes(wire)


def split_labels(name: str) -> list[str]:
    """Text labels of a canonical name, leftmost first, root omitted."""
    if name == ROOT:
        return []
    if "\\" not in name:
        return name[:-1].split(".")
    return [label_to_text(label) for label in _labels_from_text(name)]


def parent(name: str) -> str | None:
    """The name one label up, or None for the root."""
    if name == ROOT:
        return None
    if "\\" not in name:
        rest = name.split(".", 1)[1]
        return rest or ROOT
    labels = split_labels(name)
    return ".".join(labels[1:]) + "." if len(labels) > 1 else ROOT


def is_subdomain(name: str, origin: str) -> bool:
    """True when `name` is `origin` or below it."""
    if origin in (ROOT, name):
        return True
    if not name.endswith("." + origin):
        return False
    # "a\.docker." must not count as below "docker.": check the dot is unescaped.
    head = name[: -len(origin) - 1]
    backslashes = len(head) - len(head.rstrip("\\"))
    return backslashes % 2 == 0


def read_name(buf: bytes, offset: int, allow_pointers: bool = True) -> tuple[str, int]:
    """Read a (possibly compressed) wire name at `offset`; return (canonical name, next offset).

    Raises ValueError on truncation, bad label types, pointer loops or over-long names.
    """
    labels: list[bytes] = []
    end = -1
    hops = 0
    total = 1
    n = len(buf)
    while True:
        if offset >= n:
            raise ValueError("name runs past the end of the message")
        length = buf[offset]
        if length == 0:
            offset += 1
            break
        if length & 0xC0 == 0xC0:
            if not allow_pointers:
                raise ValueError("compression pointer where none is allowed")
            if offset + 1 >= n:
                raise ValueError("truncated compression pointer")
            target = ((length & 0x3F) << 8) | buf[offset + 1]
            if end < 0:
                end = offset + 2
            hops += 1
            if hops > 127 or target >= offset:
                raise ValueError("compression pointer loop")
            offset = target
            continue
        if length & 0xC0:
            raise ValueError("unknown label type")
        total += length + 1
        if total > 255:
            raise ValueError("name longer than 255 bytes")
        if offset + 1 + length > n:
            raise ValueError("label runs past the end of the message")
        labels.append(buf[offset + 1 : offset + 1 + length].translate(_LOWER))
        offset += 1 + length
    return labels_to_text(labels), (end if end >= 0 else offset)


def reverse_network(name: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network a name below ``in-addr.arpa.`` or ``ip6.arpa.`` stands for (RFC 1035
    §3.5, RFC 3596 §2.5): ``1.0.10.in-addr.arpa.`` -> 10.0.1.0/24, a full PTR name ->
    a /32 or /128; None for any other name."""
    labels = name.rstrip(".").lower().split(".")
    inside = labels[:-2]
    try:
        if labels[-2:] == ["in-addr", "arpa"] and 1 <= len(inside) <= 4:
            if not all(label.isdigit() and int(label) <= 255 for label in inside):
                return None
            octets = [int(label) for label in reversed(inside)]
            address = ".".join(str(octet) for octet in octets + [0] * (4 - len(octets)))
            return ipaddress.IPv4Network(f"{address}/{8 * len(octets)}")
        if labels[-2:] == ["ip6", "arpa"] and 1 <= len(inside) <= 32:
            if not all(len(label) == 1 for label in inside):
                return None
            value = int("".join(reversed(inside)), 16) << (4 * (32 - len(inside)))
            return ipaddress.IPv6Network((value, 4 * len(inside)))
    except ValueError:
        return None
    return None
