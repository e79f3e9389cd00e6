"""Migration 0009 (metric points keyed by a series id) on millions of points: points/s.

    python bench/bench_series_migration.py [--runs 30] [--keys 10] [--steps 10000] [--url URL]

Builds a database at revision 0008 (SQLite in a scratch folder, or the empty database
``--url`` names, e.g. a PostgreSQL one) holding runs × keys × steps points and their
min/max summaries at three levels, generated set-based in SQL, then times
``migrate.upgrade`` to 0009: wall seconds, this process's CPU seconds (SQLite works in
this process; PostgreSQL in its server), points per second, and bytes before and after
(SQLite).  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from sqlalchemy import create_engine, text  # noqa: E402

from labtrack.store import migrate  # noqa: E402

T0 = 1_700_000_000_000


def _fill(conn: Any, runs: int, keys: int, steps: int) -> None:
    pg = conn.dialect.name == "postgresql"
    conn.execute(text("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                      "creation_time, last_update_time) VALUES (1, 'mig', '', 'active', 0, 0)"))
    for r in range(runs):
        conn.execute(text("INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, lifecycle_stage, "
                          "artifact_uri, last_update_time) VALUES (:r, 1, :n, 'b', 'FINISHED', :stage, '', 0)"),
                     {"r": f"{r:032x}", "n": f"r{r}", "stage": "deleted" if r % 10 == 9 else "active"})
    series = ("generate_series(0, :n - 1) AS s(x)" if pg else
              "(WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < :n - 1) SELECT x FROM s) AS s")
    key_rows = " UNION ALL ".join(f"SELECT 'train/metric_{k}' AS key" for k in range(keys))
    conn.execute(text(
        "INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan) "
        f"SELECT r.run_uuid, k.key, s.x, {T0} + 10 * s.x, ((s.x * 7919 + length(k.key)) % 100003) / 100003.0, "
        f"{'false' if pg else '0'} FROM runs r CROSS JOIN ({key_rows}) AS k CROSS JOIN {series} "
        "ORDER BY r.run_uuid, k.key, s.x"), {"n": steps})
    for level, width in enumerate((16, 128, 1024)):
        conn.execute(text(
            "INSERT INTO metric_summaries (run_uuid, key, level, bucket, min_value, min_step, min_timestamp, "
            f"max_value, max_step, max_timestamp) SELECT run_uuid, key, {level}, step / {width}, min(value), "
            f"min(step), min(timestamp), max(value), max(step), max(timestamp) FROM metrics "
            f"GROUP BY run_uuid, key, step / {width}"))


def _bytes(path: Path | None) -> int | None:
    if path is None:
        return None
    return sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--url", default=None, help="an empty database (default: SQLite in a scratch folder)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="series-mig-") as tmp:
        path = None if a.url else Path(tmp) / "m.db"
        engine = create_engine(a.url or f"sqlite:///{path}")
        try:
            with engine.connect() as conn:
                migrate.upgrade(conn, "0008")
            t = time.perf_counter()
            with engine.begin() as conn:
                _fill(conn, a.runs, a.keys, a.steps)
            fill_s = time.perf_counter() - t
            with engine.connect() as conn:
                points = conn.execute(text("SELECT COUNT(*) FROM metrics")).scalar_one()
                sums = conn.execute(text("SELECT COUNT(*) FROM metric_summaries")).scalar_one()
            before = _bytes(path)
            t, cpu = time.perf_counter(), time.process_time()
            with engine.connect() as conn:
                migrate.upgrade(conn, "0009")  # this migration alone, not the ones after it
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            with engine.connect() as conn:
                assert migrate.current_revision(conn) == "0009"
                after_points = conn.execute(text("SELECT COUNT(*) FROM metrics")).scalar_one()
                after_sums = conn.execute(text("SELECT COUNT(*) FROM metric_summaries")).scalar_one()
            if path is not None:
                with engine.connect() as conn:
                    conn.exec_driver_sql("VACUUM")
        finally:
            engine.dispose()
        print(json.dumps({
            "backend": engine.dialect.name, "points": points, "summary_rows": sums,
            "points_after": after_points, "summary_rows_after": after_sums, "fill_s": round(fill_s, 1),
            "migrate_wall_s": round(wall, 2), "migrate_process_cpu_s": round(cpu, 2),
            "points_per_s": round(points / wall), "bytes_before": before, "bytes_after_vacuum": _bytes(path),
            "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
