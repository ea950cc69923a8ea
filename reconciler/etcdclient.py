"""A small etcd v3 client over etcd's JSON gRPC gateway (``/v3/kv/*``, ``/v3/lease/*``,
``/v3/auth/authenticate``), with urllib: no grpc or protobuf to break.

Keys and values travel base64-encoded; 64-bit numbers arrive as JSON strings. Endpoints are
tried in order until one answers. TLS (CA, client certificate) and user/password auth (a
token in the ``Authorization`` header, renewed when it expires) are supported. Every call
is blocking; the etcd sink and source call it through ``asyncio.to_thread``. Failures raise
``EtcdError`` (a ``TransientError``) naming the endpoint; passwords never appear in them.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import TransientError


class EtcdError(TransientError):
    """etcd is unreachable or refused a request."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as etcd holds it."""

    key: str
    value: str
    lease: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class EtcdOptions:
    """How to reach etcd: endpoint URLs, TLS files, credentials, request timeout."""

    endpoints: tuple[str, ...]
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    user: str = ""
    password: str = ""
    timeout: float = 5.0


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode("utf-8", errors="replace")


def prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with ``prefix`` (base64)."""
    data = bytearray(prefix.encode("utf-8"))
    while data and data[-1] == 0xFF:
        data.pop()
    if not data:
        return base64.b64encode(b"\0").decode("ascii")
    data[-1] += 1
    return base64.b64encode(bytes(data)).decode("ascii")


class EtcdClient:
    """The few etcd v3 calls dockzone needs."""

    def __init__(self, options: EtcdOptions) -> None:
        if not options.endpoints:
            raise ValueError("no etcd endpoint")
        self.options = options
        self._token: str | None = None
        self._context: ssl.SSLContext | None = None

    def _tls(self) -> ssl.SSLContext | None:
        """The TLS context for https endpoints, made on first use; bad files are an
        ``EtcdError`` naming them."""
        options = self.options
        if self._context is None and any(u.startswith("https://") for u in options.endpoints):
            try:
                context = ssl.create_default_context(cafile=str(options.ca) if options.ca else None)
                if options.cert:
                    context.load_cert_chain(
                        str(options.cert), str(options.key) if options.key else None
                    )
            except (OSError, ssl.SSLError) as exc:
                files = ", ".join(str(f) for f in (options.ca, options.cert, options.key) if f)
                raise EtcdError(f"etcd TLS files ({files}): {exc}") from exc
            self._context = context
        return self._context

    @property
    def where(self) -> str:
        return ",".join(self.options.endpoints)

    # --- transport -----------------------------------------------------------------------

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path`` on the first endpoint that answers."""
        if self.options.user and self._token is None:
            self._authenticate()
        try:
            return self._post(path, body)
        except _AuthExpired:
            self._authenticate()
            return self._post(path, body)

    def _authenticate(self) -> None:
        self._token = None
        answer = self._post(
            "/v3/auth/authenticate",
            {"name": self.options.user, "password": self.options.password},
        )
        token = answer.get("token")
        if not isinstance(token, str):
            raise EtcdError(f"etcd at {self.where}: no token for user {self.options.user!r}")
        self._token = token

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        failures = []
        for url in self.options.endpoints:
            request = urllib.request.Request(url + path, data=data, method="POST")
            request.add_header("Content-Type", "application/json")
            if self._token and not path.endswith("/authenticate"):
                request.add_header("Authorization", self._token)
            try:
                with urllib.request.urlopen(
                    request, timeout=self.options.timeout, context=self._tls()
                ) as response:
                    answer = json.loads(response.read().decode("utf-8") or "{}")
            except urllib.error.HTTPError as exc:
                detail = _error_text(exc)
                if "token" in detail and self.options.user and self._token:
                    raise _AuthExpired from exc
                raise EtcdError(f"etcd at {url}: {path}: HTTP {exc.code}: {detail}") from exc
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                failures.append(f"{url}: {reason}")
                continue
            if not isinstance(answer, dict):
                raise EtcdError(f"etcd at {url}: {path}: unexpected answer")
            if "error" in answer and "result" not in answer:
                raise EtcdError(f"etcd at {url}: {path}: {answer.get('error')}")
            return answer
        raise EtcdError("etcd unreachable: " + "; ".join(failures))

    # --- kv and leases -------------------------------------------------------------------

    def range_prefix(self, prefix: str, *, keys_only: bool = False) -> tuple[int, list[KeyValue]]:
        """The store revision and every key starting with ``prefix`` (with ``keys_only``,
        without their values: empty strings)."""
        body: dict[str, Any] = {"key": _b64(prefix), "range_end": prefix_end(prefix)}
        if keys_only:
            body["keys_only"] = True
        answer = self.call("/v3/kv/range", body)
        revision = int(answer.get("header", {}).get("revision", 0))
        result = [
            KeyValue(
                _unb64(kv["key"]),
                _unb64(kv.get("value", "")),
                int(kv.get("lease", 0)),
                int(kv.get("mod_revision", 0)),
            )
            for kv in answer.get("kvs", [])
        ]
        return revision, result

    def watch_prefix(
        self, prefix: str, start_revision: int, *, idle: float = 1.0
    ) -> Iterator[tuple[int, list[tuple[KeyValue, bool]]]]:
        """Follow the changes under ``prefix`` from ``start_revision`` (``/v3/watch``): one
        (header revision, [(key value, deleted)]) per message as etcd sends it, the first
        one (the watch created) without changes. Ends quietly after ``idle`` seconds
        without a message (call again from the next revision). Raises ``EtcdCompacted``
        when ``start_revision`` was compacted away, ``EtcdError`` when etcd cannot be
        reached or cancels the watch."""
        create = {
            "key": _b64(prefix),
            "range_end": prefix_end(prefix),
            "start_revision": str(start_revision),
        }
        if self.options.user and self._token is None:
            self._authenticate()
        data = json.dumps({"create_request": create}).encode("utf-8")
        failures = []
        for url in self.options.endpoints:
            request = urllib.request.Request(url + "/v3/watch", data=data, method="POST")
            request.add_header("Content-Type", "application/json")
            if self._token:
                request.add_header("Authorization", self._token)
            try:
                response = urllib.request.urlopen(request, timeout=idle, context=self._tls())
            except urllib.error.HTTPError as exc:
                if self._token:
                    self._token = None  # perhaps expired: the next call authenticates
                raise EtcdError(f"etcd at {url}: /v3/watch: HTTP {exc.code}") from exc
            except (urllib.error.URLError, OSError) as exc:
                failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
                continue
            with response:
                yield from _watch_messages(url, response)
            return
        raise EtcdError("etcd unreachable: " + "; ".join(failures))

    def put(self, key: str, value: str, lease: int = 0) -> None:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        self.call("/v3/kv/put", body)

    def delete(self, key: str) -> None:
        self.call("/v3/kv/deleterange", {"key": _b64(key)})

    def lease_grant(self, ttl: int) -> int:
        answer = self.call("/v3/lease/grant", {"TTL": str(ttl)})
        lease = int(answer.get("ID", 0))
        if not lease:
            raise EtcdError(f"etcd at {self.where}: no lease granted: {answer.get('error', '')}")
        return lease

    def lease_keepalive(self, lease: int) -> int:
        """Refresh ``lease``; its remaining TTL, 0 when the lease is gone."""
        answer = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        result = answer.get("result", answer)
        return int(result.get("TTL", 0)) if isinstance(result, dict) else 0

    def lease_revoke(self, lease: int) -> None:
        self.call("/v3/lease/revoke", {"ID": str(lease)})


