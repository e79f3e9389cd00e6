"""The same mlflow-client workload against ``mlflow server`` and ``labtrack server``, side by side.

    python bench/bench_server.py [--quick] [--only mlflow|labtrack] [--rounds N]

Both servers are fresh processes on fresh SQLite files in this run (MLflow with
``--workers 1``).  The workload is driven by the unmodified ``mlflow`` client from
this process; for reading a long history it is also driven by a plain ``requests``
page loop and by ``labtrack.Client``.  Each timed phase runs in rounds, interleaved across
the servers; each figure is printed for both servers (the median of their rounds) with
the ratio (> 1 means labtrack is better) and, where issue 2 sets one, the target.
Results also go to ``bench/results/server.json``.  Timings never gate tests.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import math
import os
import random
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Repeated,
    Row,
    Server,
    interleaved,
    machine,
    median,
    quiet_env,
    repeat,
    scratch,
    start_floor,
    start_labtrack,
    start_mlflow,
    table,
    tree_cpu_s,
    tree_memory,
    write_json,
)

FILTER = "metrics.m < 0.5 and params.p = 'x'"
HISTORY_KEY = "h"
PAGE = 25000  # the mlflow client's page size for get_metric_history


@dataclass
class Sizes:
    log_metric_calls: int = 1000
    batches: int = 20
    batch_size: int = 1000
    history_points: int = 100_000
    runs: int = 1000
    search_repeats: int = 30
    history_repeats: int = 3
    launches: int = 3
    settle_s: float = 5.0
    rounds: int = 5

    @classmethod
    def quick(cls) -> Sizes:
        return cls(log_metric_calls=30, batches=3, history_points=10_000, runs=100,
                   search_repeats=2, history_repeats=1, launches=1, settle_s=2.0, rounds=2)

    def per_round(self, total: int) -> int:
        """Calls a round, so that the rounds together make at least ``total``."""
        return max(1, math.ceil(total / self.rounds))


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the workload (identical for both servers) -----------------------------------------

def history_batches(sizes: Sizes) -> list[list[Any]]:
    """The points of the long history, as log_batch-sized lists of mlflow Metrics."""
    from mlflow.entities import Metric

    rng = random.Random(7)
    t0 = 1_700_000_000_000
    points = [Metric(HISTORY_KEY, math.sin(i / 500) + rng.gauss(0, 0.1), t0 + i, i)
              for i in range(sizes.history_points)]
    n = sizes.batch_size
    return [points[i:i + n] for i in range(0, len(points), n)]


def search_data(sizes: Sizes) -> list[dict[str, Any]]:
    """The params, metrics and tags of every run that search_runs looks at."""
    rng = random.Random(11)
    runs = []
    for i in range(sizes.runs):
        runs.append({
            "name": f"run-{i:04d}",
            "params": {"p": rng.choice("xyz"), "q": str(i), "lr": f"{rng.choice([1e-3, 3e-4, 1e-4])}",
                       "model": rng.choice(["mlp", "cnn", "gbt"]), "seed": str(rng.randrange(10))},
            "metrics": {"m": rng.random(), "loss": rng.uniform(0.1, 3.0), "acc": rng.random(),
                        "epoch": float(rng.randrange(1, 50)), "f1": rng.random()},
            "tags": {"team": rng.choice(["a", "b"]), "stage": rng.choice(["dev", "prod"]),
                     "note": f"bench run {i}"},
        })
    return runs


Round = Callable[[int], Repeated]
"""One timed round of one figure on one server, given the round's number: ``common.repeat``'s record."""


def quiet_stdout() -> contextlib.AbstractContextManager[Any]:
    return contextlib.redirect_stdout(io.StringIO())  # no "View run at" lines from the fluent API


def phase_log_metric(server: Server, sizes: Sizes) -> dict[str, Round]:
    """A run warmed with 10 calls; each round resumes it and makes its share of the sync calls."""
    import mlflow

    mlflow.set_tracking_uri(server.url)
    exp = mlflow.set_experiment("bench-log-metric").experiment_id
    with quiet_stdout(), mlflow.start_run() as run:
        for i in range(10):  # warm the connection and the server's code paths
            mlflow.log_metric("warm", i, step=i, synchronous=True)
    n = sizes.per_round(sizes.log_metric_calls)

    def one(r: int) -> Repeated:
        steps = iter(range(r * n, (r + 1) * n))

        def call() -> None:
            i = next(steps)
            mlflow.log_metric("m", i * 0.5, step=i, synchronous=True)

        # The fluent API's tracking URI, experiment and active run are global: this server's, untimed.
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment(experiment_id=exp)
        with quiet_stdout(), mlflow.start_run(run_id=run.info.run_id):
            return repeat(server, call, n)
    return {"log_metric": one}


def phase_log_batch(server: Server, sizes: Sizes, batches: list[list[Any]], out: dict[str, Any]) -> dict[str, Round]:
    """Round ``r`` logs the history's batches ``r * n`` to ``(r + 1) * n``; ``fill_history`` the rest."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(server.url)
    exp = client.create_experiment("bench-log-batch")
    warm = client.create_run(exp).info.run_id
    client.log_batch(warm, metrics=[Metric("w", float(i), 1, i) for i in range(sizes.batch_size)])
    run_id = out["history_run_id"] = client.create_run(exp, run_name="history").info.run_id
    n = sizes.per_round(sizes.batches)

    def one(r: int) -> Repeated:
        todo = iter(batches[r * n:(r + 1) * n])
        return repeat(server, lambda: client.log_batch(run_id, metrics=next(todo)), n)
    return {"log_batch": one}


