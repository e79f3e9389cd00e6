"""HTTP transport to a tracking server: keep-alive TCP or a unix socket, with retries.

Uses the standard library's ``http.client`` (imported lazily) so that
``import labtrack`` stays light.  One connection per thread: the background
sender and the user's thread never share a socket.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from labtrack._version import __version__
from labtrack.errors import LabtrackError, TransientError, error_from_response

# MLflow retries these statuses (reference §1); so do we.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MLFLOW_API = "/api/2.0/mlflow/"
LABTRACK_API = "/api/2.0/labtrack/"  # labtrack's own endpoints beside MLflow's
USER_AGENT = f"labtrack-python-client/{__version__}"


def _env_float(names: tuple[str, ...], default: float) -> float:
    for name in names:
        value = os.environ.get(name)
        if value:
            return float(value)
    return default


@dataclass
class RetryPolicy:
    """How often and how long to retry a transient failure (exponential backoff)."""

    max_retries: int = 7
    backoff: float = 0.25
    max_wait: float = 8.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        retries = _env_float(("LABTRACK_HTTP_REQUEST_MAX_RETRIES",
                              "MLFLOW_HTTP_REQUEST_MAX_RETRIES"), 7)
        return cls(max_retries=int(retries))

    def wait(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), 60.0)
            except ValueError:
                pass
        # Jitter keeps many array-job clients from retrying in lock step.
        return min(self.max_wait, self.backoff * (2 ** attempt)) * (0.5 + random.random() / 2)


def parse_unix_uri(uri: str) -> tuple[str, str]:
    """Split ``http+unix://<percent-encoded socket path>/<prefix>`` into (socket path, prefix)."""
    rest = uri[len("http+unix://"):]
    encoded, _, prefix = rest.partition("/")
    return unquote(encoded), ("/" + prefix).rstrip("/")


def unix_uri(socket_path: str) -> str:
    """The ``http+unix://`` URI for a socket path (as an OwnerRecord gives it)."""
    return "http+unix://" + quote(os.path.abspath(socket_path), safe="")


