"""The metric lane (server/metric_lane.py): small metric writes answered early from their raw
header fields, and every other request left to the application, whose answers do not change."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from labtrack.server import early_answer
from labtrack.server.app import make_app
from labtrack.server.base import ServerContext
from labtrack.server.metric_lane import MetricLane
from labtrack.settings import Settings
from labtrack.spool import spool_folder
from labtrack.store.journal import Journal
from labtrack.store.tracking import TrackingStore
from tests.servers import ServerProcess

TOKEN = "lane-token"
PATH = b"/api/2.0/mlflow/runs/log-metric"


@pytest.fixture
def lane(tmp_path: Path) -> Iterator[MetricLane]:
    store = TrackingStore(f"sqlite:///{tmp_path / 'mlruns.db'}", default_artifact_root=str(tmp_path))
    ctx = ServerContext(store=store, logged_models=None, artifacts=None, settings=Settings(), token=TOKEN)
    journal = ctx.extra[early_answer.JOURNAL_KEY] = Journal(spool_folder(tmp_path / "mlruns.db"))
    try:
        yield MetricLane(ctx, make_app(ctx))
    finally:
        journal.close()
        ctx.pool.shutdown()
        store.close()


def _conn(family: int = socket.AF_INET) -> Any:
    return SimpleNamespace(context=SimpleNamespace(address_family=family), lane_passed=None)


def _fields(**changes: bytes | None) -> list[tuple[bytes, bytes]]:
    """The mlflow client's header fields for a log_metric (3.17), changed as asked."""
    fields = {b"Host": b"127.0.0.1:5000", b"User-Agent": b"mlflow-python-client/3.17.2",
              b"Accept-Encoding": b"gzip, deflate", b"Accept": b"*/*", b"Connection": b"keep-alive",
              b"X-MLflow-Client-Version": b"3.17.2", b"Authorization": b"Bearer " + TOKEN.encode(),
              b"Content-Length": b"159", b"Content-Type": b"application/json"}
    for name, value in changes.items():
        key = name.replace("_", "-").encode()
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return list(fields.items())


def test_the_mlflow_clients_log_metric_and_log_batch_take_the_lane(lane: MetricLane) -> None:
    for prefix in (b"/api/2.0/mlflow/", b"/api/3.0/mlflow/", b"/ajax-api/2.0/mlflow/"):
        for endpoint in (b"runs/log-metric", b"runs/log-batch"):
            assert lane.take(_conn(), b"POST", prefix + endpoint, _fields()) is not None
    assert lane.take(_conn(), b"POST", PATH, _fields(Authorization=b"Basic " + b"dTpsYW5lLXRva2Vu")) is not None
    assert lane.take(_conn(), b"POST", PATH, _fields(Content_Type=b"application/json; charset=utf-8")) is not None
    # A unix socket sits in a private folder: neither Host nor token is asked for.
    assert lane.take(_conn(socket.AF_UNIX), b"POST", PATH, _fields(Authorization=None, Host=None)) is not None


@pytest.mark.parametrize("method,url,changes", [
    (b"GET", PATH, {}),
    (b"POST", PATH + b"?run_id=x", {}),
    (b"POST", b"/api/2.0/mlflow/runs/log-parameter", {}),
    (b"POST", b"/api/2.0/mlflow/runs/set-tag", {}),
    (b"POST", PATH, {"Authorization": None}),
    (b"POST", PATH, {"Authorization": b"Bearer wrong"}),
    (b"POST", PATH, {"Authorization": b"Bearer " + TOKEN.encode() + b"x"}),
    (b"POST", PATH, {"Host": b"evil.example"}),
    (b"POST", PATH, {"Host": None}),
    (b"POST", PATH, {"Origin": b"http://127.0.0.1:5000"}),
    (b"POST", PATH, {"Expect": b"100-continue"}),
    (b"POST", PATH, {"Transfer-Encoding": b"chunked", "Content-Length": None}),
    (b"POST", PATH, {"Content-Length": None}),
    (b"POST", PATH, {"Content-Length": b"0"}),
    (b"POST", PATH, {"Content-Length": b"4097"}),
    (b"POST", PATH, {"Content-Type": b"text/plain"}),
    (b"POST", PATH, {"Content-Type": None}),
])
def test_anything_else_goes_to_the_application(lane: MetricLane, method: bytes, url: bytes,
                                                changes: dict[str, bytes | None]) -> None:
    fields = _fields(**{k.replace("-", "_"): v for k, v in changes.items()})
    assert lane.take(_conn(), method, url, fields) is None


