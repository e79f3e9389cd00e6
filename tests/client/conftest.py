"""Real tracking servers for the client tests: ``mlflow server`` and ``labtrack server``.

Every scenario runs against both, through the same ``lt`` calls, and must
give the same observable results.  The servers are real processes on real
sockets, started once per session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import labtrack as lt
from labtrack.client.transport import Transport, unix_uri
from labtrack.errors import LabtrackError
from tests.client_state import reset_client_state
from tests.servers import free_port

# The environment variables that steer the client; tests start from none of them.
CLIENT_ENV = ("LABTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI", "LABTRACK_DATABASE",
              "LABTRACK_TRACKING_TOKEN", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
              "MLFLOW_TRACKING_PASSWORD", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID",
              "LABTRACK_EXPERIMENT_NAME", "LABTRACK_ASYNC_LOGGING")


@dataclass
class TrackingServer:
    kind: str  # "mlflow" or "labtrack"
    uri: str
    token: str | None
    workdir: Path
    proc: subprocess.Popen

    def env(self) -> dict[str, str]:
        """The environment a child script needs to log to this server."""
        env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
        env["LABTRACK_TRACKING_URI"] = self.uri
        if self.token:
            env["LABTRACK_TRACKING_TOKEN"] = self.token
        env["PYTHONPATH"] = os.pathsep.join([str(Path(lt.__file__).parents[1]),
                                             env.get("PYTHONPATH", "")])
        return env




def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if url.startswith("http+unix://"):
                status, _ = Transport.from_uri(url, auth="").request_raw("GET", "/health",
                                                                         retries=False)
                if status == 200:
                    return
            else:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
        except (OSError, LabtrackError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM) if _own_group(proc) else proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL) if _own_group(proc) else proc.kill()
            proc.wait(5)


def _own_group(proc: subprocess.Popen) -> bool:
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        return False


def labtrack_server_available() -> str | None:
    """None when ``python -m labtrack server`` works, else why it does not."""
    try:
        out = subprocess.run([sys.executable, "-m", "labtrack", "server", "--help"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`python -m labtrack server --help` failed: {exc}"
    if out.returncode != 0:
        return ("labtrack server is not available yet (`python -m labtrack server --help` "
                f"exited {out.returncode}: {(out.stderr or out.stdout).strip()[-300:]})")
    return None


def start_mlflow(workdir: Path) -> TrackingServer:
    if shutil.which("mlflow") is None:
        pytest.skip("the mlflow CLI is not installed")
    port = free_port()
    log = workdir / "mlflow.log"
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["mlflow", "server", "--backend-store-uri", f"sqlite:///{workdir}/m.db",
             "--artifacts-destination", str(workdir / "art"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log, 300)  # ~15 s idle; minutes on a busy CI host
    except RuntimeError:
        stop(proc)
        raise
    return TrackingServer("mlflow", url, None, workdir, proc)


def start_labtrack(workdir: Path, *extra: str, token: str | None = "auto") -> TrackingServer:
    why = labtrack_server_available()
    if why:
        pytest.skip(why)
    port = free_port()
    token = secrets.token_hex(16) if token == "auto" else token
    log = workdir / "labtrack.log"
    auth = ["--token", token] if token else ["--no-token"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labtrack", "server",
             "--backend-store-uri", f"sqlite:///{workdir}/l.db",
             "--artifacts-destination", str(workdir / "art"), "--host", "127.0.0.1",
             "--port", str(port), *auth, *extra],
            stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    if "--unix-socket" in extra:
        url = unix_uri(extra[list(extra).index("--unix-socket") + 1])
    try:
        wait_healthy(url, proc, log, 120)
    except RuntimeError:
        stop(proc)
        raise
    return TrackingServer("labtrack", url, token, workdir, proc)


@pytest.fixture(scope="session", params=["mlflow", "labtrack"])
def tracking_server(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    """A real server of each kind, shared by the session."""
    workdir = tmp_path_factory.mktemp(f"{request.param}-server")
    server = start_mlflow(workdir) if request.param == "mlflow" else start_labtrack(workdir)
    yield server
    stop(server.proc)


@pytest.fixture
def server(tracking_server: TrackingServer,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackingServer]:
    """The server, with ``lt`` pointed at it and a fresh experiment made active."""
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    if tracking_server.token:
        monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", tracking_server.token)
    reset_client_state()
    lt.set_tracking_uri(tracking_server.uri)
    lt.set_experiment(f"exp-{uuid.uuid4().hex[:12]}")
    yield tracking_server
    reset_client_state()
