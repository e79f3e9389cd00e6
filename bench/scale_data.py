"""Datasets for the scale benchmarks (issue 21), built once and cached by content hash.

Each builder writes a labtrack database through labtrack's own store (bulk inserts in the
server's code paths, never over HTTP) into ``bench/results/cache/<name>-<hash>/mlruns.db``.
The hash covers the builder's arguments and the source of the code that produces the rows,
so changing either builds afresh; an unchanged dataset is reused across benchmark runs.
A build writes into a temporary folder and renames it when complete: an interrupted build
leaves nothing that looks cached.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / "results" / "cache"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))


def cached_dataset(name: str, args: dict[str, Any], code: list[Callable[..., Any]],
                   build: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    """The folder holding ``name``'s database for ``args`` and what its build returned.

    ``build(folder)`` fills an empty folder and returns facts about the data (ids, counts) as a
    JSON-able dict; ``code`` lists the functions whose source determines the rows.
    """
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode())
    for fn in code:
        digest.update(inspect.getsource(fn).encode())
    folder = CACHE_DIR / f"{name}-{digest.hexdigest()[:16]}"
    facts = folder / "facts.json"
    if facts.exists():
        return folder, json.loads(facts.read_text())
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t = time.perf_counter()
    out = build(tmp)
    out["build_s"] = round(time.perf_counter() - t, 1)
    (tmp / "facts.json").write_text(json.dumps(out, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder, out


# -- one metric of 10,000,000 points ---------------------------------------------------

def _long_metric_rows(folder: Path, n_points: int, chunk: int = 250_000) -> dict[str, Any]:
    """One experiment with one run holding metric ``long`` of ``n_points`` points (steps 0..n-1),
    written by ``store.metrics.insert_series``: the points, the latest value and the min/max
    pyramid of ``store.downsample``, in the same transactions as the server's bulk path."""
    from bench_ui import _long_value

    from labtrack.entities import MetricSeries
    from labtrack.store.metrics import insert_series
    from labtrack.store.tracking import TrackingStore

    store = TrackingStore(f"sqlite:///{folder / 'mlruns.db'}")
    try:
        exp = store.create_experiment("scale-long-metric")
        t0 = 1_700_000_000_000
        run_id = store.create_run(exp, user_id="bench", start_time=t0, run_name="long-metric").info.run_id
        for a in range(0, n_points, chunk):
            steps = list(range(a, min(n_points, a + chunk)))
            series = MetricSeries("long", steps, [t0 + s for s in steps], [_long_value(s) for s in steps])
            store.write(lambda conn, series=series: insert_series(conn, run_id, [series]))
        store.update_run(run_id, status="FINISHED", end_time=t0 + n_points)
    finally:
        store.close()
    return {"experiment_id": str(exp), "run_id": run_id, "points": n_points, "key": "long"}


def long_metric_dataset(n_points: int = 10_000_000) -> tuple[Path, dict[str, Any]]:
    """A database with one run whose metric ``long`` has ``n_points`` points (cached).

    Returns (folder holding ``mlruns.db``, {"experiment_id", "run_id", "points", "key", "build_s"}).
    About 0.7 GB and 3-6 minutes on 2 busy cores for 10,000,000 points.
    """
    from bench_ui import _long_value

    from labtrack.store.migrate import HEAD

    # The rows come from the store's own code: its schema revision is part of the key.
    return cached_dataset("long-metric", {"points": n_points, "labtrack_schema": HEAD},
                          [_long_metric_rows, _long_value],
                          lambda folder: _long_metric_rows(folder, n_points))


# -- runs: the search, count and memory dataset (labtrack and an MLflow twin) -----------
# Each side's own code makes its empty schema (labtrack's open_engines, MLflow's
# SqlAlchemyStore and its alembic migrations); the rows then go in with sqlite3's
# executemany in the shapes the servers write, the same data on both sides.

LABTRACK_DB = "labtrack.db"
MLFLOW_DB = "mlflow.db"
T0 = 1_700_000_000_000  # epoch ms of the first run


def labtrack_schema(path: Path) -> None:
    """An empty labtrack database at ``path``, made by labtrack's own engine code."""
    from labtrack.store.engine import open_engines

    open_engines(f"sqlite:///{path}", readers=1).dispose()


