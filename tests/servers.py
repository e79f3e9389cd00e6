"""Start real labtrack servers (and databases) for tests: real processes, real sockets."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

POSTGRES_ENV = "LABTRACK_TEST_POSTGRES_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """A running ``labtrack server`` subprocess."""

    url: str
    token: str | None
    backend_uri: str
    artifacts: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        if self.token:
            self.session.headers["Authorization"] = f"Bearer {self.token}"

    def api(self, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
        """Call ``/api/2.0/mlflow/<path>`` (or an absolute path starting with /)."""
        url = self.url + (path if path.startswith("/") else "/api/2.0/mlflow/" + path)
        if method == "GET":
            return self.session.get(url, params=body, timeout=60, **kw)
        return self.session.request(method, url, json=body, timeout=60, **kw)

    def stop(self, sig: str = "term") -> int:
        if self.proc.poll() is None:
            if sig == "kill":
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_server(backend_uri: str, workdir: Path, *, token: str | None = "auto",
                 extra: list[str] | None = None, timeout: float = 30.0,
                 fd_limit: int | None = None) -> ServerProcess:
    """A healthy server; ``fd_limit`` runs it under ``ulimit -n`` (soft and hard) of that many."""
    port = free_port()
    artifacts = workdir / "mlruns"
    token = secrets.token_hex(8) if token == "auto" else token
    cmd = [sys.executable, "-m", "labtrack", "server", "--backend-store-uri", backend_uri,
           "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--token", token] if token else ["--no-token"]
    cmd += extra or []
    log_path = workdir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=None if fd_limit is None else lambda: _limit_fds(fd_limit))
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(url, token, backend_uri, artifacts, proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"labtrack server exited with {proc.returncode}:\n{server.log()}")
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return server
        except (requests.ConnectionError, requests.Timeout):  # still starting (workers fork)
            pass
        time.sleep(0.05)
    server.stop("kill")
    raise RuntimeError(f"labtrack server did not become healthy:\n{server.log()}")


def _limit_fds(n: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


class PostgresDatabases:
    """Fresh databases on the PostgreSQL server named by LABTRACK_TEST_POSTGRES_URL."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy import create_engine

        self.admin_url = admin_url
        self.engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")

    def create(self) -> str:
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        name = "lt_" + uuid.uuid4().hex[:12]
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        name = make_url(url).database
        with self.engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None