def fill_history(server: Server, sizes: Sizes, batches: list[list[Any]], out: dict[str, Any]) -> None:
    """The history's batches that no timed round logged."""
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    t0 = time.perf_counter()
    for b in batches[sizes.rounds * sizes.per_round(sizes.batches):]:
        client.log_batch(out["history_run_id"], metrics=b)
    out["history_fill_s"] = time.perf_counter() - t0


def _plain_history(url: str, token: str | None, run_id: str) -> int:
    """get-history pages with requests and json only: what the wire costs without a client."""
    import requests

    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    n, page_token = 0, None
    while True:
        params = {"run_id": run_id, "metric_key": HISTORY_KEY, "max_results": PAGE}
        if page_token:
            params["page_token"] = page_token
        r = session.get(url + "/api/2.0/mlflow/metrics/get-history", params=params, timeout=300)
        r.raise_for_status()
        body = r.json()
        n += len(body.get("metrics", []))
        page_token = body.get("next_page_token")
        if not page_token:
            return n


def _labtrack_client() -> Any:
    try:
        import labtrack
    except ImportError:
        return None
    cls = getattr(labtrack, "Client", None)
    return cls if cls is not None and hasattr(cls, "get_metric_history") else None


def phase_history(server: Server, sizes: Sizes, run_id: str) -> dict[str, Round]:
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    readers: dict[str, Any] = {
        "mlflow_client": lambda: len(client.get_metric_history(run_id, HISTORY_KEY)),
        "plain_http": lambda: _plain_history(server.url, server.token, run_id),
    }
    lt_client = _labtrack_client()
    if lt_client is not None:
        lt = lt_client(server.url)
        readers["labtrack_client"] = lambda: len(lt.get_metric_history(run_id, HISTORY_KEY))
    n = sizes.per_round(sizes.history_repeats)
    for fn in readers.values():
        fn()  # warm, as every other phase: the connection, and the replay floor's recording
    return {name: lambda r, fn=fn: repeat(server, fn, n) for name, fn in readers.items()}


def phase_search(server: Server, sizes: Sizes, data: list[dict[str, Any]], out: dict[str, Any]) -> dict[str, Round]:
    import requests
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(server.url)
    exp = client.create_experiment("bench-search")
    t0 = time.perf_counter()
    for i, d in enumerate(data):
        run_id = client.create_run(exp, start_time=1_700_000_000_000 + i, run_name=d["name"]).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, 1_700_000_000_000 + i, 0) for k, v in d["metrics"].items()],
            params=[Param(k, v) for k, v in d["params"].items()],
            tags=[RunTag(k, v) for k, v in d["tags"].items()])
    setup = time.perf_counter() - t0
    out["search"] = {"runs": len(data), "setup_s": setup, "setup_runs_per_s": len(data) / setup}
    session = requests.Session()
    if server.token:
        session.headers["Authorization"] = f"Bearer {server.token}"

    def plain(filt: str) -> list[Any]:
        r = session.post(server.url + "/api/2.0/mlflow/runs/search", timeout=300,
                         json={"experiment_ids": [exp], "filter": filt, "max_results": 1000})
        r.raise_for_status()
        return r.json().get("runs", [])

    searches = {
        "filtered": lambda: client.search_runs([exp], filter_string=FILTER, max_results=1000),
        "unfiltered": lambda: client.search_runs([exp], filter_string="", max_results=1000),
        "filtered_http": lambda: plain(FILTER),
        "unfiltered_http": lambda: plain(""),
    }
    n = sizes.per_round(sizes.search_repeats)
    for search in searches.values():
        search()  # warm
    return {name: lambda r, fn=fn: repeat(server, fn, n) for name, fn in searches.items()}