def mlflow_schema(path: Path) -> None:
    """An empty MLflow database at ``path``, made by MLflow's own SqlAlchemyStore (alembic)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{path}", str(path.parent / "mlartifacts"))
    store.engine.dispose()


def _bulk(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -200000")
    return conn


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _finish(conn: sqlite3.Connection) -> None:
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() == "wal":
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


# -- runs: the search / count / memory dataset ----------------------------------------

def _run_rows(rng: random.Random, i: int, exp_id: int, n_params: int, n_metrics: int,
              n_tags: int, steps: int) -> dict[str, Any]:
    """One run's data, the same for both databases."""
    run_id = "%032x" % rng.getrandbits(128)
    start = T0 + i * 1000
    status = "RUNNING" if rng.random() < 0.02 else ("FAILED" if rng.random() < 0.05 else "FINISHED")
    end = None if status == "RUNNING" else start + rng.randrange(1000, 3_600_000)
    name = f"run-{i}"
    params = []
    for k in range(n_params):
        if k == 0:
            v = ("adam", "sgd", "rmsprop")[rng.randrange(3)]
        elif k == 1:
            v = str((1e-4, 3e-4, 1e-3, 3e-3, 1e-2)[rng.randrange(5)])
        else:
            v = str(rng.randrange(1000))
        params.append((f"p{k:02d}", v))
    tags = [("mlflow.runName", name)] + [(f"t{k}", f"v{rng.randrange(10)}") for k in range(n_tags)]
    metrics = []  # (key, [(step, timestamp, value)...]) with the last point latest
    for k in range(n_metrics):
        last = rng.random()
        hist = []
        for s in range(steps):
            # Decreasing towards ``last`` with noise: min, max and last differ when steps > 1.
            v = last + (steps - 1 - s) / steps + (rng.random() * 0.1 if s < steps - 1 else 0.0)
            hist.append((s, start + 10 * s, v))
        metrics.append((f"m{k}", hist))
    return {"run_id": run_id, "exp": exp_id, "name": name, "status": status, "start": start,
            "end": end, "params": params, "tags": tags, "metrics": metrics}


