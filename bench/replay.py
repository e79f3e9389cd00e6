"""An instant server in front of a real one: the floor that a client's own work sets.

    python bench/replay.py --port PORT --upstream URL

It forwards every request to the upstream server and records the answer until
it is told ``POST /__replay__/on``.  From then on it answers at once from what
it recorded, without touching the upstream server:

- a request seen before (same method, target and body) gets the same answer;
- any other POST gets the last answer recorded for its path, so a loop of
  ``runs/log-metric`` calls each get ``{}`` whatever their point; the request
  is kept, and sent upstream on ``POST /__replay__/off``, so the upstream
  server holds everything the client logged (later phases read it);
- any other request gets a 404 in MLflow's error shape.

A client's wall time against the replay is its own work plus one local round
trip: no server can answer it faster.  MLflow's wall time divided by it is the
most that any server can be better than MLflow through that client (the
"ceiling" column of bench_server.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import socketserver
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Headers that belong to one hop, not to the message (RFC 9110, 7.6.1), and the
# ones the replay writes itself.
_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "host", "content-length", "date", "server"}


@dataclass
class Recording:
    """What the upstream answered, as the bytes the replay sends back."""

    replaying: bool = False
    exact: dict[tuple[str, str, bytes], bytes] = field(default_factory=dict)
    last_post: dict[str, bytes] = field(default_factory=dict)
    deferred: list[tuple[str, str, list[tuple[str, str]], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        found = self.exact.get((method, target, body))
        if found is None and method == "POST":
            found = self.last_post.get(target.split("?", 1)[0])
            if found is not None:
                with self.lock:
                    self.deferred.append((method, target, headers, body))
        if found is None:
            return response(404, "application/json", json.dumps({
                "error_code": "RESOURCE_DOES_NOT_EXIST",
                "message": f"replay: nothing recorded for {method} {target}"}).encode())
        return found

    def record(self, method: str, target: str, body: bytes, reply: bytes) -> None:
        with self.lock:
            self.exact[(method, target, body)] = reply
            if method == "POST":
                self.last_post[target.split("?", 1)[0]] = reply


def response(status: int, content_type: str | None, body: bytes, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    reason = http.client.responses.get(status, "")
    head = [f"HTTP/1.1 {status} {reason}"]
    if content_type:
        head.append(f"Content-Type: {content_type}")
    head += [f"{k}: {v}" for k, v in extra]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class Handler(socketserver.StreamRequestHandler):
    """One client connection: requests in order, keep-alive."""

    server: ReplayServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream: http.client.HTTPConnection | None = None

    def handle(self) -> None:
        rec = self.server.recording
        while True:
            line = self.rfile.readline(65537)
            if not line.strip():
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers: list[tuple[str, str]] = []
            length = 0
            while True:
                h = self.rfile.readline(65537)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                name, value = name.strip(), value.strip()
                headers.append((name, value))
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "transfer-encoding":
                    self.wfile.write(response(501, "text/plain", b"replay: chunked request bodies are not supported"))
                    return
            body = self.rfile.read(length) if length else b""
            if target.startswith("/__replay__/"):
                rec.replaying = target.endswith("/on")
                if not rec.replaying:
                    self.send_deferred()
                reply = response(200, "application/json", b"{}")
            elif rec.replaying:
                reply = rec.answer(method, target, headers, body)
            else:
                reply = self.forward(method, target, headers, body)
                rec.record(method, target, body, reply)
            self.wfile.write(reply)

    def forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        if self.upstream is None:
            self.upstream = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port,
                                                       timeout=600)
        self.upstream.request(method, target, body=body or None,
                              headers={k: v for k, v in headers if k.lower() not in _HOP})
        r = self.upstream.getresponse()
        data = r.read()
        kept = [(k, v) for k, v in r.getheaders() if k.lower() not in _HOP and k.lower() != "content-type"]
        return response(r.status, r.getheader("Content-Type"), data, kept)

    def send_deferred(self) -> None:
        """Send upstream, in order, the writes that were answered from the recording."""
        rec = self.server.recording
        with rec.lock:
            todo, rec.deferred = rec.deferred, []
        for method, target, headers, body in todo:
            self.forward(method, target, headers, body)

    def finish(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
        super().finish()


class ReplayServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, upstream: str) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.recording = Recording()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="URL of the server to record, e.g. http://127.0.0.1:5000")
    args = ap.parse_args()
    with ReplayServer(args.port, args.upstream) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
