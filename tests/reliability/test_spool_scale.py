"""A job array logging through the spool while HTTP writers log too: every point lands exactly once.

Issue 21's spool workload (bench/spool_array.py) at a reduced size: 32 forked tasks log
2,000 points each through the spool (``LABTRACK_SPOOL=1``) and 4 processes log as many
over HTTP, all started together against a real ``labtrack server`` that ingests the spool
while it serves.  Point ``s`` of task ``i`` has the value ``i * 1e6 + s``, so each run's
points are known exactly; they are read from the database file itself.  The full size
(512 tasks x 10,000 points + 64 writers) and its timings are bench/scale_ingest.py's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import start_server

from .conftest import child_env, query, wait_until

pytestmark = pytest.mark.timeout(1200)

SPOOL_ARRAY = Path(__file__).resolve().parents[2] / "bench" / "spool_array.py"
TASKS, POINTS, HTTP = 32, 2_000, 4


def points_by_run(db: Path) -> dict[str, tuple[int, int, int, int, float]]:
    """run name -> (points, distinct steps, first step, last step, sum of value - step) of ``loss``."""
    rows = query(db, """SELECT r.name, COUNT(m.step), COUNT(DISTINCT m.step), MIN(m.step), MAX(m.step),
                               SUM(m.value - m.step)
                        FROM runs r LEFT JOIN metric_series ms ON ms.run_uuid = r.run_uuid AND ms.key = 'loss'
                        LEFT JOIN metrics m ON m.series_id = ms.series_id
                        GROUP BY r.run_uuid""")
    return {name: tuple(rest) for name, *rest in rows}  # type: ignore[misc]


def test_a_job_array_through_the_spool_and_http_writers_at_once_lands_every_point_exactly_once(
        tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    server = start_server(f"sqlite:///{db}", tmp_path)
    try:
        out = subprocess.run([sys.executable, str(SPOOL_ARRAY), "--db", str(db), "--url", server.url,
                              "--token", str(server.token), "--tasks", str(TASKS), "--points", str(POINTS),
                              "--http", str(HTTP), "--timeout", "300"],
                             env=child_env(), capture_output=True, text=True, timeout=400)
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["failed"] == [], out.stderr[-3000:]

        names = [f"task-{i}" for i in range(TASKS)] + [f"http-{j}" for j in range(HTTP)]
        # Task i logged values i * 1e6 + step for steps 0..POINTS-1.
        want = {name: (POINTS, POINTS, 0, POINTS - 1, i * 1e6 * POINTS) for i, name in enumerate(names)}
        wait_until(lambda: points_by_run(db) == want, timeout=120, interval=1.0)
        got = points_by_run(db)
        assert got == want, {name: (n, want.get(name)) for name, n in got.items() if want.get(name) != n}
        # Every task's latest value showed in runs/search, as the UI reads it.
        assert result["seen"] == TASKS + HTTP
    finally:
        server.stop()
    # The spooled tasks really went through the spool: one file each, all applied, none rejected.
    spool = tmp_path / "mlruns" / ".labtrack" / "spool"
    files = list(spool.rglob("*.jsonl"))
    assert len(files) >= TASKS
    assert not list(spool.rglob("*.rejected"))
    applied = dict(query(db, "SELECT spool_id, applied_offset FROM spool_progress"))
    assert {f.name: f.stat().st_size for f in files} == {f.name: applied.get(f.name) for f in files}
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