def auth_header_from_env() -> str | None:
    """``Authorization`` from the environment: Basic wins over a token, as in MLflow."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        raw = base64.b64encode(f"{user}:{password}".encode()).decode()
        return f"Basic {raw}"
    token = os.environ.get("LABTRACK_TRACKING_TOKEN") or os.environ.get("MLFLOW_TRACKING_TOKEN")
    return f"Bearer {token}" if token else None


@dataclass
class Endpoint:
    """Where a server listens: scheme http/https/unix, host:port or socket path, path prefix."""

    scheme: str
    host: str = "127.0.0.1"
    port: int | None = None
    socket_path: str | None = None
    prefix: str = ""

    @classmethod
    def from_uri(cls, uri: str) -> Endpoint:
        if uri.startswith("http+unix://"):
            path, prefix = parse_unix_uri(uri)
            return cls("unix", socket_path=path, prefix=prefix)
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https"):
            raise LabtrackError(f"unsupported tracking URI {uri!r}", "INVALID_PARAMETER_VALUE")
        return cls(parts.scheme, parts.hostname or "127.0.0.1", parts.port,
                   prefix=parts.path.rstrip("/"))

    @property
    def uri(self) -> str:
        if self.scheme == "unix":
            return unix_uri(self.socket_path or "") + self.prefix
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{host}{port}{self.prefix}"


def _connection(endpoint: Endpoint, timeout: float) -> Any:
    import http.client  # lazy: ~10 ms of imports that `import labtrack` must not pay

    if endpoint.scheme == "https":
        return http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=timeout)
    if endpoint.scheme == "http":
        return http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(endpoint.socket_path or "")
            self.sock = sock

    return UnixConnection("localhost", timeout=timeout)




class Transport:
    """Sends MLflow REST calls to one server and decodes the JSON replies.

    ``resolver`` (optional) re-discovers the server when it cannot be reached,
    e.g. after a background server exited because it was idle; it returns a
    fresh (Endpoint, Authorization header).
    """

    # Requests the background sender may have in flight at once (one connection per thread).
    max_in_flight = 2

    def __init__(self, endpoint: Endpoint, auth: str | None = None,
                 retry: RetryPolicy | None = None, timeout: float | None = None,
                 resolver: Callable[[], tuple[Endpoint, str | None]] | None = None) -> None:
        self.endpoint = endpoint
        self.auth = auth
        self.retry = retry or RetryPolicy.from_env()
        self.timeout = timeout or _env_float(("LABTRACK_HTTP_REQUEST_TIMEOUT",
                                              "MLFLOW_HTTP_REQUEST_TIMEOUT"), 120.0)
        self._resolver = resolver
        self._local = threading.local()
        self._generation = 0  # bumped when the endpoint changes; stale sockets are dropped
        self._lock = threading.Lock()

    @classmethod
    def from_uri(cls, uri: str, auth: str | None = None, **kw: Any) -> Transport:
        return cls(Endpoint.from_uri(uri), auth if auth is not None else auth_header_from_env(),
                   **kw)

    @property
    def uri(self) -> str:
        return self.endpoint.uri

    # -- connections -------------------------------------------------------------
    def _conn(self) -> Any:
        local = self._local
        if getattr(local, "conn", None) is None or local.generation != self._generation:
            self._drop()
            local.conn = _connection(self.endpoint, self.timeout)
            local.generation = self._generation
        return local.conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def close(self) -> None:
        """Close this thread's connection."""
        self._drop()

    def _reresolve(self) -> bool:
        if self._resolver is None:
            return False
        with self._lock:
            endpoint, auth = self._resolver()
            if endpoint.uri != self.endpoint.uri or auth != self.auth:
                self.endpoint, self.auth = endpoint, auth
                self._generation += 1
        return True

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "X-Labtrack-Client-Version": __version__}
        if self.auth:
            headers["Authorization"] = self.auth
        if extra:
            headers.update(extra)
        return headers

    # -- requests ------------------------------------------------------------------
    def request_raw(self, method: str, path: str, body: bytes | IO[bytes] | None = None,
                    headers: dict[str, str] | None = None, *, retries: bool = True,
                    stream_to: IO[bytes] | None = None) -> tuple[int, bytes]:
        """One request with retries; returns (status, body) of the final reply.

        ``path`` is relative to the server root (prefix added here).  With
        ``stream_to`` a 200 body is copied there in chunks instead of returned.
        """
        import http.client

        # Failures that mean the exchange broke (refused, reset, timed out): retryable,
        # since every write the client sends is idempotent on the server.
        broken = (OSError, http.client.HTTPException)
        attempt = 0
        reresolved = False
        while True:
            conn = self._conn()
            url = self.endpoint.prefix + path
            try:
                if hasattr(body, "seek"):
                    body.seek(0)  # type: ignore[union-attr]
                conn.request(method, url, body=body, headers=self._headers(headers))
                resp = conn.getresponse()
                status = resp.status
                if stream_to is not None and status == 200:
                    while chunk := resp.read(1 << 20):
                        stream_to.write(chunk)
                    data = b""
                else:
                    data = resp.read()
                if resp.will_close:
                    self._drop()
            except broken as exc:
                self._drop()
                # A kept-alive socket that the server closed fails once: retry at once.
                if attempt == 0 and not isinstance(exc, (ConnectionRefusedError,
                                                         FileNotFoundError)):
                    attempt += 1
                    continue
                if not reresolved and self._reresolve():
                    reresolved = True
                    continue
                if not retries or attempt >= self.retry.max_retries:
                    raise TransientError(f"cannot reach {self.endpoint.uri}: {exc}") from exc
                time.sleep(self.retry.wait(attempt))
                attempt += 1
                continue
            if status in RETRY_STATUSES and retries and attempt < self.retry.max_retries:
                time.sleep(self.retry.wait(attempt, resp.getheader("Retry-After")))
                attempt += 1
                continue
            return status, data

    def call(self, method: str, endpoint: str, message: dict[str, Any] | None = None, *,
             retries: bool = True, api: str = MLFLOW_API,
             raw_body: bytes | None = None) -> dict[str, Any]:
        """Call an MLflow REST endpoint; return the decoded JSON or raise a typed error.

        ``raw_body`` is an already encoded JSON message (the sender writes its own).
        """
        path = api + endpoint
        body = None
        headers = None
        if raw_body is not None:
            body, headers = raw_body, {"Content-Type": "application/json"}
        elif method == "GET":
            if message:
                path += "?" + urlencode(_query(message), doseq=True)
        else:
            body = json.dumps(message or {}, allow_nan=False).encode()
            headers = {"Content-Type": "application/json"}
        status, data = self.request_raw(method, path, body, headers, retries=retries)
        return decode_reply(status, data)


def _query(message: dict[str, Any]) -> dict[str, Any]:
    # Booleans as MLflow's client sends them; None means "unset".
    return {k: (str(v).lower() if isinstance(v, bool) else v)
            for k, v in message.items() if v is not None}


def decode_reply(status: int, data: bytes) -> dict[str, Any]:
    """A JSON object for a 200, else the typed error the reply describes."""
    parsed: Any = None
    if data:
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
    if status == 200:
        if not data:
            return {}
        if isinstance(parsed, dict):
            return parsed
        raise LabtrackError(f"server replied with non-JSON body: {data[:200]!r}")
    raise error_from_response(status, parsed if isinstance(parsed, dict) else data)


def iter_pages(fetch: Callable[[str | None], tuple[list[Any], str | None]],
               limit: int | None = None) -> Iterator[Any]:
    """Yield items across ``next_page_token`` pages, up to ``limit`` items."""
    token: str | None = None
    count = 0
    while True:
        items, token = fetch(token)
        for item in items:
            if limit is not None and count >= limit:
                return
            count += 1
            yield item
        if not token:
            return
