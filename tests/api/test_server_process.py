"""The server as a process: ownership, crashes, start races, journal modes, shutdown, auth.

Every test runs real ``labtrack server`` processes (``python -m labtrack server``)
and looks at what a user would see: exit statuses, the one line on stderr,
HTTP replies, and the database file itself.
"""

from __future__ import annotations

import base64
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from labtrack._version import __version__
from labtrack.server.app import MLFLOW_PROTOCOL_VERSION
from tests.servers import ServerProcess, free_port, start_server


def server_cmd(db: Path, workdir: Path, port: int | None = None) -> list[str]:
    return ["server", "--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", str(workdir / "mlruns"),
            "--host", "127.0.0.1", "--port", str(port or free_port()), "--token", "t0ken"]


def assert_one_line_naming(stderr: str, pid: int) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert socket.gethostname() in lines[0] and str(pid) in lines[0], lines[0]
    assert "Traceback" not in stderr


def test_second_server_on_the_same_database_exits_naming_the_owner(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    first = start_server(f"sqlite:///{db}", tmp_path)
    try:
        second = subprocess.run([sys.executable, "-m", "labtrack", *server_cmd(db, tmp_path)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert second.returncode != 0
        assert_one_line_naming(second.stderr, first.proc.pid)
        # The owner is untouched and still serves.
        assert first.proc.poll() is None
        assert first.api("GET", "experiments/get", {"experiment_id": "0"}).status_code == 200
    finally:
        first.stop()


def test_a_new_server_starts_after_the_owner_was_killed(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    first = start_server(f"sqlite:///{db}", tmp_path)
    exp = first.api("POST", "experiments/create", {"name": "survives"}).json()["experiment_id"]
    first.stop("kill")
    assert first.proc.returncode == -signal.SIGKILL
    second = start_server(f"sqlite:///{db}", tmp_path)
    try:
        got = second.api("GET", "experiments/get-by-name", {"experiment_name": "survives"})
        assert got.status_code == 200 and got.json()["experiment"]["experiment_id"] == exp
    finally:
        second.stop()


# Waits at a barrier (all 16 ready, then one "go" file), with the heavy imports
# already done, then runs ``python -m labtrack`` in the same process, so the
# processes reach the database within milliseconds of each other.
_LAUNCHER = """
import os, runpy, sys, time
import labtrack.cli, labtrack.server.main, labtrack.store.engine, sqlalchemy
go, ready = sys.argv[1], sys.argv[2]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
sys.argv = ["labtrack", *sys.argv[3:]]
runpy.run_module("labtrack", run_name="__main__", alter_sys=True)
"""


def test_sixteen_servers_started_at_once_on_an_empty_folder(tmp_path: Path) -> None:
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    db = workdir / "mlruns.db"
    go = tmp_path / "go"
    ports = [free_port() for _ in range(16)]
    procs = []
    for i, port in enumerate(ports):
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(go), str(tmp_path / f"ready-{i}"), *server_cmd(db, workdir, port)],
            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("ready-*"))) < 16:
            assert time.monotonic() < deadline, "launchers never got ready"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.02)
        go.touch()
        # Losers exit on their own; the winner keeps serving.
        while sum(p.poll() is None for p in procs) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = [i for i, p in enumerate(procs) if p.poll() is None]
        assert len(alive) == 1, f"{len(alive)} servers still running"
        winner = alive[0]
        url = f"http://127.0.0.1:{ports[winner]}"
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        resp = requests.post(url + "/api/2.0/mlflow/experiments/create", json={"name": "after-race"},
                             headers={"Authorization": "Bearer t0ken"}, timeout=30)
        assert resp.status_code == 200, resp.text
        for i, p in enumerate(procs):
            if i == winner:
                continue
            out, err = p.communicate(timeout=30)
            assert p.returncode != 0, (out, err)
            assert_one_line_naming(err, procs[winner].pid)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
    assert procs[winner].returncode == 0
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM experiments WHERE experiment_id = 0").fetchone() == (1,)
        names = [r[0] for r in conn.execute("SELECT name FROM experiments ORDER BY experiment_id")]
        assert names == ["Default", "after-race"]
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith("mlruns.db")) == ["mlruns.db"]
    assert (workdir / "mlruns" / ".labtrack" / "mlruns.db.lock").is_file()  # the record, out of sight


