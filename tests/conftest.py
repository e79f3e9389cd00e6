"""Fixtures: real labtrack server processes on SQLite files and on PostgreSQL.

``server`` runs each test once per backend: ``sqlite`` always, ``postgres``
when LABTRACK_TEST_POSTGRES_URL names a PostgreSQL server (CI starts one;
locally the postgres runs are reported as skipped).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import CHROMIUM, launch_browser
from tests.servers import PostgresDatabases, ServerProcess, postgres_url, start_server


SESSION_MARK = "LABTRACK_TEST_SESSION"


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_tests() -> Iterator[None]:
    """Stop every process this test session started, however it was started.

    Servers that kernels or Jupyter started in the background are re-parented
    to init when their parent goes, so they cannot be found as children; they
    all inherit this environment mark instead.  A leftover would hold pytest's
    output open and keep CI waiting.
    """
    import os
    import uuid

    import psutil

    mark = uuid.uuid4().hex
    os.environ[SESSION_MARK] = mark
    yield
    me = os.getpid()
    leftovers = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != me and proc.environ().get(SESSION_MARK) == mark:
                leftovers.append(proc)
        except (psutil.Error, OSError):
            continue
    for proc in leftovers:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(leftovers, timeout=10)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


@pytest.fixture(autouse=True)
def mlflow_registry_uri_stays_put() -> Iterator[None]:
    """Undo what a test's ``mlflow.set_registry_uri(url)`` leaves behind.

    It also exports ``MLFLOW_REGISTRY_URI``, and ``set_registry_uri(None)`` does not
    remove it: every later mlflow registry call would go to that test's server, gone by
    then or replaced by another server (and token) on the same port.
    """
    import os

    before = os.environ.get("MLFLOW_REGISTRY_URI")
    yield
    if os.environ.get("MLFLOW_REGISTRY_URI") != before:
        if before is None:
            os.environ.pop("MLFLOW_REGISTRY_URI", None)
        else:
            os.environ["MLFLOW_REGISTRY_URI"] = before


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The session's one Chromium (see tests/browser.py for why only one)."""
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (PyPI) is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases | None]:
    url = postgres_url()
    yield PostgresDatabases(url) if url else None


@pytest.fixture
def pg_database(pg_databases: PostgresDatabases | None) -> Iterator[str]:
    """The URL of a fresh database on the test PostgreSQL server, dropped afterwards."""
    if pg_databases is None:
        pytest.skip("LABTRACK_TEST_POSTGRES_URL is not set (CI sets it)")
    url = pg_databases.create()
    yield url
    pg_databases.drop(url)


@pytest.fixture(params=["sqlite", "postgres"])
def backend_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlruns.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def store(backend_uri: str) -> Iterator[Any]:
    """A TrackingStore on ``backend_uri`` (SQLite and PostgreSQL), closed afterwards."""
    from labtrack.store.tracking import TrackingStore

    st = TrackingStore(backend_uri)
    yield st
    st.close()


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
