"""Fixtures for tests/api: one real server per module and backend, and state snapshots.

Starting a server costs about a second, so the corpus and idempotence modules
share one server per backend (``module_server``); every test still builds or
snapshots the state it relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.servers import PostgresDatabases, ServerProcess, start_server


def mlflow_error(reply: requests.Response, status: int, code: str) -> str:
    """The reply is MLflow's error shape with this status and code; its message."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    return str(body["message"])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  pg_databases: PostgresDatabases | None) -> Iterator[ServerProcess]:
    """A real ``labtrack server`` shared by one module, on SQLite and on PostgreSQL."""
    workdir = tmp_path_factory.mktemp(f"srv-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'mlruns.db'}"
    else:
        if pg_databases is None:
            pytest.skip("LABTRACK_TEST_POSTGRES_URL is not set (CI sets it)")
        url = pg_databases.create()
    srv = start_server(url, workdir)
    try:
        yield srv
    finally:
        srv.stop()
        if request.param == "postgres" and pg_databases is not None:
            pg_databases.drop(url)


def workdir_of(server: ServerProcess) -> Path:
    """The folder that holds the server's artifact folder (and its SQLite file)."""
    return server.artifacts.parent
