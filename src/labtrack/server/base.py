"""Handler plumbing: auth, CSRF rule, argument parsing, JSON and errors.

Handlers stay thin: parse the request into ``Args``, call one endpoint
function on a worker thread, render its dict as JSON.  An endpoint marked
``on_writer`` (it parses and makes one store write, nothing else) runs whole
on the store's writer thread instead: one thread hop each way, not two.
Every LabtrackError becomes MLflow's ``{"error_code", "message"}`` with its
status; anything else is logged (without headers, cookies or query strings:
they carry the user's Jupyter token) and answered as INTERNAL_ERROR.

API routes are answered by ``ApiRequest``, a bare tornado message delegate:
the same steps as ``ApiHandler`` (which still serves the rest), without a
RequestHandler per request, whose set-up and finishing cost more than a small
request's own work.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tornado import httputil, iostream, web

from labtrack.errors import BadRequest, LabtrackError, TransientError, Unauthenticated
from labtrack.server import early_answer
from labtrack.server.args import Args
from labtrack.server.guard import cookie_name, cookie_value, cors_headers
from labtrack.thread_names import name_os_thread

log = logging.getLogger("labtrack.server")
access_log = logging.getLogger("labtrack.access")

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
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(32, "labtrack-req", name_os_thread))
    last_activity: float = field(default_factory=time.monotonic)
    extra: dict[str, Any] = field(default_factory=dict)
    _made: list[str] = field(default_factory=list, repr=False)  # names ``one`` made, in order

    def one(self, name: str, make: Callable[[], Any]) -> Any:
        """The server's one ``extra[name]``, made by ``make()`` on first use (once, however many
        request threads ask at the same time)."""
        found = self.extra.get(name)
        if found is None:
            with _MADE:
                found = self.extra.get(name)
                if found is None:
                    found = self.extra[name] = make()
                    self._made.append(name)
        return found

    def close_helpers(self) -> None:
        """Close what ``one`` made that holds something of its own (a SQLite connection, a
        thread pool), last made first; at the server's stop, after the last request."""
        for name in reversed(self._made):
            close = getattr(self.extra.get(name), "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - the others still close
                    log.warning("closing the server's %s failed", name, exc_info=True)
        self._made.clear()


_MADE = threading.Lock()

Endpoint = Callable[..., Any]


def on_writer(fn: Endpoint) -> Endpoint:
    """Mark an endpoint that only parses its request and makes store writes.

    It runs whole as one write (on the writer thread, or on the event loop when
    the writer is idle and the request small), so its store call writes at once
    instead of waking the writer from a worker (see ``store.writer``).  It must
    not read through the store's readers: they would not see what the write has
    done so far.
    """
    fn.on_writer = True  # type: ignore[attr-defined]
    return fn


class RawJson(str):
    """A reply an endpoint has already rendered to JSON text (long histories)."""


class StreamedJson:
    """A reply sent as it is made: ``parts`` yields its JSON text piece by piece.

    For replies that grow with what is stored (a whole long history in one page):
    each part is made on the request pool and written (chunked) before the next
    is made, so the server holds one part at a time, never the whole reply.
    ``close`` runs when the reply ends, finished or not (the parts may hold a
    database connection).  Make the first part's errors happen in the endpoint:
    once the first part is written, a failure can only cut the reply short.
    """

    def __init__(self, parts: Iterator[str], close: Callable[[], None] | None = None) -> None:
        self.parts = parts
        self.close = close or (lambda: None)


def check_token(ctx: ServerContext, request: httputil.HTTPServerRequest) -> None:
    """Raise Unauthenticated unless the request carries the server's token.

    The one authentication decision: ``guard.screen`` calls it as soon as a
    request's headers are parsed, before any body is read (issue #19).
    """
    auth = ctx.extra.get("auth")
    if auth is not None:  # --app-name basic-auth: users and passwords instead of the token (server/auth.py)
        auth.authenticate(request)
        return
    token = ctx.token
    if not token or via_unix_socket(request):
        # The socket sits in a private (0700) folder: reaching it is the credential.
        return
    offered = offered_token(request.headers.get("Authorization", ""))
    if offered is None:
        # The browser's cookie is named for this server and holds a value derived from the token.
        cookie = request.cookies.get(cookie_name(token))
        if cookie is not None and hmac.compare_digest(cookie.value.encode(), cookie_value(token).encode()):
            return
    if not token_matches(token, offered):
        raise Unauthenticated("A valid token is required: the mlflow client sends it from "
                              "MLFLOW_TRACKING_TOKEN (lt from LABTRACK_TRACKING_TOKEN too), other "
                              "clients as 'Authorization: Bearer <token>', a browser through the "
                              "?token= URL the server printed.")


def offered_token(header: str) -> str | None:
    """The token an ``Authorization`` header offers: a bearer token, or a basic password."""
    if header.startswith("Bearer "):
        return header[7:].strip()
    if header.startswith("Basic "):
        try:
            return base64.b64decode(header[6:]).decode().split(":", 1)[1]
        except (ValueError, IndexError, UnicodeDecodeError):
            return None
    return None


def token_matches(token: str, offered: str | None) -> bool:
    """Whether ``offered`` is the server's token (compared in constant time)."""
    return offered is not None and hmac.compare_digest(offered.encode(), token.encode())


def via_unix_socket(request: httputil.HTTPServerRequest) -> bool:
    """Whether the request came through the unix socket (in a private 0700 folder)."""
    context = getattr(request.connection, "context", None)
    return getattr(context, "address_family", None) == socket.AF_UNIX


def request_args(request: httputil.HTTPServerRequest) -> Args:
    """An API request's fields: the query of a GET, else the JSON body (plus the query)."""
    if request.method == "GET":
        query = {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in request.query_arguments.items()}
        return _signed_in(Args(query, from_query=True), request)
    body = request.body
    if request.method in ("POST", "PATCH"):
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != JSON_TYPE:
            # A cross-site form cannot send JSON, so this blocks CSRF writes.
            raise BadRequest("Requests that change data must have Content-Type: application/json.")
    if not body or not body.strip():
        data: Any = {}
    else:
        data = parse_json(body)
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    # DELETE may carry its fields in the query string too.
    for k, vs in request.query_arguments.items():
        data.setdefault(k, vs[-1].decode("utf-8", "replace"))
    return _signed_in(Args(data), request)


def _signed_in(args: Args, request: httputil.HTTPServerRequest) -> Args:
    """The arguments, with the basic-auth user that ``check_token`` found (None otherwise)."""
    args.user = getattr(request, "labtrack_user", None)
    return args


# An escaped UTF-16 surrogate: only then can a parsed string hold a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(body: bytes | str) -> Any:
    """Parse a request's JSON, refusing what the store could not keep, with a 400.

    Nesting deeper than Python's recursion limit, and lone surrogates
    (``"\\ud800"``: not UTF-8, so no database can store them), are refused
    here rather than failing later as a 500.
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise BadRequest("Malformed JSON in the request body: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"Malformed JSON in the request body: {e}") from None
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("The request holds a lone UTF-16 surrogate (not valid Unicode text).") from None
        except RecursionError:
            raise BadRequest("Malformed JSON in the request body: nested too deeply") from None
    return data


# A request body up to this size makes a small write (a log_metric is ~100
# bytes): one the event loop may apply itself when the writer is idle.
SMALL_WRITE_BYTES = 4096


def call_endpoint(ctx: ServerContext, fn: Endpoint, *args: Any, body_bytes: int = 0) -> asyncio.Future[Any]:
    """``fn(ctx, *args)`` on a worker thread, or whole as a write if it is ``on_writer``.

    A write of a small request (``body_bytes``) that finds the writer idle is
    applied at once (``Writer.apply_now_from_loop``); others go to the writer
    thread.  Returns the asyncio future of its result, answered on the event loop.
    """
    auth = ctx.extra.get("auth")
    if auth is not None:  # basic-auth: the endpoint's permission check runs first, on a worker
        fn = auth.wrap(fn)
    if getattr(fn, "on_writer", False):
        writer = ctx.store.writer
        op: Callable[[Any], Any] = lambda conn: fn(ctx, *args)  # noqa: E731
        if body_bytes <= SMALL_WRITE_BYTES:
            done = writer.apply_now_from_loop(op)
            if done is not None:
                return done
        return writer.submit_from_loop(op)
    return on_pool(ctx, fn, ctx, *args)


def on_pool(ctx: ServerContext, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """``fn(*args)`` on the request pool, as an asyncio future."""
    try:
        return asyncio.get_running_loop().run_in_executor(ctx.pool, fn, *args)
    except RuntimeError:  # the pool is shut down: a kept-alive connection spoke during shutdown
        raise TransientError("The server is shutting down.") from None


def error_reply(exc: BaseException | None, status_code: int, reason: str) -> tuple[int, dict[str, Any]]:
    """The status and MLflow error body for a failed request."""
    if isinstance(exc, LabtrackError):
        return exc.http_status, exc.to_json()
    if isinstance(exc, web.HTTPError) and status_code < 500:
        code = {404: "ENDPOINT_NOT_FOUND", 405: "BAD_REQUEST", 413: "BAD_REQUEST"}.get(status_code, "BAD_REQUEST")
        return status_code, {"error_code": code, "message": exc.log_message or reason}
    return status_code, {"error_code": "INTERNAL_ERROR", "message": "Internal server error; see the server's log."}


def log_failure(request: httputil.HTTPServerRequest, exc: BaseException) -> None:
    """Log an unexpected error: method and path only, never headers, cookies or the query string."""
    if isinstance(exc, LabtrackError) or (isinstance(exc, web.HTTPError) and exc.status_code < 500):
        return
    log.error("error in %s %s", request.method, request.path, exc_info=(type(exc), exc, exc.__traceback__))


# Called with (status, request) for every answered request: the Prometheus metrics
# (server/metrics.py, --expose-prometheus); None when they are off.
request_observer: Callable[[int, httputil.HTTPServerRequest], None] | None = None


def log_access(status: int, request: httputil.HTTPServerRequest, every_request: bool) -> None:
    if request_observer is not None:
        request_observer(status, request)
    if status >= 500 or every_request:
        # Method and path only: the query string may carry a Jupyter token.
        access_log.info("%d %s %s %.1fms", status, request.method, request.path, 1000.0 * request.request_time())


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
        for name, value in cors_headers(self.ctx.settings, self.request.headers.get("Origin")):
            self.set_header(name, value)
        if not self.open_paths:
            self.check_token()

    def check_token(self) -> None:
        check_token(self.ctx, self.request)

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(obj if isinstance(obj, RawJson) else json.dumps(obj, separators=(",", ":"), allow_nan=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        status, body = error_reply(kwargs.get("exc_info", (None, None, None))[1], status_code, self._reason)
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log_failure(self.request, value)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LabtrackError):
            status_code = exc.http_status
        super().send_error(status_code, **kwargs)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await on_pool(self.ctx, fn, *args)


class ApiHandler(BaseHandler):
    """One route: ``methods`` maps an HTTP method to ``fn(ctx, args, *path_args) -> dict``."""

    def initialize(self, ctx: ServerContext, methods: dict[str, Endpoint] | None = None, **kwargs: Any) -> None:
        super().initialize(ctx)
        self.methods = methods or {}

    def parse_args(self) -> Args:
        return request_args(self.request)

    async def _dispatch(self, *path_args: str) -> None:
        fn = self.methods.get(self.request.method or "")
        if fn is None:
            raise web.HTTPError(405)
        result = await call_endpoint(self.ctx, fn, self.parse_args(), *path_args,
                                     body_bytes=len(self.request.body or b""))
        self.write_json(result if result is not None else {})

    get = post = patch = delete = put = _dispatch  # type: ignore[assignment]


# The largest JSON request body: MLflow's biggest messages (log_batch at its
# limits, a dataset's schema and profile) are a few MB.  Artifacts are streamed.
JSON_BODY_LIMIT = 32 << 20


class BodyBudget:
    """Bytes of request bodies held in memory by requests not yet complete, capped.

    Without a cap, a few connections sending large bodies slowly held hundreds
    of MB for as long as they liked (issue #19).  Event-loop only: no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> bool:
        if self.held + n > self.limit:
            return False
        self.held += n
        return True

    def give(self, n: int) -> None:
        self.held = max(0, self.held - n)


body_budget = BodyBudget(128 << 20)


class ApiRequest(httputil.HTTPMessageDelegate):
    """One request to an API route, answered without a RequestHandler.

    The steps and replies are ``ApiHandler``'s: the token, the method's
    endpoint, its arguments, the call, the JSON or the error, the access log.
    Only for methods the route has; tornado's handler answers the others.
    """

    def __init__(self, request: httputil.HTTPServerRequest, ctx: ServerContext, methods: dict[str, Endpoint],
                 every_request_logged: bool) -> None:
        self.request = request
        self.ctx = ctx
        self.fn = methods[request.method or ""]
        self.every_request_logged = every_request_logged
        self.chunks: list[bytes] = []
        self.held = 0
        self.closed = False
        self.refused = False
        ctx.last_activity = time.monotonic()

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> None:
        # The token was checked already, by guard.screen, before this delegate was chosen.
        connection = self.request.connection
        if connection is not None and hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(JSON_BODY_LIMIT)

    def data_received(self, chunk: bytes) -> None:
        if self.refused:
            return
        if not body_budget.take(len(chunk)):
            # Unfinished requests together already hold the most we keep in memory.
            self.refused = True
            self._release()
            self._fail(TransientError("The server holds too many unfinished requests; retry shortly."))
            return
        self.held += len(chunk)
        self.chunks.append(chunk)

    def finish(self) -> None:
        if self.refused:
            return
        if self.chunks:
            self.request.body = b"".join(self.chunks)
            self.chunks = []
        self._release()
        # Callbacks, not a coroutine: a Task per request cost as much as its parsing.
        try:
            args = request_args(self.request)
            if self._answered_early(args):
                return
            future = call_endpoint(self.ctx, self.fn, args, body_bytes=len(self.request.body or b""))
        except Exception as exc:  # noqa: BLE001 - rendered as MLflow's error reply
            self._fail(exc)
            return
        if future.done():
            # A write the event loop applied itself (an idle writer): answer now, not on
            # the loop's next turn, which costs a poll and a callback of its own.
            self._answer(future)
        else:
            future.add_done_callback(self._answer)

    def _answered_early(self, args: Args) -> bool:
        """Whether the endpoint's write was answered before it was stored, or answered from its
        future at once (server/early_answer.py); False when it goes the usual way."""
        planned = early_answer.plan_of(self.ctx, self.fn, args,
                                       None if self.request.query_arguments else self.request.body)
        if planned is None:
            return False
        outcome = early_answer.answer(self.ctx, *planned, lambda: self._reply(200, b"{}"))
        if outcome is False:
            return False
        if outcome is not True:
            self._answer(outcome)
        return True

    def on_connection_close(self) -> None:
        self.closed = True
        self.chunks = []
        self._release()

    def _release(self) -> None:
        if self.held:
            body_budget.give(self.held)
            self.held = 0

    def _answer(self, future: asyncio.Future[Any]) -> None:
        try:
            result = future.result()
            if isinstance(result, StreamedJson):
                asyncio.ensure_future(self._stream(result))
                return
            body = result if isinstance(result, RawJson) else json.dumps(
                result if result is not None else {}, separators=(",", ":"), allow_nan=False)
        except asyncio.CancelledError:
            self._fail(TransientError("The server is shutting down."))
            return
        except Exception as exc:  # noqa: BLE001 - rendered as MLflow's error reply
            self._fail(exc)
            return
        self._reply(200, body.encode())

    async def _stream(self, reply: StreamedJson) -> None:
        """Write ``reply``'s parts as they come (chunked), each made on the request pool."""
        connection = self.request.connection
        assert connection is not None
        status = 200
        try:
            if self.closed:
                return
            fields = [("Content-Type", JSON_TYPE), ("Date", _http_date())]
            origin = self.request.headers.get("Origin")
            if origin is not None:
                fields += cors_headers(self.ctx.settings, origin)
            await connection.write_headers(httputil.ResponseStartLine("", 200, "OK"), httputil.HTTPHeaders(fields))
            while True:
                part = await on_pool(self.ctx, next, reply.parts, None)
                if part is None:
                    break
                await connection.write(part.encode())
            connection.finish()
        except iostream.StreamClosedError:
            status = 499  # the client went away: nothing to answer
        except Exception as exc:  # noqa: BLE001 - the reply has begun: it can only be cut short
            status = 500
            log_failure(self.request, exc)
            abort = getattr(connection, "abort", None) or getattr(connection, "close", None)
            if abort is not None:
                abort()
        finally:
            await on_pool(self.ctx, reply.close)
        log_access(status, self.request, self.every_request_logged)

    def _fail(self, exc: Exception) -> None:
        log_failure(self.request, exc)
        code = exc.status_code if isinstance(exc, web.HTTPError) else 500
        status, error = error_reply(exc, code, httputil.responses.get(code, "Unknown"))
        self._reply(status, json.dumps(error).encode())

    def _reply(self, status: int, data: bytes) -> None:
        if not self.closed:
            fields = json_fields(len(data))
            origin = self.request.headers.get("Origin")
            if origin is not None:
                fields += cors_headers(self.ctx.settings, origin)
            connection = self.request.connection
            assert connection is not None
            reason = httputil.responses.get(status, "Unknown")
            respond = getattr(connection, "respond", None)
            if respond is not None:  # labtrack's own HTTP/1 connection (http1.py): no HTTPHeaders to build
                respond(status, reason, fields, data)
            else:
                connection.write_headers(httputil.ResponseStartLine("", status, reason),
                                         httputil.HTTPHeaders(fields), data)
                connection.finish()
        log_access(status, self.request, self.every_request_logged)


def json_fields(length: int) -> list[tuple[str, str]]:
    """The header fields of a JSON reply of ``length`` bytes (CORS fields are the caller's)."""
    return [("Content-Type", JSON_TYPE), ("Content-Length", str(length)), ("Date", _http_date())]


_date_cache: list[Any] = [0, ""]


def _http_date() -> str:
    """The Date header, formatted once a second."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[1] = httputil.format_timestamp(now)
        _date_cache[0] = now
    return str(_date_cache[1])
