"""search_runs through the mlflow client against the replay ceiling, in interleaved rounds.

    python bench/search_ceiling.py [--rounds 6] [--repeats 5]

bench_server.py measures each server in its own phase, minutes apart: on a shared,
loaded machine the client's own parsing (most of a search's wall time) is then
stretched differently for each, and the share of the ceiling says more about the
load than about the server.  Here the same workload as bench_server's search phase
(1,000 runs, ``FILTER`` and no filter) goes to three servers in turn, round after
round: the replay floor, ``labtrack server`` as it is, and ``labtrack server`` with
``LABTRACK_SEARCH_CACHE=0`` (every search reads the database: the cold figure).
Each row: median wall per search, labtrack's share of the ceiling (floor wall /
its wall, from the medians), and server CPU per search.  Results in
``bench/results/search_ceiling.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import FILTER, Sizes, search_data  # noqa: E402
from common import (Server, interleaved, machine, repeat, scratch, start_floor,  # noqa: E402
                    start_labtrack, write_json)


def _load(server: Server, data: list[dict[str, Any]]) -> str:
    """bench_server's search setup: the runs, through the mlflow client (recorded by a floor)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(server.url)
    exp = client.create_experiment("bench-search")
    for i, d in enumerate(data):
        run_id = client.create_run(exp, start_time=1_700_000_000_000 + i, run_name=d["name"]).info.run_id
        client.log_batch(run_id, metrics=[Metric(k, v, 1_700_000_000_000 + i, 0) for k, v in d["metrics"].items()],
                         params=[Param(k, v) for k, v in d["params"].items()],
                         tags=[RunTag(k, v) for k, v in d["tags"].items()])
    return exp


def _cold_labtrack(workdir: Path) -> Server:
    os.environ["LABTRACK_SEARCH_CACHE"] = "0"
    try:
        return start_labtrack(workdir, None)
    finally:
        del os.environ["LABTRACK_SEARCH_CACHE"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5, help="searches per server and round")
    args = parser.parse_args()
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    data = search_data(Sizes())
    load0 = os.getloadavg()[0]
    with scratch("search-ceiling") as work:
        servers = {"ceiling": start_floor(work / "floor", None), "labtrack": start_labtrack(work / "lt", None),
                   "labtrack cold": _cold_labtrack(work / "cold")}
        try:
            exps = {name: _load(s, data) for name, s in servers.items()}
            clients = {name: MlflowClient(s.url) for name, s in servers.items()}
            searches = {"filtered": FILTER, "unfiltered": ""}
            for name, client in clients.items():  # warm, and recorded by the floor
                for filt in searches.values():
                    client.search_runs([exps[name]], filter_string=filt, max_results=1000)
            walls: dict[tuple[str, str], list[float]] = {(n, s): [] for n in servers for s in searches}
            cpus: dict[tuple[str, str], list[float]] = {(n, s): [] for n in servers for s in searches}
            for _, name in interleaved(list(servers), args.rounds):
                for search, filt in searches.items():
                    rep = repeat(servers[name], lambda c=clients[name], e=exps[name], f=filt: c.search_runs(
                        [e], filter_string=f, max_results=1000), args.repeats)
                    assert len({len(x) for x in rep.results}) == 1
                    walls[(name, search)] += rep.walls
                    cpus[(name, search)].append(rep.cpu_s)
            out: dict[str, Any] = {"machine": machine(), "rounds": args.rounds, "repeats": args.repeats,
                                   "load_start": load0, "load_end": os.getloadavg()[0], "rows": []}
            print(f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, 2 CPUs")
            print(f"{'server':14s} {'search':11s} {'wall ms (median)':>17s} {'share of ceiling':>17s} "
                  f"{'server CPU ms/search (median)':>30s}")
            for (name, search), w in walls.items():
                wall = statistics.median(w)
                share = statistics.median(walls[("ceiling", search)]) / wall
                cpu = statistics.median(cpus[(name, search)])
                out["rows"].append({"server": name, "search": search, "wall_s": wall, "share": share,
                                    "server_cpu_s": cpu, "walls": w})
                print(f"{name:14s} {search:11s} {wall * 1000:17.1f} {share:16.0%} {cpu * 1000:30.1f}")
            print("results:", write_json("search_ceiling.json", out))
        finally:
            for s in servers.values():
                s.stop()


if __name__ == "__main__":
    main()
