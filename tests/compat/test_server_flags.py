"""`labtrack server` takes `mlflow server`'s command line (issue #14, gap 3).

`-h` is the host for both servers; every other common mlflow flag is either
accepted or refused in one line that names what labtrack does instead.  Each
flag is first checked to be a real `mlflow server` flag, so the list cannot
drift from MLflow's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.conftest import stop, wait_healthy
from tests.servers import free_port

# (flag and value, what the refusal line must name); refused until built (settings.py `pending`).
REFUSED = [
    (["--registry-store-uri", "sqlite:///other.db"], "--backend-store-uri"),
    (["--artifacts-only"], "--artifacts-destination"),
    (["--gunicorn-opts", "--timeout 60"], "--workers"),
    (["--dev"], "--access-log"),
]
# Declared in settings.py for the engineers of issues #18 and #19; refused until built.
DECLARED = [
    (["--workers", "4"], "workers"),
    (["--app-name", "basic-auth"], "app_name"),
    (["--allowed-hosts", "localhost"], "allowed_hosts"),
    (["--cors-allowed-origins", "http://localhost:8888"], "cors_allowed_origins"),
    (["--expose-prometheus", "prom"], "expose_prometheus"),
]


@pytest.fixture(scope="module")
def mlflow_server_help() -> str:
    out = subprocess.run(["mlflow", "server", "--help"], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true"))
    if out.returncode != 0:
        pytest.skip(f"mlflow server --help failed: {out.stderr[-300:]}")
    return out.stdout


def _labtrack(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labtrack", "server", "--backend-store-uri",
                           f"sqlite:///{tmp_path}/l.db", "--no-token", "--port", "0", *args],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


def _labtrack_cmd(tmp_path: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    return ([sys.executable, "-m", "labtrack", "server", "--backend-store-uri",
             f"sqlite:///{tmp_path}/l.db", "--no-token", *args], dict(os.environ))


def _serves_on(cmd: list[str], cwd: Path, port: int, env: dict[str, str]) -> None:
    log = cwd / f"{Path(cmd[0]).name}-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log, 300)
    finally:
        stop(proc)


@pytest.mark.parametrize("kind", ["mlflow", "labtrack"])
def test_dash_h_is_the_host(kind: str, tmp_path: Path) -> None:
    port = free_port()
    if kind == "mlflow":
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
        cmd = ["mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path}/m.db",
               "-h", "127.0.0.1", "-p", str(port), "--workers", "1"]
    else:
        cmd, env = _labtrack_cmd(tmp_path, "-h", "127.0.0.1", "-p", str(port))
    _serves_on(cmd, tmp_path, port, env)


def test_help_is_still_there(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "labtrack", "server", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "-h, --host" in out.stdout


@pytest.mark.parametrize("args,equivalent", REFUSED, ids=[a[0] for a, _ in REFUSED])
def test_mlflow_only_flag_is_refused_in_one_line(args: list[str], equivalent: str, tmp_path: Path,
                                                 mlflow_server_help: str) -> None:
    assert args[0] in mlflow_server_help  # a flag mlflow server really has
    out = _labtrack(tmp_path, *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith(f"labtrack: {args[0]}") and equivalent in lines[0]
    assert not (tmp_path / "l.db").exists()  # refused before anything was touched


def test_registry_store_uri_equal_to_the_backend_is_accepted(tmp_path: Path) -> None:
    port = free_port()
    uri = f"sqlite:///{tmp_path}/l.db"
    cmd, env = _labtrack_cmd(tmp_path, "-p", str(port), "--registry-store-uri", uri)
    _serves_on(cmd, tmp_path, port, env)


@pytest.mark.parametrize("args,setting", DECLARED, ids=[a[0] for a, _ in DECLARED])
def test_declared_flag_reaches_its_setting(args: list[str], setting: str, tmp_path: Path,
                                           mlflow_server_help: str) -> None:
    """Each flag fills its Settings field; until it is built the server refuses it in one line."""
    from labtrack.settings import TABLE

    assert args[0] in mlflow_server_help
    row = next(s for s in TABLE if s.name == setting)
    if not row.pending:
        pytest.skip(f"{args[0]} is built; its own tests cover it")
    out = _labtrack(tmp_path, *args)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and lines == [f"labtrack: {row.pending}"], out.stderr
    # The same through the environment variable of the one table of settings.
    env = dict(os.environ, **{row.env: args[1]})
    out = subprocess.run([sys.executable, "-m", "labtrack", "server", "--no-token", "--port", "0"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert out.returncode == 2 and out.stderr.strip() == f"labtrack: {row.pending}"