def over_rounds(reps: list[Repeated]) -> dict[str, Any]:
    """One figure of one server over its rounds: ``wall_s`` is the median of the rounds' wall
    per call; CPU (server and client) is summed over the rounds, then divided by the calls."""
    calls = sum(len(r.walls) for r in reps)
    return {
        "calls": calls,
        "wall_s": median([sum(r.walls) / len(r.walls) for r in reps]),
        "cpu_s": sum(r.cpu_s * len(r.walls) for r in reps) / calls,
        "client_cpu_s": sum(r.client_cpu_s * len(r.walls) for r in reps) / calls,
        "rounds": [{"wall_s": sum(r.walls), "cpu_s": r.cpu_s * len(r.walls),
                    "client_cpu_s": r.client_cpu_s * len(r.walls), "walls": r.walls} for r in reps],
    }


def settle(servers: list[Server], quiet_s: float, timeout: float = 60) -> float:
    """Wait until every server's tree has used under 3% of a CPU for ``quiet_s`` seconds."""
    t0 = time.perf_counter()
    while servers and time.perf_counter() - t0 < timeout:
        c0 = [sv.cpu_s() for sv in servers]
        time.sleep(quiet_s)
        if all(sv.cpu_s() - c < 0.03 * quiet_s for sv, c in zip(servers, c0)):
            break
    return time.perf_counter() - t0


