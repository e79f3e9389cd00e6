"""Issue 21 ("ten times the scale"), the ingest part: figures measured in one run on this machine.

    python bench/scale_ingest.py [--quick] [--only ingest,storage,spool] [--server-cpus 0 --task-cpus 1]

* **ingest**: ``lt.log_metric`` in a loop in a fresh process, end to end into SQLite
  through the server the client starts itself (zero setup), from the first call until
  ``flush()`` returns; then the points are counted in the database file (nothing lost).
  The anchor is raw ``sqlite3`` ``executemany`` of the same rows (series id, step,
  timestamp, value, is_nan) into a table of labtrack's own ``metrics`` DDL, with the
  server's pragmas (WAL, synchronous=NORMAL), 1,000 rows a transaction, measured before
  and after labtrack in the same run.  Target: ≥ 1,000,000 points/s, or ≥ 90% of the anchor.
* **storage**: the same points (runs × keys × steps) written by labtrack's server path
  (``log_batch`` with series) and by MLflow's own ``SqlAlchemyStore.log_batch`` (1,000 a
  call, time-boxed); bytes per point from SQLite's ``dbstat`` (tables and their indexes),
  with what the series ids, the latest values and the min/max summaries cost.  Target: ≤ ¼ of
  MLflow's.
* **spool**: bench/spool_array.py against a ``labtrack server``: N job-array tasks logging
  through the spool and M HTTP writers at once; every point counted in the database
  (exactly once), the time until every task's latest value shows in ``runs/search``,
  each task's lag from its last write to the UI seeing it, and the server's peak RSS.
  ``--server-cpus``/``--task-cpus`` place the server and the array on separate CPUs, as a
  login node and compute nodes are (bench/spool_array.py's docstring).

``figures(quick)`` returns one dict per figure (figure, target, anchor, measured, unit,
ratio, note) for bench/bench_scale.py; run alone it prints them and writes
``bench/results/scale_ingest.json``.  Timings never gate tests
(tests/reliability/test_spool_scale.py checks exactly-once at a reduced size).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for p in (str(ROOT / "src"), str(BENCH_DIR)):
    if p not in sys.path:
        sys.path.insert(0, p)

from common import machine, quiet_env, scratch, start_labtrack, write_json  # noqa: E402
from cpu_affinity import parse_cpus  # noqa: E402

SIZES = {  # quick, full
    "ingest_points": (200_000, 2_000_000),
    "storage": ((2, 5, 5_000), (10, 10, 5_000)),  # runs, keys, points per key
    "spool": ((32, 2_000, 4), (512, 10_000, 64)),  # tasks, points per task, HTTP writers
}
MLFLOW_BUDGET_S = 600.0

LT_LOOP = textwrap.dedent("""
    import json, sys, time
    import labtrack as lt
    uri, n = sys.argv[1], int(sys.argv[2])
    lt.set_tracking_uri(uri)
    run = lt.start_run()  # finds or starts the server: not timed
    t0 = time.perf_counter()
    for i in range(n):
        lt.log_metric("m", float(i), step=i)
    t_loop = time.perf_counter()
    lt.flush()
    t_flush = time.perf_counter()
    lt.end_run()
    print(json.dumps({"run_id": run.info.run_id, "loop_s": t_loop - t0, "flush_s": t_flush - t0}))
