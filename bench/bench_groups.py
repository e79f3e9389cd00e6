"""The runs table's group statistics (issue 21) on SQLite: one connection against a split read.

Group by a param, mean ± std of every metric column, as the web UI asks for it, in interleaved
rounds of ``single`` (the split off: LABTRACK_GROUP_SPLIT_MIN_RUNS above the runs' count) and
``split`` (one part per core, at most 4, from 20,000 runs):

* default: ``POST runs/table`` to two real labtrack servers, each on its own copy of the
  database; wall ms at the client and the server's CPU ms;
* ``--in-process``: ``run_table.groups`` on a pooled reader connection of ``open_engines`` in
  this process; wall ms and this process's CPU ms (all threads).

Prints each round with the load average before it, the medians, and whether both answers
agree (counts, n, min and max equal; mean and std to 1e-12: the parts' sums add up in another
order).

    python bench/bench_groups.py                      # the scale dataset (100,000 runs; cached)
    python bench/bench_groups.py --db DB --experiment 1 --rounds 7

``--db`` is copied (for the servers) or used in place (``--in-process``: give a copy, opening
it upgrades its schema).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

TOKEN = "bench-groups-token"
NEVER = str(2**62)


def _load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def _agree(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if [(g["value"], g["count"]) for g in a["groups"]] != [(g["value"], g["count"]) for g in b["groups"]]:
        return False
    for ga, gb in zip(a["groups"], b["groups"]):
        for k, m in ga["metrics"].items():
            o = gb["metrics"].get(k)
            if o is None or (m["n"], m["min"], m["max"]) != (o["n"], o["min"], o["max"]):
                return False
            if not all(math.isclose(float(m[f]), float(o[f]), rel_tol=1e-12) for f in ("mean", "std")):
                return False
    return True


def _over_http(db: Path, work: Path, body: dict[str, Any]) -> tuple[dict[str, Callable[[], Any]], Callable[[], None]]:
    """(name -> one request's (wall ms, server CPU ms, answer), stop) for the two servers."""
    import requests
    from common import start_labtrack

    servers = {}
    try:
        for name, split_from in (("single", NEVER), ("split", None)):
            (work / name).mkdir(parents=True)
            shutil.copyfile(db, work / name / "mlruns.db")
            env = dict(os.environ)
            os.environ.pop("LABTRACK_GROUP_SPLIT_MIN_RUNS", None)
            if split_from:
                os.environ["LABTRACK_GROUP_SPLIT_MIN_RUNS"] = split_from
            try:
                servers[name] = start_labtrack(work / name, TOKEN, timeout=300)  # a schema upgrade takes a while
            finally:
                os.environ.clear()
                os.environ.update(env)
    except BaseException:
        for s in servers.values():
            s.stop()
        raise
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"

    def call(name: str) -> tuple[float, float, Any]:
        srv = servers[name]
        cpu, t = srv.cpu_s(), time.perf_counter()
        reply = session.post(f"{srv.url}/api/2.0/labtrack/runs/table", json=body, timeout=300)
        wall = (time.perf_counter() - t) * 1000
        reply.raise_for_status()
        return wall, (srv.cpu_s() - cpu) * 1000, reply.json()

    def stop() -> None:
        for s in servers.values():
            s.stop()
    return {name: (lambda name=name: call(name)) for name in servers}, stop


def _in_process(db: Path, body: dict[str, Any]) -> tuple[dict[str, Callable[[], Any]], Callable[[], None]]:
    from labtrack.store import run_table as rt
    from labtrack.store.engine import open_engines

    engines = open_engines(f"sqlite:///{db}")
    q = rt.TableQuery([int(i) for i in body["experiment_ids"]], group=body["group"])
    keys = [c.partition(".")[2] for c in body["columns"] if c.startswith("metrics.")]
    normal = rt.SPLIT_MIN_RUNS

    def call(split: bool) -> tuple[float, float, Any]:
        rt.SPLIT_MIN_RUNS = normal if split else int(NEVER)
        try:
            with engines.reader.connect() as conn:
                r = resource.getrusage(resource.RUSAGE_SELF)
                cpu, t = r.ru_utime + r.ru_stime, time.perf_counter()
                out = rt.groups(conn, q, keys)
                wall = (time.perf_counter() - t) * 1000
                r = resource.getrusage(resource.RUSAGE_SELF)
                conn.rollback()
        finally:
            rt.SPLIT_MIN_RUNS = normal
        return wall, (r.ru_utime + r.ru_stime - cpu) * 1000, out

    return {"single": lambda: call(False), "split": lambda: call(True)}, engines.dispose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, help="a labtrack SQLite database (default: the scale dataset's)")
    ap.add_argument("--experiment", help="experiment id (default: the dataset's main experiment, or 1)")
    ap.add_argument("--group", default="params.p00")
    ap.add_argument("--metrics", type=int, default=10, help="metric columns m0, m1, ...")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--in-process", action="store_true", help="call run_table.groups here, no server")
    args = ap.parse_args()

    exp = args.experiment
    db = args.db
    if db is None:
        from scale_data import LABTRACK_DB, runs_dataset
        folder, facts = runs_dataset()
        db = folder / LABTRACK_DB
        exp = exp or str(facts["main_experiment_id"])
    body = {"experiment_ids": [exp or "1"], "group": args.group, "stats": True,
            "columns": ["attr.name"] + [f"metrics.m{i}" for i in range(args.metrics)]}
    with tempfile.TemporaryDirectory(prefix="lt-bench-groups-") as tmp:
        calls, stop = _in_process(db, body) if args.in_process else _over_http(db, Path(tmp), body)
        try:
            what = "in process" if args.in_process else "over HTTP, server CPU"
            print(f"{db}: experiment {body['experiment_ids'][0]}, group {args.group}, {args.metrics} metric "
                  f"columns, {os.cpu_count()} cores; {what}")
            answers = {name: call()[2] for name, call in calls.items()}  # warm the file cache
            got: dict[str, list[tuple[float, float]]] = {"single": [], "split": []}
            for i in range(args.rounds):
                for name in (("single", "split") if i % 2 == 0 else ("split", "single")):
                    load = _load()
                    wall, cpu, answers[name] = calls[name]()
                    got[name].append((wall, cpu))
                    print(f"round {i} {name:6} {wall:6.0f} ms wall {cpu:6.0f} ms CPU  (load {load})", flush=True)
        finally:
            stop()
    for name, v in got.items():
        print(f"{name:6}: median {statistics.median(w for w, _ in v):.0f} ms wall, "
              f"{statistics.median(c for _, c in v):.0f} ms CPU over {args.rounds} rounds")
    ratio = statistics.median(w for w, _ in got["split"]) / statistics.median(w for w, _ in got["single"])
    print(f"split / single wall: {ratio:.2f}; answers agree: {_agree(answers['single'], answers['split'])}; "
          f"load average now {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()
