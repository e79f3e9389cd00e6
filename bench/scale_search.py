"""Issue 21's search figures at 100,000 runs: labtrack and MLflow on the same data, in the same run.

The data is ``scale_data.runs_dataset``: one experiment of 100,000 runs (20 params,
10 metrics, 5 tags each) and 99 of 100 runs beside it, as a labtrack database and
an MLflow twin of the same rows.  Each server gets a private copy of its database.

* **filtered, ordered page of 100**: ``metrics.m0 < 0.5 and params.p00 = 'adam'``
  ordered by ``metrics.m1 DESC`` (a sixth of the runs match).  labtrack's server
  time is its own access log's duration for the request (``--access-log``: from
  the request's arrival to its last byte), the median of the repetitions; CPU is
  the server's CPU seconds over all repetitions divided by their number.  MLflow
  logs no durations: its figure is the wall time at the client (its server CPU
  is recorded too).  Both servers must answer the same run ids in the same order.
* **unfiltered paging**: every run of the experiment, 1,000 per page (MLflow's
  largest page), following the page tokens; linear means the last pages cost what
  the first ones do.
* **runs per experiment over 100 experiments**: labtrack's
  ``experiments/activity`` (one grouped scan).  MLflow has no count: its client
  pages through ``runs/search`` per experiment, which is what mlflow#8277 measured.
* **server RSS**: the largest resident memory of the labtrack server's process,
  sampled every 50 ms during all of the above.

MLflow's long workloads stop at ``mlflow_cap_s`` (15 minutes by default) and say how far
they got.  When a labtrack figure misses its target, the store's own call is profiled
in-process (cProfile) and the top functions go into the JSON.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR.parent))
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from bench.common import (  # noqa: E402
    Server,
    free_port,
    labtrack_command,
    launch,
    mlflow_command,
    quiet_env,
    scratch,
    tree_rss_mb,
)

FILTER = "metrics.m0 < 0.5 and params.p00 = 'adam'"
ORDER = ["metrics.m1 DESC"]
PAGE = 1000
_ACCESS = re.compile(r"(\d{3}) (GET|POST) (\S+) ([\d.]+)ms")


class Session:
    """A keep-alive HTTP session on one server's REST API."""

    def __init__(self, server: Server, timeout: float = 3600.0) -> None:
        import requests

        self.server = server
        self.http = requests.Session()
        self.timeout = timeout  # per request: MLflow's can take longer than the cap

    def post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        reply = self.http.post(self.server.url + path, json=body, timeout=timeout or self.timeout)
        reply.raise_for_status()
        return dict(reply.json())

    def get(self, path: str) -> dict[str, Any]:
        reply = self.http.get(self.server.url + path, timeout=3600)
        reply.raise_for_status()
        return dict(reply.json())

    def search(self, experiment_ids: list[str], filter_string: str = "", order_by: list[str] | None = None,
               max_results: int = 100, page_token: str | None = None,
               timeout: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"experiment_ids": experiment_ids, "filter": filter_string,
                                "max_results": max_results, "order_by": order_by or []}
        if page_token:
            body["page_token"] = page_token
        return self.post("/api/2.0/mlflow/runs/search", body, timeout)


class Peak:
    """The largest RSS of a process tree, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.mb, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.mb = max(self.mb, tree_rss_mb(self.pid))
            self._stop.wait(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.mb


def access_times(server: Server, path_end: str, since: int) -> list[float]:
    """Durations (ms) of the requests to ``...path_end`` logged after byte ``since`` of the log."""
    text = (server.workdir / "server.log").read_bytes()[since:].decode(errors="replace")
    return [float(m.group(4)) for m in _ACCESS.finditer(text) if m.group(3).endswith(path_end)]


def log_size(server: Server) -> int:
    path = server.workdir / "server.log"
    return path.stat().st_size if path.exists() else 0


def start_servers(folder: Path, work: Path, *, mlflow: bool) -> tuple[Server, Server | None]:
    """labtrack (and MLflow) on private copies of the dataset's databases."""
    from scale_data import LABTRACK_DB, MLFLOW_DB

    lt_dir, ml_dir = work / "labtrack", work / "mlflow"
    lt_dir.mkdir(parents=True)
    shutil.copyfile(folder / LABTRACK_DB, lt_dir / "mlruns.db")
    port = free_port()
    lt = launch("labtrack", labtrack_command(lt_dir, port, None) + ["--access-log"], port, lt_dir, timeout=600)
    ml = None
    if mlflow:
        ml_dir.mkdir(parents=True)
        shutil.copyfile(folder / MLFLOW_DB, ml_dir / "mlflow.db")
        port = free_port()
        try:
            ml = launch("mlflow", mlflow_command(ml_dir, port), port, ml_dir, timeout=600)
        except BaseException:
            lt.stop()
            raise
    return lt, ml