def bench(kinds: list[str], sizes: Sizes, root: Path, batches: list[list[Any]],
          data: list[dict[str, Any]], token: str | None, floor: bool) -> dict[str, dict[str, Any]]:
    """Each phase sets up and warms up on every server, then its timed part runs in
    ``sizes.rounds`` rounds, each on every server in an order that rotates round by round
    (``common.interleaved``): a drift of the machine's load or of the client's own CPU
    weighs on every server alike.  A server's figure is the median of its rounds.

    With ``floor``, the phases also run against the replay floor (see
    ``common.ReplayFloor``), after the launches, which it has no part in.
    """
    out: dict[str, dict[str, Any]] = {k: {"launches": [], "launch_cpus": []} for k in kinds}
    servers: dict[str, Server] = {}
    try:
        # labtrack's starts come first: MLflow keeps starting job-runner processes
        # after its /health answers, and they would eat the CPU of a start beside them.
        for kind in sorted(kinds, key=lambda k: k != "labtrack"):
            for i in range(sizes.launches):
                if kind in servers:
                    servers.pop(kind).stop()
                settle(list(servers.values()), sizes.settle_s)
                workdir = root / f"{kind}-{i}"
                servers[kind] = start_mlflow(workdir) if kind == "mlflow" else start_labtrack(workdir, token)
                out[kind]["launches"].append(servers[kind].launch_s)
                out[kind]["launch_cpus"].append(servers[kind].launch_cpu_s)
                say(f"{kind} launch {i + 1}/{sizes.launches}: {servers[kind].launch_s:.2f} s "
                    f"({servers[kind].launch_cpu_s:.2f} s CPU)")
        for kind, server in servers.items():
            out[kind]["launch_s"] = median(out[kind]["launches"])
            out[kind]["launch_cpu_s"] = median(out[kind]["launch_cpus"])
        if floor:
            servers["floor"] = start_floor(root / "floor", token)
            out["floor"] = {}
        waited = settle(list(servers.values()), sizes.settle_s, timeout=120)
        say(f"servers quiet after {waited:.0f} s")
        for kind in kinds:
            out[kind]["rss_after_launch_mb"] = servers[kind].rss_mb()

        def timed(label: str, phase: Callable[[str, Server], dict[str, Round]],
                  summary: Callable[[dict[str, Any], dict[str, list[Repeated]]], None],
                  report: Callable[[dict[str, Any]], str]) -> None:
            """The phase's setup and warm-up on every server, then its rounds, interleaved."""
            rounds = {kind: phase(kind, server) for kind, server in servers.items()}
            got: dict[str, dict[str, list[Repeated]]] = {k: {f: [] for f in figs} for k, figs in rounds.items()}
            for r, kind in interleaved(list(servers), sizes.rounds):
                for figure, one in rounds[kind].items():
                    got[kind][figure].append(one(r))
            for kind in servers:
                summary(out[kind], got[kind])
                say(f"{kind} {label}: {report(out[kind])}")

        def log_metric(o: dict[str, Any], got: dict[str, list[Repeated]]) -> None:
            f = o["log_metric"] = over_rounds(got["log_metric"])
            f.update(calls_per_s=1 / f["wall_s"], cpu_ms_per_call=1000 * f["cpu_s"])

        def log_batch(o: dict[str, Any], got: dict[str, list[Repeated]]) -> None:
            f = o["log_batch"] = over_rounds(got["log_batch"])
            f.update(points=f["calls"] * sizes.batch_size, points_per_s=sizes.batch_size / f["wall_s"],
                     cpu_ms_per_batch=1000 * f["cpu_s"])

        def history(o: dict[str, Any], got: dict[str, list[Repeated]]) -> None:
            o["history"] = {"points": sizes.history_points, **{
                name: {**over_rounds(reps), "points_read": sorted({x for r in reps for x in r.results})}
                for name, reps in got.items()}}

        def search(o: dict[str, Any], got: dict[str, list[Repeated]]) -> None:
            for name, reps in got.items():
                o["search"][name] = {**over_rounds(reps),
                                     "runs_found": sorted({len(x) for r in reps for x in r.results}),
                                     "filter": "" if name.startswith("unfiltered") else FILTER}

        timed("log_metric", lambda k, sv: phase_log_metric(sv, sizes), log_metric,
              lambda o: f"{o['log_metric']['calls_per_s']:.1f} calls/s")
        timed("log_batch", lambda k, sv: phase_log_batch(sv, sizes, batches, out[k]), log_batch,
              lambda o: f"{o['log_batch']['points_per_s']:.0f} points/s")
        for kind, server in servers.items():
            fill_history(server, sizes, batches, out[kind])
            say(f"{kind} history filled in {out[kind]['history_fill_s']:.1f} s")
        timed("get_metric_history", lambda k, sv: phase_history(sv, sizes, out[k]["history_run_id"]), history,
              lambda o: ", ".join(f"{k} {v['wall_s']:.3f} s" for k, v in o["history"].items() if k != "points"))
        timed("search_runs", lambda k, sv: phase_search(sv, sizes, data, out[k]), search,
              lambda o: "{:.3f} s filtered, {:.3f} s unfiltered (setup {:.1f} s)".format(
                  o["search"]["filtered"]["wall_s"], o["search"]["unfiltered"]["wall_s"], o["search"]["setup_s"]))

        if "floor" in servers:
            servers.pop("floor").stop()
        c0 = {k: tree_cpu_s(sv.pid) for k, sv in servers.items()}
        time.sleep(sizes.settle_s)
        for kind, server in servers.items():
            o = out[kind]
            o["idle_cpu_ms_per_s"] = 1000 * (tree_cpu_s(server.pid) - c0[kind]) / sizes.settle_s
            o["idle_rss_mb"] = server.rss_mb()
            o["processes"] = tree_memory(server.pid)
            say(f"{kind} idle RSS {o['idle_rss_mb']:.0f} MB over {len(o['processes'])} processes")
    finally:
        for server in servers.values():
            server.stop()
    return out


# -- the report -------------------------------------------------------------------------

