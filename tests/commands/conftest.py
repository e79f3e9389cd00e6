"""Real tracking servers the terminal commands talk to: ``mlflow server`` and ``labtrack server``.

One of each per session (an ``mlflow server`` takes seconds to start); every
test works in an experiment of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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
