"""HTTP/1.1 as a real ``labtrack server`` speaks it, read off raw sockets.

The server's connection layer (``server/http1.py``) is its own code, so its
rules are pinned here byte by byte: keep-alive and HTTP/1.0, pipelining,
chunked bodies both ways, ``Expect: 100-continue``, HEAD, the body and header
limits, malformed requests, a client that leaves mid-upload.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.servers import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("http1")
    srv = start_server(f"sqlite:///{workdir / 'mlruns.db'}", workdir)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def run_id(server: ServerProcess) -> str:
    exp = server.api("POST", "experiments/create", {"name": "http1"}).json()["experiment_id"]
    return server.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]


class Raw:
    """One TCP connection; reads responses by their framing, as a client must."""

    def __init__(self, server: ServerProcess) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.token = server.token
        self.buf = bytearray()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, path: str, body: bytes = b"", *, version: str = "1.1",
                headers: dict[str, str] | None = None) -> bytes:
        lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", f"Authorization: Bearer {self.token}"]
        h = {"Content-Type": "application/json", "Content-Length": str(len(body))} if body else {}
        h.update(headers or {})
        lines += [f"{k}: {v}" for k, v in h.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin1") + body

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 16)
        self.buf += data
        return bool(data)

    def _take_until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            if not self._fill():
                raise ConnectionError(f"closed before {sep!r}; have {self.buf[:200]!r}")
        head, rest = self.buf.split(sep, 1)
        self.buf = bytearray(rest)
        return bytes(head)

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("closed mid-body")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def response(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        status_line, *header_lines = self._take_until(b"\r\n\r\n").decode("latin1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
        if head or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._take_until(b"\r\n"), 16):
                body += self._take(size)
                assert self._take(2) == b"\r\n"
            assert self._take(2) == b"\r\n"
            return status, headers, body
        if "content-length" in headers:
            return status, headers, self._take(int(headers["content-length"]))
        while self._fill():
            pass
        body, self.buf = bytes(self.buf), bytearray()
        return status, headers, body

    def closed_by_peer(self) -> bool:
        self.sock.settimeout(5)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


@pytest.fixture
def raw(server: ServerProcess) -> Iterator[Raw]:
    conn = Raw(server)
    try:
        yield conn
    finally:
        conn.close()


def _metric(run_id: str, step: int) -> bytes:
    return json.dumps({"run_id": run_id, "key": "k", "value": step, "timestamp": 1, "step": step}).encode()


def _history(server: ServerProcess, run_id: str) -> list[int]:
    r = server.api("GET", "metrics/get-history", {"run_id": run_id, "metric_key": "k", "max_results": 25000})
    return sorted(int(m["step"]) for m in r.json().get("metrics", []))


def test_keep_alive_serves_many_requests_on_one_connection(raw: Raw, server: ServerProcess, run_id: str) -> None:
    for step in range(5):
        raw.send(raw.request("POST", "/api/2.0/mlflow/runs/log-metric", _metric(run_id, step)))
        status, headers, body = raw.response()
        assert (status, json.loads(body)) == (200, {})
        assert headers["content-type"] == "application/json"
        assert "connection" not in headers
    assert set(range(5)) <= set(_history(server, run_id))


def test_pipelined_requests_are_answered_in_order(raw: Raw) -> None:
    paths = ["/health", "/version", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default",
             "/api/2.0/mlflow/no-such-endpoint", "/health"]
    raw.send(b"".join(raw.request("GET", p) for p in paths))
    answers = [raw.response() for _ in paths]
    assert [a[0] for a in answers] == [200, 200, 200, 404, 200]
    assert answers[0][2] == b"OK" and answers[4][2] == b"OK"
    assert json.loads(answers[2][2])["experiment"]["experiment_id"] == "0"
    assert json.loads(answers[3][2])["error_code"] == "ENDPOINT_NOT_FOUND"


def test_http_1_0_closes_unless_asked_to_keep_alive(server: ServerProcess) -> None:
    conn = Raw(server)
    try:
        conn.send(conn.request("GET", "/health", version="1.0"))
        status, headers, body = conn.response()
        assert (status, body) == (200, b"OK")
        assert conn.closed_by_peer()
    finally:
        conn.close()
    conn = Raw(server)
    try:
        for _ in range(2):
            conn.send(conn.request("GET", "/health", version="1.0", headers={"Connection": "keep-alive"}))
            status, headers, body = conn.response()
            assert (status, body, headers["connection"]) == (200, b"OK", "Keep-Alive")
    finally:
        conn.close()


def test_connection_close_is_honoured(raw: Raw) -> None:
    raw.send(raw.request("GET", "/health", headers={"Connection": "close"}))
    status, headers, body = raw.response()
    assert (status, body, headers["connection"]) == (200, b"OK", "close")
    assert raw.closed_by_peer()


def test_chunked_request_body(raw: Raw, server: ServerProcess, run_id: str) -> None:
    payload = _metric(run_id, 1000)
    head = raw.request("POST", "/api/2.0/mlflow/runs/log-metric",
                       headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    pieces = [payload[:7], payload[7:20], payload[20:]]
    raw.send(head + b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n")
    status, _, body = raw.response()
    assert (status, json.loads(body)) == (200, {})
    assert 1000 in _history(server, run_id)


def test_request_sent_byte_by_byte(raw: Raw, server: ServerProcess, run_id: str) -> None:
    raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i, byte in enumerate(raw.request("POST", "/api/2.0/mlflow/runs/log-metric", _metric(run_id, 2000))):
        raw.send(bytes([byte]))
        if i % 40 == 0:
            time.sleep(0.001)
    status, _, body = raw.response()
    assert (status, json.loads(body)) == (200, {})
    assert 2000 in _history(server, run_id)


def test_requests_of_two_connections_in_interleaved_pieces(server: ServerProcess, run_id: str) -> None:
    # Every connection's reads go through one buffer of the server's (http1.Http1Connection.get_buffer):
    # pieces of two requests, each cut mid-field and mid-body, arriving in turn, must stay apart.
    conns = [Raw(server), Raw(server)]
    try:
        requests_ = []
        for i, conn in enumerate(conns):
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            body = json.dumps({"run_id": run_id, "key": f"piece{i}", "value": str(i) * 3000}).encode()
            requests_.append(conn.request("POST", "/api/2.0/mlflow/runs/set-tag", body))
        cuts = [0, 40, 150, 1500, 2600, None]
        for a, b in zip(cuts, cuts[1:]):
            for conn, req in zip(conns, requests_):
                conn.send(req[a:b])
                time.sleep(0.02)  # each piece its own read
        for conn in conns:
            status, _, body = conn.response()
            assert (status, json.loads(body)) == (200, {})
    finally:
        for conn in conns:
            conn.close()
    tags = {t["key"]: t["value"] for t in server.api("GET", "runs/get", {"run_id": run_id}).json()["run"]["data"]["tags"]}
    assert (tags["piece0"], tags["piece1"]) == ("0" * 3000, "1" * 3000)


def test_head_answer_has_no_body(raw: Raw) -> None:
    # The GET pipelined after the HEAD is read right only if the HEAD's answer had no body.
    raw.send(raw.request("HEAD", "/health") + raw.request("GET", "/health"))
    status, headers, _ = raw.response(head=True)
    assert status == 405 and "transfer-encoding" not in headers
    assert raw.response()[::2] == (200, b"OK")


def test_malformed_request_gets_400_and_close(raw: Raw, server: ServerProcess) -> None:
    raw.send(b"GARBAGE\x00 / HTTP/1.1\r\n\r\n")
    status, headers, _ = raw.response()
    assert status == 400 and headers["connection"] == "close"
    assert raw.closed_by_peer()
    assert requests.get(server.url + "/health", timeout=5).status_code == 200  # still serving


def test_oversized_headers_are_refused(raw: Raw) -> None:
    raw.send(raw.request("GET", "/health", headers={"X-Big": "a" * (70 << 10)}))
    status, _, _ = raw.response()
    assert status == 400
    assert raw.closed_by_peer()


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(raw: Raw) -> None:
    raw.send(raw.request("POST", "/api/2.0/mlflow/runs/log-metric",
                         headers={"Content-Type": "application/json", "Content-Length": str(65 << 20)}))
    status, _, _ = raw.response()
    assert status == 400
    assert raw.closed_by_peer()


def test_expect_100_continue_on_an_artifact_upload(raw: Raw, server: ServerProcess) -> None:
    data = os.urandom(300_000)
    path = "/api/2.0/mlflow-artifacts/artifacts/0/http1/continue.bin"
    raw.send(raw.request("PUT", path, headers={"Content-Length": str(len(data)), "Expect": "100-continue"}))
    status, _, _ = raw.response()
    assert status == 100
    raw.send(data)
    status, _, body = raw.response()
    assert (status, json.loads(body)) == (200, {})
    got = requests.get(server.url + path, headers={"Authorization": f"Bearer {server.token}"}, timeout=30)
    assert got.content == data


def test_large_download_is_streamed_whole(raw: Raw, server: ServerProcess) -> None:
    data = os.urandom(9 << 20)  # several of the handler's 1 MiB chunks, past the write buffer's high mark
    path = "/api/2.0/mlflow-artifacts/artifacts/0/http1/big.bin"
    r = requests.put(server.url + path, data=data, headers={"Authorization": f"Bearer {server.token}"}, timeout=60)
    assert r.status_code == 200
    raw.send(raw.request("GET", path))
    time.sleep(0.5)  # not reading yet: the socket buffers fill and the server must wait to write the rest
    status, headers, body = raw.response()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    raw.send(raw.request("GET", "/health"))  # the connection is still good for the next request
    assert raw.response()[2] == b"OK"


def test_client_leaving_mid_upload_leaves_no_artifact(server: ServerProcess) -> None:
    conn = Raw(server)
    path = "/api/2.0/mlflow-artifacts/artifacts/0/http1/half.bin"
    conn.send(conn.request("PUT", path, headers={"Content-Length": str(1 << 20)}) + os.urandom(100_000))
    time.sleep(0.3)
    conn.close()
    time.sleep(0.5)
    r = requests.get(server.url + path, headers={"Authorization": f"Bearer {server.token}"}, timeout=10)
    assert r.status_code == 404
    root = Path(server.artifacts)
    assert not list(root.rglob("half.bin*"))
    assert requests.get(server.url + "/health", timeout=5).status_code == 200
