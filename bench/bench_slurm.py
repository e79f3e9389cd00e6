"""`labtrack run --backend slurm` on a job array: submission to every task's first metric.

The anchor is the scheduler's own start latency (SubmitTime -> StartTime, from
sacct or scontrol): what labtrack adds on top is the task's Python start, the
client, and the trip of the first point through the spool (tasks run under
``unshare -n``, a compute node with no route to the server) into the database.

    python bench/bench_slurm.py [--tasks 64] [--http]

Needs a SLURM cluster (bash .ci/start-slurm starts a single-node one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, quiet_env, scratch, start_labtrack, write_json  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "projects" / "sample"


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def _epoch(stamp: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--http", action="store_true", help="let tasks reach the server over HTTP (no unshare)")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    quiet_env()
    os.environ["LABTRACK_ASYNC_LOGGING"] = "true"
    import labtrack as lt
    from labtrack.projects import slurm

    with scratch("bench-slurm-") as work:
        server = start_labtrack(work / "server", token=None)
        try:
            env = dict(os.environ, LABTRACK_DATABASE=str(work / "server" / "mlruns.db"),
                       LABTRACK_CACHE_DIR=str(work / "cache"))
            cfg = work / "slurm.yaml"
            cfg.write_text("mem: 100M\ntime: 10\npoll_interval: 1\n"
                           + ("" if args.http else "launcher: unshare -n\n"))
            alphas = ",".join(f"{0.001 * (i + 1):.3f}" for i in range(args.tasks))
            t0 = time.time()
            out = subprocess.run([sys.executable, "-m", "labtrack", "run", str(SAMPLE), "-b", "slurm",
                                  "-c", str(cfg), "-P", f"alpha={alphas}", "-P", "epochs=1",
                                  "--env-manager", "local", "--experiment-name", "bench", "--detach"],
                                 env=env, capture_output=True, text=True, cwd=work)
            submitted = time.time()
            if out.returncode:
                raise SystemExit(out.stderr)
            array = out.stdout.split("submitted job ")[1].split()[0]
            client = lt.Client(server.url)
            exp = client.get_experiment_by_name("bench")
            seen: dict[str, float] = {}
            first: dict[str, float] = {}
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                runs = [r for r in client.search_runs([exp.experiment_id], max_results=1000)
                        if "mlflow.parentRunId" in r.tags]
                now = time.time()
                for r in runs:
                    if "loss" in r.metrics and r.info.run_id not in seen:
                        seen[r.info.run_id] = now
                        first[r.info.run_id] = r.metrics["loss"].timestamp / 1000
                if len(seen) >= args.tasks:
                    break
                time.sleep(0.25)
            tasks = slurm.query(array)
            start_lat = []
            job_to_metric = []
            by_task = {r.tags.get("slurm.array_task_id"): r.info.run_id for r in runs}
            for key, task in tasks.items():
                submit_t, start_t = _epoch(task.submit_time), _epoch(task.start_time)
                if submit_t and start_t:
                    start_lat.append(start_t - submit_t)
                    run_id = by_task.get(key.split("_")[1])
                    if run_id in first:
                        job_to_metric.append(first[run_id] - start_t)
            to_first = [first[r] - t0 for r in first]
            to_visible = [seen[r] - t0 for r in seen]
            subprocess.run(["scancel", array], capture_output=True)
        finally:
            server.stop()
    rows = {
        "tasks": args.tasks, "arrived": len(seen), "path": "http" if args.http else "spool",
        "submit_s": submitted - t0,
        "first_metric_s": {"p50": _pct(to_first, .5), "p95": _pct(to_first, .95), "max": max(to_first)} if to_first else None,
        "visible_in_server_s": {"p50": _pct(to_visible, .5), "p95": _pct(to_visible, .95), "max": max(to_visible)} if to_visible else None,
        "scheduler_start_latency_s": {"p50": _pct(start_lat, .5), "p95": _pct(start_lat, .95), "max": max(start_lat)} if start_lat else None,
        "job_start_to_first_metric_s": {"p50": statistics.median(job_to_metric), "max": max(job_to_metric)} if job_to_metric else None,
    }
    print(f"{args.tasks}-task array through the {rows['path']}: {len(seen)}/{args.tasks} tasks' first metric arrived")
    for name in ("submit_s", "scheduler_start_latency_s", "job_start_to_first_metric_s", "first_metric_s",
                 "visible_in_server_s"):
        print(f"  {name:30s} {rows[name]}")
    write_json("slurm.json", {"machine": machine(), **rows})


if __name__ == "__main__":
    main()
