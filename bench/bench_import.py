"""Importing an MLflow database: `labtrack import` next to the usual MlflowClient copy loop.

    python bench/bench_import.py            # 1,000 runs, 1,000,000 metric points
    python bench/bench_import.py --quick    # 100 runs, 100,000 points: a smoke run

The source is an MLflow 3 SQLite database: its schema and experiment made by mlflow's
own SqlAlchemyStore, its runs, params, tags and metric histories inserted into MLflow's
tables as rows of exactly the shape ``create_run``, ``log_batch`` and
``update_run_info`` write (logging a million points through mlflow would take longer
than both copies together).

Both copies run in the same process run, one after the other, into fresh labtrack
databases:

- **labtrack import**: ``python -m labtrack import SOURCE --to labtrack.db``, wall time
  of the whole command (start-up included);
- **MlflowClient copy loop**, the usual workaround (what mlflow-export-import does):
  a ``MlflowClient`` reads the source database directly, another writes to a
  ``labtrack server``: ``create_run``, one ``log_batch`` of params and tags, every
  history read with ``get_metric_history`` and written back in ``log_batch`` calls
  of 1,000 points, ``set_terminated``.

Both copies are checked to hold every point.  CPU seconds are reported beside wall
time: on a shared, loaded machine they are the steadier figure. Results go to ``bench/results/import.json``;
the ratio reads "how many times faster `labtrack import` is".  Timings never gate tests.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, machine, quiet_env, scratch, start_labtrack, table, write_json  # noqa: E402

KEYS = ("loss", "accuracy")
T0 = 1_700_000_000_000


def build_source(path: Path, runs: int, points: int) -> dict[str, int]:
    """An MLflow database of ``runs`` runs holding ``points`` metric points in all."""
    import uuid

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{path}", str(path.parent / "mlruns"))  # MLflow's own schema
    exp = int(store.create_experiment("bench-import"))
    store.engine.dispose()
    per_key = points // runs // len(KEYS)
    ids = [uuid.uuid4().hex for _ in range(runs)]
    conn = sqlite3.connect(path)
    with conn:
        # Rows of the shape MLflow's create_run, log_batch and update_run_info write.
        conn.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
            "VALUES (?, ?, 'UNKNOWN', '', '', 'bench', 'FINISHED', ?, ?, '', 'active', ?, ?, NULL)",
            [(r, f"r{i}", T0 + i, T0 + i + 1000, str(path.parent / "mlruns" / str(exp) / r / "artifacts"), exp)
             for i, r in enumerate(ids)])
        conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                         [(k, v, r) for i, r in enumerate(ids) for k, v in (("lr", str(i / 1000)), ("seed", str(i)))])
        conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                         [(k, v, r) for i, r in enumerate(ids) for k, v in (("mlflow.runName", f"r{i}"),
                                                                             ("sweep", "bench"))])
        for run_id in ids:
            rows = [(k, 1.0 / (s + 1) + j, T0 + s, run_id, s, 0) for j, k in enumerate(KEYS) for s in range(per_key)]
            conn.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             [(k, 1.0 / per_key + j, T0 + per_key - 1, per_key - 1, 0, run_id)
                              for j, k in enumerate(KEYS)])
    conn.close()
    return {"runs": runs, "points": per_key * len(KEYS) * runs}


def count_points(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])
    finally:
        conn.close()


def run_import(source: Path, target: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABTRACK_")}
    t, cpu = time.perf_counter(), _children_cpu_s()
    done = subprocess.run([sys.executable, "-m", "labtrack", "import", str(source), "--to", str(target)],
                          capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"labtrack import failed:\n{done.stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": _children_cpu_s() - cpu, "points": count_points(target),
            "summary": done.stdout.splitlines()[0]}


def _children_cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _own_cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def copy_loop(source: Path, workdir: Path) -> dict[str, Any]:
    """The MlflowClient copy loop into a labtrack server."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    # No "View run at ..." line per run (and no get_run request behind each one).
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    server = start_labtrack(workdir, token=None)
    try:
        src = MlflowClient(tracking_uri=f"sqlite:///{source}")
        dst = MlflowClient(tracking_uri=server.url)
        t, own, served = time.perf_counter(), _own_cpu_s(), server.cpu_s()
        for exp in src.search_experiments():
            if exp.name == "Default":
                continue
            new_exp = dst.create_experiment(exp.name, tags=exp.tags)
            page = None
            while True:
                runs = src.search_runs([exp.experiment_id], max_results=1000, page_token=page)
                for run in runs:
                    info = run.info
                    tags = {k: v for k, v in run.data.tags.items()}
                    created = dst.create_run(new_exp, start_time=info.start_time, tags=tags,
                                             run_name=info.run_name)
                    run_id = created.info.run_id
                    dst.log_batch(run_id, params=[Param(k, v) for k, v in run.data.params.items()],
                                  tags=[RunTag(k, v) for k, v in tags.items()])
                    for key in run.data.metrics:
                        history = src.get_metric_history(info.run_id, key)
                        points = [Metric(m.key, m.value, m.timestamp, m.step) for m in history]
                        for i in range(0, len(points), 1000):
                            dst.log_batch(run_id, metrics=points[i:i + 1000])
                    dst.set_terminated(run_id, info.status, info.end_time)
                page = runs.token
                if not page:
                    break
        wall = time.perf_counter() - t
        client_cpu, server_cpu = _own_cpu_s() - own, server.cpu_s() - served
    finally:
        server.stop()
    return {"wall_s": wall, "cpu_s": client_cpu + server_cpu, "client_cpu_s": client_cpu,
            "server_cpu_s": server_cpu, "points": count_points(workdir / "mlruns.db")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100 runs and 100,000 points")
    ap.add_argument("--output", default="import.json", help="file name under bench/results/")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.points = 100, 100_000
    quiet_env()
    with scratch("lt-bench-import-") as work:
        source = work / "mlflow.db"
        t = time.perf_counter()
        sizes = build_source(source, args.runs, args.points)
        print(f"source: {sizes['runs']:,} runs, {sizes['points']:,} points ({time.perf_counter() - t:.0f} s to build)",
              flush=True)
        ours = run_import(source, work / "import" / "labtrack.db")
        print(f"labtrack import: {ours['wall_s']:.1f} s", flush=True)
        (work / "loop").mkdir()
        theirs = copy_loop(source, work / "loop")
        print(f"MlflowClient copy loop: {theirs['wall_s']:.1f} s", flush=True)
    problems = [f"{name} holds {r['points']:,} points, not {sizes['points']:,}"
                for name, r in (("labtrack import", ours), ("copy loop", theirs)) if r["points"] != sizes["points"]]
    rows = [
        Row("copy wall time", "s", theirs["wall_s"], ours["wall_s"], note="MLflow column: the MlflowClient copy loop"),
        Row("copy CPU time", "s", theirs["cpu_s"], ours["cpu_s"],
            note="the import process; the copy loop's client and labtrack server together"),
        Row("points copied per second", "points/s", sizes["points"] / theirs["wall_s"],
            sizes["points"] / ours["wall_s"], higher_is_better=True),
    ]
    print(table(rows))
    for p in problems:
        print(f"PROBLEM: {p}")
    path = write_json(args.output, {"machine": machine(), "sizes": sizes, "labtrack_import": ours,
                                    "mlflowclient_copy_loop": theirs, "ratio": theirs["wall_s"] / ours["wall_s"],
                                    "rows": [r.to_json() for r in rows], "problems": problems})
    print(f"results: {path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
