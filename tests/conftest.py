"""Fixtures: real labtrack server processes on SQLite files and on PostgreSQL.

``server`` runs each test once per backend: ``sqlite`` always, ``postgres``
when LABTRACK_TEST_POSTGRES_URL names a PostgreSQL server (CI starts one;
locally the postgres runs are reported as skipped).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import PostgresDatabases, ServerProcess, postgres_url, start_server


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases | None]:
    url = postgres_url()
    yield PostgresDatabases(url) if url else None


@pytest.fixture(params=["sqlite", "postgres"])
def backend_uri(request: pytest.FixtureRequest, tmp_path: Path,
                pg_databases: PostgresDatabases | None) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mlruns.db'}"
        return
    if pg_databases is None:
        pytest.skip("LABTRACK_TEST_POSTGRES_URL is not set (CI sets it)")
    url = pg_databases.create()
    yield url
    pg_databases.drop(url)


@pytest.fixture
def server(backend_uri: str, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(backend_uri, tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path)
    yield srv
    srv.stop()
