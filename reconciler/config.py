"""Settings from flags, environment and a YAML config file, with safe local defaults.

Each option ``--some-name`` is also read from ``DOCKZONE_SOME_NAME`` and from the key
``some_name`` (or ``some-name``) of the file given by ``--config``/``DOCKZONE_CONFIG``.
The flag wins over the environment, which wins over the file. Used only by the CLI.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dnsserver.name import reverse_network
from reconciler.core import names
from reconciler.core.model import ZoneSettings
from reconciler.definitions import NameDefaults
from reconciler.errors import ConfigError
from reconciler.tsig import TsigKey, load_key_file


def state_directory() -> Path:
    """Where dockzone keeps its files by default: ``$XDG_STATE_HOME/dockzone`` or
    ``~/.local/state/dockzone``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "dockzone"


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its flag name, how to read a value, its default and help text."""

    name: str
    parse: Callable[[Any, str], Any]
    default: Callable[[], Any]
    help: str
    metavar: str = ""
    repeat: bool = False
    flag: bool = False
    switch: bool = False
    commands: tuple[str, ...] = ()
    """The commands that take this option; empty means every command."""
    cli: bool = True
    """False: no flag, only ``DOCKZONE_<NAME>`` and the config file (secrets)."""


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ConfigError(f"{where}: must be a string")
    return str(value)


def _path(value: Any, where: str) -> Path:
    return Path(_text(value, where)).expanduser()


def _ttl(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= 2**31 - 1:
        raise ConfigError(f"{where}: must be 0..2147483647, not {value!r}")
    return number


def _domains(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ConfigError(f"{where}: must be a domain name or a list of them")
    result: list[str] = []
    for item in items:
        text = _text(item, where).strip()
        problem = names.name_problem(text)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        if names.fqdn(text) not in result:
            result.append(names.fqdn(text))
    return tuple(result)


def _label(value: Any, where: str) -> str:
    text = _text(value, where).strip(".").lower()
    if text and names.name_problem(text):
        raise ConfigError(f"{where}: {names.name_problem(text)}")
    return text


def _address(value: Any, where: str) -> str:
    text = _text(value, where)
    if text and names.parse_ip(text) is None:
        raise ConfigError(f"{where}: must be an IPv4 or IPv6 address, not {text!r}")
    return text


def parse_hostport(
    text: str, default_port: int | None = None, *, any_address: bool = False
) -> tuple[str, int]:
    """``127.0.0.1:53``, ``[::1]:53`` (or, with a default port, ``127.0.0.1``, ``::1``)
    -> (address, port). With ``any_address``, ``:53`` (Go's and dnsdock's way of saying
    every address) gives ``("", 53)``. Raises ValueError."""
    text = text.strip()
    if default_port is not None and names.parse_ip(text.strip("[]")) is not None:
        return text.strip("[]"), default_port
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"must be ADDR:PORT (like 127.0.0.1:5354 or [::1]:5354), not {text!r}")
    host = host.strip("[]")
    if any_address and not host:
        return "", int(port)
    if names.parse_ip(host) is None:
        raise ValueError(f"{host!r} is not an IP address")
    return host, int(port)


def _reverse_zones(value: Any, where: str) -> tuple[str, ...]:
    """Reverse zones given as networks (``10.0.0.0/16``) or names (``0.10.in-addr.arpa``):
    a comma list or a YAML list, as origins."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{where}: must be a network, a reverse zone or a list of them")
    result: list[str] = []
    for item in items:
        text = _text(item, where).strip()
        if not text:
            continue
        if "/" in text:
            try:
                network = ipaddress.ip_network(text)
            except ValueError:
                raise ConfigError(
                    f"{where}: {text!r} is not a network (like 10.0.0.0/16)"
                ) from None
            step = 8 if network.version == 4 else 4
            if network.prefixlen % step or not network.prefixlen:
                raise ConfigError(
                    f"{where}: {text!r}: the prefix length must be a multiple of {step} (a "
                    "reverse zone ends at a label)"
                )
            origin = names.reverse_zone(
                network.network_address, network.prefixlen, network.prefixlen
            )
        else:
            origin = names.fqdn(text)
            if reverse_network(origin) is None:
                raise ConfigError(
                    f"{where}: {text!r} is neither a network (10.0.0.0/16) nor a reverse zone "
                    "(0.10.in-addr.arpa.)"
                )
        if origin not in result:
            result.append(origin)
    return tuple(result)


