"""Meeting MLflow data by accident: `labtrack server`, `labtrack sync` and `lt` in a folder of
MLflow data each say in one line what they found and how to import it, and change nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labtrack.spool import spool_folder
from tests.imports.conftest import snapshot

FIXTURE = Path(__file__).with_name("fixtures") / "mlflow-2.9.2" / "mlruns.db"
LINE_2X = "is an MLflow database (MLflow 2.8-2.12, schema acf3f17fdcc7); labtrack leaves it unchanged."


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABTRACK_", "SLURM_"))}
    env["LABTRACK_SERVER_START_TIMEOUT"] = "20"
    return env


def labtrack(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labtrack", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def mlflow_folder(tmp_path: Path) -> Path:
    """A project folder whose mlruns.db was written by MLflow 2.9 (the JupyterHub launcher's name)."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(FIXTURE, folder / "mlruns.db")
    return folder


def test_server_on_an_mlflow_database(mlflow_folder: Path) -> None:
    before = snapshot(mlflow_folder)
    done = labtrack("server", "--port", "0", cwd=mlflow_folder)
    assert done.returncode != 0
    line = one_line(done.stderr)
    assert line == (f"labtrack: {mlflow_folder / 'mlruns.db'} {LINE_2X} `labtrack import "
                    f"{mlflow_folder / 'mlruns.db'}` copies it into {mlflow_folder / 'labtrack.db'}, "
                    "which labtrack then serves")
    explicit = labtrack("server", "--backend-store-uri", f"sqlite:///{mlflow_folder / 'mlruns.db'}", "--port", "0",
                        cwd=mlflow_folder.parent)
    assert explicit.returncode != 0 and one_line(explicit.stderr) == line
    # Not a byte changed; no lock, journal, WAL or spool file appeared.
    assert snapshot(mlflow_folder) == before
    assert sorted(os.listdir(mlflow_folder)) == ["mlruns.db"]


def test_a_folder_with_mlflow_db_or_a_file_store(tmp_path: Path) -> None:
    newer = tmp_path / "newer"
    newer.mkdir()
    shutil.copy(FIXTURE, newer / "mlflow.db")  # MLflow 3.7+ names its database mlflow.db
    done = labtrack("server", "--port", "0", cwd=newer)
    assert done.returncode != 0
    assert one_line(done.stderr).startswith(f"labtrack: {newer / 'mlflow.db'} {LINE_2X}")
    assert sorted(os.listdir(newer)) == ["mlflow.db"]  # no mlruns.db made beside it

    files = tmp_path / "files"
    (files / "mlruns" / "0").mkdir(parents=True)
    (files / "mlruns" / "0" / "meta.yaml").write_text("experiment_id: '0'\nname: Default\n")
    before = snapshot(files)
    done = labtrack("server", "--port", "0", cwd=files)
    assert done.returncode != 0
    assert one_line(done.stderr) == (
        f"labtrack: {files / 'mlruns'} is an MLflow file store (meta.yaml files); labtrack leaves it unchanged. "
        f"`labtrack import {files / 'mlruns'}` copies it into {files / 'labtrack.db'}, which labtrack then serves")
    assert snapshot(files) == before and sorted(os.listdir(files)) == ["mlruns"]


def test_sync_on_an_mlflow_database(mlflow_folder: Path) -> None:
    before = snapshot(mlflow_folder)
    done = labtrack("sync", str(mlflow_folder), cwd=mlflow_folder)
    assert done.returncode != 0
    assert one_line(done.stderr).endswith("which labtrack then serves")
    assert snapshot(mlflow_folder) == before and sorted(os.listdir(mlflow_folder)) == ["mlruns.db"]


LT_SCRIPT = """
import labtrack as lt
from labtrack.errors import MlflowDataFound
try:
    lt.set_experiment("x")
    with lt.start_run():
        lt.log_metric("m", 1.0)
    lt.flush()
    print("LOGGED")
except MlflowDataFound as e:
    print("REFUSED", type(e).__name__, e.message)
"""


@pytest.mark.parametrize("in_a_job", [False, True])
def test_lt_never_logs_toward_an_mlflow_database(mlflow_folder: Path, in_a_job: bool) -> None:
    """Not through a server it would start, and not through the spool (a batch job never starts one)."""
    before = snapshot(mlflow_folder)
    env = _env()
    if in_a_job:
        env["SLURM_JOB_ID"] = "4242"
    done = subprocess.run([sys.executable, "-c", LT_SCRIPT], cwd=mlflow_folder, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"REFUSED MlflowDataFound {mlflow_folder / 'mlruns.db'} {LINE_2X}"), done.stdout
    assert "Traceback" not in done.stderr
    assert not spool_folder(mlflow_folder / "mlruns.db").exists()
    assert snapshot(mlflow_folder) == before and sorted(os.listdir(mlflow_folder)) == ["mlruns.db"]


def test_after_the_import_the_folder_is_served_from_labtrack_db(mlflow_folder: Path) -> None:
    before = snapshot(mlflow_folder)
    done = labtrack("import", "mlruns.db", cwd=mlflow_folder, timeout=300)
    assert done.returncode == 0, done.stderr
    assert snapshot(mlflow_folder) == before
    # `lt` in the folder now finds labtrack.db (it would start its server for it).
    probe = subprocess.run([sys.executable, "-c", "from labtrack.client.discovery import find_database;"
                            "print(find_database())"], cwd=mlflow_folder, env=_env(), capture_output=True,
                           text=True, timeout=60)
    assert probe.stdout.strip() == str(mlflow_folder / "labtrack.db"), probe.stderr
    server = subprocess.Popen([sys.executable, "-m", "labtrack", "server", "--port", "0", "--no-token"],
                              cwd=mlflow_folder, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        first = server.stdout.readline()  # type: ignore[union-attr]
        second = server.stdout.readline()  # type: ignore[union-attr]
    finally:
        server.terminate()
        server.wait(30)
    assert first.strip() == (f"labtrack: {mlflow_folder / 'mlruns.db'} holds MLflow's data; serving "
                             f"{mlflow_folder / 'labtrack.db'}, imported from it")
    assert f"serving {mlflow_folder / 'labtrack.db'}" in second
    assert f"(artifacts: {mlflow_folder / 'labtrack'})" in second
    assert snapshot(mlflow_folder) == before


def test_the_import_is_the_one_writer(mlflow_folder: Path, tmp_path: Path) -> None:
    """While a server owns labtrack.db, an import refuses in one line (that server is its writer)."""
    from tests.servers import start_server

    done = labtrack("import", "mlruns.db", cwd=mlflow_folder, timeout=300)
    assert done.returncode == 0, done.stderr
    server = start_server(f"sqlite:///{mlflow_folder / 'labtrack.db'}", tmp_path, token=None)
    try:
        again = labtrack("import", "mlruns.db", cwd=mlflow_folder, timeout=300)
    finally:
        server.stop()
    assert again.returncode != 0
    lines = [ln for ln in again.stderr.splitlines() if ln.startswith("labtrack:") and "importing" not in ln]
    assert len(lines) == 1 and "is served by pid" in lines[0] and "stop that server" in lines[0], again.stderr
    assert "Traceback" not in again.stderr
