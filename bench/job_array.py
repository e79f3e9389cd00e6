"""A SLURM job array's start, on one machine: N tasks that set the same experiment at once.

Each task is the plain code a cluster user writes::

    mlflow.set_tracking_uri(URI)
    mlflow.set_experiment("sweep")
    with mlflow.start_run(run_name=f"w{i}"):
        mlflow.log_param("i", i)

(or the same with ``labtrack as lt``).  The tasks are forked from one process that
has already imported the client, and they all wait on one barrier, so their
``set_experiment`` calls really race (issue #22).  Afterwards the runs are counted
per experiment over the REST API.

    python bench/job_array.py --uri URL [--uri URL2 ...] --client mlflow|lt [--n 32] [--token T]
    python bench/job_array.py --spool DB [--spool DB2 ...] --client lt [--n 32]

prints one JSON line per round (per ``--uri``):
``{"uri": ..., "tasks_ok": 32, "failed": [], "wall_s": 4.1, "sweep": 32, "default": 0}``
(with ``--spool`` the counts are left to whoever ingests the spool).
bench/bench_job_array.py runs it against ``mlflow server`` and ``labtrack server``;
tests/reliability/test_job_array.py asserts labtrack's counts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

EXPERIMENT = "sweep"
BARRIER_TIMEOUT_S = 120.0


def _task(i: int, client: str, uri: str, experiment: str, barrier: Any) -> None:
    barrier.wait(BARRIER_TIMEOUT_S)
    if client == "mlflow":
        import mlflow as api
    else:
        import labtrack as api
    api.set_tracking_uri(uri)
    api.set_experiment(experiment)
    with api.start_run(run_name=f"w{i}"):
        api.log_param("i", i)
    if client == "lt":
        api.flush()  # a spooling task's records are on disk before it exits


def _child(i: int, client: str, uri: str, experiment: str, barrier: Any) -> None:
    try:
        _task(i, client, uri, experiment, barrier)
    except BaseException as e:  # noqa: BLE001 - reported by the exit code, one line
        print(f"task {i}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)


def _warm(client: str) -> None:
    """Import here, once, what a task's first run imports, so that forked tasks start at once.

    Nothing is sent to a server: the tasks' race must be the first contact."""
    if client == "mlflow":
        import mlflow  # noqa: F401
        import mlflow.tracing.export  # noqa: F401
        import mlflow.tracing.processor  # noqa: F401
        from mlflow.tracking.context.registry import resolve_tags
        from mlflow.tracking.request_header.registry import resolve_request_headers

        resolve_tags()  # git, IPython, ... context providers
        resolve_request_headers()
    else:
        import labtrack  # noqa: F401
        import labtrack.client.fluent  # noqa: F401


def reap(procs: list[Any]) -> list[int]:
    """Kill the tasks still running; the indexes of those that did not exit with 0."""
    failed = []
    for i, p in enumerate(procs):
        if p.is_alive():
            p.kill()
            p.join(10)
        if p.exitcode != 0:
            failed.append(i)
    return failed


def run_tasks(client: str, uri: str, n: int, experiment: str = EXPERIMENT,
              timeout: float = 300.0) -> list[int]:
    """Fork N tasks that start together; the indexes of those that failed."""
    _warm(client)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=_child, args=(i, client, uri, experiment, barrier)) for i in range(n)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    return reap(procs)


def _api(uri: str, token: str | None, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    url = f"{uri}/api/2.0/mlflow/{path}"
    data = None
    if body is None:
        req = urllib.request.Request(url)
    else:
        data = json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def count_runs(uri: str, token: str | None = None, experiment: str = EXPERIMENT) -> dict[str, int]:
    """Runs in the experiment ("sweep") and in Default (experiment 0), read over the REST API."""
    q = urllib.parse.urlencode({"experiment_name": experiment})
    sweep_id = _api(uri, token, f"experiments/get-by-name?{q}")["experiment"]["experiment_id"]
    counts = {}
    for key, exp_id in (("sweep", sweep_id), ("default", "0")):
        runs = _api(uri, token, "runs/search", {"experiment_ids": [exp_id], "max_results": 1000})
        counts[key] = len(runs.get("runs", []))
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--client", choices=["mlflow", "lt"], required=True)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--uri", action="append", help="a server's URL; repeat for several "
                       "rounds, one per server")
    where.add_argument("--spool", action="append",
                       help="the database file whose spool the tasks write (lt only); repeatable")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--token", default=None)
    ap.add_argument("--experiment", default=EXPERIMENT)
    args = ap.parse_args()
    os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
                      MLFLOW_ENABLE_ASYNC_LOGGING="false", LABTRACK_ASYNC_LOGGING="false")
    if args.token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["LABTRACK_TRACKING_TOKEN"] = args.token
    if args.spool:
        os.environ["LABTRACK_SPOOL"] = "1"
    for uri in args.uri or [f"sqlite:///{os.path.abspath(db)}" for db in args.spool]:
        t0 = time.perf_counter()
        failed = run_tasks(args.client, uri, args.n, args.experiment)
        out: dict[str, Any] = {"uri": uri, "tasks_ok": args.n - len(failed), "failed": failed,
                               "wall_s": round(time.perf_counter() - t0, 2)}
        if not args.spool:
            out.update(count_runs(uri, args.token, args.experiment))
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
