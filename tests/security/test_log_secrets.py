"""Items 3 and 4 of issue #19: no secret ever reaches the log, and refusals cannot flood it.

A run of hostile requests carries the server token, browser cookies and a
password in every place a request can hold them; afterwards the server's log
is searched for each of them.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest

from tests.security.conftest import exchange, json_of, status_of
from tests.servers import ServerProcess, start_server

HUB_SESSION = "hubsession0c4f8e2d9b7a61"
PASSWORD = "pw-7f3a9c1e5b2d"
QUERY_SECRET = "qs-5e8d1b7c3a9f"
MALFORMED_ROUNDS = 300  # bounded: about a second of one client thread


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("logged")
    srv = start_server(f"sqlite:///{workdir / 'mlruns.db'}", workdir, extra=["--access-log"])
    try:
        yield srv
    finally:
        srv.stop()


def _get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_trailing_whitespace_in_a_header_value_is_accepted(logged: ServerProcess) -> None:
    # RFC 9110 5.5: the whitespace around a field value is not part of it.
    reply = exchange(logged, _get("/api/2.0/mlflow/experiments/search?max_results=1",
                                  f"Authorization: Bearer {logged.token}  \t"))
    assert status_of(reply) == 200, reply[:300]


def test_blank_bearer_token_gets_401_with_mlflow_error_json(logged: ServerProcess) -> None:
    reply = exchange(logged, _get("/api/2.0/mlflow/experiments/search?max_results=1", "Authorization: Bearer "))
    assert status_of(reply) == 401, reply[:300]
    assert json_of(reply)["error_code"] == "UNAUTHENTICATED"


def _hostile_requests(token: str) -> list[bytes]:
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    cookie = f"labtrack_token={token}; jupyterhub-session-id={HUB_SESSION}"
    return [
        _get("/api/2.0/mlflow/experiments/search", f"Authorization: Bearer {token}   "),
        _get("/api/2.0/mlflow/experiments/search", f"Cookie: {cookie}   "),
        _get("/api/2.0/mlflow/experiments/search", f"Authorization: Basic {basic}"),
        _get(f"/api/2.0/mlflow/no-such?token={QUERY_SECRET}", f"Cookie: {cookie}"),
        _get(f"/?token={QUERY_SECRET}", f"Cookie: {cookie}"),
        # Malformed: a control character inside a value that also carries the secrets.
        _get("/api/2.0/mlflow/experiments/search", f"Authorization: Bearer {token}\x01{PASSWORD}"),
        _get("/health", f"Cookie: {cookie}\x7f"),
        _get("/health", f"X-Token{token}: {PASSWORD}"),  # no colon where a name should end
        f"GET /health?token={QUERY_SECRET} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x{token}\r\n\r\n".encode(),
        f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: {token}\r\n\r\n".encode(),
        f"POST /api/2.0/mlflow/runs/create?token={QUERY_SECRET} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n"
        '{"experiment_id": {}'.encode(),
    ]


def test_no_secret_reaches_the_log_after_hostile_requests(logged: ServerProcess) -> None:
    assert logged.token
    for data in _hostile_requests(logged.token):
        exchange(logged, data, timeout=3)
    time.sleep(0.5)
    log = logged.log()
    assert log, "the server logged nothing at all: the test would prove nothing"
    for secret in (logged.token, HUB_SESSION, PASSWORD, QUERY_SECRET,
                   base64.b64encode(f"alice:{PASSWORD}".encode()).decode()):
        # The token is printed at start (the export line and the UI link, for the user to copy); never after that.
        after_start = log.split("Open the web UI:", 1)[-1].split("\n", 1)[-1]
        assert secret not in after_start, f"a secret is in the server log: {secret[:4]}..."


def test_refusals_are_short_and_rate_limited(logged: ServerProcess) -> None:
    before = len(logged.log())
    t0 = time.monotonic()
    for i in range(MALFORMED_ROUNDS):
        if time.monotonic() - t0 > 30:
            break
        exchange(logged, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n", timeout=2)
    grown = logged.log()[before:]
    assert "Traceback" not in grown
    assert len(grown) < 8_000, f"{len(grown)} bytes logged for {MALFORMED_ROUNDS} malformed requests"


def test_log_file_rotates_at_its_size_cap(tmp_path) -> None:
    from labtrack.server.log_limits import LOG_BACKUPS, LOG_MAX_BYTES

    log_file = tmp_path / "mlruns" / ".server.log"
    log_file.parent.mkdir()
    log_file.write_bytes(b"an old line\n" * (LOG_MAX_BYTES // 12 + 1))  # a long history, at the cap
    srv = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path, extra=["--log-file", str(log_file)])
    try:
        for _ in range(5):
            exchange(srv, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n", timeout=2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and log_file.stat().st_size >= LOG_MAX_BYTES:
            time.sleep(0.2)
        assert log_file.stat().st_size < LOG_MAX_BYTES
        assert (tmp_path / "mlruns" / ".server.log.1").stat().st_size >= LOG_MAX_BYTES
        assert "malformed HTTP request" in log_file.read_text()
        assert log_file.stat().st_mode & 0o077 == 0
        assert not (tmp_path / "mlruns" / f".server.log.{LOG_BACKUPS + 1}").exists()
    finally:
        srv.stop()