def _listen(value: Any, where: str) -> str:
    """``off``, or a comma list of ADDR:PORT."""
    text = _text(value, where).strip()
    if text == "off":
        return text
    for item in text.split(","):
        try:
            parse_hostport(item, any_address=True)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return text


def _http(value: Any, where: str) -> str:
    """``off``, or one ADDR:PORT."""
    text = _text(value, where).strip()
    if text == "off":
        return text
    try:
        parse_hostport(text, any_address=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return text


_METRIC_PART = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _metric_part(value: Any, where: str) -> str:
    text = _text(value, where).strip()
    if text and not _METRIC_PART.match(text):
        raise ConfigError(f"{where}: must be letters, digits and _ (a Prometheus name part)")
    return text


def listen_addresses(text: str) -> list[tuple[str, int]]:
    """The addresses of a ``--dns`` value (empty for ``off``); ``""`` is every address."""
    if text == "off":
        return []
    return [parse_hostport(item, any_address=True) for item in text.split(",")]


def _nameservers(value: Any, where: str) -> tuple[tuple[str, int], ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{where}: must be ADDR[:PORT] or a list of them")
    result = []
    for item in items:
        try:
            result.append(parse_hostport(_text(item, where), 53))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return tuple(result)


def _seconds(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or not 0 < number <= 86400:
        raise ConfigError(f"{where}: must be more than 0 and at most 86400 seconds")
    return number


def _tcp_timeout(value: Any, where: str) -> float:
    """Seconds, 0.1 to 6553.5: what the edns-tcp-keepalive option (RFC 7828) can announce,
    in its units of 100 ms."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or not 0.1 <= number <= 6553.5:
        raise ConfigError(f"{where}: must be 0.1..6553.5 seconds, not {value!r}")
    return number


def _grace(value: Any, where: str) -> float:
    """Seconds, 0 included (no grace)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= 3600:
        raise ConfigError(f"{where}: must be 0..3600 seconds, not {value!r}")
    return number


DNSSEC_COMMANDS = ("run", "serve", "dnssec")
DNSSEC_ALGORITHMS = ("ECDSAP256SHA256", "ED25519")
"""The mnemonics of ``dnsserver.dnssec.ALGORITHMS`` (not imported here: it loads
``cryptography``, which most commands do not need)."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")


def _algorithm(value: Any, where: str) -> str:
    text = _text(value, where).strip().upper()
    if text not in DNSSEC_ALGORITHMS:
        raise ConfigError(f"{where}: must be {' or '.join(DNSSEC_ALGORITHMS)}, not {value!r}")
    return text


def _duration(value: Any, where: str) -> int:
    """Whole seconds (``86400``) or a duration of units s, m, h, d, w (``30d``, ``1w2d``)."""
    text = _text(value, where).strip().lower()
    if text.isdigit():
        return int(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ConfigError(
            f"{where}: must be seconds or a duration like 30d, 12h or 1w2d, not {value!r}"
        )
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def _signed_zones(value: Any, where: str) -> tuple[str, ...]:
    """``all``, or the zones to sign (names, comma-separated or repeated); empty: none."""
    if value in ("", None, (), []):
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, list | tuple) and any(
        isinstance(item, str) and item.strip().lower() == "all" for item in items
    ):
        return ("all",)
    return _domains(value, where)


def _fraction(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: must be a number from 0 to 1, not {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= 1:
        raise ConfigError(f"{where}: must be a number from 0 to 1, not {value!r}")
    return number


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}: must be true or false, not {value!r}")


def _docker_default() -> str:
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    return "unix:///var/run/docker.sock" if Path("/var/run/docker.sock").exists() else "off"


def _cert(name: str) -> str:
    directory = os.environ.get("DOCKER_CERT_PATH") or os.environ.get("DOCKER_CERTS") or ""
    return str(Path(directory) / name) if directory and (Path(directory) / name).exists() else ""


def _networks(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{where}: must be a network name or a list of them")
    return tuple(_text(item, where).strip() for item in items if str(item).strip())


RRL_DEFAULT_RATE = 200
"""Responses per second per netblock when ``--rrl`` is ``auto`` and DNS is served beyond
loopback: NSD's default (``rrl-ratelimit: 200``)."""


def _rrl_rate(value: Any, where: str) -> int | None:
    """Responses per second per netblock, 0 (off), or ``auto`` (None: decided by the
    listen addresses, ``rrl_rate``)."""
    if isinstance(value, str) and value.strip().lower() in ("", "auto"):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: must be responses per second (0: off) or auto, not {value!r}"
        ) from None
    if isinstance(value, bool) or not 0 <= number <= 1_000_000:
        raise ConfigError(f"{where}: must be 0..1000000 responses per second, not {value!r}")
    return number


def _rrl_slip(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: must be a number from 0 to 10, not {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= 10:
        raise ConfigError(f"{where}: must be 0..10 (BIND's range), not {value!r}")
    return number


def _journal_size(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: must be a number of records, not {value!r}") from None
    if isinstance(value, bool) or not 0 <= number <= 100_000_000:
        raise ConfigError(f"{where}: must be 0..100000000 records, not {value!r}")
    return number


def _rrl_window(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or not 1 <= number <= 3600:
        raise ConfigError(f"{where}: must be 1..3600 seconds (BIND's range), not {value!r}")
    return number


def _cidrs(value: Any, where: str) -> tuple[str, ...]:
    """Networks (``10.0.0.0/8``, ``2001:db8::/32``, an address): a comma list or a YAML
    list, normalised (``10.1.2.3/8`` -> ``10.0.0.0/8``)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{where}: must be a network (like 10.0.0.0/8) or a list of them")
    result: list[str] = []
    for item in items:
        text = _text(item, where).strip()
        if not text:
            continue
        try:
            network = str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(f"{where}: {text!r} is not a network (like 10.0.0.0/8)") from None
        if network not in result:
            result.append(network)
    return tuple(result)


def rrl_rate(settings: Settings) -> int:
    """The ``--rrl`` in force: as given, else (``auto``) 0 when every ``--dns`` address is
    loopback (only this machine can reach it, nobody can spoof a source address there)
    and NSD's default of 200 responses per second per netblock otherwise."""
    if settings.rrl is not None:
        return settings.rrl
    listen = listen_addresses(settings.dns)
    if all(host and ipaddress.ip_address(host).is_loopback for host, _ in listen):
        return 0
    return RRL_DEFAULT_RATE


def _health(value: Any, where: str) -> str:
    text = _text(value, where)
    if text not in ("healthy", "starting", "ignore"):
        raise ConfigError(f"{where}: must be healthy, starting or ignore, not {text!r}")
    return text


def _server(value: Any, where: str) -> str:
    """``off`` or ADDR[:PORT] (port 53 by default)."""
    text = _text(value, where).strip()
    if text in ("", "off"):
        return ""
    try:
        host, port = parse_hostport(text, 53)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _optional_path(value: Any, where: str) -> Path | None:
    text = _text(value, where).strip()
    return Path(text).expanduser() if text else None


def _tsig_key(value: Any, where: str) -> TsigKey | None:
    """The key in a BIND key file, read when the settings are resolved."""
    path = _optional_path(value, where)
    return load_key_file(path) if path is not None else None


def _tsig_keys(value: Any, where: str) -> tuple[TsigKey, ...]:
    """The keys in BIND key files: one path, a comma list or a YAML list of them."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{where}: must be a key file or a list of them")
    return tuple(load_key_file(_path(item, where)) for item in items if str(item).strip())


def _allow_transfer(value: Any, where: str) -> tuple[str, ...]:
    """Addresses, networks (CIDR) and TSIG key names; key names come out absolute."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{where}: must be an address, a network, a key name or a list")
    result = []
    for item in items:
        text = _text(item, where).strip()
        if not text:
            continue
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            problem = names.name_problem(text)
            if problem:
                raise ConfigError(
                    f"{where}: {text!r} is neither an address, a network nor a key name"
                ) from None
            text = names.fqdn(text.lower())
        result.append(text)
    return tuple(result)


def _urls(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{where}: must be a URL or a list of them")
    result = []
    for item in items:
        text = _text(item, where).strip().rstrip("/")
        if not text or text == "off":
            continue
        if not text.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: must be http://HOST:PORT or https://HOST:PORT")
        result.append(text)
    return tuple(result)


def _key_prefix(value: Any, where: str) -> str:
    text = _text(value, where).strip().rstrip("/")
    if text and not text.startswith("/"):
        raise ConfigError(f"{where}: must start with /, like /skydns")
    return text


def _realm(value: Any, where: str) -> str:
    """totem/discover's realm: one key path component."""
    text = _text(value, where).strip()
    if not text or "/" in text or any(char.isspace() for char in text):
        raise ConfigError(f"{where}: must be one key path component (no / or spaces), not {text!r}")
    return text


def _instance_id(value: Any, where: str) -> str:
    text = _text(value, where).strip().lower()
    if not text or names.name_problem(text) or "." in text:
        raise ConfigError(f"{where}: must be one DNS label (letters, digits, -), not {text!r}")
    return text


def _hostname_label() -> str:
    import socket  # noqa: PLC0415  (only the default needs it)

    return names.dns_safe_label(socket.gethostname().partition(".")[0]) or "dockzone"


def _lease_ttl(value: Any, where: str) -> int:
    number = _ttl(value, where)
    if number < 2:
        raise ConfigError(f"{where}: must be at least 2 seconds")
    return number


def _namespaces(value: Any, where: str) -> tuple[str, ...]:
    """Kubernetes namespaces: a name, a comma list, or a YAML list."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{where}: must be a namespace or a list of them")
    result = tuple(_text(item, where).strip() for item in items if str(item).strip())
    for item in result:
        if "." in item or names.name_problem(item) or "_" in item:
            raise ConfigError(f"{where}: {item!r} is not a Kubernetes namespace name")
    return result


def _lease(value: Any, where: str) -> str:
    """``off``, ``NAME`` (in the pod's namespace) or ``NAMESPACE/NAME``."""
    text = _text(value, where).strip()
    if text == "off":
        return text
    parts = text.split("/")
    if len(parts) > 2 or any(not part or names.name_problem(part) for part in parts):
        raise ConfigError(f"{where}: must be off, NAME or NAMESPACE/NAME, not {text!r}")
    return text


OPTIONS = (
    Option(
        "definitions",
        _path,
        lambda: state_directory() / "definitions",
        "directory (or file) of ServiceRecord/DNSEndpoint YAML definitions",
        "DIR",
    ),
    Option(
        "zones",
        _path,
        lambda: state_directory() / "zones",
        "directory the zone files (db.<zone>) are written to",
        "DIR",
    ),
    Option(
        "domain",
        _domains,
        lambda: ("docker.",),
        "domain to serve (repeatable; the first is the default zone)",
        "NAME",
        repeat=True,
    ),
    Option(
        "environment",
        _label,
        lambda: "",
        "label between relative names and the domain (web.<environment>.docker.)",
        "NAME",
    ),
    Option("ttl", _ttl, lambda: 30, "default TTL of records, in seconds", "N"),
    Option(
        "negative_ttl", _ttl, lambda: 30, "TTL of negative answers (SOA minimum), in seconds", "N"
    ),
    Option(
        "hostmaster",
        _text,
        lambda: "",
        "SOA mailbox, like admin@example.com (default hostmaster.<zone>)",
        "MAILBOX",
    ),
    Option(
        "ns_address",
        _address,
        lambda: "127.0.0.1",
        "address of the zones' nameserver ns.dns.<zone>",
        "ADDR",
    ),
    Option(
        "reverse",
        _boolean,
        lambda: True,
        "write reverse zones (PTR records) for record addresses",
        flag=True,
    ),
    Option(
        "reverse_zone",
        _reverse_zones,
        lambda: (),
        "a reverse zone dockzone owns whole, as a network (10.0.0.0/16) or a name; repeatable. "
        "Other reverse zones answer only their own addresses: a PTR question for another "
        "address is forwarded",
        "NETWORK",
        repeat=True,
    ),
    Option(
        "dns",
        _listen,
        lambda: "127.0.0.1:5354",
        "where DNS is served: ADDR:PORT (:PORT: every address), a comma list of them, or off",
        "ADDR:PORT",
    ),
    Option(
        "nameserver",
        _nameservers,
        lambda: (),
        "upstream for names outside the zones (repeatable; default: /etc/resolv.conf)",
        "ADDR[:PORT]",
        repeat=True,
        commands=("run", "serve"),
    ),
    Option(
        "no_rec",
        _boolean,
        lambda: False,
        "answer REFUSED for names outside the zones instead of forwarding them",
        switch=True,
        commands=("run", "serve"),
    ),
    Option(
        "rotate",
        _boolean,
        lambda: True,
        "rotate A/AAAA answers round robin",
        flag=True,
        commands=("run", "serve"),
    ),
    Option(
        "cookies",
        _boolean,
        lambda: True,
        "answer DNS COOKIEs (RFC 7873) with a server cookie, as BIND does",
        flag=True,
        commands=("run", "serve"),
    ),
    Option(
        "require_cookie",
        _boolean,
        lambda: False,
        "answer BADCOOKIE to UDP queries without a valid server cookie (BIND's "
        "require-server-cookie); clients then retry with the cookie, or over TCP",
        switch=True,
        commands=("run", "serve"),
    ),
    Option(
        "nsid",
        _text,
        lambda: "",
        "name server identifier (RFC 5001) for clients that ask for it (dig +nsid), "
        "such as the host name",
        "TEXT",
        commands=("run", "serve"),
    ),
    Option(
        "tcp_idle_timeout",
        _tcp_timeout,
        lambda: 30.0,
        "seconds a DNS-over-TCP connection may stay idle, and wait for its first query "
        "(BIND's tcp-idle-timeout and tcp-initial-timeout); announced to clients that ask "
        "(edns-tcp-keepalive)",
        "SECONDS",
        commands=("run", "serve"),
    ),
    Option(
        "rrl",
        _rrl_rate,
        lambda: None,
        "response rate limiting for UDP: identical responses per second per client netblock "
        "(/24, /56), 0 turns it off; default (auto): off when every --dns address is "
        f"loopback, else {RRL_DEFAULT_RATE}",
        "RESPONSES_PER_SECOND",
        commands=("run", "serve"),
    ),
    Option(
        "rrl_slip",
        _rrl_slip,
        lambda: 2,
        "of the responses --rrl holds back, send every N-th truncated (TC) so a real client "
        "retries over TCP; 0: drop them all, 1: truncate them all",
        "N",
        commands=("run", "serve"),
    ),
    Option(
        "rrl_window",
        _rrl_window,
        lambda: 15,
        "seconds over which --rrl accounts: a client that flooded stays limited until its "
        "rate has been under the limit for up to this long",
        "SECONDS",
        commands=("run", "serve"),
    ),
    Option(
        "rrl_exempt",
        _cidrs,
        lambda: (),
        "a network --rrl never limits (repeatable); the subnets of the watched Docker "
        "networks are always exempt",
        "CIDR",
        repeat=True,
        commands=("run", "serve"),
    ),
    Option(
        "allow_transfer",
        _allow_transfer,
        lambda: (),
        "who may transfer the served zones (AXFR/IXFR): an address, a network (CIDR) or the "
        "name of a --transfer-key; repeatable. Default: nobody",
        "ADDR|NETWORK|KEY",
        repeat=True,
        commands=("run", "serve"),
    ),
    Option(
        "transfer_key",
        _tsig_keys,
        lambda: (),
        "TSIG key file in BIND format for zone transfers and NOTIFY (the --tsig-key-file "
        "format; hmac-sha256 by default); repeatable. Signed queries are verified and "
        "answered signed",
        "FILE",
        repeat=True,
        commands=("run", "serve"),
    ),
    Option(
        "also_notify",
        _nameservers,
        lambda: (),
        "a secondary to send NOTIFY to whenever a zone's serial changes (port 53 unless "
        "given; repeatable); signed with the first --transfer-key",
        "ADDR[:PORT]",
        repeat=True,
        commands=("run", "serve"),
    ),
    Option(
        "journal_size",
        _journal_size,
        lambda: 100_000,
        "records of differences kept per zone for incremental transfers (IXFR), oldest "
        "dropped first, saved beside the zone files; 0: no journal, every IXFR of an older "
        "serial gets the whole zone",
        "RECORDS",
        commands=("run", "serve"),
    ),
    Option(
        "resync",
        _seconds,
        lambda: 60.0,
        "seconds between full passes when nothing triggers one",
        "SECONDS",
        commands=("run", "serve"),
    ),
    Option(
        "dnssec",
        _signed_zones,
        lambda: (),
        "sign these zones with DNSSEC (repeatable or comma-separated; `all`: every zone served), "
        "keys made on first use in --dnssec-keys",
        "ZONE|all",
        repeat=True,
        commands=("run", "serve"),
    ),
    Option(
        "signature_validity",
        _duration,
        lambda: 14 * 86400,
        "how long a DNSSEC signature is valid (the last tenth spread per RRset)",
        "SECONDS|DURATION",
        commands=("run", "serve"),
    ),
    Option(
        "signature_refresh",
        _duration,
        lambda: 5 * 86400,
        "re-sign an RRset when less than this remains of its signature's validity",
        "SECONDS|DURATION",
        commands=("run", "serve"),
    ),
    Option(
        "sign_zone_files",
        _boolean,
        lambda: False,
        "write the signed zones' DNSKEY, RRSIG and NSEC records into their zone files too, so "
        "BIND and CoreDNS serve the same signed data (needs --dnssec)",
        switch=True,
        commands=("run",),
    ),
    Option(
        "dnssec_keys",
        _path,
        lambda: state_directory() / "keys",
        "directory of the zones' DNSSEC keys (one folder per zone, private files 0600)",
        "DIR",
        commands=DNSSEC_COMMANDS,
    ),
    Option(
        "dnssec_algorithm",
        _algorithm,
        lambda: "ECDSAP256SHA256",
        "algorithm of new DNSSEC keys",
        "|".join(DNSSEC_ALGORITHMS),
        commands=DNSSEC_COMMANDS,
    ),
    Option(
        "dnssec_split_keys",
        _boolean,
        lambda: False,
        "give new zones a KSK (signs the DNSKEY RRset) and a ZSK (signs the rest) instead of "
        "one combined signing key",
        switch=True,
        commands=DNSSEC_COMMANDS,
    ),
    Option(
        "dnssec_zsk_lifetime",
        _duration,
        lambda: 30 * 86400,
        "how long a ZSK signs before the next one takes over (pre-publication), in seconds or "
        "like 30d, 12h, 1w2d; 0: only on command",
        "SECONDS|DURATION",
        commands=DNSSEC_COMMANDS,
    ),
    Option(
        "max_delete_fraction",
        _fraction,
        lambda: 0.5,
        "hold back a read that would remove more than this fraction of a source's records "
        "after the source errored or came back empty, until a resync pass or `dockzone "
        "confirm` (1: never hold)",
        "F",
        commands=("run",),
    ),
    Option(
        "docker",
        _text,
        _docker_default,
        "Docker endpoint (unix:// or tcp://), or off; default DOCKER_HOST, else the local "
        "socket when it exists",
        "URL",
        commands=("run",),
    ),
    Option(
        "tlsverify",
        _boolean,
        lambda: bool(os.environ.get("DOCKER_TLS_VERIFY")),
        "verify the Docker daemon's TLS certificate (default: DOCKER_TLS_VERIFY)",
        switch=True,
        commands=("run",),
    ),
    Option(
        "tlscacert",
        _text,
        lambda: _cert("ca.pem"),
        "CA certificate for the Docker daemon (default: DOCKER_CERT_PATH or DOCKER_CERTS)",
        "FILE",
        commands=("run",),
    ),
    Option(
        "tlscert",
        _text,
        lambda: _cert("cert.pem"),
        "client certificate for the Docker daemon",
        "FILE",
        commands=("run",),
    ),
    Option(
        "tlskey",
        _text,
        lambda: _cert("key.pem"),
        "client key for the Docker daemon",
        "FILE",
        commands=("run",),
    ),
    Option(
        "host_address",
        _address,
        lambda: "",
        "address published for host-network containers and ports bound to 0.0.0.0",
        "ADDR",
        commands=("run",),
    ),
    Option(
        "docker_network",
        _networks,
        lambda: (),
        "only publish container addresses on this network (repeatable; default: all)",
        "NAME",
        repeat=True,
        commands=("run",),
    ),
    Option(
        "health",
        _health,
        lambda: "healthy",
        "containers with a health check are published when: healthy, starting (or healthy), "
        "or ignore (always)",
        "POLICY",
        commands=("run",),
    ),
    Option(
        "stop_grace",
        _grace,
        lambda: 5.0,
        "seconds a stopped container stays published, so a restart does not leave clients "
        "caching NXDOMAIN (0: unpublish at once); docker rm is always immediate",
        "SECONDS",
        commands=("run",),
    ),
    Option(
        "hostname_names",
        _boolean,
        lambda: False,
        "also publish each container given a host name (docker run -h web) as "
        "<hostname>.<domain>, TTL 60 (docker_ddns); label dev.dockzone.hostname=true|false "
        "decides per container",
        switch=True,
        commands=("run",),
    ),
    Option(
        "instance_id",
        _instance_id,
        _hostname_label,
        "this dockzone's id in shared backends (ownership TXT, etcd keys); default: hostname",
        "LABEL",
        commands=("run",),
    ),
    Option(
        "rfc2136_server",
        _server,
        lambda: "",
        "primary server for RFC 2136 dynamic updates (with TSIG), or off",
        "ADDR[:PORT]",
        commands=("run",),
    ),
    Option(
        "rfc2136_zone",
        _domains,
        lambda: (),
        "zone updated on --rfc2136-server (repeatable; default: the --domain zones)",
        "NAME",
        repeat=True,
        commands=("run",),
    ),
    Option(
        "tsig_key_file",
        _tsig_key,
        lambda: None,
        'TSIG key file in BIND format (key "name" { algorithm ...; secret "..."; };)',
        "FILE",
        commands=("run",),
    ),
    Option(
        "etcd",
        _urls,
        lambda: (),
        "etcd v3 endpoint(s) to publish to and read from (SkyDNS layout), or off",
        "URL",
        repeat=True,
        commands=("run",),
    ),
    Option(
        "etcd_prefix",
        _key_prefix,
        lambda: "/skydns",
        "etcd key prefix of the SkyDNS / CoreDNS-etcd layout",
        "PREFIX",
        commands=("run",),
    ),
    Option(
        "etcd_lease_ttl",
        _lease_ttl,
        lambda: 30,
        "seconds this instance's etcd keys outlive it (lease TTL, kept alive while running)",
        "N",
        commands=("run",),
    ),
    Option(
        "etcd_source",
        _boolean,
        lambda: True,
        "serve records other hosts published under --etcd-prefix",
        flag=True,
        commands=("run",),
    ),
    Option(
        "etcd_discover_prefix",
        _key_prefix,
        lambda: "",
        "also publish SRV-style records in totem/discover's layout under this prefix",
        "PREFIX",
        commands=("run",),
    ),
    Option(
        "etcd_discover_realm",
        _realm,
        lambda: "default",
        "the realm in totem/discover's key paths (discover's host:realm)",
        "REALM",
        commands=("run",),
    ),
    Option(
        "etcd_ca",
        _optional_path,
        lambda: None,
        "CA certificate for etcd over https",
        "FILE",
        commands=("run",),
    ),
    Option(
        "etcd_cert",
        _optional_path,
        lambda: None,
        "client certificate for etcd",
        "FILE",
        commands=("run",),
    ),
    Option(
        "etcd_key", _optional_path, lambda: None, "client key for etcd", "FILE", commands=("run",)
    ),
    Option("etcd_user", _text, lambda: "", "etcd user name", "NAME", commands=("run",)),
    Option(
        "etcd_password",
        _text,
        lambda: "",
        "etcd password (prefer DOCKZONE_ETCD_PASSWORD or the config file)",
        "PASSWORD",
        commands=("run",),
    ),
    Option(
        "http",
        _http,
        lambda: "127.0.0.1:5380",
        "where the HTTP API (dnsdock's /services, /status, /metrics) listens: ADDR:PORT "
        "(:PORT: every address) or off",
        "ADDR:PORT",
        commands=("run", "confirm", "status"),
    ),
    Option(
        "api_token_file",
        _optional_path,
        lambda: None,
        "file holding the bearer token API mutations need (required off loopback)",
        "FILE",
        commands=("run", "confirm", "status"),
    ),
    Option(
        "api_token",
        _text,
        lambda: "",
        "the bearer token itself (DOCKZONE_API_TOKEN or the config file only)",
        commands=("run", "confirm", "status"),
        cli=False,
    ),
    Option(
        "insecure_api",
        _boolean,
        lambda: False,
        "allow an HTTP API beyond loopback without a token (anyone can change records)",
        switch=True,
        commands=("run",),
    ),
    Option(
        "metrics_namespace",
        _metric_part,
        lambda: "dockzone",
        "namespace of the Prometheus metric names (SkyDNS used skydns)",
        "NAME",
        commands=("run",),
    ),
    Option(
        "metrics_subsystem",
        _metric_part,
        lambda: "",
        "subsystem of the Prometheus metric names (SkyDNS used skydns)",
        "NAME",
        commands=("run",),
    ),
    Option(
        "namespace",
        _namespaces,
        lambda: (),
        "namespace whose ServiceRecords the operator handles (repeatable; default: all)",
        "NAME",
        repeat=True,
        commands=("operator",),
    ),
    Option(
        "leader_lease",
        _lease,
        lambda: "dockzone-operator",
        "coordination.k8s.io Lease for leader election: NAME (in the pod's namespace), "
        "NAMESPACE/NAME, or off",
        "NAME",
        commands=("operator",),
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings for one command."""

    definitions: Path
    zones: Path
    domain: tuple[str, ...]
    environment: str
    ttl: int
    negative_ttl: int
    hostmaster: str
    ns_address: str
    reverse: bool
    reverse_zone: tuple[str, ...]
    dns: str
    nameserver: tuple[tuple[str, int], ...]
    no_rec: bool
    rotate: bool
    cookies: bool
    require_cookie: bool
    nsid: str
    tcp_idle_timeout: float
    rrl: int | None
    rrl_slip: int
    rrl_window: int
    rrl_exempt: tuple[str, ...]
    allow_transfer: tuple[str, ...]
    transfer_key: tuple[TsigKey, ...]
    also_notify: tuple[tuple[str, int], ...]
    journal_size: int
    resync: float
    dnssec: tuple[str, ...]
    signature_validity: int
    signature_refresh: int
    sign_zone_files: bool
    dnssec_keys: Path
    dnssec_algorithm: str
    dnssec_split_keys: bool
    dnssec_zsk_lifetime: int
    max_delete_fraction: float
    docker: str
    tlsverify: bool
    tlscacert: str
    tlscert: str
    tlskey: str
    host_address: str
    docker_network: tuple[str, ...]
    health: str
    stop_grace: float
    hostname_names: bool
    instance_id: str
    rfc2136_server: str
    rfc2136_zone: tuple[str, ...]
    tsig_key_file: TsigKey | None
    etcd: tuple[str, ...]
    etcd_prefix: str
    etcd_lease_ttl: int
    etcd_source: bool
    etcd_discover_prefix: str
    etcd_discover_realm: str
    etcd_ca: Path | None
    etcd_cert: Path | None
    etcd_key: Path | None
    etcd_user: str
    etcd_password: str
    http: str
    api_token_file: Path | None
    api_token: str
    insecure_api: bool
    metrics_namespace: str
    metrics_subsystem: str
    namespace: tuple[str, ...]
    leader_lease: str
    ttl_from_api: bool = False
    """``ttl`` was set through the API (``PUT /set/ttl``), not by the options."""

    def zone_settings(self) -> ZoneSettings:
        return ZoneSettings(
            domains=self.domain,
            default_ttl=self.ttl,
            negative_ttl=self.negative_ttl,
            hostmaster=self.hostmaster,
            ns_address=self.ns_address,
            reverse=self.reverse,
            reverse_zones=self.reverse_zone if self.reverse else (),
        )

    def name_defaults(self) -> NameDefaults:
        return NameDefaults(self.domain, self.environment)


def load_config_file(path: Path) -> dict[str, Any]:
    """The settings in a YAML config file, keys normalised to option names."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the config file must be a mapping of option: value")
    known = {option.name for option in OPTIONS}
    result = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ConfigError(f"{path}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        result[name] = value
    return result


def resolve(
    flags: Mapping[str, Any], environ: Mapping[str, str], config_path: Path | None
) -> Settings:
    """Settings from ``flags`` (None = not given), ``environ`` and the config file."""
    if config_path is None and environ.get("DOCKZONE_CONFIG"):
        config_path = Path(environ["DOCKZONE_CONFIG"])
    from_file = load_config_file(config_path) if config_path is not None else {}
    values: dict[str, Any] = {}
    for option in OPTIONS:
        env = "DOCKZONE_" + option.name.upper()
        flag = flags.get(option.name)
        if flag is not None and flag != []:
            raw, where = flag, "--" + option.name.replace("_", "-")
        elif environ.get(env) is not None:
            raw, where = environ[env], env
        elif option.name in from_file:
            raw, where = from_file[option.name], f"{config_path}: {option.name}"
        else:
            values[option.name] = option.default()
            continue
        values[option.name] = option.parse(raw, where)
    keys = {key.name for key in values["transfer_key"]}
    for entry in values["allow_transfer"]:
        if entry.endswith(".") and entry not in keys:
            raise ConfigError(f"--allow-transfer {entry}: no --transfer-key has this name")
    if not 0 < values["signature_refresh"] < values["signature_validity"]:
        raise ConfigError(
            f"--signature-refresh {values['signature_refresh']}: must be more than 0 and "
            f"less than --signature-validity ({values['signature_validity']})"
        )
    if values["sign_zone_files"] and not values["dnssec"]:
        raise ConfigError("--sign-zone-files: needs --dnssec (which zones to sign)")
    api_ttl = load_api_ttl(values["definitions"])
    if api_ttl is not None:
        values["ttl"] = api_ttl
        values["ttl_from_api"] = True
    return Settings(**values)


API_DIRECTORY = "api"
"""Directory in the definitions directory where the HTTP API keeps its records."""
API_SETTINGS = ".settings.json"
"""File in ``API_DIRECTORY`` with settings changed through the API (a hidden file, so it is
never read as a definition)."""


def api_settings_path(definitions: Path) -> Path:
    """Where ``PUT /set/ttl`` persists the default TTL."""
    return definitions / API_DIRECTORY / API_SETTINGS


def load_api_ttl(definitions: Path) -> int | None:
    """The default TTL last set through the API (it wins over ``--ttl``), or None."""
    try:
        data = json.loads(api_settings_path(definitions).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ttl = data.get("ttl") if isinstance(data, dict) else None
    if isinstance(ttl, int) and not isinstance(ttl, bool) and 0 <= ttl <= 2**31 - 1:
        return ttl
    return None