""")


def _row(figure: str, target: str, anchor: float | None, measured: float | None, unit: str,
         ratio: float | None, note: str = "") -> dict[str, Any]:
    return {"figure": figure, "target": target, "anchor": anchor, "measured": measured, "unit": unit,
            "ratio": None if ratio is None else round(ratio, 3), "note": note}


def _child_env() -> dict[str, str]:
    drop = ("LABTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI", "LABTRACK_DATABASE", "LABTRACK_ASYNC_LOGGING",
            "LABTRACK_SPOOL", "SLURM_JOB_ID", "LABTRACK_TRACKING_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    return env


# -- ingest: lt.log_metric end to end vs raw executemany -------------------------------------

def raw_executemany(ddl: str, folder: Path, series_id: int, n: int, chunk: int = 1000) -> float:
    """Points/s of sqlite3 executemany of the loop's rows (keyed by one series id, as labtrack
    keys them) into a fresh table of ``ddl``."""
    db = folder / f"raw-{time.monotonic_ns()}.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(ddl)
        ts = int(time.time() * 1000)
        rows = [(series_id, i, ts, float(i), 0) for i in range(n)]
        sql = "INSERT INTO metrics (series_id, step, timestamp, value, is_nan) VALUES (?, ?, ?, ?, ?)"
        t0 = time.perf_counter()
        for a in range(0, n, chunk):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows[a:a + chunk])
            conn.execute("COMMIT")
        return n / (time.perf_counter() - t0)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def _stop_owner(db: Path) -> None:
    from labtrack.ownership import read_owner

    record = read_owner(db)
    if record is None:
        return
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(150):
        try:
            os.kill(record.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(record.pid, signal.SIGKILL)


def lt_loop(folder: Path, n: int) -> dict[str, Any]:
    """One timed loop in a fresh process and database; the points are counted in the file."""
    folder.mkdir(parents=True)
    db = folder / "mlruns.db"
    try:
        out = subprocess.run([sys.executable, "-c", LT_LOOP, f"sqlite:///{db}", str(n)], cwd=folder,
                             env=_child_env(), capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        res = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        _stop_owner(db)
    conn = sqlite3.connect(db)
    try:
        res["stored"] = conn.execute("SELECT COUNT(*) FROM metrics JOIN metric_series USING (series_id) "
                                     "WHERE run_uuid = ?", (res["run_id"],)).fetchone()[0]
        res["ddl"] = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'metrics'").fetchone()[0]
    finally:
        conn.close()
    res["points_per_s"] = n / res["flush_s"]
    return res


def ingest_figures(quick: bool, work: Path) -> list[dict[str, Any]]:
    n = SIZES["ingest_points"][0 if quick else 1]
    rounds = 1 if quick else 2
    lt_runs, raw_runs = [], []
    for k in range(rounds):
        res = lt_loop(work / f"ingest-{k}", n)
        lt_runs.append(res)
        # The anchor on either side of each labtrack run: a change of load weighs on both.
        raw_runs.append(raw_executemany(res["ddl"], work, res["run_id"], n))
    raw_runs.insert(0, raw_executemany(lt_runs[0]["ddl"], work, lt_runs[0]["run_id"], n))
    lost = sum(n - r["stored"] for r in lt_runs)
    measured = sum(r["points_per_s"] for r in lt_runs) / len(lt_runs)
    anchor = sum(raw_runs) / len(raw_runs)
    loop_rate = sum(n / r["loop_s"] for r in lt_runs) / len(lt_runs)
    note = (f"{n:,} points a run, {rounds} run(s); raw executemany "
            f"{', '.join(f'{r:,.0f}' for r in raw_runs)} points/s; the loop alone returns at "
            f"{loop_rate:,.0f} calls/s; points lost: {lost}")
    rows = [_row("ingest: lt.log_metric loop, end to end into SQLite",
                 "≥ 1,000,000 points/s or ≥ 0.9 × raw executemany", round(anchor), round(measured),
                 "points/s", measured / anchor, note)]
    costs = stage_costs(min(n, 500_000), work)
    LAST_RECORD["ingest"] = {"labtrack": [{k: v for k, v in r.items() if k != "ddl"} for r in lt_runs],
                             "raw_points_per_s": raw_runs, "stage_ns_per_point": costs}
    raw_ns = costs.pop("anchor: raw executemany of the same rows")
    client = sum(v for k, v in costs.items() if k.startswith("client"))
    server = sum(v for k, v in costs.items() if k.startswith("server"))
    for i, (name, ns) in enumerate(costs.items()):
        rows.append(_row(f"  profile: {name}", "", round(raw_ns), round(ns), "CPU ns/point", raw_ns / ns,
                         "" if i else f"where the CPU of the loop goes, stage by stage, {min(n, 500_000):,} "
                         "points in this process (bench/scale_ingest.py stage_costs); anchor: raw "
                         "executemany's CPU ns/point"))
    rows[0]["note"] += (f"; CPU a point: client {client:,.0f} ns (one core), server {server:,.0f} ns (the other), "
                        f"raw executemany {raw_ns:,.0f} ns: the pipeline's ceiling is 1e9/max(client, server) = "
                        f"{1e9 / max(client, server):,.0f} points/s with two idle cores")
    return rows


def stage_costs(n: int, work: Path) -> dict[str, float]:
    """CPU ns per point of each stage of the ingest path, in this process (the profile of a miss).

    Client: the ``lt.log_metric`` call (queued to a stub), packing the queue into
    ``runs/log-series`` bodies.  Server: unpacking and checking the columns, then, inside one
    write transaction, the points' insert, the latest values, the min/max summaries.  Raw:
    ``executemany`` of the same rows into the same table.
    """
    import labtrack as lt
    import labtrack.client.fluent as fluent
    from labtrack import columns
    from labtrack.client import sender as snd
    from labtrack.client.client import Client
    from labtrack.entities import MetricSeries
    from labtrack.store import downsample, metrics
    from labtrack.store.metric_series import series_ids
    from labtrack.store.tracking import TrackingStore
    from labtrack.store.validation import check_series

    class Stub:
        def __init__(self) -> None:
            self.items: list[tuple] = []

        def put(self, item: tuple) -> None:
            self.items.append(item)

    out: dict[str, float] = {}
    client = Client.__new__(Client)
    client._sender = stub = Stub()
    saved = fluent._state.client, getattr(fluent._local, "stack", None)

    class _Info:
        run_id = "0" * 32

    class _Run:
        info = _Info()

    fluent._state.client, fluent._local.stack = client, [_Run()]
    try:
        t = time.process_time()
        for i in range(n):
            lt.log_metric("m", float(i), step=i)
        out["client: lt.log_metric call (queued)"] = time.process_time() - t
    finally:
        fluent._state.client = saved[0]
        if saved[1] is None:
            del fluent._local.stack  # as it was: later forks (the spool array) start with no run
        else:
            fluent._local.stack = saved[1]
    t = time.process_time()
    bodies, batch = [], snd._Batch(_Info.run_id, True)
    for item in stub.items:
        if not batch.add(item):
            bodies.append(batch.body())
            batch = snd._Batch(_Info.run_id, True)
            batch.add(item)
    bodies.append(batch.body())
    out["client: packing into log-series bodies"] = time.process_time() - t
    t = time.process_time()
    series = []
    for body in bodies:
        msg = json.loads(body)
        series += check_series([MetricSeries(x["key"], columns.column(x["steps"], columns.STEP),
                                              columns.column(x["timestamps"], columns.STEP),
                                              columns.column(x["values"], columns.VALUE)) for x in msg["series"]])
    out["server: JSON + unpack + check columns"] = time.process_time() - t
    folder = work / "stages"
    folder.mkdir()
    store = TrackingStore(f"sqlite:///{folder / 'mlruns.db'}")
    try:
        run_id = store.create_run(store.create_experiment("stages"), user_id="b", start_time=0,
                                  run_name="s", tags={}).info.run_id
        ids = store.write(lambda c: series_ids(c, run_id, ["m"]))
        stages = (("server: insert points (block INSERT)", lambda c, s_: metrics._insert_finite(c, ids["m"], s_)),
                  ("server: latest value", lambda c, s_: metrics._update_latest(c, run_id, [s_])),
                  ("server: min/max summaries", lambda c, s_: downsample.update_summaries(c, ids, [s_])))

        def op(conn: Any) -> None:
            for name, fn in stages:
                t = time.process_time()
                for s_ in series:
                    fn(conn, s_)
                out[name] = time.process_time() - t
        t = time.process_time()
        store.write(op)
        out["server: commit and the writer's hand-offs"] = time.process_time() - t - sum(
            out[name] for name, _ in stages)
        ddl = store.read(lambda c: c.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'metrics'").scalar())
    finally:
        store.close()
    t = time.process_time()
    raw_executemany(ddl, work, ids["m"], n)
    out["anchor: raw executemany of the same rows"] = time.process_time() - t
    return {k: v / n * 1e9 for k, v in out.items()}


# -- storage: bytes per point vs MLflow's store --------------------------------------------------

def _points(runs: int, keys: int, per_key: int) -> list[tuple[int, str, list[int], list[int], list[float]]]:
    t0 = 1_700_000_000_000
    out = []
    for r in range(runs):
        for k in range(keys):
            steps = list(range(per_key))
            out.append((r, f"train/metric_{k}", steps, [t0 + 10 * s for s in steps],
                        [((s * 7919 + k * 104729 + r) % 100003) / 100003.0 for s in steps]))
    return out


def table_bytes(db: Path) -> dict[str, int]:
    """Bytes of each table with its indexes (SQLite's dbstat), after a checkpoint."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
        sizes: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            sizes[table] = sizes.get(table, 0) + size
        return sizes
    finally:
        conn.close()


def _index_bytes(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return sum(size for (size,) in conn.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = ?)", (table,)) if size)
    finally:
        conn.close()


def labtrack_store(folder: Path, data: list[Any]) -> tuple[Path, float]:
    from labtrack.entities import MetricSeries
    from labtrack.store.tracking import TrackingStore

    folder.mkdir(parents=True)
    db = folder / "mlruns.db"
    store = TrackingStore(f"sqlite:///{db}")
    exp = store.create_experiment("storage")
    run_ids: dict[int, str] = {}
    t = time.perf_counter()
    for r, key, steps, tss, values in data:
        if r not in run_ids:
            run_ids[r] = store.create_run(exp, user_id="bench", start_time=0, run_name=f"r{r}", tags={}).info.run_id
        for a in range(0, len(steps), 10_000):
            store.log_batch(run_ids[r], series=[MetricSeries(key, steps[a:a + 10_000], tss[a:a + 10_000],
                                                             values[a:a + 10_000])])
    return db, time.perf_counter() - t


def mlflow_store(folder: Path, data: list[Any], budget_s: float) -> tuple[Path, int, float]:
    """MLflow's own SqlAlchemyStore, log_batch of 1,000 points a call; stops after ``budget_s``."""
    from mlflow.entities import Metric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder.mkdir(parents=True)
    db = folder / "mlflow.db"
    store = SqlAlchemyStore(f"sqlite:///{db}", str(folder / "artifacts"))
    exp = store.create_experiment("storage")
    run_ids: dict[int, str] = {}
    done = 0
    t = time.perf_counter()
    for r, key, steps, tss, values in data:
        if r not in run_ids:
            run_ids[r] = store.create_run(exp, "bench", 0, [], f"r{r}").info.run_id
        for a in range(0, len(steps), 1000):
            store.log_batch(run_ids[r], [Metric(key, v, ts, s) for s, ts, v in
                                         zip(steps[a:a + 1000], tss[a:a + 1000], values[a:a + 1000])], [], [])
            done += len(steps[a:a + 1000])
            if time.perf_counter() - t > budget_s:
                return db, done, time.perf_counter() - t
    store.engine.dispose()
    return db, done, time.perf_counter() - t


METRIC_TABLES = ("metrics", "metric_series", "latest_metrics", "metric_summaries")


def storage_figures(quick: bool, work: Path) -> list[dict[str, Any]]:
    runs, keys, per_key = SIZES["storage"][0 if quick else 1]
    data = _points(runs, keys, per_key)
    n = runs * keys * per_key
    lt_db, lt_s = labtrack_store(work / "storage-lt", data)
    lt = table_bytes(lt_db)
    lt_bytes = sum(lt.get(t, 0) for t in METRIC_TABLES)
    lt_pp = lt_bytes / n
    ml_db, ml_n, ml_s = mlflow_store(work / "storage-mlflow", data, MLFLOW_BUDGET_S)
    ml = table_bytes(ml_db)
    ml_pp = (ml.get("metrics", 0) + ml.get("latest_metrics", 0)) / ml_n
    per = {t: lt.get(t, 0) / n for t in METRIC_TABLES}
    idx = {t: _index_bytes(lt_db, t) / n for t in METRIC_TABLES}
    got = "all" if ml_n == n else f"{ml_n:,} of {n:,} points in {MLFLOW_BUDGET_S:.0f} s"
    note = (f"{runs} runs × {keys} keys × {per_key:,} steps = {n:,} points; labtrack per point: points "
            f"{per['metrics']:.1f} B (keyed by an integer series id; a WITHOUT ROWID table, no separate "
            f"index), series ids {per['metric_series']:.2f} B, min/max summaries "
            f"{per['metric_summaries']:.1f} B (of which index {idx['metric_summaries']:.1f}), latest values "
            f"{per['latest_metrics']:.2f} B; MLflow's metrics table {ml.get('metrics', 0) / ml_n:.1f} B incl. "
            f"its indexes {_index_bytes(ml_db, 'metrics') / ml_n:.1f} B ({got}); whole files "
            f"{lt_db.stat().st_size / n:.1f} vs {ml_db.stat().st_size / ml_n:.1f} B/point; written at "
            f"{n / lt_s:,.0f} (labtrack store) vs {ml_n / ml_s:,.0f} (MLflow store) points/s")
    return [_row("storage: bytes on disk per metric point (tables + indexes)", "≤ ¼ of MLflow's (ratio ≥ 4)",
                 round(ml_pp, 1), round(lt_pp, 1), "bytes/point", ml_pp / lt_pp, note)]


# -- spool: a job array through the spool plus HTTP writers ------------------------------------

def spool_counts(db: Path, points: int) -> tuple[int, int, list[str]]:
    """(runs with every point exactly once, runs, what is wrong with the others)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("""SELECT r.name, COUNT(m.step), COUNT(DISTINCT m.step), MIN(m.step), MAX(m.step)
                               FROM runs r LEFT JOIN metric_series ms ON ms.run_uuid = r.run_uuid AND ms.key = 'loss'
                               LEFT JOIN metrics m ON m.series_id = ms.series_id
                               GROUP BY r.run_uuid""").fetchall()
    finally:
        conn.close()
    bad = [f"{name}: {n} points, {d} steps, {lo}..{hi}" for name, n, d, lo, hi in rows
           if (n, d, lo, hi) != (points, points, 0, points - 1)]
    return len(rows) - len(bad), len(rows), bad


def spool_applied(db: Path) -> bool:
    """Whether every spool file of ``db`` is applied to its end (cheap enough to poll, unlike counting)."""
    files = {}
    for f in (db.parent / "mlruns" / ".labtrack" / "spool").rglob("*.jsonl"):
        try:
            files[f.name] = f.stat().st_size
        except FileNotFoundError:  # retired (moved to done/) meanwhile
            return False
    conn = sqlite3.connect(db, timeout=30)
    try:
        applied = dict(conn.execute("SELECT spool_id, applied_offset FROM spool_progress").fetchall())
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return bool(files) and all(applied.get(name) == size for name, size in files.items())


def replay_ingest(spool: Path, folder: Path) -> tuple[float, float, int]:
    """(seconds, CPU seconds, points) to apply a copy of the array's spool files to a fresh database, in this
    process with nothing else running: the server's side of the spool alone."""
    import shutil

    from labtrack.spool import spool_folder
    from labtrack.store.ingest import SpoolIngest
    from labtrack.store.tracking import TrackingStore

    db = folder / "mlruns.db"
    target = spool_folder(db)
    target.mkdir(parents=True)
    for f in spool.rglob("*.jsonl"):
        shutil.copyfile(f, target / f.name)
    store = TrackingStore(f"sqlite:///{db}")
    try:
        ingest = SpoolIngest(store, target)
        t, cpu = time.perf_counter(), time.process_time()
        while ingest.run_once().records:
            pass
        elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
        points = store.read(lambda c: c.exec_driver_sql("SELECT COUNT(*) FROM metrics").scalar())
    finally:
        store.close()
    return elapsed, cpu, points


# Where the spool part places the server and the array (bench/cpu_affinity.py); None: shared.
PLACEMENT: dict[str, frozenset[int] | None] = {"server_cpus": None, "task_cpus": None}
# The spool part's server runs in a session of its own, as it does when jupyter-server-proxy,
# a terminal or the client's auto-start launches it: a job array's tasks (from sbatch, or a
# terminal's shell) are never in its session.  False (--server-in-array-session): the worst
# case, the server in one scheduling group with the 576 tasks (cpu_affinity's docstring).
SERVER_OWN_SESSION = {"on": True}


def spool_figures(quick: bool, work: Path) -> list[dict[str, Any]]:
    from spool_array import run_array

    tasks, points, http = SIZES["spool"][0 if quick else 1]
    server = start_labtrack(work / "spool", None, own_session=SERVER_OWN_SESSION["on"])
    try:
        db = server.workdir / "mlruns.db"
        res = run_array(db, server.url, None, tasks, points, http, server_pid=server.pid,
                        stored=lambda: spool_applied(db), **PLACEMENT)
        ok, total, bad = spool_counts(db, points)
        rejected = list((db.parent / "mlruns").rglob("*.rejected"))
        res["passes"] = {"writing": pass_timings(server.log(), res["t_go"], res["t_go"] + res["written_s"]),
                         "after": pass_timings(server.log(), res["t_go"] + res["written_s"], time.time())}
    finally:
        server.stop()
    replay_s, replay_cpu, replay_n = replay_ingest(db.parent / "mlruns" / ".labtrack" / "spool", work / "replay")
    LAST_RECORD["spool"] = res
    n_points = (tasks + http) * points
    seen_s, stored_s = res["all_seen_s"], res.get("stored_s")
    rate = n_points / stored_s if stored_s else None
    lags = sorted(res["lags"].values())
    p50 = lags[len(lags) // 2] if lags else None
    size = f"{tasks} spooling tasks + {http} HTTP writers × {points:,} points" + _placement_note(res)
    return [
        _row("spool: every point exactly once", f"all {tasks + http} runs", tasks + http, ok, "runs",
             ok / (tasks + http),
             f"{size}; runs found {total}; failed tasks {res['failed']}; rejected files {len(rejected)}"
             + (f"; wrong: {bad[:3]}" if bad else "")),
        _row("spool: ingest rate (start to every point stored)", "≥ 500,000 points/s", 500_000,
             None if rate is None else round(rate), "points/s", None if rate is None else rate / 500_000,
             f"{n_points:,} points; all written after {res['written_s']} s, every latest value visible after "
             f"{seen_s} s, every point stored after {stored_s} s"
             + (f"; server {res['server_cpu_s']} CPU s ({n_points / res['server_cpu_s']:,.0f} points a CPU-second)"
                if res.get("server_cpu_s") else "")
             + f"; the tasks {res['task_cpu_s']['spool']} CPU s spooling, {res['task_cpu_s']['http']} CPU s over HTTP"),
        _row("spool: the server's ingest alone (a copy of the files, nothing else running)", "≥ 500,000 points/s",
             500_000, round(replay_n / replay_s), "points/s", replay_n / replay_s / 500_000,
             f"{replay_n:,} spooled points applied in {replay_s:.1f} s ({replay_cpu:.1f} CPU s: "
             f"{replay_n / replay_cpu:,.0f} points a CPU-second, the most one core gives) by SpoolIngest, "
             "as the server's ingest thread does"),
        _row("spool: lag from a task's last write to runs/search showing it", "≤ 5 s (every task)", 5.0,
             res["max_lag_s"], "s", None if res["max_lag_s"] is None else 5.0 / max(res["max_lag_s"], 1e-3),
             f"max over {len(lags)} tasks; p95 {res['p95_lag_s']} s; median {p50} s; of the HTTP writers alone (the "
             f"watcher's and runs/search's share) max {res['http_max_lag_s']} s; runs/search polled every 0.5 s "
             f"({res['polls']} polls, {res['watcher']['errors']} failed; a poll took "
             f"{res['watcher']['median_poll_s']} s median, {res['watcher']['longest_poll_s']} s the longest); "
             f"/proc/loadavg {res['loadavg_start']!r} at the start, {res['loadavg_end']!r} at the end"
             + _placement_note(res)),
        _row("spool: the floor, a do-nothing reader's lag (stat() only, under the same writers)", "≤ 5 s", 5.0,
             res["floor"]["max_lag_s"], "s",
             None if not res["floor"]["max_lag_s"] else 5.0 / max(res["floor"]["max_lag_s"], 1e-3),
             f"max over {res['floor']['tasks']} tasks; median {res['floor']['median_lag_s']} s; "
             f"{res['floor']['sweeps']} sweeps of the spool folder ({res['floor']['cpu_s']} CPU s); no ingester "
             "can show a value before it sees the bytes"),
        _row("spool: the server while the tasks write (scheduler)", "", None,
             ((res["sched"] or {}).get("writing") or {}).get("busiest_thread_cpu_share"),
             "of a core", None, _sched_note(res["sched"]) + f"; this process (the runs/search watcher and the "
             f"samplers) {res['observer_cpu_s']} CPU s while the tasks write; the machine's CPU s by owner "
             f"then: {res['cpu_by_owner_while_writing']}"),
        _row("spool: the ingest's longest pass while the tasks write", "", None,
             res["passes"]["writing"].get("longest_s"), "s", None, _passes_note(res["passes"])),
        _row("server RSS under the array (peak)", "≤ 300 MB", 300.0, res["peak_rss_mb"], "MB",
             None if not res["peak_rss_mb"] else 300.0 / res["peak_rss_mb"], "server process tree, sampled every 0.2 s"),
    ]


def _passes_note(passes: dict[str, Any]) -> str:
    """Where the ingest passes' wall time went (the server's log; pass_timings)."""
    parts = []
    for phase, label in (("writing", "while the tasks write"), ("after", "after")):
        p = passes[phase]
        if p["passes"]:
            parts.append(f"{label}: {p['passes']} passes logged, {p['wall_s']} s in all, {p['ingest_cpu_s']} CPU s of "
                         f"the ingest thread; the longest {p['longest_s']} s (newest values {p['its_newest_values_s']} "
                         f"s of which folding {p['its_folding_s']} s, history {p['its_history_s']} s); the most any "
                         f"pass took: newest values {p['max_newest_values_s']} s, folding {p['max_folding_s']} s, "
                         f"history {p['max_history_s']} s")
        else:
            parts.append(f"{label}: no passes logged")
    return "; ".join(parts)


def _placement_note(res: dict[str, Any]) -> str:
    shared = (res.get("sessions") or {}).get("in_server_session")
    session = (f"; {shared} tasks in the server's session" if shared else
               "; the server in a session of its own")
    if not res.get("server_cpus"):
        return "; all on shared CPUs" + session
    return (f"; server on CPU(s) {res['server_cpus']}, tasks and HTTP writers on CPU(s) {res['task_cpus']}"
            + session)


def _sched_note(sched: dict[str, Any] | None) -> str:
    """The server's CPU and run-queue wait in each phase (bench/spool_array.py's SchedSampler)."""
    if not sched:
        return "no scheduler figures"
    parts = []
    for phase, label in (("writing", "while the tasks write"), ("until_stored", "after, until every point is stored")):
        p = sched.get(phase)
        if p:
            threads = ", ".join(f"{th['name']} {th['cpu_s']}/{th['wait_s']}" for th in p.get("threads", []))
            cpus = ", ".join(f"{cpu} " + " ".join(f"{k} {v:.0%}" for k, v in kinds.items())
                             for cpu, kinds in p.get("cpus", {}).items())
            parts.append(f"{label}: {p['wall_s']} s wall, server {p['cpu_s']} CPU s and {p['runnable_wait_s']} s "
                         f"runnable but waiting for a core (all threads); busiest thread "
                         f"{p['busiest_thread_cpu_share']:.0%} of a core, waited {p['busiest_thread_wait_s']} s; "
                         f"threads CPU/waited s: {threads}; the machine's CPUs: {cpus}")
    return "; ".join(parts)


_PASS_LINE = re.compile(r"^(\S+ \S+) INFO labtrack\.ingest: spool: .*; pass ([\d.]+) s: newest values ([\d.]+) s "
                        r"\(folding ([\d.]+) s\), history ([\d.]+) s; ([\d.]+) CPU s$")


def pass_timings(log_text: str, start: float, end: float) -> dict[str, Any]:
    """The server's ingest passes that ended between ``start`` and ``end`` (epoch seconds), from
    its log (labtrack.store.ingest.IngestReport.timings; the log may leave lines out when
    passes are many): how many, the longest pass and its parts, the ingest thread's CPU."""
    passes = []
    for line in log_text.splitlines():
        m = _PASS_LINE.match(line)
        if not m:
            continue
        stamp, ms = m.group(1).split(",")
        at = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000
        if start <= at <= end:
            passes.append([float(x) for x in m.groups()[1:]])
    if not passes:
        return {"passes": 0}
    longest = max(passes)
    return {"passes": len(passes), "longest_s": longest[0], "its_newest_values_s": longest[1],
            "its_folding_s": longest[2], "its_history_s": longest[3],
            "max_newest_values_s": max(p_[1] for p_ in passes), "max_folding_s": max(p_[2] for p_ in passes),
            "max_history_s": max(p_[3] for p_ in passes), "ingest_cpu_s": round(sum(p_[4] for p_ in passes), 2),
            "wall_s": round(sum(p_[0] for p_ in passes), 2)}


PARTS = {"ingest": ingest_figures, "storage": storage_figures, "spool": spool_figures}


LAST_RECORD: dict[str, Any] = {}


def figures(quick: bool, only: tuple[str, ...] = tuple(PARTS), mlflow_cap_s: float | None = None,
            server_cpus: frozenset[int] | None = None, task_cpus: frozenset[int] | None = None
            ) -> list[dict[str, Any]]:
    """The figures of ``only``'s parts; ``mlflow_cap_s`` bounds MLflow's store build (storage);
    ``server_cpus``/``task_cpus`` place the spool part's server and array (bench/cpu_affinity.py)."""
    global MLFLOW_BUDGET_S
    if mlflow_cap_s is not None:
        MLFLOW_BUDGET_S = mlflow_cap_s
    PLACEMENT.update(server_cpus=server_cpus, task_cpus=task_cpus)
    quiet_env()
    os.environ["LABTRACK_ASYNC_LOGGING"] = "true"  # the loop's default mode (quiet_env turns it off)
    rows: list[dict[str, Any]] = []
    LAST_RECORD.clear()
    LAST_RECORD["load_at_start"] = os.getloadavg()[0]
    with scratch("scale-ingest-") as work:
        for name in only:
            t = time.perf_counter()
            rows += PARTS[name](quick, work)
            LAST_RECORD[f"{name}_wall_s"] = round(time.perf_counter() - t, 1)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    def f(x: Any) -> str:
        if x is None:
            return "n/a"
        if isinstance(x, float) and abs(x) < 100:
            return f"{x:.2f}"
        return f"{x:,.0f}" if isinstance(x, (int, float)) else str(x)

    head = ("figure", "unit", "anchor", "measured", "ratio", "target")
    body = [(r["figure"], r["unit"], f(r["anchor"]), f(r["measured"]), f(r["ratio"]), r["target"]) for r in rows]
    w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    for line in (head, tuple("-" * x for x in w), *body):
        print("  ".join(c.rjust(x) if 2 <= i <= 4 else c.ljust(x) for i, (c, x) in enumerate(zip(line, w))))
    for i, r in enumerate(rows, 1):
        if r["note"]:
            print(f"  [{i}] {r['note']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes: a smoke run of a few minutes")
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ", ".join(PARTS))
    ap.add_argument("--server-cpus", type=parse_cpus, default=None,
                    help="spool: CPUs for the server, e.g. 0 (bench/spool_array.py)")
    ap.add_argument("--task-cpus", type=parse_cpus, default=None, help="spool: CPUs for the array, e.g. 1")
    ap.add_argument("--server-in-array-session", action="store_true",
                    help="spool: start the server in this process's session, the array's (the worst case)")
    args = ap.parse_args()
    SERVER_OWN_SESSION["on"] = not args.server_in_array_session
    only = tuple(p for p in args.only.split(",") if p)
    load = os.getloadavg()[0]
    rows = figures(args.quick, only, server_cpus=args.server_cpus, task_cpus=args.task_cpus)
    print_table(rows)
    path = write_json("scale_ingest.json", {"machine": machine(), "load_at_start": load, "quick": args.quick,
                                            "rows": rows, "raw": LAST_RECORD})
    print(f"\nwritten to {path} (load average at the start: {load:.1f})")


if __name__ == "__main__":
    main()