@pytest.mark.parametrize(("network_fs", "mode"), [(False, "wal"), (True, "delete")])
def test_journal_mode_follows_the_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             network_fs: bool, mode: str) -> None:
    if network_fs:
        monkeypatch.setenv("LABTRACK_ASSUME_NETWORK_FS", "1")  # inherited by the server process
    else:
        monkeypatch.delenv("LABTRACK_ASSUME_NETWORK_FS", raising=False)
    db = tmp_path / "mlruns.db"
    srv = start_server(f"sqlite:///{db}", tmp_path)
    try:
        assert srv.api("POST", "experiments/create", {"name": "j"}).status_code == 200
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == mode
        finally:
            conn.close()
        assert (tmp_path / "mlruns.db-wal").exists() == (mode == "wal")
    finally:
        srv.stop()


def test_sigterm_under_load_keeps_every_acknowledged_batch(server: ServerProcess) -> None:
    run_id = server.api("POST", "runs/create", {"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    per_batch = 20
    acked: list[tuple[int, int]] = []
    unexpected: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(tid: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {server.token}"
        n = 0
        while not stop.is_set():
            body = {"run_id": run_id, "metrics": [
                {"key": f"w{tid}", "value": float(i), "step": n * per_batch + i, "timestamp": n}
                for i in range(per_batch)]}
            try:
                resp = session.post(server.url + "/api/2.0/mlflow/runs/log-batch", json=body, timeout=30)
            except requests.RequestException:
                return  # the server went away: this batch was not acknowledged
            if resp.status_code != 200:
                if resp.status_code != 503:  # shutting down: refused as unavailable, never a 500
                    unexpected.append(f"{resp.status_code} {resp.text[:200]}")
                return
            with lock:
                acked.append((tid, n))
            n += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGTERM)
    try:
        assert server.proc.wait(60) == 0, server.log()
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert len(acked) >= 40, "the load never got going"
    assert not unexpected, f"{unexpected}\n{server.log()[-4000:]}"

    engine = create_engine(server.backend_uri)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT key, step FROM metrics JOIN metric_series USING (series_id) WHERE run_uuid = :r"), {"r": run_id}).all()
    finally:
        engine.dispose()
    stored: dict[tuple[int, int], int] = {}
    for key, step in rows:
        batch = (int(key[1:]), step // per_batch)
        stored[batch] = stored.get(batch, 0) + 1
    missing = [b for b in acked if stored.get(b) != per_batch]
    assert not missing, f"acknowledged batches lost or partial: {missing[:10]}"
    partial = {b: n for b, n in stored.items() if n != per_batch}
    assert not partial, f"half-written batches: {partial}"


def _get(srv: ServerProcess, path: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.get(srv.url + path, headers=headers or {}, timeout=30)


def test_health_version_and_token_forms(sqlite_server: ServerProcess) -> None:
    srv = sqlite_server
    health = _get(srv, "/health")
    assert health.status_code == 200 and health.text == "OK"
    version = _get(srv, "/version")
    # /version is the MLflow protocol version (the mlflow client picks its trace export by it);
    # labtrack's own version travels in a header.
    assert version.status_code == 200 and version.text == MLFLOW_PROTOCOL_VERSION
    assert version.headers["X-Labtrack-Version"] == __version__

    path = "/api/2.0/mlflow/experiments/get?experiment_id=0"

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    refused: list[dict[str, Any]] = [{}, {"Authorization": "Bearer nope"}, basic("u", "nope"),
                                     basic(srv.token or "", ""), {"Authorization": f"Token {srv.token}"}]
    for headers in refused:
        resp = _get(srv, path, headers)
        assert resp.status_code == 401, (headers, resp.text)
        assert resp.json()["error_code"] == "UNAUTHENTICATED" and resp.json()["message"]
    for headers in ({"Authorization": f"Bearer {srv.token}"}, basic("alice", srv.token or "")):
        resp = _get(srv, path, headers)
        assert resp.status_code == 200, (headers, resp.text)
        assert resp.json()["experiment"]["name"] == "Default"
