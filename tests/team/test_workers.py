"""``labtrack server --workers 4`` on PostgreSQL: four processes, one database, nothing lost or doubled.

32 concurrent writers each log their own run's points in batches; every point
comes back exactly once.  Concurrent ``create_model_version`` calls number
versions 1..N with no gap or repeat (so do first registers of one scorer
name), and racing params keep their first value.  On SQLite, ``--workers`` above 1 is refused in one line.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests

from tests.client.conftest import wait_healthy
from tests.servers import PostgresDatabases, ServerProcess, free_port, postgres_url
from tests.team.conftest import launch

WRITERS = 32
BATCHES = 10
POINTS = 100  # per batch: 32 x 10 x 100 = 32,000 points


@pytest.fixture(scope="module")
def pg_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    admin = postgres_url()
    if not admin:
        pytest.skip("LABTRACK_TEST_POSTGRES_URL is not set (CI sets it)")
    dbs = PostgresDatabases(admin)
    url = dbs.create()
    workdir = tmp_path_factory.mktemp("workers")
    port, token = free_port(), uuid.uuid4().hex
    cmd = [sys.executable, "-m", "labtrack", "server", "--backend-store-uri", url, "--host", "127.0.0.1",
           "--port", str(port), "--token", token, "--workers", "4", "--expose-prometheus", str(workdir / "prom")]
    proc, log = launch(cmd, workdir, {}, "workers")
    server = ServerProcess(f"http://127.0.0.1:{port}", token, url, workdir / "mlruns", proc, log)
    try:
        # The socket listens from the start; the workers answer once each has opened the database.
        wait_healthy(server.url, proc, log, 300)
        yield server
    finally:
        server.stop()
        dbs.drop(url)


def _session(server: ServerProcess) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.token}"
    return session


def _post(session: requests.Session, server: ServerProcess, path: str, body: dict) -> requests.Response:
    return session.post(f"{server.url}/api/2.0/mlflow/{path}", json=body, timeout=120)


def test_four_processes_serve(pg_workers: ServerProcess) -> None:
    children = psutil.Process(pg_workers.proc.pid).children()
    assert len(children) == 4
    session = _session(pg_workers)
    for _ in range(20):  # a new connection each: the kernel spreads them over the processes
        reply = session.get(pg_workers.url + "/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"},
                            timeout=30, headers={"Connection": "close"})
        assert reply.status_code == 200
    assert all(c.is_running() for c in children)
    # /metrics, answered by any one process, counts the requests of all four.
    from tests.team.test_operations import _samples

    key = ("labtrack_requests_total",
           (("endpoint", "/api/2.0/mlflow/experiments/get"), ("method", "GET"), ("status", "200")))
    # A request is counted once its answer has been sent, so the client may read /metrics a
    # moment before the last count lands: wait for it, briefly.
    import time

    deadline = time.monotonic() + 10
    while True:
        samples = _samples(session.get(pg_workers.url + "/metrics", timeout=30).text)
        if samples.get(key) == 20 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert samples[key] == 20


@pytest.mark.timeout(600)
def test_32_writers_every_point_exactly_once(pg_workers: ServerProcess) -> None:
    exp = _post(_session(pg_workers), pg_workers, "experiments/create",
                {"name": f"w-{uuid.uuid4().hex[:8]}"}).json()["experiment_id"]
    run_ids: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        session = _session(pg_workers)  # one connection each: spread over the processes
        run = _post(session, pg_workers, "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]
        with lock:
            run_ids.append(run)
        for b in range(BATCHES):
            metrics = [{"key": "loss", "value": float(i * 1_000_000 + b * POINTS + p), "timestamp": 1,
                        "step": b * POINTS + p} for p in range(POINTS)]
            reply = _post(session, pg_workers, "runs/log-batch", {
                "run_id": run, "metrics": metrics, "params": [{"key": f"p{b}", "value": str(b)}],
                "tags": [{"key": "writer", "value": str(i)}]})
            if reply.status_code != 200:
                with lock:
                    errors.append(f"{reply.status_code} {reply.text[:200]}")
        _post(session, pg_workers, "runs/update", {"run_id": run, "status": "FINISHED"})

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))
    assert errors == []
    assert len(set(run_ids)) == WRITERS  # unique run ids
    session = _session(pg_workers)
    for run in run_ids:
        history = session.get(f"{pg_workers.url}/api/2.0/mlflow/metrics/get-history",
                              params={"run_id": run, "metric_key": "loss", "max_results": 25000}, timeout=120).json()
        steps = sorted(m["step"] for m in history["metrics"])
        assert steps == list(range(BATCHES * POINTS)), run
        data = session.get(f"{pg_workers.url}/api/2.0/mlflow/runs/get", params={"run_id": run},
                           timeout=60).json()["run"]["data"]
        assert len(data["params"]) == BATCHES
    found = _post(session, pg_workers, "runs/search", {"experiment_ids": [exp], "max_results": 1000}).json()
    assert len(found["runs"]) == WRITERS


@pytest.mark.timeout(600)
def test_concurrent_model_versions_are_numbered_once(pg_workers: ServerProcess) -> None:
    session = _session(pg_workers)
    exp = _post(session, pg_workers, "experiments/create", {"name": f"mv-{uuid.uuid4().hex[:8]}"}).json()["experiment_id"]
    run = _post(session, pg_workers, "runs/create", {"experiment_id": exp}).json()["run"]["info"]
    name = f"model-{uuid.uuid4().hex[:8]}"
    assert _post(session, pg_workers, "registered-models/create", {"name": name}).status_code == 200
    source = run["artifact_uri"] + "/model"

    def create(_: int) -> int:
        s = _session(pg_workers)
        reply = _post(s, pg_workers, "model-versions/create", {"name": name, "source": source,
                                                               "run_id": run["run_id"]})
        assert reply.status_code == 200, reply.text
        return int(reply.json()["model_version"]["version"])

    with ThreadPoolExecutor(WRITERS) as pool:
        versions = list(pool.map(create, range(WRITERS * 2)))
    assert sorted(versions) == list(range(1, WRITERS * 2 + 1))
    listed = _post(session, pg_workers, "registered-models/get-latest-versions", {"name": name}).json()
    assert [v["version"] for v in listed["model_versions"]] == [str(WRITERS * 2)]


def test_concurrent_scorer_versions_are_numbered_once(pg_workers: ServerProcess) -> None:
    """First registers of one scorer name race on four processes: one scorer, versions 1..N."""
    session = _session(pg_workers)
    exp = _post(session, pg_workers, "experiments/create", {"name": f"sc-{uuid.uuid4().hex[:8]}"}).json()["experiment_id"]
    scorers = f"{pg_workers.url}/api/3.0/mlflow/scorers/"

    def register(i: int) -> dict:
        reply = _session(pg_workers).post(scorers + "register", json={
            "experiment_id": exp, "name": "racer", "serialized_scorer": f'{{"i": {i}}}'}, timeout=120)
        assert reply.status_code == 200, reply.text
        return reply.json()

    with ThreadPoolExecutor(WRITERS) as pool:
        answers = list(pool.map(register, range(WRITERS)))
    assert sorted(a["version"] for a in answers) == list(range(1, WRITERS + 1))
    assert len({a["scorer_id"] for a in answers}) == 1
    listed = session.get(scorers + "versions", params={"experiment_id": exp, "name": "racer"}, timeout=60).json()
    assert sorted(v["serialized_scorer"] for v in listed["scorers"]) == sorted(f'{{"i": {i}}}' for i in range(WRITERS))


def test_racing_params_keep_their_first_value(pg_workers: ServerProcess) -> None:
    session = _session(pg_workers)
    exp = _post(session, pg_workers, "experiments/create", {"name": f"p-{uuid.uuid4().hex[:8]}"}).json()["experiment_id"]
    run = _post(session, pg_workers, "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]

    def log(i: int) -> tuple[int, str]:
        reply = _post(_session(pg_workers), pg_workers, "runs/log-parameter",
                      {"run_id": run, "key": "lr", "value": str(i)})
        return reply.status_code, reply.json().get("error_code", "")

    with ThreadPoolExecutor(WRITERS) as pool:
        outcomes = list(pool.map(log, range(WRITERS)))
    winners = [i for i, (status, _) in enumerate(outcomes) if status == 200]
    assert len(winners) == 1, outcomes
    assert all(code == "INVALID_PARAMETER_VALUE" for status, code in outcomes if status != 200)
    params = session.get(f"{pg_workers.url}/api/2.0/mlflow/runs/get", params={"run_id": run},
                         timeout=60).json()["run"]["data"]["params"]
    assert params == [{"key": "lr", "value": str(winners[0])}]


def test_sqlite_refuses_workers(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "labtrack", "server", "--backend-store-uri",
                          f"sqlite:///{tmp_path}/x.db", "--port", str(free_port()), "--workers", "2"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "one writer" in lines[0] and "PostgreSQL" in lines[0], out.stderr
    assert not (tmp_path / "x.db").exists()