def build_runs(folder: Path, runs: int, params: int, metrics: int, tags: int, experiments: int,
               other_runs: int, steps: int, seed: int) -> dict[str, Any]:
    """labtrack.db and mlflow.db holding the same experiments and runs.

    Experiment 1 (``scale-000``) holds ``runs`` runs; experiments 2..``experiments``
    hold ``other_runs`` each; experiment 0 is the empty Default both servers make.
    Params ``p00`` (adam|sgd|rmsprop), ``p01`` (five learning rates), ``p02``...
    (0..999); metrics ``m0``... uniform in [0, 1) at their last step, ``steps`` points
    each; tags ``mlflow.runName`` and ``t0``... (v0..v9).  About 2% RUNNING, 5% FAILED.
    """
    rng = random.Random(seed)
    lt_path, ml_path = folder / LABTRACK_DB, folder / MLFLOW_DB
    labtrack_schema(lt_path)
    mlflow_schema(ml_path)
    lt, ml = _bulk(lt_path), _bulk(ml_path)
    lm_cols = _columns(lt, "latest_metrics")
    with_steps = "min_step" in lm_cols and "max_step" in lm_cols

    exps = [(e, f"scale-{e - 1:03d}", f"mlflow-artifacts:/{e}") for e in range(1, experiments + 1)]
    lt.execute("BEGIN")
    ml.execute("BEGIN")
    lt.execute("INSERT OR IGNORE INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
               "creation_time, last_update_time) VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', ?, ?)",
               (T0, T0))
    lt.executemany("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                   "creation_time, last_update_time) VALUES (?, ?, ?, 'active', ?, ?)",
                   [(e, n, a, T0, T0) for e, n, a in exps])
    ml.executemany("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                   "creation_time, last_update_time) VALUES (?, ?, ?, 'active', ?, ?)",
                   [(e, n, a, T0, T0) for e, n, a in exps])

    plan = [1] * runs + [e for e in range(2, experiments + 1) for _ in range(other_runs)]
    chunk = 2000
    next_series = 1
    lm_insert = ("INSERT INTO latest_metrics (run_uuid, key, value, is_nan, timestamp, step, min_value, "
                 "max_value" + (", min_step, max_step" if with_steps else "") + ") VALUES (?, ?, ?, 0, ?, ?, ?, ?"
                 + (", ?, ?" if with_steps else "") + ")")
    for c0 in range(0, len(plan), chunk):
        items = [_run_rows(rng, i, plan[i], params, metrics, tags, steps)
                 for i in range(c0, min(c0 + chunk, len(plan)))]
        lt_runs, ml_runs, prm, tg, pts_lt, pts_ml, lm_lt, lm_ml = [], [], [], [], [], [], [], []
        series: list[tuple[int, str, str]] = []
        for r in items:
            rid, e = r["run_id"], r["exp"]
            uri = f"mlflow-artifacts:/{e}/{rid}/artifacts"
            lt_runs.append((rid, e, r["name"], "bench", r["status"], r["start"], r["end"], uri,
                            r["end"] or r["start"]))
            ml_runs.append((rid, r["name"], r["status"], r["start"], r["end"], uri, e))
            prm += [(rid, k, v) for k, v in r["params"]]
            tg += [(rid, k, v) for k, v in r["tags"]]
            for key, hist in r["metrics"]:
                sid = next_series
                next_series += 1
                series.append((sid, rid, key))
                for s, t, v in hist:
                    pts_lt.append((sid, s, t, v))
                    pts_ml.append((key, v, t, rid, s))
                s, t, v = hist[-1]
                lo = min(hist, key=lambda p: p[2])
                hi = max(hist, key=lambda p: p[2])
                lm_lt.append((rid, key, v, t, s, lo[2], hi[2]) + ((lo[0], hi[0]) if with_steps else ()))
                lm_ml.append((key, v, t, s, rid))
        lt.executemany("INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, end_time, "
                       "lifecycle_stage, artifact_uri, deleted_time, last_update_time) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, NULL, ?)", lt_runs)
        lt.executemany("INSERT INTO params (run_uuid, key, value) VALUES (?, ?, ?)", prm)
        lt.executemany("INSERT INTO tags (run_uuid, key, value) VALUES (?, ?, ?)", tg)
        # labtrack keys a run's metric by an integer series id (schema.metric_series).
        lt.executemany("INSERT INTO metric_series (series_id, run_uuid, key) VALUES (?, ?, ?)", series)
        lt.executemany("INSERT INTO metrics (series_id, step, timestamp, value, is_nan) "
                       "VALUES (?, ?, ?, ?, 0)", pts_lt)
        lt.executemany(lm_insert, lm_lt)
        # Rows of the shape MLflow's create_run, log_batch and update_run_info write.
        ml.executemany("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
                       "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, "
                       "experiment_id, deleted_time) VALUES (?, ?, 'UNKNOWN', '', '', 'bench', ?, ?, ?, '', "
                       "'active', ?, ?, NULL)", ml_runs)
        ml.executemany("INSERT INTO params (run_uuid, key, value) VALUES (?, ?, ?)", prm)
        ml.executemany("INSERT INTO tags (run_uuid, key, value) VALUES (?, ?, ?)", tg)
        ml.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                       "VALUES (?, ?, ?, ?, ?, 0)", pts_ml)
        ml.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                       "VALUES (?, ?, ?, ?, 0, ?)", lm_ml)
    lt.execute("COMMIT")
    ml.execute("COMMIT")
    _finish(lt)
    _finish(ml)
    return {"experiments": {n: str(e) for e, n, _ in exps}, "main_experiment_id": "1",
            "main_experiment": "scale-000", "total_runs": len(plan),
            "params": [f"p{k:02d}" for k in range(params)], "metrics": [f"m{k}" for k in range(metrics)],
            "tags": ["mlflow.runName"] + [f"t{k}" for k in range(tags)]}


def runs_dataset(runs: int = 100_000, params: int = 20, metrics: int = 10, tags: int = 5,
                 experiments: int = 100, other_runs: int = 100, steps: int = 1,
                 seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """(folder holding ``labtrack.db`` and ``mlflow.db``, facts): see build_runs.

    The hash also covers labtrack's schema revision and MLflow's version, whose
    schemas the two databases are made with.  100,000 runs (+ 9,900 in the other
    experiments): a few minutes once on 2 busy cores, about 1 GB for both files.
    """
    from importlib.metadata import version

    from labtrack.store.migrate import HEAD

    args = {"runs": runs, "params": params, "metrics": metrics, "tags": tags, "experiments": experiments,
            "other_runs": other_runs, "steps": steps, "seed": seed,
            "labtrack_schema": HEAD, "mlflow": version("mlflow")}
    return cached_dataset("runs", args, [build_runs, _run_rows, labtrack_schema, mlflow_schema, _bulk, _finish],
                          lambda folder: build_runs(folder, runs, params, metrics, tags, experiments,
                                                    other_runs, steps, seed))


def fresh_copy(folder: Path, name: str, dest: Path) -> Path:
    """A private copy of a cached database, for a server that may write to it."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    shutil.copyfile(folder / name, target)
    return target



if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    print(long_metric_dataset(n))
