"""Items 1 and 2 of issue #19: no work before authentication, no connection that never ends.

The flood test runs the server under a low descriptor limit (``ulimit -n``
256) with 300 idle and 300 slow (half-sent headers) connections: /health must
keep answering and the server's memory stay within a stated bound.
"""

from __future__ import annotations

import resource
import selectors
import socket
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.security.conftest import address, exchange, health_ok, json_of, rss_mb, status_of
from tests.servers import ServerProcess, start_server

BIG_BODY = 60_000_000
FLOOD_IDLE = 300
FLOOD_SLOW = 300
FD_LIMIT = 256
MEMORY_BOUND_MB = 40.0  # growth allowed while the flood is held


def _post_headers(path: str, length: int, auth: str | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {length}"]
    if auth:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("path", ["/api/2.0/mlflow/runs/log-batch", "/api/2.0/mlflow-artifacts/artifacts/x.bin",
                                  "/ajax-api/2.0/mlflow/experiments/search", "/no/such/route"])
def test_unauthenticated_request_is_refused_from_its_headers(server: ServerProcess, path: str) -> None:
    # Only the headers are sent: the answer must not wait for a 60 MB body.
    t0 = time.monotonic()
    reply = exchange(server, _post_headers(path, BIG_BODY), timeout=5)
    assert status_of(reply) == 401, reply[:200]
    assert json_of(reply)["error_code"] == "UNAUTHENTICATED"
    assert b"Connection: close" in reply
    assert time.monotonic() - t0 < 3


def test_expect_continue_is_not_granted_before_authentication(server: ServerProcess) -> None:
    head = _post_headers("/api/2.0/mlflow/runs/log-batch", BIG_BODY).replace(
        b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
    reply = exchange(server, head, timeout=5)
    assert status_of(reply) == 401 and b"100" not in reply.split(b"\r\n")[0]


def test_unauthenticated_large_bodies_hold_no_memory(server: ServerProcess) -> None:
    before = rss_mb(server)
    chunk = b"[" * 65536
    socks = []
    for _ in range(8):  # the probe: a few connections announcing 60 MB bodies
        s = socket.create_connection(address(server), timeout=5)
        s.sendall(_post_headers("/api/2.0/mlflow/runs/log-batch", BIG_BODY))
        socks.append(s)
    sent = 0
    deadline = time.monotonic() + 10
    for s in socks:
        for _ in range(64):  # up to 4 MB each, until the server closes on us
            if time.monotonic() > deadline:
                break
            try:
                s.sendall(chunk)
                sent += len(chunk)
            except OSError:
                break
    time.sleep(0.5)
    grown = rss_mb(server) - before
    for s in socks:
        s.close()
    assert grown < 16, f"server memory grew {grown:.0f} MB"


def test_authenticated_json_body_over_the_limit_is_refused_before_it_is_sent(server: ServerProcess) -> None:
    reply = exchange(server, _post_headers("/api/2.0/mlflow/runs/log-batch", 40 << 20, f"Bearer {server.token}"),
                     timeout=5)
    assert status_of(reply) in (400, 413), reply[:200]


def _connect_many(addr: tuple[str, int], n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(addr)
        socks.append(s)
    return socks


def _writable(socks: list[socket.socket], within: float) -> list[socket.socket]:
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_WRITE)
    ready: set[socket.socket] = set()
    deadline = time.monotonic() + within
    while len(ready) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            ready.add(key.fileobj)  # type: ignore[arg-type]
            sel.unregister(key.fileobj)
    sel.close()
    return [s for s in socks if s in ready]


@pytest.fixture
def low_fd_server(tmp_path) -> Iterator[ServerProcess]:
    need = 2 * (FLOOD_IDLE + FLOOD_SLOW)  # this test's own 600 sockets, with room to spare
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"the flood needs `ulimit -Hn` of {need} or more in the test process (it is {hard})")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))  # raising one's own soft limit is allowed
    srv = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path, fd_limit=FD_LIMIT)  # ulimit -n 256
    try:
        yield srv
    finally:
        srv.stop()


def test_flood_of_idle_and_slow_connections_under_a_low_fd_limit(low_fd_server: ServerProcess) -> None:
    srv = low_fd_server
    assert health_ok(srv)
    before = rss_mb(srv)
    addr = address(srv)
    idle = _connect_many(addr, FLOOD_IDLE)
    slow = _connect_many(addr, FLOOD_SLOW)
    try:
        for s in _writable(slow, within=5):
            try:
                s.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
            except OSError:
                pass
        answered = [health_ok(srv, timeout=5) for _ in range(10)]  # bounded: 10 probes, 5 s each
        assert all(answered), answered
        grown = rss_mb(srv) - before
        assert grown < MEMORY_BOUND_MB, f"server memory grew {grown:.0f} MB"
        # The header timeout (10 s) closes what never finished its headers, or never began them.
        # Counted on the server's side: a client socket whose handshake the kernel dropped from
        # a full accept queue still looks open to the client, but the server never held it.
        deadline = time.monotonic() + 25
        held = FLOOD_IDLE + FLOOD_SLOW
        while time.monotonic() < deadline:
            held = _server_connections(srv)
            if held == 0:
                break
            time.sleep(1)
        assert held == 0, f"the server still holds {held} idle or half-sent connections"
    finally:
        for s in idle + slow:
            s.close()
    assert health_ok(srv)
    log = srv.log()
    assert log.count("Too many open files") < 5
    assert "Traceback" not in log


def _server_connections(srv: ServerProcess) -> int:
    """TCP connections the server process holds open on its port."""
    port = address(srv)[1]
    return sum(1 for c in psutil.Process(srv.proc.pid).net_connections("tcp")
               if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
