"""Handler plumbing: auth, CSRF rule, argument parsing, JSON and errors.

Handlers stay thin: parse the request into ``Args``, call one endpoint
function on a worker thread, render its dict as JSON.  An endpoint marked
``on_writer`` (it parses and makes one store write, nothing else) runs whole
on the store's writer thread instead: one thread hop each way, not two.
Every LabtrackError becomes MLflow's ``{"error_code", "message"}`` with its
status; anything else is logged (without headers, cookies or query strings:
they carry the user's Jupyter token) and answered as INTERNAL_ERROR.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tornado import web
from tornado.ioloop import IOLoop

from labtrack.errors import BadRequest, LabtrackError, TransientError, Unauthenticated
from labtrack.server.args import Args

log = logging.getLogger("labtrack.server")

TOKEN_COOKIE = "labtrack_token"
JSON_TYPE = "application/json"


@dataclass
class ServerContext:
    """Everything a handler needs, handed to each handler by ``initialize``."""

    store: Any
    logged_models: Any
    artifacts: Any
    settings: Any
    token: str | None = None
    registry: Any = None
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(32, "labtrack-req"))
    last_activity: float = field(default_factory=time.monotonic)
    extra: dict[str, Any] = field(default_factory=dict)


Endpoint = Callable[..., Any]


def on_writer(fn: Endpoint) -> Endpoint:
    """Mark an endpoint that only parses its request and makes store writes.

    It runs on the writer thread, inside the write's own savepoint, so its
    store call writes at once instead of waking the writer from a worker (see
    ``store.writer``).  It must not read through the store's readers: they
    would not see what the write has done so far.
    """
    fn.on_writer = True  # type: ignore[attr-defined]
    return fn


class RawJson(str):
    """A reply an endpoint has already rendered to JSON text (long histories)."""


class BaseHandler(web.RequestHandler):
    """Auth and error rendering shared by every route."""

    ctx: ServerContext
    open_paths = False  # /health and /version answer without a token

    def initialize(self, ctx: ServerContext, **kwargs: Any) -> None:
        self.ctx = ctx
        ctx.last_activity = time.monotonic()

    def check_xsrf_cookie(self) -> None:  # our CSRF rule is the JSON content type
        return

    def prepare(self) -> None:
        if not self.open_paths:
            self.check_token()

    def check_token(self) -> None:
        token = self.ctx.token
        if not token or self._via_unix_socket():
            # The socket sits in a private (0700) folder: reaching it is the credential.
            return
        header = self.request.headers.get("Authorization", "")
        offered = None
        if header.startswith("Bearer "):
            offered = header[7:].strip()
        elif header.startswith("Basic "):
            try:
                offered = base64.b64decode(header[6:]).decode().split(":", 1)[1]
            except (ValueError, IndexError, UnicodeDecodeError):
                offered = None
        if offered is None:
            offered = self.get_cookie(TOKEN_COOKIE)
        if offered is None or not hmac.compare_digest(offered.encode(), token.encode()):
            raise Unauthenticated("A valid token is required (Authorization: Bearer <token>).")

    def _via_unix_socket(self) -> bool:
        context = getattr(self.request.connection, "context", None)
        return getattr(context, "address_family", None) == socket.AF_UNIX

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(obj if isinstance(obj, RawJson) else json.dumps(obj, separators=(",", ":"), allow_nan=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LabtrackError):
            self.set_status(exc.http_status)
            body = exc.to_json()
        elif isinstance(exc, web.HTTPError) and status_code < 500:
            code = {404: "ENDPOINT_NOT_FOUND", 405: "BAD_REQUEST", 413: "BAD_REQUEST"}.get(status_code, "BAD_REQUEST")
            body = {"error_code": code, "message": exc.log_message or self._reason}
        else:
            body = {"error_code": "INTERNAL_ERROR", "message": "Internal server error; see the server's log."}
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, LabtrackError) or (isinstance(value, web.HTTPError) and value.status_code < 500):
            return
        # Method and path only: never headers, cookies or the query string.
        log.error("error in %s %s", self.request.method, self.request.path, exc_info=(typ, value, tb))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LabtrackError):
            status_code = exc.http_status
        super().send_error(status_code, **kwargs)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            fut = IOLoop.current().run_in_executor(self.ctx.pool, fn, *args)
        except RuntimeError:  # the pool is shut down: a kept-alive connection spoke during shutdown
            raise TransientError("The server is shutting down.") from None
        return await fut

    async def run_on_writer(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the store's writer thread, as one write of a group."""
        return await asyncio.wrap_future(self.ctx.store.writer.submit(lambda conn: fn(*args)))


class ApiHandler(BaseHandler):
    """One route: ``methods`` maps an HTTP method to ``fn(ctx, args, *path_args) -> dict``."""

    def initialize(self, ctx: ServerContext, methods: dict[str, Endpoint] | None = None, **kwargs: Any) -> None:
        super().initialize(ctx)
        self.methods = methods or {}

    def parse_args(self) -> Args:
        if self.request.method == "GET":
            query = {k: [v.decode("utf-8", "replace") for v in vs]
                     for k, vs in self.request.query_arguments.items()}
            return Args(query, from_query=True)
        body = self.request.body
        if self.request.method in ("POST", "PATCH"):
            ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != JSON_TYPE:
                # A cross-site form cannot send JSON, so this blocks CSRF writes.
                raise BadRequest("Requests that change data must have Content-Type: application/json.")
        if not body or not body.strip():
            data: Any = {}
        else:
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError) as e:
                raise BadRequest(f"Malformed JSON in the request body: {e}") from None
        if not isinstance(data, dict):
            raise BadRequest("The request body must be a JSON object.")
        # DELETE may carry its fields in the query string too.
        for k, vs in self.request.query_arguments.items():
            data.setdefault(k, vs[-1].decode("utf-8", "replace"))
        return Args(data)

    async def _dispatch(self, *path_args: str) -> None:
        fn = self.methods.get(self.request.method or "")
        if fn is None:
            raise web.HTTPError(405)
        args = self.parse_args()
        if getattr(fn, "on_writer", False):
            result = await self.run_on_writer(fn, self.ctx, args, *path_args)
        else:
            result = await self.run(fn, self.ctx, args, *path_args)
        self.write_json(result if result is not None else {})

    get = post = patch = delete = put = _dispatch  # type: ignore[assignment]
