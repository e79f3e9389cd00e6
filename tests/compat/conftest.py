"""The unmodified mlflow client (from PyPI) pointed at a real labtrack server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import ServerProcess


@pytest.fixture
def mlflow_client_env(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token or "")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    # A client error must surface at once, not after minutes of retries.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server.url)
    while mlflow.active_run():
        mlflow.end_run()
    # The fluent API remembers the experiment of an earlier test (and server).
    mlflow.set_experiment(experiment_id="0")
    yield server
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
