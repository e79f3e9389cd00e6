"""The metric lane: a small metric write answered from its raw header fields.

A synchronous ``mlflow.log_metric`` waits for each answer, so what the server
does before answering is the client's time (server/early_answer.py).  Through
the application, a ``runs/log-metric`` builds tornado's headers, request and
routing delegate, is screened (guard.py), routed, and parsed into ``Args``
before its write is even planned; measured, that took the mlflow client to
86% of the replay ceiling where a least server answering the same way
(``floor_servers.py``'s ``asyncio+store-early``) reaches 94%.

This lane takes, straight from the HTTP/1 parser (``Http1Server(lane=...)``),
only the requests it can answer exactly as the application would:

- a POST to an endpoint with an early plan (``runs/log-metric``, ``runs/log-batch``
  under every prefix the route table gives them), without a query string;
- a JSON body of at most ``SMALL_WRITE_BYTES`` with its Content-Length, no
  ``Expect``, no ``Transfer-Encoding``, no ``Origin`` (a browser's request);
- over TCP, a Host that ``guard.host_ok`` answers and the server's token in
  ``Authorization`` (a unix socket needs neither, as in ``guard.screen``);
- a server that answers early at all: no basic-auth, a journal, no access log
  of every request and no Prometheus observer (they need the request object).

Then the body is parsed with the application's ``parse_json`` and planned by the
endpoint's own ``early`` function, and ``early_answer.answer`` stores it.
Anything else, at any step, goes to the application as any request (what the
lane read is read again there): a refusal, a malformed body, a run that is not
active, a busy writer.  So every error, and its JSON, log line and refusal note,
comes from the one place that makes it; the lane only answers ``{}``.  A write
the lane applied without an early answer (its run not active, or the journal
not written) is applied again by the application, which answers its outcome:
an error again, or the same point, which stores nothing new.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from labtrack.server import base, early_answer, guard
from labtrack.server.args import Args
from labtrack.server.http1 import Http1Connection, LaneRequest, field_text

_JSON = base.JSON_TYPE.encode()
# Fields that send a request to the application: a browser's, or a body the lane does not read.
_NOT_LANE = frozenset({b"origin", b"expect", b"transfer-encoding"})
_READ = frozenset({b"host", b"authorization", b"content-type", b"content-length"})


class MetricLane:
    """``Http1Server``'s lane for the endpoints with an early plan (``fn.early``)."""

    def __init__(self, ctx: Any, app: Any) -> None:
        self.ctx = ctx
        self.logs_every_request = bool(getattr(app, "access_log_all", False))
        self.endpoints: dict[bytes, base.Endpoint] = {}
        for path, (handler, kwargs) in app.fixed_paths.items():
            fn = kwargs.get("methods", {}).get("POST") if handler is base.ApiHandler else None
            if getattr(fn, "early", None) is not None:
                self.endpoints[path.encode("latin1")] = fn

    def take(self, conn: Http1Connection, method: bytes, url: bytes,
             fields: list[tuple[bytes, bytes]]) -> LaneRequest | None:
        if method != b"POST":
            return None
        fn = self.endpoints.get(url)
        if (fn is None or self.logs_every_request or base.request_observer is not None
                or early_answer.journal_of(self.ctx) is None):
            return None
        found: dict[bytes, bytes] = {}
        for name, value in fields:
            lower = name.lower()
            if lower in _READ:
                if lower in found:
                    return None  # the application reads a repeated field joined: let it
                found[lower] = value
            elif lower in _NOT_LANE:
                return None
        host, authorization = found.get(b"host"), found.get(b"authorization")
        content_type, length = found.get(b"content-type"), found.get(b"content-length")
        if (content_type is None or content_type.split(b";")[0].strip().lower() != _JSON
                or length is None or not length.strip().isdigit()
                or not 0 < int(length) <= base.SMALL_WRITE_BYTES):
            return None
        context = conn.context
        if (context is None or context.address_family != socket.AF_UNIX) and conn.lane_passed != (host, authorization):
            if host is None or not guard.host_ok(self.ctx, field_text(host)):
                return None
            token = self.ctx.token
            if token and (authorization is None
                          or not base.token_matches(token, base.offered_token(field_text(authorization)))):
                return None
            # The same two fields on this connection pass again: the client that sent them holds
            # the connection (the server's token and allowed hosts do not change while it runs).
            conn.lane_passed = (host, authorization)
        return lambda c, body: self._answer(fn, c, body)

    def _answer(self, fn: base.Endpoint, conn: Http1Connection, body: bytes) -> bool:
        """Whether the write was answered here (early); False sends it to the application."""
        ctx = self.ctx
        ctx.last_activity = time.monotonic()
        try:
            data = base.parse_json(body)
            planned = early_answer.plan_of(ctx, fn, Args(data), body) if type(data) is dict else None
        except Exception:  # noqa: BLE001 - the application answers the error, in its words
            return False
        if planned is None:
            return False
        reply = lambda: conn.respond(200, "OK", base.json_fields(2), b"{}")  # noqa: E731
        return early_answer.answer(ctx, *planned, reply) is True


__all__ = ["MetricLane"]
