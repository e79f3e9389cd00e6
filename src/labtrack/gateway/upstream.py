"""Calls to an endpoint's OpenAI-compatible model server: timeouts, streaming, no key leaks.

The provider key goes only into the Authorization header of the outgoing
request.  It is never logged, and if a provider echoes it back in a body (some
error pages quote the request) it is replaced before the body leaves.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labtrack.gateway.config import Endpoint, GatewayError

log = logging.getLogger("labtrack.gateway")
REDACTED = b"[REDACTED]"
_client: Any = None


def _http() -> Any:
    global _client
    if _client is None:
        from tornado.httpclient import AsyncHTTPClient

        _client = AsyncHTTPClient(force_instance=True, max_clients=64)
    return _client


@dataclass
class CallRecord:
    """What one gateway call did: recorded as a trace, never with a key or header."""

    endpoint: str
    endpoint_type: str
    model: str
    request: dict[str, Any]
    start_ms: int
    status: int = 0
    latency_ms: float = 0.0
    response: Any = None
    error: str | None = None
    streamed: bool = False
    usage: dict[str, int] = field(default_factory=dict)


def upstream_body(endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
    """The request for the provider: the caller's fields, with the endpoint's model name."""
    out = {k: v for k, v in body.items() if k not in ("model", "endpoint")}
    out["model"] = endpoint.model_name
    if out.get("stream"):
        # Ask for usage in the last chunk, so a streamed call records its tokens too.
        out.setdefault("stream_options", {"include_usage": True})
    return out


async def call(endpoint: Endpoint, body: dict[str, Any],
               on_chunk: Callable[[bytes], None] | None = None) -> tuple[CallRecord, bytes]:
    """Send ``body`` to the endpoint's server; return the record and the (redacted) reply.

    With ``stream`` set and ``on_chunk`` given, each piece of the server-sent
    events is handed to ``on_chunk`` as it arrives (redacted) and the returned
    bytes are empty.  Raises GatewayError when the server cannot be reached in time.
    """
    from tornado.httpclient import HTTPClientError, HTTPRequest

    request = upstream_body(endpoint, body)
    record = CallRecord(endpoint.name, endpoint.endpoint_type, endpoint.model_name, request,
                        int(time.time() * 1000), streamed=bool(request.get("stream")) and on_chunk is not None)
    secret = endpoint.key.read().encode() if endpoint.key else b""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if secret:
        headers["Authorization"] = "Bearer " + secret.decode()
    status: list[int] = [0]
    held: list[bytes] = []
    events = _SseUsage() if record.streamed else None

    def on_header(line: str) -> None:
        if line.startswith("HTTP/"):
            parts = line.split(" ", 2)
            status[0] = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def on_body(chunk: bytes) -> None:
        chunk = _redact(chunk, secret)
        if status[0] == 200 and on_chunk is not None:
            assert events is not None
            events.feed(chunk)
            on_chunk(chunk)
        else:
            held.append(chunk)

    started = time.perf_counter()
    req = HTTPRequest(endpoint.upstream_url(), method="POST", headers=headers, body=json.dumps(request),
                      request_timeout=endpoint.timeout_s, connect_timeout=min(10.0, endpoint.timeout_s),
                      header_callback=on_header if record.streamed else None,
                      streaming_callback=on_body if record.streamed else None,
                      decompress_response=True, follow_redirects=False)
    try:
        response = await _http().fetch(req, raise_error=False)
    except HTTPClientError as e:  # only a timeout or a dropped connection come here
        record.error = "timeout" if e.code == 599 else f"HTTP {e.code}"
        raise _unreachable(endpoint, record, started, "did not answer within "
                           f"{endpoint.timeout_s:g} s" if e.code == 599 else "failed") from None
    except OSError as e:
        record.error = type(e).__name__
        raise _unreachable(endpoint, record, started, "cannot be reached") from None
    record.latency_ms = (time.perf_counter() - started) * 1000.0
    record.status = response.code
    if response.code == 599:
        timed_out = "Timeout" in type(response.error).__name__ or "imeout" in str(response.error)
        record.error = "timeout" if timed_out else "connection failed"
        raise _unreachable(endpoint, record, started,
                           f"did not answer within {endpoint.timeout_s:g} s" if timed_out else "cannot be reached")
    data = b"" if record.streamed and response.code == 200 else _redact(
        b"".join(held) if record.streamed else (response.body or b""), secret)
    if record.streamed and response.code == 200:
        assert events is not None
        record.response = {"content": "".join(events.content)}
        record.usage = events.usage
    else:
        try:
            record.response = json.loads(data) if data else None
        except ValueError:
            record.response = data[:2000].decode("utf-8", "replace")
        if isinstance(record.response, dict) and isinstance(record.response.get("usage"), dict):
            record.usage = {k: v for k, v in record.response["usage"].items() if isinstance(v, int)}
    if response.code != 200:
        record.error = f"HTTP {response.code}"
        log.warning("gateway endpoint '%s': the model server answered %d", endpoint.name, response.code)
    return record, data


def _unreachable(endpoint: Endpoint, record: CallRecord, started: float, what: str) -> GatewayError:
    record.latency_ms = (time.perf_counter() - started) * 1000.0
    timeout = record.error == "timeout"
    record.status = 504 if timeout else 503
    # The endpoint's name only: its URL may carry credentials in a query string.
    log.warning("gateway endpoint '%s': the model server %s", endpoint.name, what)
    error = GatewayError(f"The model server of endpoint '{endpoint.name}' {what}.",
                         "DEADLINE_EXCEEDED" if timeout else "TEMPORARILY_UNAVAILABLE", record.status)
    error.record = record  # type: ignore[attr-defined]  # a failed call is recorded too
    return error


def _redact(data: bytes, secret: bytes) -> bytes:
    return data.replace(secret, REDACTED) if secret and secret in data else data


class _SseUsage:
    """Follows a chat/completions event stream: the text so far and the usage, if sent."""

    def __init__(self) -> None:
        self.buffer = b""
        self.content: list[str] = []
        self.usage: dict[str, int] = {}

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                continue
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or choice.get("text")
                if isinstance(piece, str):
                    self.content.append(piece)
            if isinstance(event.get("usage"), dict):
                self.usage = {k: v for k, v in event["usage"].items() if isinstance(v, int)}
