"""MLflow stores written by the real mlflow client (tests/imports/mlflow_writer.py), once per session."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WRITER = Path(__file__).with_name("mlflow_writer.py")
POINTS = 10_000


def mlflow_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABTRACK_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", MLFLOW_ALLOW_FILE_STORE="true")
    return env


def write(folder: Path, uri: str, phase: str, points: int = POINTS) -> subprocess.Popen[bytes]:
    """Start the writer on a store in ``folder``; wait() on what it returns."""
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder.parent / f"{folder.name}-{phase}.log", "ab")
    return subprocess.Popen([sys.executable, str(WRITER), uri, phase, str(points)], cwd=folder,
                            env=mlflow_env(), stdout=log, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen[bytes], folder: Path, phase: str) -> None:
    if proc.wait(900) != 0:
        log = (folder.parent / f"{folder.name}-{phase}.log").read_text(errors="replace")
        raise RuntimeError(f"mlflow_writer {phase} failed:\n{log[-4000:]}")


@pytest.fixture(scope="session")
def mlflow_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An MLflow SQLite store (``sqlite/mlflow.db`` + ``sqlite/mlruns``) and a file store
    (``files/mlruns``), written at once by two processes."""
    pytest.importorskip("mlflow")
    base = tmp_path_factory.mktemp("mlflow-stores")
    sql, files = base / "sqlite", base / "files"
    procs = [(write(sql, "sqlite:///mlflow.db", "base"), sql),
             (write(files, f"file://{files / 'mlruns'}", "base"), files)]
    for proc, folder in procs:
        finish(proc, folder, "base")
    return {"sqlite": sql, "files": files}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (not labtrack's own) and its sha256."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if not rel.startswith(("labtrack", ".")) and not rel.endswith(".log"):
                out[rel] = sha256(path)
    return out


def copy_store(src: Path, dst: Path) -> Path:
    """A copy of an SQLite store folder whose runs' artifact paths still lead to ``src``'s files."""
    dst.mkdir(parents=True)
    shutil.copy2(src / "mlflow.db", dst / "mlflow.db")
    return dst


@pytest.fixture
def no_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k in list(os.environ):
        if k.startswith(("MLFLOW_", "LABTRACK_")) and not k.startswith("LABTRACK_TEST_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    yield


def start_mlflow_on(backend_uri: str, workdir: Path, extra_env: dict[str, str] | None = None) -> Any:
    """A real ``mlflow server`` on an existing MLflow store (tests/client/conftest.py's way)."""
    from tests.client.conftest import TrackingServer, stop, wait_healthy
    from tests.servers import free_port

    if shutil.which("mlflow") is None:
        pytest.skip("the mlflow CLI is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "mlflow.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["mlflow", "server", "--backend-store-uri", backend_uri, "--artifacts-destination",
             str(workdir / "art"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env={**mlflow_env(), **(extra_env or {})},
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log, 300)
    except RuntimeError:
        stop(proc)
        raise
    return TrackingServer("mlflow", url, None, workdir, proc)
