"""Many writers on one folder: labtrack (HTTP and spool) beside MLflow (direct SQLite and ``mlflow server``).

The scenario MLflow's JupyterHub guide warns about: N processes start logging
at the same moment, each one run of ``--points`` metric points with
``log_metric`` in a loop (each library's default mode), into one project folder.
For each setup it reports the points lost (expected minus what the database
holds afterwards, read with sqlite3), the errors the processes saw (exceptions,
non-zero exits) and the wall time from the start signal until every point is
stored (for the spool: until the server has ingested the files).

A second table starts N processes at the same instant on an EMPTY folder
(nothing created beforehand): MLflow's processes race to create the schema;
labtrack's clients race to start the one server.

Run:  python bench/bench_many_writers.py [--procs 16 32] [--points 2000]
Figures go to stdout and bench/results/many_writers.json.  Never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
SRC = str(BENCH_DIR.parent / "src")
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONWARNINGS": "ignore",
         "GIT_PYTHON_REFRESH": "quiet"}
# Everything that would steer a child elsewhere than the setup under test.
STEERING = ("LABTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI", "LABTRACK_DATABASE", "LABTRACK_SPOOL",
            "SLURM_JOB_ID", "LABTRACK_ASYNC_LOGGING", "MLFLOW_ENABLE_ASYNC_LOGGING",
            "MLFLOW_TRACKING_TOKEN", "LABTRACK_TRACKING_TOKEN", "MLFLOW_EXPERIMENT_NAME")

# Each child: import, say ready, wait for the start line on stdin, log, report as JSON.
CHILD = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    lib, name, points, ready = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if lib == "mlflow":
        import mlflow as m
    else:
        import labtrack as m
    Path(ready, f"ready-{os.getpid()}").touch()
    sys.stdin.readline()
    errors, first = 0, None
    try:
        m.set_experiment("bench")
        with m.start_run(run_name=name):
            for i in range(points):
                try:
                    m.log_metric("loss", 1.0 / (i + 1), step=i)
                except Exception as e:  # count it and go on, as a training loop would
                    errors += 1
                    first = first or f"{type(e).__name__}: {str(e)[:200]}"
    except Exception as e:
        errors += 1
        first = first or f"{type(e).__name__}: {str(e)[:200]}"
    print(json.dumps({"errors": errors, "first_error": first}))
""")


@dataclass
class Result:
    setup: str
    processes: int
    points_each: int
    points_lost: int
    errors: int
    failed_processes: int
    wall_s: float
    first_error: str | None = None


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STEERING}
    env.update(QUIET)
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            return
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)


def count_points(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
    try:
        # labtrack keys points by a series id (its metric_series table); MLflow by run and key.
        series = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'metric_series'").fetchone()
        points = "metrics JOIN metric_series USING (series_id)" if series else "metrics"
        return int(conn.execute(f"SELECT COUNT(*) FROM {points} WHERE key = 'loss'").fetchone()[0])
    finally:
        conn.close()


def run_writers(lib: str, n: int, points: int, cwd: Path, env: dict[str, str],
                done: Any = None, timeout: float = 1800) -> tuple[list[dict[str, Any]], int, float]:
    """Start ``n`` children, release them at once; return (reports, failed, wall seconds).

    ``done()`` (optional) is polled after the children exit: the wall time runs until it is true.
    """
    ready = Path(tempfile.mkdtemp(prefix="ready-", dir=cwd.parent))
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, lib, f"{lib}-{i}", str(points), str(ready)],
                              cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    deadline = time.monotonic() + 600
    while len(list(ready.iterdir())) < n:
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    started = time.monotonic()
    for p in procs:
        if p.poll() is None and p.stdin is not None:
            p.stdin.write("go\n")
            p.stdin.flush()
    reports, failed = [], 0
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        lines = [x for x in out.splitlines() if x.startswith("{")]
        if p.returncode != 0 or not lines:
            failed += 1
            reports.append({"errors": 1, "first_error": (err.strip().splitlines() or ["?"])[-1][:200]})
        else:
            reports.append(json.loads(lines[-1]))
    if done is not None:
        end = time.monotonic() + 300
        while not done() and time.monotonic() < end:
            time.sleep(0.1)
    return reports, failed, time.monotonic() - started


def result(setup: str, n: int, points: int, db: Path, reports: list[dict[str, Any]], failed: int,
           wall: float) -> Result:
    try:
        stored = count_points(db)
    except sqlite3.Error:
        stored = 0  # no schema at all: everything was lost
    errors = sum(r["errors"] for r in reports)
    first = next((r["first_error"] for r in reports if r.get("first_error")), None)
    return Result(setup, n, points, n * points - stored, errors, failed, round(wall, 1), first)


# -- setups --------------------------------------------------------------------------------

def mlflow_sqlite(work: Path, n: int, points: int, *, fresh: bool = False) -> Result:
    db = work / "mlflow.db"
    env = child_env(MLFLOW_TRACKING_URI=f"sqlite:///{db}")
    if not fresh:  # schema and experiment made first: only the writing is measured
        subprocess.run([sys.executable, "-c", "import mlflow; mlflow.set_experiment('bench')"],
                       cwd=work, env=env, check=True, capture_output=True)
    reports, failed, wall = run_writers("mlflow", n, points, work, env)
    name = "MLflow, direct SQLite" + (" (empty folder)" if fresh else "")
    return result(name, n, points, db, reports, failed, wall)


