"""HTTP/1.1 for the tornado application, parsed by httptools on asyncio's transports.

tornado's own HTTP/1 connection reads headers with a regex over its stream
buffer, parses them line by line in Python and schedules a timeout per
request: for a small API call (one ``log_metric``) that cost about 0.35 ms of
CPU, more than the rest of the request.  Here the C parser (llhttp, through
httptools) does the parsing and one protocol object per connection does the
rest; the tornado application above it is unchanged.  Each connection is
tornado's ``HTTPConnection`` for its requests, so RequestHandlers, streamed
uploads (``stream_request_body``), streamed downloads with ``flush`` and our
bare ``ApiRequest`` delegates all run as they do under tornado's HTTPServer.

The rules are tornado's (``tornado.http1connection``): keep-alive per the
request's version and ``Connection`` header, chunked responses to HTTP/1.1
when no Content-Length is set, no body for HEAD, 204 and 304, ``100
(Continue)`` on ``Expect``, a per-request body limit a handler may raise
(``set_max_body_size``), 400 and close on a malformed request.  Requests
pipelined on one connection are answered in order.

Every user of a login node can connect to a loopback port, so connections are
bounded before anyone is authenticated (issue #19): headers must be complete
within ``header_timeout`` seconds of their first byte (or of the connection,
for one that sends nothing), a body must progress every ``body_timeout``
seconds, a kept-alive connection idles at most ``idle_timeout`` seconds; one
sweep a second applies them instead of a timer per request.  At most
``max_connections`` are open (derived from the descriptor limit, keeping
``RESERVED_FDS`` for the database, logs and one more accept), and at most
``max_per_peer`` from one address: a connection over either cap takes the
place of the longest-waiting one that has no request in progress, so an idle
or half-sent flood can never lock out a client that speaks.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import httptools
from tornado import httputil, iostream

from labtrack.server.log_limits import refusals

log = logging.getLogger("labtrack.server")

MAX_HEADER_BYTES = 64 << 10
BUFFERED_BODY_BYTES = 1 << 20  # read no further while this much of a body waits for its handler
SWEEP_S = 1.0
HEADER_TIMEOUT_S = 10.0   # from a request's first byte (or the connection) to its last header
BODY_TIMEOUT_S = 30.0     # longest silence within a request body we are reading
IDLE_TIMEOUT_S = 600.0    # a kept-alive connection between requests
RESERVED_FDS = 64         # descriptors kept for the database, WAL, logs, spool files and accept()
ACCEPT_BATCH = 16         # connections accepted per loop turn (each holds a descriptor before we see it)
LISTEN_BACKLOG = 128
READ_BUFFER_BYTES = 256 << 10  # a socket read at most, as asyncio's own reads
LINGER_S = 2.0            # reading (and dropping) the rest of a refused request's body

_NO_BODY_CODES = (204, 304)


class _Context:
    """What tornado's HTTPServerRequest reads from ``connection.context``."""

    __slots__ = ("remote_ip", "protocol", "address_family")

    def __init__(self, peer: Any, family: int) -> None:
        self.address_family = family
        self.protocol = "http"
        inet = family in (socket.AF_INET, socket.AF_INET6) and isinstance(peer, tuple)
        self.remote_ip = peer[0] if inet else "0.0.0.0"

    def __str__(self) -> str:
        return self.remote_ip


class _Message:
    """One request on a connection: parsed headers, body not yet handed on, and its progress."""

    __slots__ = ("start_line", "headers", "fields", "lane", "keep_alive", "chunks", "buffered", "complete",
                 "delegate", "started", "body_open", "waiting", "finished_reading", "max_body", "received",
                 "close_callback", "answered", "chunking", "remaining", "write_finished", "disconnect")

    def __init__(self, start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders | None,
                 fields: list[tuple[bytes, bytes]], lane: LaneRequest | None, keep_alive: bool,
                 max_body: int) -> None:
        self.start_line = start_line
        self.headers = headers        # built when the application needs them: not for a lane's request
        self.fields = fields          # the header fields as they came
        self.lane = lane              # a lane's answer for it, waiting for the whole body
        self.keep_alive = keep_alive
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.delegate: httputil.HTTPMessageDelegate | None = None
        self.started = False          # headers_received has been called
        self.body_open = False        # headers_received is done: body chunks may go to the delegate
        self.waiting = False          # a future from the delegate is pending
        self.finished_reading = False  # delegate.finish() has been called
        self.max_body = max_body
        self.received = 0
        self.close_callback: Callable[[], None] | None = None
        self.answered = False         # the response's headers are written
        self.chunking = False
        self.remaining: int | None = None
        self.write_finished = False
        self.disconnect = not keep_alive


