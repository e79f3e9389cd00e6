"""Helpers for the reliability tests: real client processes, a start barrier, the database as truth.

Every writer here is a real Python process running labtrack's client; the
server is a real ``labtrack server`` process; the results are read straight
from ``mlruns.db`` with SQLAlchemy, never through the code under test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import labtrack as lt
from labtrack.ownership import read_owner
from labtrack.store.tracking import TrackingStore

# Everything that steers a client: each child starts from none of it.
CLIENT_ENV = ("LABTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI", "LABTRACK_DATABASE",
              "LABTRACK_TRACKING_TOKEN", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
              "MLFLOW_TRACKING_PASSWORD", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID",
              "LABTRACK_EXPERIMENT_NAME", "LABTRACK_ASYNC_LOGGING", "LABTRACK_SPOOL", "SLURM_JOB_ID",
              "LABTRACK_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
              "LABTRACK_ASSUME_NETWORK_FS")
SRC = str(Path(lt.__file__).parents[1])
DEAD_PID = 2**22 + 12345  # above pid_max: no live process has it


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def launch(script: str, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=cwd, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


class Barrier:
    """Children import labtrack, say they are ready, then all start at once on ``go``.

    A waiting child blocks on its stdin (no polling: 64 of them would eat the CPU
    that the slow starters need)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def wait_ready(self, n: int, procs: list[subprocess.Popen[str]], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(list(self.folder.glob("ready-*"))) < n:
            for p in procs:
                if p.poll() is not None and p.returncode != 0:
                    raise AssertionError(f"a child died before the start: {p.communicate()[1]}")
            assert time.monotonic() < deadline, "children did not get ready in time"
            time.sleep(0.05)

    def go(self, procs: list[subprocess.Popen[str]]) -> None:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()


# What a child runs before its work: announce readiness, then wait for the start signal.
BARRIER_CODE = """
import os, sys, time
from pathlib import Path
(Path(os.environ["TEST_BARRIER"]) / f"ready-{os.getpid()}").touch()
sys.stdin.readline()
"""


def finish_all(procs: list[subprocess.Popen[str]], timeout: float = 180) -> list[tuple[int, str, str]]:
    deadline = time.monotonic() + timeout
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        results.append((p.returncode, out, err))
    return results


def query(db: Path, sql: str, **params: object) -> list[tuple]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def metric_counts(db: Path, key: str = "loss") -> dict[str, tuple[int, int]]:
    """run name -> (points, distinct steps) of metric ``key``."""
    rows = query(db, """
        SELECT r.name, COUNT(m.step), COUNT(DISTINCT m.step) FROM runs r
        LEFT JOIN metric_series ms ON ms.run_uuid = r.run_uuid AND ms.key = :key
        LEFT JOIN metrics m ON m.series_id = ms.series_id
        GROUP BY r.run_uuid""", key=key)
    out: dict[str, tuple[int, int]] = {}
    for name, n, distinct in rows:
        assert name not in out, f"two runs named {name}"
        out[name] = (n, distinct)
    return out


def integrity(db: Path) -> str:
    return str(query(db, "PRAGMA integrity_check")[0][0])


def wait_until(check, timeout: float, interval: float = 0.25):  # type: ignore[no-untyped-def]
    """Poll ``check()`` until it returns a truthy value; return it (or the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def stop_owner(db: Path) -> None:
    """Stop the server a client started for ``db`` (SIGTERM, then SIGKILL)."""
    record = read_owner(db)
    if record is None:
        return
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(record.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(record.pid, signal.SIGKILL)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A fresh project folder; a server that a client started there is stopped afterwards."""
    yield tmp_path
    stop_owner(tmp_path / "mlruns.db")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "mlruns.db"


@pytest.fixture
def store(db: Path) -> Iterator[TrackingStore]:
    """A store on ``db`` in this process (the spool ingest's tests drive it directly)."""
    st = TrackingStore(f"sqlite:///{db}")
    yield st
    st.close()
