"""What `labtrack server` says and does at start: the lines a user pastes, a busy port, the token."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import requests

from labtrack.server.tokens import new_token
from tests.servers import free_port, start_server


def test_start_prints_the_mlflow_exports_and_the_ui_link(tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path}/mlruns.db", tmp_path)
    try:
        log = server.log()
        assert f"export MLFLOW_TRACKING_URI={server.url} MLFLOW_TRACKING_TOKEN={server.token}" in log
        assert f"Open the web UI: {server.url}/?token={server.token}" in log
        refused = requests.get(server.url + "/api/2.0/mlflow/experiments/search", timeout=30)
        assert refused.status_code == 401
        assert "MLFLOW_TRACKING_TOKEN" in refused.json()["message"]
        assert refused.json()["error_code"] == "UNAUTHENTICATED"
    finally:
        server.stop()


def test_a_generated_token_never_starts_like_an_option() -> None:
    tokens = [new_token() for _ in range(3000)]
    assert all(t[0].isalnum() and len(t) == 32 for t in tokens)
    assert len(set(tokens)) == len(tokens)


def test_a_busy_port_is_one_line_and_leaves_no_database(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        out = subprocess.run([sys.executable, "-m", "labtrack", "server", "--port", str(port)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0] and "--port 0" in lines[0], out.stderr
    assert not (tmp_path / "mlruns.db").exists() and not (tmp_path / "mlruns").exists()