class EtcdCompacted(EtcdError):
    """A watch asked for revisions etcd has compacted away: read afresh."""


def _watch_messages(url: str, response: Any) -> Iterator[tuple[int, list[tuple[KeyValue, bool]]]]:
    """The messages of one watch response stream (one JSON object per line)."""
    while True:
        try:
            line = response.readline()
        except (TimeoutError, OSError, ValueError):  # quiet for the idle time, or cut
            return
        if not line:
            return
        try:
            message = json.loads(line)
        except ValueError:
            return
        result = message.get("result") if isinstance(message, dict) else None
        if not isinstance(result, dict):
            raise EtcdError(f"etcd at {url}: /v3/watch: {message.get('error', message)}")
        if int(result.get("compact_revision", 0) or 0):
            raise EtcdCompacted(f"etcd at {url}: watched revisions were compacted")
        if result.get("canceled"):
            raise EtcdError(f"etcd at {url}: watch canceled: {result.get('cancel_reason', '')}")
        revision = int(result.get("header", {}).get("revision", 0))
        changes = [
            (
                KeyValue(
                    _unb64(event["kv"]["key"]),
                    _unb64(event["kv"].get("value", "")),
                    int(event["kv"].get("lease", 0)),
                    int(event["kv"].get("mod_revision", 0)),
                ),
                event.get("type") == "DELETE",
            )
            for event in result.get("events") or ()
        ]
        yield revision, changes


class _AuthExpired(Exception):
    """The auth token was rejected; authenticate again."""


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read().decode("utf-8"))
    except (OSError, ValueError):
        return str(exc.reason)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or exc.reason)
    return str(exc.reason)
