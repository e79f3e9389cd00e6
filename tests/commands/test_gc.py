"""``labtrack gc``: deleted runs and experiments go for good, with their artifacts, the
database file shrinks, and live data stays as it was; through the server that owns
the database, and without one (holding the ownership record as ``labtrack sync``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.commands.conftest import ADMIN, MEMBER, command_env, start_team_server
from tests.client.conftest import stop
from tests.servers import ServerProcess, start_server

POINTS = 20_000  # in the deleted run: enough rows that freeing them shows in the file's size


def _gc(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labtrack", "gc", *args], cwd=folder,
                          env=env or command_env(), capture_output=True, text=True, timeout=300)


def _ok(reply: Any) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    return reply.json()


def _run(srv: ServerProcess, exp: str, points: int, blob: bytes) -> dict[str, Any]:
    """A finished run with ``points`` metric points and one artifact, ``blob``."""
    run = _ok(srv.api("POST", "runs/create", {"experiment_id": exp, "start_time": 1}))["run"]["info"]
    rid = run["run_id"]
    _ok(srv.api("POST", "runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.1"}))
    for start in range(0, points, 1000):
        _ok(srv.api("POST", "runs/log-batch", {"run_id": rid, "metrics": [
            {"key": "loss", "value": 1.0 / (i + 1), "timestamp": 1000 + i, "step": i}
            for i in range(start, min(points, start + 1000))]}))
    rel = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    put = srv.session.put(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{rel}/blob.bin", data=blob,
                          timeout=60)
    assert put.status_code == 200, put.text
    _ok(srv.api("POST", "runs/update", {"run_id": rid, "status": "FINISHED", "end_time": 2}))
    return {"id": rid, "folder": srv.artifacts / rel.rsplit("/artifacts", 1)[0]}


def _db_bytes(folder: Path) -> int:
    return sum(os.path.getsize(p) for p in (folder / "mlruns.db", folder / "mlruns.db-wal")
               if p.exists())


def _scene(srv: ServerProcess) -> dict[str, Any]:
    """A live run, a deleted run, and a deleted experiment with a run in it."""
    keep = _ok(srv.api("POST", "experiments/create", {"name": "keep"}))["experiment_id"]
    gone = _ok(srv.api("POST", "experiments/create", {"name": "gone"}))["experiment_id"]
    scene = {"keep": keep, "gone": gone,
             "live": _run(srv, keep, 500, b"live artifact"),
             "deleted": _run(srv, keep, POINTS, os.urandom(300_000)),
             "in_gone": _run(srv, gone, 100, os.urandom(100_000))}
    _ok(srv.api("POST", "runs/delete", {"run_id": scene["deleted"]["id"]}))
    _ok(srv.api("POST", "experiments/delete", {"experiment_id": gone}))
    return scene


def _check_removed(srv: ServerProcess, scene: dict[str, Any]) -> None:
    for name in ("deleted", "in_gone"):
        reply = srv.api("GET", "runs/get", {"run_id": scene[name]["id"]})
        assert reply.status_code == 404 and reply.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert not scene[name]["folder"].exists()
    assert srv.api("GET", "experiments/get", {"experiment_id": scene["gone"]}).status_code == 404
    assert not (srv.artifacts / scene["gone"]).exists()
    # The live run is untouched: its history, its param, its artifact.
    live = scene["live"]
    run = _ok(srv.api("GET", "runs/get", {"run_id": live["id"]}))["run"]
    assert run["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    history = _ok(srv.api("GET", "metrics/get-history", {"run_id": live["id"], "metric_key": "loss",
                                                          "max_results": 1000}))["metrics"]
    assert len(history) == 500
    assert (live["folder"] / "artifacts" / "blob.bin").read_bytes() == b"live artifact"
    assert _ok(srv.api("GET", "experiments/get", {"experiment_id": scene["keep"]}))["experiment"]["name"] == "keep"


def _reported(out: subprocess.CompletedProcess[str]) -> tuple[int, int, int]:
    m = re.search(r"removed (\d+) runs, (\d+) experiments and \d+ logged models; (\d+) artifact", out.stdout)
    assert m, out.stdout + out.stderr
    return int(m[1]), int(m[2]), int(m[3])


def test_gc_through_the_running_server(tmp_path: Path) -> None:
    srv = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path)
    try:
        scene = _scene(srv)
        # Deleted just now: --older-than 1d keeps everything.
        young = _gc(tmp_path, "--older-than", "1d")
        assert young.returncode == 0, young.stderr
        assert _reported(young) == (0, 0, 0)
        assert scene["deleted"]["folder"].exists()
        # A live run named by id is refused, in one line, and nothing goes.
        refused = _gc(tmp_path, "--run-ids", scene["live"]["id"])
        assert refused.returncode == 1 and "not in the deleted lifecycle stage" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
        assert scene["deleted"]["folder"].exists()

        before = _db_bytes(tmp_path)
        out = _gc(tmp_path)  # finds ./mlruns.db and asks its server
        assert out.returncode == 0, out.stderr
        assert _reported(out) == (2, 1, 2)  # the run inside "gone" goes with its experiment's folder
        assert _db_bytes(tmp_path) < before
        _check_removed(srv, scene)
        assert srv.proc.poll() is None  # the server kept serving throughout
    finally:
        srv.stop()


def test_gc_without_a_server_holds_the_database(tmp_path: Path) -> None:
    srv = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path)
    try:
        scene = _scene(srv)
    finally:
        srv.stop()
    before = _db_bytes(tmp_path)
    out = _gc(tmp_path, "--run-ids", scene["deleted"]["id"])
    assert out.returncode == 0, out.stderr
    assert _reported(out) == (1, 0, 1)
    after_run = _db_bytes(tmp_path)
    assert after_run < before - POINTS * 10  # freed pages went back to the filesystem
    out = _gc(tmp_path, "--experiment-ids", scene["gone"])
    assert out.returncode == 0, out.stderr
    assert _reported(out) == (1, 1, 1)
    srv = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path)
    try:
        _check_removed(srv, scene)
        # With a server up again, gc asks it rather than opening the database itself.
        again = _gc(tmp_path)
        assert again.returncode == 0 and _reported(again) == (0, 0, 0), again.stderr
    finally:
        srv.stop()


def test_gc_errors_are_one_line(tmp_path: Path) -> None:
    """No mlruns.db: one line, and no database is created."""
    out = _gc(tmp_path)
    assert out.returncode == 1 and "no mlruns.db" in out.stderr
    assert not (tmp_path / "mlruns.db").exists()
    bad = _gc(tmp_path, "--older-than", "soon")
    assert bad.returncode == 1 and "--older-than" in bad.stderr and "Traceback" not in bad.stderr


def test_gc_on_a_team_server_is_for_admins(tmp_path: Path) -> None:
    """Users sign in with MLflow's variables; a member is refused, an admin collects."""
    import requests

    team = start_team_server(tmp_path)
    try:
        admin = requests.Session()
        admin.auth = ADMIN
        exp = _ok(admin.post(f"{team.uri}/api/2.0/mlflow/experiments/create", json={"name": "t"}, timeout=60))
        run = _ok(admin.post(f"{team.uri}/api/2.0/mlflow/runs/create",
                             json={"experiment_id": exp["experiment_id"]}, timeout=60))["run"]["info"]
        _ok(admin.post(f"{team.uri}/api/2.0/mlflow/runs/delete", json={"run_id": run["run_id"]}, timeout=60))

        def as_user(user: tuple[str, str]) -> dict[str, str]:
            env = command_env()
            env.update(MLFLOW_TRACKING_USERNAME=user[0], MLFLOW_TRACKING_PASSWORD=user[1])
            return env

        refused = _gc(tmp_path, env=as_user(MEMBER))  # found through ./mlruns.db's owner
        assert refused.returncode == 1 and "admin" in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert admin.get(f"{team.uri}/api/2.0/mlflow/runs/get", params={"run_id": run["run_id"]},
                         timeout=60).status_code == 200
        out = _gc(tmp_path, "--tracking-uri", team.uri, env=as_user(ADMIN))
        assert out.returncode == 0, out.stderr
        assert _reported(out) == (1, 0, 0)
        assert admin.get(f"{team.uri}/api/2.0/mlflow/runs/get", params={"run_id": run["run_id"]},
                         timeout=60).status_code == 404
    finally:
        stop(team.proc)


def test_gc_on_postgresql(tmp_path: Path, pg_databases: Any) -> None:
    """The same removal on PostgreSQL (no VACUUM there), with the artifact folder named."""
    if pg_databases is None:
        pytest.skip("LABTRACK_TEST_POSTGRES_URL is not set (CI sets it)")
    url = pg_databases.create()
    try:
        srv = start_server(url, tmp_path)
        try:
            scene = _scene(srv)
        finally:
            srv.stop()
        out = _gc(tmp_path, "--backend-store-uri", url, "--artifacts-destination", str(tmp_path / "mlruns"))
        assert out.returncode == 0, out.stderr
        assert _reported(out) == (2, 1, 2)
        srv = start_server(url, tmp_path)
        try:
            _check_removed(srv, scene)
        finally:
            srv.stop()
    finally:
        pg_databases.drop(url)