def mlflow_server(work: Path, n: int, points: int) -> Result:
    db = work / "mlflow.db"
    port = free_port()
    log = open(work / "mlflow-server.log", "wb")
    proc = subprocess.Popen(["mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
                             "--artifacts-destination", str(work / "art"), "--host", "127.0.0.1",
                             "--port", str(port)], cwd=work, env=child_env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_health(url, proc, 600)
        env = child_env(MLFLOW_TRACKING_URI=url)
        subprocess.run([sys.executable, "-c", "import mlflow; mlflow.set_experiment('bench')"],
                       cwd=work, env=env, check=True, capture_output=True)
        reports, failed, wall = run_writers("mlflow", n, points, work, env)
    finally:
        stop(proc)
        log.close()
    return result("MLflow, mlflow server", n, points, db, reports, failed, wall)


def labtrack(work: Path, n: int, points: int, *, spool: bool) -> Result:
    db = work / "mlruns.db"
    port = free_port()
    token = secrets.token_hex(8)
    log = open(work / "labtrack-server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "labtrack", "server", "--backend-store-uri",
                             f"sqlite:///{db}", "--artifacts-destination", str(work / "mlruns"),
                             "--port", str(port), "--token", token], cwd=work, env=child_env(),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_health(f"http://127.0.0.1:{port}", proc, 120)
        # Zero setup: the children find the server through the database's ownership record.
        env = child_env(LABTRACK_DATABASE=str(db), **({"LABTRACK_SPOOL": "1"} if spool else {}))
        expected = n * points
        reports, failed, wall = run_writers("labtrack", n, points, work, env,
                                            done=lambda: _stored(db) >= expected)
    finally:
        stop(proc)
        log.close()
    name = "labtrack, spool files (until ingested)" if spool else "labtrack, HTTP"
    return result(name, n, points, db, reports, failed, wall)


def labtrack_fresh(work: Path, n: int, points: int) -> Result:
    """No server, no database: every client finds nothing and starts one; one wins."""
    from labtrack.ownership import read_owner

    db = work / "mlruns.db"
    reports, failed, wall = run_writers("labtrack", n, points, work, child_env())
    owner = read_owner(db)
    if owner is not None:
        try:
            os.kill(owner.pid, 15)
            time.sleep(1)
        except ProcessLookupError:
            pass
    return result("labtrack, zero setup (empty folder)", n, points, db, reports, failed, wall)


def _stored(db: Path) -> int:
    try:
        return count_points(db)
    except sqlite3.Error:
        return 0


# -- report --------------------------------------------------------------------------------

def table(results: list[Result]) -> str:
    head = ["setup", "processes", "points lost", "errors", "failed processes", "wall s"]
    rows = [[r.setup, str(r.processes), f"{r.points_lost} of {r.processes * r.points_each}", str(r.errors),
             str(r.failed_processes), f"{r.wall_s:.1f}"] for r in results]
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(x, widths)) for x in [head, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--fresh-procs", type=int, default=16, help="processes for the empty-folder table (0: skip)")
    ap.add_argument("--fresh-points", type=int, default=200)
    ap.add_argument("--skip", nargs="*", default=[], choices=["mlflow-sqlite", "mlflow-server", "labtrack-http",
                                                              "labtrack-spool"])
    args = ap.parse_args()
    if shutil.which("mlflow") is None:
        sys.exit("the mlflow CLI is not installed (pip install mlflow==3.17.2)")
    import mlflow

    results: list[Result] = []
    setups = [("mlflow-sqlite", lambda w, n: mlflow_sqlite(w, n, args.points)),
              ("mlflow-server", lambda w, n: mlflow_server(w, n, args.points)),
              ("labtrack-http", lambda w, n: labtrack(w, n, args.points, spool=False)),
              ("labtrack-spool", lambda w, n: labtrack(w, n, args.points, spool=True))]
    with tempfile.TemporaryDirectory(prefix="bench-many-") as tmp:
        for n in args.procs:
            for key, fn in setups:
                if key in args.skip:
                    continue
                work = Path(tmp) / f"{key}-{n}"
                work.mkdir()
                print(f"== {key}, {n} processes x {args.points} points", file=sys.stderr, flush=True)
                results.append(fn(work, n))
                print(table(results[-1:]), file=sys.stderr, flush=True)
        fresh: list[Result] = []
        if args.fresh_procs:
            for key, fn2 in (("mlflow", mlflow_sqlite), ("labtrack", None)):
                work = Path(tmp) / f"fresh-{key}"
                work.mkdir()
                print(f"== empty folder, {key}, {args.fresh_procs} processes", file=sys.stderr, flush=True)
                if fn2 is not None:
                    fresh.append(mlflow_sqlite(work, args.fresh_procs, args.fresh_points, fresh=True))
                else:
                    fresh.append(labtrack_fresh(work, args.fresh_procs, args.fresh_points))
    print(f"\nMany writers at once, {args.points} points each (MLflow {mlflow.__version__}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()})\n")
    print(table(results))
    if fresh:
        print(f"\n{args.fresh_procs} processes started at the same instant on an empty folder, "
              f"{args.fresh_points} points each\n")
        print(table(fresh))
    for r in results + fresh:
        if r.first_error:
            print(f"  {r.setup} ({r.processes}): first error: {r.first_error}")
    out = BENCH_DIR / "results" / "many_writers.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "mlflow": mlflow.__version__},
                               "points": args.points, "results": [asdict(r) for r in results],
                               "empty_folder": [asdict(r) for r in fresh]}, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
