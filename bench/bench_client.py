"""Client throughput and import cost, labtrack beside MLflow, measured in the same run.

    python bench/bench_client.py [--points 1000000] [--mlflow-points 300] [--mlflow-seconds 20]

1. ``lt.log_metric`` in a loop, end to end into SQLite through a background
   ``labtrack server`` that the client starts itself (zero setup): from the first
   call until ``flush()`` returns, then until the points are readable.
2. The same loop with ``lt.set_async(False)`` (one request per point).
3. ``mlflow.log_metric`` with ``MLFLOW_ENABLE_ASYNC_LOGGING=true`` (and without)
   against ``mlflow server`` on SQLite.
4. ``python -X importtime -c "import labtrack"`` versus ``import mlflow``.

Each loop runs in a fresh child process (imports excluded from the timing).
It prints figures and ratios; it never asserts on timing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")
sys.path[:0] = [SRC, str(ROOT)]  # this checkout's labtrack, installed or not, and bench.common

from bench.common import free_port, machine, write_json  # noqa: E402

LT_LOOP = textwrap.dedent("""
    import json, sys, time
    import labtrack as lt
    uri, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    lt.set_tracking_uri(uri)
    lt.set_async(mode == "async")
    run = lt.start_run()  # starts (or finds) the server: not part of the timing
    rid = run.info.run_id
    t0 = time.perf_counter()
    for i in range(n):
        lt.log_metric("m", float(i), step=i)
    t_loop = time.perf_counter()
    lt.flush()
    t_flush = time.perf_counter()
    # Readable: another client (no shared state) sees the last point as the latest value.
    latest = lt.Client(uri).get_run(rid).data.metrics["m"]
    t_read = time.perf_counter()
    assert latest == float(n - 1), latest
    count = len(lt.get_metric_history(rid, "m"))
    assert count == n, count
    lt.end_run()
    print(json.dumps({"n": n, "loop": t_loop - t0, "flush": t_flush - t0, "read": t_read - t0}))
""")

MLFLOW_LOOP = textwrap.dedent("""
    import json, sys, time
    import mlflow
    uri, n, mode, budget = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        t0 = time.perf_counter()
        done = 0
        for i in range(n):
            mlflow.log_metric("m", float(i), step=i, synchronous=(mode == "sync"))
            done += 1
            if time.perf_counter() - t0 > budget:
                break
        t_loop = time.perf_counter()
        mlflow.flush_async_logging()
        t_flush = time.perf_counter()
        hist = mlflow.MlflowClient().get_metric_history(run.info.run_id, "m")
        t_read = time.perf_counter()
        assert len(hist) == done, (len(hist), done)
    print(json.dumps({"n": done, "loop": t_loop - t0, "flush": t_flush - t0, "read": t_read - t0}))