def rows(m: dict[str, Any] | None, l: dict[str, Any] | None, sizes: Sizes,
         floor: dict[str, Any] | None = None) -> list[Row]:
    def get(d: dict[str, Any] | None, *path: str) -> float | None:
        for p in path:
            if d is None or p not in d:
                return None
            d = d[p]
        return d  # type: ignore[return-value]

    pts = f"{sizes.history_points:,} pts"
    b = sizes.batch_size
    hist_cpu = lambda d: None if get(d, "history", "mlflow_client", "cpu_s") is None else \
        1000 * get(d, "history", "mlflow_client", "cpu_s")  # noqa: E731
    search = lambda d, k, f: None if get(d, "search", k, f) is None else get(d, "search", k, f) * (  # noqa: E731
        1000 if f == "cpu_s" else 1)
    return [
        Row("log_metric (sync), wall", "calls/s", get(m, "log_metric", "calls_per_s"),
            get(l, "log_metric", "calls_per_s"), higher_is_better=True, target=("ratio", 4),
            floor=get(floor, "log_metric", "calls_per_s")),
        Row("log_metric, server CPU", "ms/call", get(m, "log_metric", "cpu_ms_per_call"),
            get(l, "log_metric", "cpu_ms_per_call"), target=("ratio", 10)),
        Row(f"log_batch ({b:,} pts), wall", "points/s", get(m, "log_batch", "points_per_s"),
            get(l, "log_batch", "points_per_s"), higher_is_better=True, target=("ratio", 4),
            floor=get(floor, "log_batch", "points_per_s")),
        Row("log_batch, server CPU", "ms/batch", get(m, "log_batch", "cpu_ms_per_batch"),
            get(l, "log_batch", "cpu_ms_per_batch"), target=("ratio", 10)),
        Row(f"get_metric_history {pts}, mlflow client", "s", get(m, "history", "mlflow_client", "wall_s"),
            get(l, "history", "mlflow_client", "wall_s"),
            note="the mlflow client's own parsing (protobuf) dominates; no target",
            floor=get(floor, "history", "mlflow_client", "wall_s")),
        Row(f"get_metric_history {pts}, requests loop", "s", get(m, "history", "plain_http", "wall_s"),
            get(l, "history", "plain_http", "wall_s"), floor=get(floor, "history", "plain_http", "wall_s")),
        Row(f"get_metric_history {pts}, labtrack.Client", "s", get(m, "history", "labtrack_client", "wall_s"),
            get(l, "history", "labtrack_client", "wall_s"), target=("max", 0.5),
            floor=get(floor, "history", "labtrack_client", "wall_s")),
        Row("get_metric_history, server CPU", "ms/read", hist_cpu(m), hist_cpu(l), target=("ratio", 10)),
        Row(f"search_runs filtered ({sizes.runs:,} runs), wall", "s", search(m, "filtered", "wall_s"),
            search(l, "filtered", "wall_s"), target=("ratio", 10), note=f"filter: {FILTER}",
            floor=search(floor, "filtered", "wall_s")),
        Row("search_runs filtered, requests loop", "s", search(m, "filtered_http", "wall_s"),
            search(l, "filtered_http", "wall_s"), floor=search(floor, "filtered_http", "wall_s")),
        Row("search_runs filtered, server CPU", "ms/search", search(m, "filtered", "cpu_s"),
            search(l, "filtered", "cpu_s"), target=("ratio", 10)),
        Row(f"search_runs unfiltered ({sizes.runs:,} runs), wall", "s", search(m, "unfiltered", "wall_s"),
            search(l, "unfiltered", "wall_s"), target=("ratio", 10), floor=search(floor, "unfiltered", "wall_s")),
        Row("search_runs unfiltered, requests loop", "s", search(m, "unfiltered_http", "wall_s"),
            search(l, "unfiltered_http", "wall_s"), floor=search(floor, "unfiltered_http", "wall_s")),
        Row("search_runs unfiltered, server CPU", "ms/search", search(m, "unfiltered", "cpu_s"),
            search(l, "unfiltered", "cpu_s"), target=("ratio", 10)),
        Row("create_run + log_batch (search setup)", "runs/s", get(m, "search", "setup_runs_per_s"),
            get(l, "search", "setup_runs_per_s"), higher_is_better=True),
        Row(f"launch to 200 on /health (median of {sizes.launches})", "s", get(m, "launch_s"),
            get(l, "launch_s"), target=("max", 1.0)),
        Row("launch, server CPU until that 200", "s", get(m, "launch_cpu_s"), get(l, "launch_cpu_s")),
        Row("RSS after launch", "MB", get(m, "rss_after_launch_mb"), get(l, "rss_after_launch_mb")),
        Row("idle RSS after the workload", "MB", get(m, "idle_rss_mb"), get(l, "idle_rss_mb"),
            target=("max", 80)),
        Row("idle server CPU", "ms/s", get(m, "idle_cpu_ms_per_s"), get(l, "idle_cpu_ms_per_s")),
    ]