def _ids(reply: dict[str, Any]) -> list[str]:
    return [r["info"]["run_id"] for r in reply.get("runs", [])]


# -- the workloads ----------------------------------------------------------------------

def filtered_page(session: Session, exp: str, reps: int, timed_log: bool,
                  cap_s: float = float("inf")) -> dict[str, Any]:
    """The filtered, ordered page of 100, ``reps`` times after one warm-up.

    When the warm-up alone takes over a third of ``cap_s``, it is the only sample.
    """
    import requests

    c0, t0 = session.server.cpu_s(), time.perf_counter()
    try:
        first = session.search([exp], FILTER, ORDER, 100, timeout=cap_s if cap_s != float("inf") else None)
    except requests.Timeout:
        return {"ids": None, "timed_out": True, "wall_ms": _ms([time.perf_counter() - t0]), "reps": 0,
                "cpu_ms": round((session.server.cpu_s() - c0) * 1000, 1),
                "note": f"no answer within the {cap_s:.0f} s cap"}
    if time.perf_counter() - t0 > cap_s / 3:
        wall, cpu = time.perf_counter() - t0, session.server.cpu_s() - c0
        return {"ids": _ids(first), "same_every_time": True, "wall_ms": _ms([wall]), "cpu_ms": round(cpu * 1000, 1),
                "reps": 1, "note": "the warm-up call was the only sample (it took over a third of the cap)"}
    since = log_size(session.server)
    c0, walls = session.server.cpu_s(), []
    for _ in range(reps):
        t0 = time.perf_counter()
        reply = session.search([exp], FILTER, ORDER, 100)
        walls.append(time.perf_counter() - t0)
    cpu = (session.server.cpu_s() - c0) / reps
    out = {"ids": _ids(first), "same_every_time": _ids(reply) == _ids(first), "wall_ms": _ms(walls),
           "cpu_ms": round(cpu * 1000, 1), "reps": reps}
    if timed_log:
        out["server_ms"] = _ms([t / 1000 for t in access_times(session.server, "/runs/search", since)])
    return out


