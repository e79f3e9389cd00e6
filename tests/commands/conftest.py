"""Real tracking servers the terminal commands talk to: ``mlflow server`` and ``labtrack server``.

One of each per session (an ``mlflow server`` takes seconds to start); every
test works in an experiment of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.conftest import TrackingServer, start_labtrack, start_mlflow, stop


@pytest.fixture(scope="session", params=["mlflow", "labtrack"])
def remote(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    """A real server of each kind; a labtrack one guarded by a token."""
    workdir = tmp_path_factory.mktemp(f"remote-{request.param}")
    server = start_mlflow(workdir) if request.param == "mlflow" else start_labtrack(workdir)
    yield server
    stop(server.proc)


def command_env(token: str | None = None) -> dict[str, str]:
    """This environment without the variables that steer a client; a token if given."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "LABTRACK_TRACKING", "LABTRACK_DATABASE"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    return env


ADMIN = ("admin", "admin-Secret-4821")
MEMBER = ("bob", "bob-Secret-5519")


def start_team_server(workdir: Path) -> TrackingServer:
    """``labtrack server --app-name basic-auth`` on <workdir>/mlruns.db with an admin and a member."""
    from tests.client.conftest import labtrack_server_available, wait_healthy
    from tests.servers import free_port

    why = labtrack_server_available()
    if why:
        pytest.skip(why)
    db = f"sqlite:///{workdir / 'mlruns.db'}"
    for (name, password), admin in ((ADMIN, True), (MEMBER, False)):
        out = subprocess.run([sys.executable, "-m", "labtrack", "users", "create", name,
                              "--password-stdin", "--backend-store-uri", db, *(["--admin"] if admin else [])],
                             input=password + "\n", capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    port = free_port()
    log = workdir / "team.log"
    with open(log, "wb") as out_file:
        proc = subprocess.Popen([sys.executable, "-m", "labtrack", "server", "--backend-store-uri", db,
                                 "--artifacts-destination", str(workdir / "mlruns"), "--host", "127.0.0.1",
                                 "--port", str(port), "--app-name", "basic-auth"],
                                stdout=out_file, stderr=subprocess.STDOUT, cwd=workdir,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log, 120)
    except RuntimeError:
        stop(proc)
        raise
    return TrackingServer("labtrack", url, None, workdir, proc)
