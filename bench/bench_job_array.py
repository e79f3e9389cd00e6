"""Issue #22's anchor: a job array's tasks that start together, against mlflow server and labtrack.

Each round forks 32 tasks of the unmodified mlflow client that wait on one barrier,
then run ``set_experiment(name)`` and one run (bench/job_array.py).  A task whose
create loses the race gets RESOURCE_ALREADY_EXISTS, and mlflow's ``set_experiment``
then leaves Default active: its run lands in Default.  The figure is how many runs
landed in Default per round, on ``mlflow server`` and on ``labtrack server`` (0 is
the only right answer).  Each round uses a new experiment name on the same server,
so Default's count is taken before and after.

    python bench/bench_job_array.py [--rounds 5] [--tasks 32] [--client mlflow|lt]
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BENCH_DIR,
    QUIET_ENV,
    machine,
    quiet_env,
    scratch,
    start_labtrack,
    start_mlflow,
    write_json,
)
from job_array import count_runs  # noqa: E402


def rounds_on(server: Any, client: str, rounds: int, tasks: int) -> list[dict[str, Any]]:
    out = []
    for k in range(1, rounds + 1):
        name = f"sweep-{k}"
        before = _default_runs(server)
        cmd = [sys.executable, str(BENCH_DIR / "job_array.py"), "--client", client, "--uri",
               server.url, "--n", str(tasks), "--experiment", name]
        cmd += ["--token", server.token] if server.token else []
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"{server.name} round {k}: {done.stderr[-2000:]}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        r["default"] -= before
        r["round"] = k
        print(f"{server.name:9s} round {k}: {r['sweep']:3d} in {name}, {r['default']:3d} in Default, "
              f"{len(r['failed'])} tasks failed, {r['wall_s']:.1f} s", flush=True)
        out.append(r)
    return out


def _default_runs(server: Any) -> int:
    try:
        return count_runs(server.url, server.token, "Default")["default"]
    except Exception:  # noqa: BLE001 - before the first round "Default" may have no runs yet
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--client", choices=["mlflow", "lt"], default="mlflow")
    args = ap.parse_args()
    quiet_env()
    results: dict[str, Any] = {"machine": machine(), "env": QUIET_ENV, "tasks": args.tasks,
                               "client": args.client}
    with scratch("bench-job-array-") as tmp:
        for kind in ("mlflow", "labtrack"):
            server = (start_mlflow(tmp / kind) if kind == "mlflow"
                      else start_labtrack(tmp / kind, secrets.token_hex(8)))
            try:
                results[kind] = rounds_on(server, args.client, args.rounds, args.tasks)
            finally:
                server.stop()
    print()
    print(f"runs in Default per round ({args.tasks} tasks, {args.client} client; 0 is right)")
    print(f"{'round':>5}  {'MLflow':>6}  {'labtrack':>8}")
    for m, lt_ in zip(results["mlflow"], results["labtrack"]):
        print(f"{m['round']:>5}  {m['default']:>6}  {lt_['default']:>8}")
    totals = {k: sum(r["default"] for r in results[k]) for k in ("mlflow", "labtrack")}
    print(f"{'total':>5}  {totals['mlflow']:>6}  {totals['labtrack']:>8}")
    results["default_totals"] = totals
    path = write_json(f"job_array_{args.client}.json", results)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