def checks(m: dict[str, Any] | None, l: dict[str, Any] | None, floor: dict[str, Any] | None = None,
           other: str = "labtrack") -> list[str]:
    """Both servers (and the replay floor) must have answered the same: same points read, same runs found."""
    if m is None or l is None:
        return []
    problems = [] if floor is None else checks(m, floor, other="the replay floor")
    for name in ("mlflow_client", "plain_http", "labtrack_client"):
        a, b = m["history"].get(name, {}).get("points_read"), l["history"].get(name, {}).get("points_read")
        if a is not None and b is not None and a != b:
            problems.append(f"history via {name}: MLflow read {a} points, {other} {b}")
    for name in ("filtered", "unfiltered", "filtered_http", "unfiltered_http"):
        a, b = m["search"][name]["runs_found"], l["search"][name]["runs_found"]
        if a != b:
            problems.append(f"search_runs {name}: MLflow found {a} runs, {other} {b}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run in under 2 minutes")
    ap.add_argument("--only", choices=("mlflow", "labtrack"), help="run one side only (no ratios)")
    ap.add_argument("--output", default="server.json", help="file name under bench/results/")
    ap.add_argument("--rounds", type=int, help="rounds each timed phase is split into, interleaved across "
                    "the servers (default 5, 2 with --quick)")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the replay floor (the 'ceiling' column: what an instant server would reach)")
    args = ap.parse_args(argv)

    quiet_env()
    import mlflow  # noqa: F401 - after quiet_env: telemetry is read at import

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    token = secrets.token_hex(16)
    # The mlflow client sends it as a bearer token; MLflow's server ignores it.
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.rounds is not None:
        if args.rounds < 1:
            ap.error("--rounds must be at least 1")
        sizes.rounds = args.rounds
    machine_info = machine()
    say(f"sizes: {sizes}")
    batches = history_batches(sizes)
    data = search_data(sizes)
    # The workload's 100,000 prepared points would otherwise be walked by every
    # full garbage collection while a client builds its 100,000 results.
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    kinds = [args.only] if args.only else ["mlflow", "labtrack"]
    with scratch("labtrack-bench-") as root:
        ran = bench(kinds, sizes, root, batches, data, token, floor="mlflow" in kinds and not args.no_floor)
    results: dict[str, dict[str, Any] | None] = {k: ran.get(k) for k in ("mlflow", "labtrack", "floor")}
    table_rows = rows(results["mlflow"], results["labtrack"], sizes, results["floor"])
    problems = checks(results["mlflow"], results["labtrack"], results["floor"])
    total = time.perf_counter() - started
    title = (f"labtrack vs MLflow {machine_info['mlflow']} server, one worker, SQLite, "
             f"{os.cpu_count()} CPUs{' (--quick: smaller counts than the targets assume)' if args.quick else ''}")
    print()
    print(title)
    print("ratio: how many times better labtrack is (MLflow/labtrack for times, CPU, memory; "
          "labtrack/MLflow for rates)")
    print(f"wall: the median over {sizes.rounds} rounds, interleaved across the servers, of a round's wall "
          "time per call")
    print("server CPU: user+system seconds of the server's whole process tree over the rounds, per call")
    if results["floor"] is not None:
        print("ceiling: the ratio of a server that answers instantly (bench/replay.py replaying labtrack's "
              "answers), i.e. the most any server can reach through that client")
    print()
    print(table(table_rows))
    for p in problems:
        print(f"WARNING: {p}")
    load = os.getloadavg()  # at the end it counts this benchmark's own two busy processes
    if machine_info["load_avg_at_start"][0] > (os.cpu_count() or 1) / 2:
        print(f"NOTE: the machine was busy (load average {machine_info['load_avg_at_start'][0]:.1f} at the start, "
              f"{load[0]:.1f} at the end, {os.cpu_count()} CPUs): wall times are stretched; "
              "the server-CPU figures hold up better")
    print(f"\ntotal {total:.0f} s")
    path = write_json(args.output, {
        "benchmark": "server", "quick": args.quick, "sizes": sizes.__dict__,
        "machine": {**machine_info, "load_avg_at_end": list(load)},
        "total_s": total, "rows": [r.to_json() for r in table_rows], "raw": results, "problems": problems,
    })
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
