"""Many writers at once into one folder: 32 over HTTP and 32 through the spool, 2,000 points each.

The situation MLflow's own JupyterHub guide warns about (several processes on
one SQLite file deadlock or lose points to "database is locked").  Here every
process must finish without an error and every point must be in the database
exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.servers import start_server

from .conftest import BARRIER_CODE, Barrier, child_env, finish_all, integrity, launch, metric_counts, query, wait_until

HTTP_WRITERS = 32
SPOOL_WRITERS = 32
POINTS = 2000

WRITER = """
import sys
import labtrack as lt
""" + BARRIER_CODE + """
name, points = sys.argv[1], int(sys.argv[2])
lt.set_experiment("many-writers")
with lt.start_run(run_name=name):
    lt.log_param("writer", name)
    for i in range(points):
        lt.log_metric("loss", 1.0 / (i + 1), step=i)
print(lt.get_tracking_uri())
"""


@pytest.mark.timeout(600)  # 64 Python processes on a small, busy CI machine
def test_32_http_and_32_spool_writers_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    server = start_server(f"sqlite:///{db}", tmp_path)
    try:
        barrier = Barrier(tmp_path / "barrier")
        procs = []
        for i in range(HTTP_WRITERS + SPOOL_WRITERS):
            spool = i >= HTTP_WRITERS
            env = child_env(LABTRACK_DATABASE=str(db), TEST_BARRIER=str(barrier.folder),
                            **({"LABTRACK_SPOOL": "1"} if spool else {}))
            procs.append(launch(WRITER, f"{'spool' if spool else 'http'}-{i:02d}", str(POINTS),
                                cwd=tmp_path, env=env))
        barrier.wait_ready(len(procs), procs)
        started = time.monotonic()
        barrier.go(procs)
        results = finish_all(procs, timeout=400)
        written = time.monotonic() - started

        errors = [(code, err[-2000:]) for code, _, err in results if code != 0 or err.strip()]
        assert errors == [], f"{len(errors)} writers failed; first: {errors[:1]}"
        uris = [out.strip() for _, out, _ in results]
        assert all(u.startswith("http://") for u in uris[:HTTP_WRITERS]), uris[:HTTP_WRITERS]
        assert all(u.startswith("spool:") for u in uris[HTTP_WRITERS:]), uris[HTTP_WRITERS:]

        expected = {f"{kind}-{i:02d}": (POINTS, POINTS) for i in range(HTTP_WRITERS + SPOOL_WRITERS)
                    for kind in ["spool" if i >= HTTP_WRITERS else "http"]}
        # The spool writers' records reach the database through the server's ingest.
        counts = wait_until(lambda: metric_counts(db) == expected and metric_counts(db), timeout=60)
        got = metric_counts(db)
        missing = {k: got.get(k) for k in expected if got.get(k) != expected[k]}
        assert not missing and len(got) == len(expected), f"runs with missing points: {missing}"
        assert counts
        assert query(db, "SELECT COUNT(*) FROM experiments WHERE name = 'many-writers'") == [(1,)]
        finished = query(db, "SELECT COUNT(*) FROM runs WHERE status = 'FINISHED'")[0][0]
        assert finished == len(expected)
        assert query(db, "SELECT COUNT(*) FROM params WHERE key = 'writer'") == [(len(expected),)]
        assert integrity(db) == "ok"
        print(f"\n{len(procs)} writers x {POINTS} points: written in {written:.1f} s")
    finally:
        server.stop()
