"""Hostile neighbours on a login node (issue #19): a real server, raw sockets, bounded loops.

Every case runs against a real ``labtrack server`` process on loopback.  Loops
are bounded in count and in time; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.servers import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("hostile")
    srv = start_server(f"sqlite:///{workdir / 'mlruns.db'}", workdir)
    try:
        yield srv
    finally:
        srv.stop()


def address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def rss_mb(server: ServerProcess) -> float:
    return psutil.Process(server.proc.pid).memory_info().rss / 1e6


def exchange(server: ServerProcess, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes on a new connection; return what comes back until close or ``timeout``."""
    out = bytearray()
    with socket.create_connection(address(server), timeout=timeout) as s:
        s.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
            if _complete(out):
                break
    return bytes(out)


def _complete(buf: bytearray) -> bool:
    head, sep, body = bytes(buf).partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def json_of(reply: bytes) -> dict:
    return json.loads(reply.partition(b"\r\n\r\n")[2] or b"{}")


def health_ok(server: ServerProcess, timeout: float = 3.0) -> bool:
    try:
        reply = exchange(server, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                         timeout=timeout)
    except OSError:
        return False
    return status_of(reply) == 200


def log_text(server: ServerProcess) -> str:
    return server.log()


def workdir(server: ServerProcess) -> Path:
    return server.artifacts.parent
