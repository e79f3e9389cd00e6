"""Concurrent first registers of one scorer name on ``--workers 3`` over PostgreSQL (three processes,
one database): every register answers, and the versions are 1..n under one scorer id."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.servers import PostgresDatabases, ServerProcess, start_server

SC = "/api/3.0/mlflow/scorers/"


@pytest.fixture
def workers_server(pg_databases: PostgresDatabases | None, tmp_path: Path) -> Iterator[ServerProcess]:
    if pg_databases is None:
        pytest.skip("LABTRACK_TEST_POSTGRES_URL is not set (CI sets it)")
    url = pg_databases.create()
    srv = start_server(url, tmp_path, extra=["--workers", "3"])
    try:
        yield srv
    finally:
        srv.stop()
        pg_databases.drop(url)


def test_racing_registers_number_versions_once(workers_server: ServerProcess) -> None:
    srv = workers_server
    exp = srv.api("POST", "experiments/create", {"name": "race"}).json()["experiment_id"]
    n = 24

    def register(i: int) -> tuple[int, dict]:
        reply = srv.api("POST", SC + "register", {"experiment_id": exp, "name": "racer",
                                                  "serialized_scorer": f'{{"i": {i}}}'})
        return reply.status_code, reply.json()

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(register, range(n)))
    assert [status for status, _ in answers] == [200] * n, answers
    assert sorted(body["version"] for _, body in answers) == list(range(1, n + 1))
    assert len({body["scorer_id"] for _, body in answers}) == 1
    versions = srv.api("GET", SC + "versions", {"experiment_id": exp, "name": "racer"}).json()["scorers"]
    assert [v["scorer_version"] for v in versions] == list(range(1, n + 1))
    assert sorted(v["serialized_scorer"] for v in versions) == sorted(f'{{"i": {i}}}' for i in range(n))
