"""Operations of a team server: Prometheus metrics (``--expose-prometheus``) and ``labtrack db upgrade``."""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.servers import start_server


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_prometheus_metrics_are_scraped(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    prom = tmp_path / "prom"
    server = start_server(f"sqlite:///{tmp_path}/m.db", tmp_path, extra=["--expose-prometheus", str(prom)])
    try:
        assert requests.get(server.url + "/metrics", timeout=30).status_code == 401  # no token, no metrics
        exp = server.api("POST", "experiments/create", {"name": f"prom-{uuid.uuid4().hex[:6]}"}).json()
        run = server.api("POST", "runs/create", {"experiment_id": exp["experiment_id"]}).json()["run"]["info"]

        def log(i: int) -> int:
            s = requests.Session()
            s.headers["Authorization"] = f"Bearer {server.token}"
            return s.post(server.url + "/api/2.0/mlflow/runs/log-metric", timeout=60, json={
                "run_id": run["run_id"], "key": "loss", "value": float(i), "timestamp": 1, "step": i}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(log, range(200))) == {200}
        assert server.api("GET", "experiments/get", {"experiment_id": "12345"}).status_code == 404
        reply = server.session.get(server.url + "/metrics", timeout=30)
        assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
        samples = _samples(reply.text)
        path = "/api/2.0/mlflow/runs/log-metric"
        assert samples[("labtrack_requests_total", (("endpoint", path), ("method", "POST"), ("status", "200")))] == 200
        assert samples[("labtrack_requests_total",
                        (("endpoint", "/api/2.0/mlflow/experiments/get"), ("method", "GET"), ("status", "404")))] == 1
        assert samples[("labtrack_request_duration_seconds_count", (("endpoint", path), ("method", "POST")))] == 200
        # Every write is in exactly one group: the groups' sizes add up to the writes made.
        writes = 200 + 2  # the metrics, the experiment and the run
        assert samples[("labtrack_group_commit_size_sum", ())] >= writes
        assert 1 <= samples[("labtrack_group_commit_size_count", ())] <= samples[("labtrack_group_commit_size_sum", ())]
        assert samples[("labtrack_writer_queue_depth", ())] >= 0
        assert samples[("labtrack_spool_backlog_files", ())] == 0
        assert ("labtrack_spool_backlog_bytes", ()) in samples
        assert server.token not in reply.text
    finally:
        server.stop()


def test_db_upgrade_brings_an_old_database_to_the_current_schema(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, inspect

    from labtrack.store import migrate

    db = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        migrate.upgrade(conn, "0002")  # a database from before users existed
    assert "users" not in inspect(engine).get_table_names()
    engine.dispose()
    out = subprocess.run([sys.executable, "-m", "labtrack", "db", "upgrade", f"sqlite:///{db}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"revision {migrate.HEAD}" in out.stdout
    engine = create_engine(f"sqlite:///{db}")
    assert {"users", "user_permissions"} <= set(inspect(engine).get_table_names())
    engine.dispose()
    bad = subprocess.run([sys.executable, "-m", "labtrack", "db", "upgrade", "postgresql://nobody@127.0.0.1:1/x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
