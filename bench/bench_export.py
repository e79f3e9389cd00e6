"""The runs table as a file: labtrack's export endpoint against what an MLflow user does.

A fresh ``labtrack server`` gets ``--runs`` runs (``--metrics`` metrics with ``--steps`` points
each, five params, two tags).  Then, ``--repeat`` times each, the median wall time of
  export csv      POST /api/2.0/labtrack/runs/export {format: csv}     (every run and column)
  export parquet  the same as Parquet
  histories csv   POST runs/export-histories for 100 runs, every metric (one long table)
  mlflow csv      mlflow.search_runs(output_format="pandas").to_csv() through the mlflow
                  client against the same server: the usual way to a CSV without an export
and the server's resident memory after them.  Timings never gate tests.

    python bench/bench_export.py [--runs 2000] [--metrics 10] [--steps 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import requests

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from common import machine, median, quiet_env, scratch, start_labtrack, write_json  # noqa: E402


def fill(url: str, session: requests.Session, runs: int, metrics: int, steps: int) -> tuple[str, list[str]]:
    exp = session.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": "export-bench"}).json()["experiment_id"]
    ids = []
    now = int(time.time() * 1000)
    for k in range(runs):
        run = session.post(f"{url}/api/2.0/mlflow/runs/create", json={"experiment_id": exp, "run_name": f"run-{k}",
                                                                    "start_time": now + k}).json()["run"]["info"]
        points = [{"key": f"m{j}", "value": (k * 7 + j * s) % 101 / 10, "step": s, "timestamp": now + s}
                  for j in range(metrics) for s in range(steps)]
        params = [{"key": f"p{j}", "value": str((k + j) % 13)} for j in range(5)]
        tags = [{"key": "team", "value": "vision"}, {"key": "stage", "value": "sweep"}]
        r = session.post(f"{url}/api/2.0/mlflow/runs/log-batch", json={"run_id": run["run_id"], "metrics": points,
                                                                      "params": params, "tags": tags})
        r.raise_for_status()
        ids.append(run["run_id"])
    return exp, ids


def timed(fn, repeat: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = fn()
        times.append(time.perf_counter() - t0)
    return median(times), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--metrics", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    quiet_env()
    token = "bench-export-token"
    with scratch("lt-bench-export-") as work:
        srv = start_labtrack(work, token)
        try:
            s = requests.Session()
            s.headers["Authorization"] = f"Bearer {token}"
            t0 = time.perf_counter()
            exp, ids = fill(srv.url, s, args.runs, args.metrics, args.steps)
            fill_s = time.perf_counter() - t0

            def export(fmt: str) -> int:
                r = s.post(f"{srv.url}/api/2.0/labtrack/runs/export", json={"experiment_ids": [exp], "format": fmt})
                r.raise_for_status()
                return len(r.content)

            def histories() -> int:
                r = s.post(f"{srv.url}/api/2.0/labtrack/runs/export-histories", json={"run_ids": ids[:100]})
                r.raise_for_status()
                return len(r.content)

            os.environ["MLFLOW_TRACKING_TOKEN"] = token
            import mlflow

            mlflow.set_tracking_uri(srv.url)

            def via_mlflow() -> int:
                buf = io.StringIO()
                mlflow.search_runs(experiment_ids=[exp], max_results=100_000).to_csv(buf, index=False)
                return len(buf.getvalue().encode())

            rows = {name: timed(fn, args.repeat) for name, fn in (
                ("export csv", lambda: export("csv")), ("export parquet", lambda: export("parquet")),
                ("histories csv (100 runs)", histories), ("mlflow csv", via_mlflow))}
            rss = srv.rss_mb()
        finally:
            srv.stop()
    print(f"{args.runs} runs x {args.metrics} metrics x {args.steps} steps, 5 params, 2 tags (filled in {fill_s:.1f} s)")
    for name, (sec, size) in rows.items():
        print(f"  {name:26s} {sec * 1000:9.0f} ms  {size / 1e6:7.2f} MB")
    ratio = rows["mlflow csv"][0] / rows["export csv"][0]
    print(f"  mlflow csv / export csv: {ratio:.1f}x;  server RSS after: {rss:.0f} MB")
    write_json("export.json", {"machine": machine(), "args": vars(args), "fill_s": fill_s, "server_rss_mb": rss,
                               "results": {k: {"seconds": v[0], "bytes": v[1]} for k, v in rows.items()},
                               "mlflow_over_export_csv": ratio})


if __name__ == "__main__":
    main()