def page_all(session: Session, exp: str, cap_s: float, timed_log: bool) -> dict[str, Any]:
    """Every run of ``exp``, PAGE at a time, until the last page or ``cap_s``."""
    since = log_size(session.server)
    c0, t_start, walls, runs, token = session.server.cpu_s(), time.perf_counter(), [], 0, None
    done = False
    import requests

    while time.perf_counter() - t_start < cap_s:
        t0 = time.perf_counter()
        left = cap_s - (t0 - t_start)
        try:
            reply = session.search([exp], "", [], PAGE, token, timeout=left if left != float("inf") else None)
        except requests.Timeout:
            break
        walls.append(time.perf_counter() - t0)
        runs += len(reply.get("runs", []))
        token = reply.get("next_page_token")
        if not token:
            done = True
            break
    out: dict[str, Any] = {"pages": len(walls), "runs": runs, "complete": done,
                           "wall_s": round(time.perf_counter() - t_start, 2),
                           "cpu_s": round(session.server.cpu_s() - c0, 2), "page_wall_ms": [round(w * 1000, 1) for w in walls]}
    per_page = walls
    if timed_log:
        logged = access_times(session.server, "/runs/search", since)
        out["page_server_ms"] = logged
        per_page = [t / 1000 for t in logged]
        out["server_s"] = round(sum(logged) / 1000, 2)
    tenth = max(1, len(per_page) // 10)
    if len(per_page) >= 2 * tenth:
        out["last_over_first"] = round(statistics.mean(per_page[-tenth:]) / statistics.mean(per_page[:tenth]), 2)
    return out


def count_by_paging(session: Session, exps: list[str], cap_s: float) -> dict[str, Any]:
    """Runs per experiment the way an MLflow client counts them: page through runs/search."""
    import requests

    t_start, counts, token = time.perf_counter(), {}, None
    for exp in exps:
        n, token = 0, None
        while True:
            if time.perf_counter() - t_start > cap_s:
                return {"complete": False, "experiments_done": len(counts), "runs_counted": sum(counts.values()) + n,
                        "wall_s": round(time.perf_counter() - t_start, 1)}
            try:
                reply = session.search([exp], "", [], PAGE, token,
                                       timeout=max(1.0, cap_s - (time.perf_counter() - t_start)))
            except requests.Timeout:
                continue  # the cap check above ends the count
            n += len(reply.get("runs", []))
            token = reply.get("next_page_token")
            if not token:
                break
        counts[exp] = n
    return {"complete": True, "experiments_done": len(counts), "runs_counted": sum(counts.values()),
            "wall_s": round(time.perf_counter() - t_start, 2), "counts": counts}


def activity(session: Session, reps: int) -> dict[str, Any]:
    reply = session.get("/api/2.0/labtrack/experiments/activity")
    since = log_size(session.server)
    c0, walls = session.server.cpu_s(), []
    for _ in range(reps):
        t0 = time.perf_counter()
        session.get("/api/2.0/labtrack/experiments/activity")
        walls.append(time.perf_counter() - t0)
    counts = {e["experiment_id"]: e["runs"] for e in reply["experiments"]}
    return {"counts": counts, "wall_ms": _ms(walls), "cpu_ms": round((session.server.cpu_s() - c0) / reps * 1000, 1),
            "server_ms": _ms([t / 1000 for t in access_times(session.server, "/experiments/activity", since)])}


def _ms(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": round(statistics.median(seconds) * 1000, 1), "min": round(min(seconds) * 1000, 1),
            "max": round(max(seconds) * 1000, 1)}


def profile_store(db: Path, call: Callable[[Any], Any], top: int = 15) -> str:
    """The store's own call on a copy of the database, under cProfile: where the time goes."""
    from labtrack.store.tracking import TrackingStore

    store = TrackingStore(f"sqlite:///{db}")
    try:
        call(store)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(3):
            call(store)
        prof.disable()
    finally:
        store.close()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# -- the figures --------------------------------------------------------------------------

def _fig(figure: str, target: str, anchor: str, measured: float | None, unit: str, ratio: float | None,
         note: str = "") -> dict[str, Any]:
    return {"figure": figure, "target": target, "anchor": anchor, "measured": measured, "unit": unit,
            "ratio": None if ratio is None else round(ratio, 1), "note": note}


def _ratio(mlflow: float | None, ours: float | None) -> float | None:
    return mlflow / ours if mlflow and ours else None


def run(quick: bool = False, mlflow: bool = True, mlflow_cap_s: float | None = None,
        record: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Build or find the dataset, run both servers, return the figures (and fill ``record``)."""
    from scale_data import LABTRACK_DB, runs_dataset

    quiet_env()
    size = {"runs": 10_000, "other_runs": 10} if quick else {"runs": 100_000, "other_runs": 100}
    cap = mlflow_cap_s if mlflow_cap_s is not None else (120.0 if quick else 900.0)
    reps = 5 if quick else 20
    folder, facts = runs_dataset(**size)
    exp = facts["main_experiment_id"]
    # The big experiment last: a count that stops at the cap then says how many of the others it did.
    exps = sorted(facts["experiments"].values(), key=lambda e: (e == facts["main_experiment_id"], int(e)))
    n = size["runs"]
    raw: dict[str, Any] = {"dataset": str(folder), "facts": {k: v for k, v in facts.items() if k != "experiments"},
                           "mlflow_cap_s": cap, "filter": FILTER, "order_by": ORDER}
    with scratch("scale-search-") as work:
        lt, ml = start_servers(folder, work, mlflow=mlflow)
        try:
            peak = Peak(lt.pid)
            s_lt = Session(lt)
            raw["labtrack_filtered"] = filtered_page(s_lt, exp, reps, True)
            raw["labtrack_paging"] = page_all(s_lt, exp, float("inf"), True)
            raw["labtrack_activity"] = activity(s_lt, reps)
            raw["labtrack_rss_peak_mb"] = round(peak.stop(), 1)
            raw["labtrack_rss_settled_mb"] = round(lt.rss_mb(), 1)
            if ml is not None:
                peak_ml = Peak(ml.pid)
                s_ml = Session(ml)
                raw["mlflow_filtered"] = filtered_page(s_ml, exp, 2, False, cap)
                raw["mlflow_paging"] = page_all(s_ml, exp, cap, False)
                raw["mlflow_counting"] = count_by_paging(s_ml, exps, cap)
                raw["mlflow_rss_peak_mb"] = round(peak_ml.stop(), 1)
        finally:
            lt.stop()
            if ml is not None:
                ml.stop()
    figures = _figures(raw, n)
    misses = [f for f in figures if f.get("missed")]
    if misses:
        raw["profiles"] = _profiles(folder / LABTRACK_DB, exp, misses)
    if record is not None:
        record.update(raw)
    return figures


def _profiles(db: Path, exp: str, misses: list[dict[str, Any]]) -> dict[str, str]:
    calls: dict[str, Callable[[Any], Any]] = {
        "filtered": lambda st: st.search_runs([exp], FILTER, max_results=100, order_by=ORDER),
        "paging": lambda st: st.search_runs([exp], None, max_results=PAGE),
        "activity": lambda st: st.experiment_activity(),
    }
    out = {}
    with scratch("scale-profile-") as work:
        copy = work / "mlruns.db"
        shutil.copyfile(db, copy)
        for f in misses:
            kind = f["kind"]
            if kind in calls:
                out[f["figure"]] = profile_store(copy, calls[kind])
    return out


def _figures(raw: dict[str, Any], n: int) -> list[dict[str, Any]]:
    runs = f"{n:,}"
    lt_f, ml_f = raw["labtrack_filtered"], raw.get("mlflow_filtered")
    measured = lt_f["server_ms"]["median"]
    if ml_f and ml_f.get("timed_out"):
        ml_f, ml_late = None, raw["mlflow_cap_s"]
    else:
        ml_late = None
    ml_ms = ml_f["wall_ms"]["median"] if ml_f else None
    same = ml_f is not None and ml_f["ids"] == lt_f["ids"]
    out = [_fig(f"search: filtered, ordered page of 100 ({runs} runs), server time", "≤ 50 ms",
                "MLflow 1,004 ms at 23,525 runs; Go backend 104 ms" + (f"; MLflow here {ml_ms:,.0f} ms" if ml_ms else "")
                + (f"; MLflow here gave no answer within the {ml_late:.0f} s cap" if ml_late else ""),
                measured, "ms", _ratio(ml_ms, measured),
                f"labtrack server CPU {lt_f['cpu_ms']} ms/request, wall {lt_f['wall_ms']['median']} ms"
                + (f"; MLflow CPU {ml_f['cpu_ms']} ms/request; same page as MLflow: {same}" if ml_f else ""))]
    out[-1].update(kind="filtered", missed=measured > 50)
    out.append(_fig("search: filtered, ordered page of 100, server CPU per request", "≤ 50 ms",
                    f"MLflow here {ml_f['cpu_ms']:,.0f} ms" if ml_f else "-", lt_f["cpu_ms"], "ms",
                    _ratio(ml_f["cpu_ms"] if ml_f else None, lt_f["cpu_ms"]),
                    "CPU seconds of the server process over the repetitions: what a busy machine does not stretch"))
    out[-1].update(kind="filtered", missed=lt_f["cpu_ms"] > 50)

    lt_p, ml_p = raw["labtrack_paging"], raw.get("mlflow_paging")
    ml_note = ""
    ml_s = None
    if ml_p:
        if ml_p["complete"]:
            ml_s = ml_p["wall_s"]
            ml_note = f"MLflow here {ml_s:,.1f} s (last/first page {ml_p.get('last_over_first')}x)"
        else:
            ml_note = (f"MLflow here stopped at the {raw['mlflow_cap_s']:.0f} s cap after {ml_p['pages']} pages "
                       f"({ml_p['runs']:,} runs)")
    out.append(_fig(f"search: unfiltered paging through all {runs} runs ({PAGE}/page), server time", "linear",
                    ml_note or "-", lt_p["server_s"], "s", _ratio(ml_s, lt_p["wall_s"]),
                    f"{lt_p['pages']} pages, wall {lt_p['wall_s']} s, server CPU {lt_p['cpu_s']} s"))
    lof = lt_p.get("last_over_first")
    out.append(_fig("search: paging, last tenth of pages / first tenth (1 = linear)", "≈ 1 (linear)",
                    f"MLflow here {ml_p.get('last_over_first')}x" if ml_p and ml_p.get("last_over_first") else "-",
                    lof, "x", None, "per-page server time from the access log"))
    out[-1].update(kind="paging", missed=lof is not None and lof > 2)

    act, cnt = raw["labtrack_activity"], raw.get("mlflow_counting")
    measured = act["server_ms"]["median"]
    anchor = "MLflow 45 s (mlflow#8277)"
    ratio = None
    if cnt:
        if cnt["complete"]:
            anchor += f"; MLflow here {cnt['wall_s']:,.1f} s by paging runs/search"
            ratio = _ratio(cnt["wall_s"] * 1000, measured)
        else:
            anchor += (f"; MLflow here stopped at the {raw['mlflow_cap_s']:.0f} s cap with {cnt['experiments_done']} "
                       f"of 100 experiments counted ({cnt['runs_counted']:,} runs)")
    counted = sum(act["counts"].values())
    out.append(_fig(f"counting runs per experiment over {len(act['counts'])} experiments", "≤ 100 ms", anchor,
                    measured, "ms", ratio, f"{counted:,} runs counted; wall {act['wall_ms']['median']} ms"))
    out[-1].update(kind="activity", missed=measured > 100)
    out.append(_fig("counting runs per experiment, server CPU per request", "≤ 100 ms", "-", act["cpu_ms"], "ms",
                    None, "CPU seconds of the server process over the repetitions"))
    out[-1].update(kind="activity", missed=act["cpu_ms"] > 100)

    rss = raw["labtrack_rss_peak_mb"]
    ml_rss = raw.get("mlflow_rss_peak_mb")
    out.append(_fig(f"server RSS under the {runs}-run search (peak)", "≤ 300 MB",
                    f"MLflow here {ml_rss:,.0f} MB" if ml_rss else "-", rss, "MB", _ratio(ml_rss, rss),
                    f"settled after the workload {raw['labtrack_rss_settled_mb']} MB"))
    out[-1].update(kind="rss", missed=rss > 300)
    return out


LAST_RECORD: dict[str, Any] = {}  # the raw measurements behind the latest figures(), for the JSON


def figures(quick: bool = False, mlflow: bool = True, mlflow_cap_s: float | None = None) -> list[dict[str, Any]]:
    """The figures of this benchmark (bench_scale.py's entry point); raw data in LAST_RECORD."""
    LAST_RECORD.clear()
    return run(quick, mlflow, mlflow_cap_s, LAST_RECORD)


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-mlflow", action="store_true")
    ap.add_argument("--mlflow-cap-s", type=float, default=None)
    a = ap.parse_args()
    rec: dict[str, Any] = {}
    for f in run(a.quick, not a.no_mlflow, a.mlflow_cap_s, rec):
        print(json.dumps(f))
