"""Fixtures for the widget tests: ``lt`` pointed at a real ``labtrack server`` process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import labtrack as lt
from tests.client_state import reset_client_state
from tests.servers import ServerProcess

CLIENT_ENV = ("LABTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI", "LABTRACK_DATABASE",
              "LABTRACK_TRACKING_TOKEN", "MLFLOW_TRACKING_TOKEN", "MLFLOW_EXPERIMENT_NAME",
              "MLFLOW_EXPERIMENT_ID", "LABTRACK_EXPERIMENT_NAME", "LABTRACK_UI_URL",
              "JUPYTERHUB_SERVICE_PREFIX")


@pytest.fixture
def tracked(sqlite_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The server's URL, with ``lt`` logging to it into a fresh experiment (its id is yielded)."""
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    if sqlite_server.token:
        monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", sqlite_server.token)
    reset_client_state()
    lt.set_tracking_uri(sqlite_server.url)
    experiment = lt.set_experiment(f"widgets-{uuid.uuid4().hex[:8]}")
    yield experiment.experiment_id
    reset_client_state()