""")




def child_env(**extra: str) -> dict[str, str]:
    drop = ("LABTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI", "LABTRACK_DATABASE",
            "LABTRACK_ASYNC_LOGGING", "MLFLOW_ENABLE_ASYNC_LOGGING")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", **extra)
    return env


def run_loop(code: str, args: list[str], env: dict[str, str], timeout: float) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_mlflow(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        ["mlflow", "server", "--backend-store-uri", f"sqlite:///{workdir}/m.db",
         "--artifacts-destination", str(workdir / "art"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(),
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # ~15 s on an idle machine, minutes on a busy one
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError("mlflow server did not start")


def import_seconds(module: str, repeat: int = 5) -> tuple[float, float]:
    """(median importtime cumulative of ``module``, median wall time of the process)."""
    cumulative, wall = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                             env=child_env(), capture_output=True, text=True)
        wall.append(time.perf_counter() - t0)
        pattern = re.compile(rf"^import time:\s+\d+ \|\s+(\d+) \| {re.escape(module)}$")
        micros = [int(m.group(1)) for line in out.stderr.splitlines()
                  if (m := pattern.match(line))]
        cumulative.append(micros[-1] / 1e6 if micros else float("nan"))
    return statistics.median(cumulative), statistics.median(wall)


def rate(result: dict, key: str) -> float:
    return result["n"] / result[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--sync-points", type=int, default=5_000)
    parser.add_argument("--mlflow-points", type=int, default=2_000)
    parser.add_argument("--mlflow-seconds", type=float, default=20.0,
                        help="stop MLflow's loop after this long (it is slow)")
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-client-"))
    db = work / "lt" / "mlruns.db"
    db.parent.mkdir()
    try:
        measure(args, work, db)
    finally:
        from labtrack.ownership import read_owner  # stop the server the client started

        record = read_owner(db)
        if record is not None:
            os.kill(record.pid, signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path, db: Path) -> None:
    lt_uri = f"sqlite:///{db}"
    print(f"labtrack: {args.points:,} points, zero-setup server for {db}")
    lt_async = run_loop(LT_LOOP, [lt_uri, str(args.points), "async"], child_env(), 1800)
    print(f"  async  loop {rate(lt_async, 'loop'):>12,.0f} points/s (calls return)")
    print(f"         end to end {rate(lt_async, 'flush'):>8,.0f} points/s until flush() returns"
          f" ({lt_async['flush']:.2f} s)")
    print(f"         readable   {rate(lt_async, 'read'):>8,.0f} points/s until another client"
          f" reads the last point ({lt_async['read']:.2f} s)")
    lt_sync = run_loop(LT_LOOP, [lt_uri, str(args.sync_points), "sync"], child_env(), 1800)
    print(f"  sync   {rate(lt_sync, 'flush'):>12,.0f} calls/s ({args.sync_points:,} calls)")

    ml_async = ml_sync = None
    if not args.skip_mlflow and shutil.which("mlflow"):
        proc, url = start_mlflow(work / "mlflow")
        try:
            print(f"mlflow: up to {args.mlflow_points:,} points or {args.mlflow_seconds:.0f} s "
                  f"against mlflow server at {url}")
            ml_async = run_loop(MLFLOW_LOOP, [url, str(args.mlflow_points), "async",
                                              str(args.mlflow_seconds)],
                                child_env(MLFLOW_ENABLE_ASYNC_LOGGING="true"), 1800)
            print(f"  async  end to end {rate(ml_async, 'flush'):>8,.1f} points/s "
                  f"({ml_async['n']:,} points, {ml_async['flush']:.2f} s)")
            ml_sync = run_loop(MLFLOW_LOOP, [url, str(args.mlflow_points), "sync",
                                             str(args.mlflow_seconds)], child_env(), 1800)
            print(f"  sync   {rate(ml_sync, 'flush'):>12,.1f} calls/s ({ml_sync['n']:,} calls)")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    lt_imp, lt_wall = import_seconds("labtrack")
    print(f"import labtrack: {lt_imp:.3f} s (importtime), process {lt_wall:.3f} s")
    ml_imp = ml_wall = None
    if not args.skip_mlflow:
        ml_imp, ml_wall = import_seconds("mlflow", repeat=3)
        print(f"import mlflow:   {ml_imp:.3f} s (importtime), process {ml_wall:.3f} s")

    path = write_json("client.json", {
        "machine": machine(), "points": args.points,
        "labtrack_async": lt_async, "labtrack_sync": lt_sync, "mlflow_async": ml_async, "mlflow_sync": ml_sync,
        "end_to_end_points_per_s": rate(lt_async, "flush"),
        "import_s": {"labtrack": lt_imp, "mlflow": ml_imp}, "process_s": {"labtrack": lt_wall, "mlflow": ml_wall},
    })
    print(f"results: {path}")
    print("ratios (labtrack / mlflow):")
    if ml_async:
        print(f"  async end to end  {rate(lt_async, 'flush') / rate(ml_async, 'flush'):,.0f}x")
    if ml_sync:
        print(f"  sync calls        {rate(lt_sync, 'flush') / rate(ml_sync, 'flush'):,.1f}x")
    if ml_imp:
        print(f"  import time       {ml_imp / lt_imp:,.1f}x faster")


if __name__ == "__main__":
    main()