@pytest.mark.parametrize("name", [b"Authorization", b"Host", b"Content-Type", b"Content-Length"])
def test_a_repeated_field_goes_to_the_application(lane: MetricLane, name: bytes) -> None:
    """The application reads a repeated field joined ("Bearer a,Bearer b"): the lane must not pick one."""
    fields = _fields()
    fields.append((name.lower(), dict(fields)[name]))
    assert lane.take(_conn(), b"POST", PATH, fields) is None


def test_a_connection_passes_again_only_with_the_same_host_and_token(lane: MetricLane) -> None:
    conn = _conn()
    assert lane.take(conn, b"POST", PATH, _fields()) is not None
    assert lane.take(conn, b"POST", PATH, _fields()) is not None
    assert lane.take(conn, b"POST", PATH, _fields(Authorization=b"Bearer wrong")) is None
    assert lane.take(conn, b"POST", PATH, _fields(Host=b"evil.example")) is None
    assert lane.take(conn, b"POST", PATH, _fields(Authorization=None)) is None
    assert lane.take(_conn(), b"POST", PATH, _fields(Authorization=b"Bearer wrong")) is None


def test_no_lane_on_a_server_without_early_answers(lane: MetricLane) -> None:
    lane.ctx.extra[early_answer.JOURNAL_KEY].close()
    assert lane.take(_conn(), b"POST", PATH, _fields()) is None


def _request(srv: ServerProcess, body: dict[str, Any] | bytes, path: str = "runs/log-metric",
             token: str | None = None) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = (f"POST /api/2.0/mlflow/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token or srv.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n")
    return head.encode() + data


def _read_answers(sock: socket.socket, n: int) -> list[tuple[int, bytes]]:
    """``n`` answers (status, body) read from a kept-alive connection, in order."""
    buf, out = b"", []
    sock.settimeout(10)
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(v) for k, _, v in (h.partition(b": ") for h in lines[1:]) if k.lower() == b"content-length")
        while len(buf) < length:
            buf += sock.recv(65536)
        out.append((int(lines[0].split()[1]), buf[:length]))
        buf = buf[length:]
    return out


def _new_run(srv: ServerProcess) -> str:
    exp = srv.api("POST", "experiments/create", {"name": "lane"}).json()["experiment_id"]
    return srv.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]


def test_pipelined_writes_and_a_read_are_answered_in_order(sqlite_server: ServerProcess) -> None:
    """Three lane writes, a refused one and a read sent at once: answered in order, and the
    read sees every write answered before it."""
    srv = sqlite_server
    run_id = _new_run(srv)
    point = {"run_id": run_id, "key": "m", "timestamp": 1}
    history = (f"GET /api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=m HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\nAuthorization: Bearer {srv.token}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", int(srv.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(b"".join(_request(srv, {**point, "value": i / 2, "step": i}) for i in range(3))
                     + _request(srv, {**point, "value": "x", "step": 3}) + history)
        answers = _read_answers(sock, 5)
    assert [status for status, _ in answers] == [200, 200, 200, 400, 200]
    assert answers[0][1] == b"{}"
    assert json.loads(answers[3][1])["error_code"] == "INVALID_PARAMETER_VALUE"
    assert [(m["step"], m["value"]) for m in json.loads(answers[4][1])["metrics"]] == [(0, 0.0), (1, 0.5), (2, 1.0)]


def test_a_body_that_comes_later_is_waited_for(sqlite_server: ServerProcess) -> None:
    srv = sqlite_server
    run_id = _new_run(srv)
    raw = _request(srv, {"run_id": run_id, "key": "slow", "value": 1.5, "timestamp": 1, "step": 7})
    head, body = raw.split(b"\r\n\r\n", 1)
    with socket.create_connection(("127.0.0.1", int(srv.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(head + b"\r\n\r\n" + body[:10])
        time.sleep(0.3)
        sock.sendall(body[10:])
        assert _read_answers(sock, 1) == [(200, b"{}")]
    got = srv.api("GET", "metrics/get-history", {"run_id": run_id, "metric_key": "slow"}).json()["metrics"]
    assert [(m["step"], m["value"]) for m in got] == [(7, 1.5)]


def test_a_wrong_token_is_refused_by_the_application(sqlite_server: ServerProcess) -> None:
    """Not the lane's: the guard answers as for any request, and nothing is stored."""
    srv = sqlite_server
    run_id = _new_run(srv)
    with socket.create_connection(("127.0.0.1", int(srv.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(_request(srv, {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1}, token="nope"))
        ((status, body),) = _read_answers(sock, 1)
    assert status == 401
    assert json.loads(body)["error_code"] == "UNAUTHENTICATED"
    assert srv.api("GET", "metrics/get-history", {"run_id": run_id, "metric_key": "m"}).json().get("metrics", []) == []