# A lane (``Http1Server(lane=...)``) may answer a request from its raw header fields, without
# the application's request objects: ``take`` returns a callable for the request or None, and
# that callable, given the whole body, answers through ``Http1Connection.respond`` and returns
# True, or returns False and the request goes to the application as any other.
LaneRequest = Callable[["Http1Connection", bytes], bool]


class Lane(Protocol):
    def take(self, conn: Http1Connection, method: bytes, url: bytes,
             fields: list[tuple[bytes, bytes]]) -> LaneRequest | None: ...


def field_text(value: bytes) -> str:
    """A header field's value as the application reads it.  RFC 9110 5.5: whitespace around
    it is not part of it (llhttp keeps the trailing part; tornado would refuse the value)."""
    return value.decode("latin1").strip(" \t")


class _Refused(Exception):
    """The request cannot be taken (too large, or its handler failed); the connection is closing."""


class Http1Connection(asyncio.BufferedProtocol, httputil.HTTPConnection):
    """One client connection: parses requests and is tornado's HTTPConnection for them.

    Its socket is read into the server's one read buffer (``get_buffer``), which the parser
    reads at once: asyncio's default (``data_received``) allocates 256 KiB for every read,
    which the C allocator then takes from, and gives back to, the system again and again
    (server/memory.py).  ``data_received`` still takes bytes from a caller.
    """

    def __init__(self, server: Http1Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.context: _Context | None = None
        self.peer = ""  # the address its per-peer cap counts under ("" for unix sockets: no cap)
        self.parser = httptools.HttpRequestParser(self)
        self.messages: deque[_Message] = deque()  # the first is being answered
        self.last_active = time.monotonic()
        self.waiting_since = self.last_active  # when the headers we wait for began (or the connection)
        self.in_headers = False
        self.answered_one = False
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._reading_paused = False
        self._writing_paused = False
        self._drain: list[asyncio.Future[None]] = []
        self._closing = False  # close() or abort() called: nothing more is read or written
        self._lost = False
        self._close_when_idle = False
        self.lane_passed: Any = None  # the Host and Authorization fields the server's lane let pass

    # -- asyncio.BufferedProtocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        family = sock.family if sock is not None else socket.AF_INET
        self.context = _Context(transport.get_extra_info("peername"), family)
        if family in (socket.AF_INET, socket.AF_INET6):
            self.peer = self.context.remote_ip
        if self.server.admit(self):
            self.server.connections.add(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        # The parser copies out what it hands on (URL, fields, body): nothing keeps the view.
        self.data_received(self.server.read_buffer[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        if self._closing:
            return
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An Upgrade we do not speak: the request is answered as plain HTTP, then we
            # close (the parser reads nothing more on this connection).
            if self.messages:
                self.messages[-1].disconnect = True
            else:
                self.close()
        except httptools.HttpParserError as e:
            cause = e.__context__
            if not isinstance(cause, _Refused):
                try:
                    # Only the parser's own words: an exception from a callback may quote a header.
                    self._refuse(type(e).__name__ if cause is not None else str(e).split(":")[0])
                except _Refused:
                    pass

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self._closing = True
        self.server.forget(self)
        for fut in self._drain:
            if not fut.done():
                fut.set_exception(iostream.StreamClosedError())
                fut.exception()  # nobody may be waiting: do not warn about it
        self._drain.clear()
        if self.messages:
            m = self.messages[0]
            if m.started and not m.write_finished:
                if not m.finished_reading and m.delegate is not None:
                    try:
                        self._call(m.delegate.on_connection_close)
                    except _Refused:
                        pass
                elif m.close_callback is not None:
                    callback, m.close_callback = m.close_callback, None
                    callback()
        self.messages.clear()
        self.server.connection_closed()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiters, self._drain = self._drain, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # -- httptools callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._fields = []
        self._header_bytes = 0
        self.in_headers = True
        if self.answered_one:
            self.waiting_since = time.monotonic()  # the header clock starts at the first byte

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        self._fields.append((name, value))

    def _headers_of(self, fields: list[tuple[bytes, bytes]]) -> httputil.HTTPHeaders:
        headers = httputil.HTTPHeaders()
        for name, value in fields:
            key, text = name.decode("latin1"), field_text(value)
            if key not in headers:
                # llhttp has refused what tornado's ``add`` checks for (a name that is not a
                # token, a control character in a value): set, without checking again.
                headers[key] = text
                continue
            try:
                headers.add(key, text)
            except httputil.HTTPInputError:
                self._refuse("a header field is malformed")  # never the value: it may be a token
        return headers

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse("request headers too large")

    def on_headers_complete(self) -> None:
        parser = self.parser
        fields, self._fields = self._fields, []
        method = parser.get_method()
        lane = self.server.lane
        taken = lane.take(self, method, self._url, fields) if lane is not None else None
        start_line = httputil.RequestStartLine(method.decode("latin1"), self._url.decode("latin1"),
                                               "HTTP/" + parser.get_http_version())
        headers = self._headers_of(fields) if taken is None else None
        m = _Message(start_line, headers, fields, taken, parser.should_keep_alive(), self.server.max_body_size)
        self.in_headers = False
        self.messages.append(m)
        if len(self.messages) == 1:
            self._pump(m)
        else:
            self._pause_reading()  # pipelined: answered once those before it are

    def on_body(self, body: bytes) -> None:
        if self._closing:
            return
        m = self.messages[-1]
        m.received += len(body)
        if m.received > m.max_body and m.body_open:
            self._refuse("request body too large")
        if m.write_finished:
            return  # answered already; the connection closes at its end
        m.chunks.append(body)
        m.buffered += len(body)
        if m is self.messages[0]:
            self._pump(m)
        if m.buffered > BUFFERED_BODY_BYTES:
            self._pause_reading()

    def on_message_complete(self) -> None:
        if self._closing:
            return
        m = self.messages[-1]
        m.complete = True
        if m is self.messages[0]:
            self._pump(m)

    # -- handing a request to the application ----------------------------------------

    def _pump(self, m: _Message) -> None:
        """Take the first request as far as it can go without waiting."""
        if m.lane is not None:
            if not m.complete:
                if len(self.messages) == 1:
                    self._resume_reading()
                return  # the lane answers from the whole body
            answer, m.lane = m.lane, None
            try:
                if self._call(answer, self, b"".join(m.chunks)) or self._closing:
                    return
                m.headers = self._headers_of(m.fields)  # not the lane's: the application's, as any request
            except _Refused:
                return
        try:
            while not m.waiting and not self._closing:
                if not m.started:
                    m.started = True
                    m.delegate = self.server.delegate.start_request(self, self)
                    self._wait(m, self._call(m.delegate.headers_received, m.start_line, m.headers))
                elif not m.body_open:
                    self._open_body(m)
                elif m.chunks:
                    chunk = m.chunks.popleft()
                    m.buffered -= len(chunk)
                    if not m.write_finished:
                        assert m.delegate is not None
                        self._wait(m, self._call(m.delegate.data_received, chunk))
                elif m.complete and not m.finished_reading:
                    m.finished_reading = True
                    if not m.write_finished:
                        assert m.delegate is not None
                        self._call(m.delegate.finish)
                else:
                    if m.buffered <= BUFFERED_BODY_BYTES and len(self.messages) == 1:
                        self._resume_reading()
                    return
        except _Refused:
            pass

    def _open_body(self, m: _Message) -> None:
        assert m.headers is not None
        m.body_open = True
        if m.received > m.max_body or _declared_length(m.headers) > m.max_body:
            self._refuse("request body too large")
        if m.headers.get("Expect") == "100-continue" and not m.write_finished:
            self._send(b"HTTP/1.1 100 (Continue)\r\n\r\n")

    def _wait(self, m: _Message, result: Any) -> None:
        """If the delegate returned an awaitable, go on with ``m`` once it is done."""
        if result is None:
            return
        m.waiting = True
        self._pause_reading()

        def done(fut: asyncio.Future[Any]) -> None:
            m.waiting = False
            if fut.cancelled() or fut.exception() is not None:
                self.abort()
            elif self.messages and self.messages[0] is m:
                self._pump(m)

        asyncio.ensure_future(result).add_done_callback(done)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            # tornado's rule: a delegate's own error is logged and its connection closed.
            logging.getLogger("tornado.application").error("Uncaught exception", exc_info=True)
            self.abort()
            raise _Refused() from None

    def _refuse(self, reason: str) -> None:
        """Answer 400 (unless an answer has begun) and close: the request cannot be read."""
        refusals.note("malformed HTTP request from %s: %s", self.context, reason)
        if not self._closing:
            if not (self.messages and self.messages[0].answered):
                self._send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.close()
        raise _Refused(reason)

    # -- tornado's HTTPConnection ----------------------------------------------------

    def write_headers(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                      headers: httputil.HTTPHeaders, chunk: bytes | None = None) -> asyncio.Future[None]:
        assert isinstance(start_line, httputil.ResponseStartLine)
        if self._closing:
            return self._send(b"")
        m = self.messages[0]
        m.answered = True
        request = m.start_line
        code = start_line.code
        body_allowed = request.method != "HEAD" and code not in _NO_BODY_CODES and not 100 <= code < 200
        has_length = "Content-Length" in headers
        if not m.complete:
            m.disconnect = True  # answered before its body was read: say we close (see _linger)
        m.chunking = request.version == "HTTP/1.1" and body_allowed and not has_length
        if body_allowed and not has_length and not m.chunking:
            m.disconnect = True  # an HTTP/1.0 body ends where the connection does
        if request.version == "HTTP/1.1" and m.disconnect:
            headers["Connection"] = "close"
        elif request.version == "HTTP/1.0" and not m.disconnect:
            headers["Connection"] = "Keep-Alive"
        if m.chunking:
            headers["Transfer-Encoding"] = "chunked"
        if not body_allowed:
            m.remaining = 0
        elif has_length:
            m.remaining = int(headers["Content-Length"])
        else:
            m.remaining = None
        lines = [f"HTTP/1.1 {code} {start_line.reason}"]
        lines.extend(f"{name}: {value}" for name, value in headers.get_all())
        text = "\r\n".join(lines)
        if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
            raise ValueError("Illegal characters (CR or LF) in a response header")
        data = text.encode("latin1") + b"\r\n\r\n"
        if chunk:
            data += self._frame(m, chunk)
        return self._send(data)

    def respond(self, code: int, reason: str, fields: list[tuple[str, str]], body: bytes) -> None:
        """``write_headers`` with the whole body, then ``finish``: one answer, written at once.

        For API replies (``base.ApiRequest``), whose headers are a short list: the
        same bytes as the two calls, without building an ``HTTPHeaders`` first.
        Anything unusual (a HEAD, a status without a body, a request whose body
        is unread) takes the general path.
        """
        if self._closing:
            return
        m = self.messages[0]
        request = m.start_line
        if not m.complete or request.method == "HEAD" or code in _NO_BODY_CODES or code < 200:
            self.write_headers(httputil.ResponseStartLine("", code, reason), httputil.HTTPHeaders(fields), body)
            self.finish()
            return
        m.answered = True
        lines = [f"HTTP/1.1 {code} {reason}"]
        lines += [f"{name}: {value}" for name, value in fields]
        if request.version == "HTTP/1.1":
            if m.disconnect:
                lines.append("Connection: close")
        elif not m.disconnect:
            lines.append("Connection: Keep-Alive")
        text = "\r\n".join(lines)
        if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
            raise ValueError("Illegal characters (CR or LF) in a response header")
        m.remaining = 0
        if self.transport is not None:  # nobody awaits this write: no future for it (_send's)
            self.transport.write(text.encode("latin1") + b"\r\n\r\n" + body)
        self.finish()

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        if self._closing:
            return self._send(b"")
        return self._send(self._frame(self.messages[0], chunk))

    def finish(self) -> None:
        if self._closing:
            return
        m = self.messages[0]
        if m.remaining:
            self.abort()
            raise httputil.HTTPOutputError(f"Tried to write {m.remaining} bytes less than Content-Length")
        if m.chunking:
            self._send(b"0\r\n\r\n")
        m.write_finished = True
        m.close_callback = None
        if not m.finished_reading and not m.complete:
            self._linger()  # the rest of the body is not worth reading
            return
        if m.disconnect or self._close_when_idle:
            self.close()
            return
        self.messages.popleft()
        self.last_active = time.monotonic()
        self.answered_one = True
        if self.messages:
            # On the loop's next turn: an answer may be written before its request is done
            # (server/early_answer.py stores the write after), and the next request must
            # not start inside it.
            asyncio.get_running_loop().call_soon(self._pump, self.messages[0])
        else:
            self._resume_reading()

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        if self.messages:
            self.messages[0].close_callback = callback

    def set_max_body_size(self, max_body_size: int) -> None:
        if self.messages:
            self.messages[0].max_body = max_body_size

    def set_body_timeout(self, timeout: float) -> None:
        pass  # a body has the connection's idle timeout

    def detach(self) -> Any:
        raise NotImplementedError("labtrack's HTTP server does not hand over connections")

    # -- helpers ---------------------------------------------------------------------

    def _frame(self, m: _Message, chunk: bytes) -> bytes:
        if m.remaining is not None:
            m.remaining -= len(chunk)
            if m.remaining < 0:
                self.abort()
                raise httputil.HTTPOutputError("Tried to write more data than Content-Length")
        if m.chunking and chunk:
            return b"%x\r\n%b\r\n" % (len(chunk), chunk)
        return chunk

    def _send(self, data: bytes) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closing or self.transport is None:
            fut.set_exception(iostream.StreamClosedError())
            fut.exception()  # nobody may be waiting: do not warn about it
            return fut
        if data:
            self.transport.write(data)
            self.last_active = time.monotonic()  # a long download is not an idle connection
        if self._writing_paused:
            self._drain.append(fut)
        else:
            fut.set_result(None)
        return fut

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self._closing:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self._closing:
            self._reading_paused = False
            self.transport.resume_reading()

    @property
    def idle(self) -> bool:
        return not self.messages

    @property
    def evictable(self) -> bool:
        """No request of it is in the application's hands: closing it loses nothing."""
        return not self.messages and not self._closing

    def expired(self, now: float) -> bool:
        """Whether a timeout has run out: headers too slow, a body stalled, or idle too long."""
        server = self.server
        if self.in_headers or not (self.messages or self.answered_one):
            return now - self.waiting_since > server.header_timeout
        if not self.messages:
            return now - self.last_active > server.idle_timeout
        m = self.messages[-1]
        if m.complete or m.waiting or self._reading_paused:
            return now - self.last_active > server.idle_timeout  # our turn, or a slow reader
        return now - self.last_active > server.body_timeout

    def _linger(self) -> None:
        """Close after answering before the body was read: our FIN after the answer, then what
        the client still sends is dropped for up to ``LINGER_S``, so that it reads the answer
        instead of a reset (closing with unread bytes makes the kernel send RST)."""
        if self.transport is None or self._closing:
            return
        self._resume_reading()
        self._closing = True
        try:
            self.transport.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            self.transport.close()
            return
        asyncio.get_running_loop().call_later(LINGER_S, self.abort)

    def close(self) -> None:
        """Close once what is written has gone out."""
        if self.transport is not None and not self._closing:
            self._closing = True
            self.transport.close()

    def abort(self) -> None:
        """Close now, dropping what is not yet written."""
        if self.transport is not None and not self._lost:
            self._closing = True
            self.transport.abort()

    def close_when_idle(self) -> None:
        self._close_when_idle = True
        if self.idle:
            self.close()


def _declared_length(headers: httputil.HTTPHeaders) -> int:
    value = headers.get("Content-Length")
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0  # llhttp has refused a bad Content-Length already


def descriptor_limit() -> int:
    """The process's soft limit on open descriptors."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(fd_limit: int | None = None) -> int:
    """Connections the server may hold under a descriptor limit, keeping a reserve."""
    limit = descriptor_limit() if fd_limit is None else fd_limit
    if limit == resource.RLIM_INFINITY or limit <= 0:
        limit = 1 << 16
    # Accepted sockets not yet counted, and evicted ones not yet closed, hold one each.
    reserve = max(RESERVED_FDS, limit // 8) + 2 * ACCEPT_BATCH
    return max(8, min(limit - reserve, 10_000))


class Http1Server:
    """``tornado.httpserver.HTTPServer``'s interface for our server, on this protocol."""

    def __init__(self, delegate: httputil.HTTPServerConnectionDelegate, *, max_body_size: int,
                 idle_timeout: float = IDLE_TIMEOUT_S, header_timeout: float = HEADER_TIMEOUT_S,
                 body_timeout: float = BODY_TIMEOUT_S, max_connections: int | None = None,
                 max_per_peer: int | None = None, lane: Lane | None = None) -> None:
        self.delegate = delegate
        self.lane = lane
        # Every connection's reads, one at a time on the event loop (Http1Connection.get_buffer).
        self.read_buffer = memoryview(bytearray(READ_BUFFER_BYTES))
        self.max_body_size = max_body_size
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections or connection_cap()
        # One address may hold half: on loopback every local user shares 127.0.0.1,
        # and the eviction below (not a refusal) is what keeps a speaking client in.
        self.max_per_peer = max_per_peer or max(4, self.max_connections // 2)
        self.connections: set[Http1Connection] = set()
        self._per_peer: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._all_closed: asyncio.Event | None = None

    async def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Serve on listening sockets (TCP or unix), as they are bound."""
        loop = asyncio.get_running_loop()
        for sock in sockets:
            sock.setblocking(False)
            # asyncio accepts up to ``backlog`` connections per loop turn: keep that
            # small (see connection_cap), then give the kernel's queue its usual length.
            if sock.family == socket.AF_UNIX:
                srv = await loop.create_unix_server(lambda: Http1Connection(self), sock=sock,
                                                    backlog=ACCEPT_BATCH)
            else:
                srv = await loop.create_server(lambda: Http1Connection(self), sock=sock, backlog=ACCEPT_BATCH)
            sock.listen(LISTEN_BACKLOG)
            self._servers.append(srv)
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())

    def stop(self) -> None:
        """Stop accepting connections; open ones go on."""
        for srv in self._servers:
            srv.close()
        self._servers.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def close_all_connections(self, timeout: float = 10.0) -> bool:
        """Close idle connections now and the others once their answer is written.

        What is still open after ``timeout`` seconds is aborted; returns whether
        every connection closed in time.
        """
        self._all_closed = asyncio.Event()
        for conn in list(self.connections):
            conn.close_when_idle()
        if not self.connections:
            return True
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            for conn in list(self.connections):
                conn.abort()
            return False

    def connection_closed(self) -> None:
        if self._all_closed is not None and not self.connections:
            self._all_closed.set()

    def admit(self, conn: Http1Connection) -> bool:
        """Whether a new connection may stay; over a cap, the longest-waiting idle one makes room."""
        peer = conn.peer
        if peer and self._per_peer.get(peer, 0) >= self.max_per_peer and not self._evict(conn, peer):
            return False
        if len(self.connections) >= self.max_connections and not self._evict(conn, None):
            return False
        if peer:
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        return True

    def forget(self, conn: Http1Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            if conn.peer:
                left = self._per_peer.get(conn.peer, 1) - 1
                if left > 0:
                    self._per_peer[conn.peer] = left
                else:
                    self._per_peer.pop(conn.peer, None)

    def _evict(self, newcomer: Http1Connection, peer: str | None) -> bool:
        """Close the longest-waiting connection without a request in progress; else the newcomer."""
        victims = [c for c in self.connections if c.evictable and (peer is None or c.peer == peer)]
        if victims:
            victim = min(victims, key=lambda c: c.last_active)
            victim.abort()
            self.forget(victim)  # its connection_lost comes later; the slot is free now
            return True
        refusals.note("connection limit reached; a new connection from %s was closed", newcomer.context)
        newcomer.abort()
        return False

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.expired(now):
                    conn.abort()
                    self.forget(conn)
