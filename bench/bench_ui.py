"""Web UI benchmark: labtrack's UI and MLflow's UI on the same data, in the same run.

Data: 10,000 runs x 20 params x 10 metrics in one experiment, plus one run with a
1,000,000-point metric, the same rows in each server. Measured in Debian's Chromium
(Playwright, headless):

- runs table: navigation -> first rows interactive, and -> all runs loaded
- a 1,000,000-point metric: navigation to the chart -> drawn (fetch + draw), and the draw itself
- server RSS: peak while it serves both (sampled every 50 ms)

labtrack gets the data over HTTP (three requests per run from 16 threads, the long metric in
1,000-point batches); MLflow gets the same rows through its own store before its server starts
(``--mlflow-seed http`` logs them over HTTP instead: about an hour for 10,000 runs here).

Timings are reported, never asserted. Usage:
python bench/bench_ui.py [--runs N] [--points N] [--no-mlflow] [--mlflow-timeout S] [--mlflow-seed store|http]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LABTRACK_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]
TARGETS = {"table_interactive_s": 1.5, "chart_1m_s": 1.0, "rss_mb": 200}


class Server:
    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(8) if kind == "labtrack" else None
        db = f"sqlite:///{workdir / 'mlruns.db'}"
        if kind == "labtrack":
            cmd = [sys.executable, "-m", "labtrack", "server", "--backend-store-uri", db, "--artifacts-destination",
                   str(workdir / "mlruns"), "--port", str(self.port), "--token", self.token]
        else:
            cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", db, "--artifacts-destination",
                   str(workdir / "mlruns"), "--port", str(self.port), "--workers", "1"]
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
        self.log = open(workdir / "server.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.session = requests.Session()
        if self.token:
            self.session.headers["Authorization"] = f"Bearer {self.token}"
        deadline = time.monotonic() + 300  # mlflow 3 takes about a minute to start here
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited: {(workdir / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"{kind} server did not start")

    def post(self, path: str, body: dict[str, Any], session: requests.Session | None = None) -> dict[str, Any]:
        r = (session or self.session).post(f"{self.url}/api/2.0/mlflow/{path}", json=body, timeout=300)
        r.raise_for_status()
        return r.json() if r.text else {}

    def rss_mb(self) -> float:
        """RSS of the server and its children (mlflow runs gunicorn/uvicorn workers)."""
        try:
            p = psutil.Process(self.proc.pid)
            return sum(x.memory_info().rss for x in [p, *p.children(recursive=True)]) / 2**20
        except psutil.Error:
            return 0.0

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, 9)
        self.log.close()


class RssSampler:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss_mb())
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.peak


def _bench_run(i: int, t0: int) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """One bench run's name, params and metrics: the same data on both servers."""
    params = [{"key": f"param_{k:02d}", "value": str((i * (k + 3)) % 97)} for k in range(20)]
    metrics = [{"key": f"metric_{k}", "value": math.sin(i + k), "step": 0, "timestamp": t0 + i} for k in range(10)]
    return f"bench-run-{i:05d}", params, metrics


def _long_value(s: int) -> float:
    return math.sin(s / 5000) + 0.1 * math.sin(s)


def seed(server: Server, n_runs: int, n_points: int, threads: int = 16) -> tuple[str, str]:
    """Logs the data over HTTP: three requests per run (create, log-batch, update) from many
    threads at once, and the long metric as log-batch requests of 1,000 points (the most one
    request may carry), so the server's writer commits them in groups."""
    exp = str(server.post("experiments/create", {"name": "bench-10k"})["experiment_id"])
    t0 = int(time.time() * 1000) - 86_400_000
    local = threading.local()

    def session() -> requests.Session:
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
            s.headers.update(server.session.headers)
        return s

    def one(i: int) -> None:
        s = session()
        name, params, metrics = _bench_run(i, t0)
        info = server.post("runs/create", {"experiment_id": exp, "run_name": name, "start_time": t0 + i,
                                           "user_id": "bench"}, s)["run"]["info"]
        server.post("runs/log-batch", {"run_id": info["run_id"], "params": params, "metrics": metrics}, s)
        server.post("runs/update", {"run_id": info["run_id"], "status": "FINISHED", "end_time": t0 + i + 1000}, s)

    long_run = server.post("runs/create", {"experiment_id": exp, "run_name": "long-metric", "start_time": t0})["run"]["info"]["run_id"]

    def chunk(a: int) -> None:
        server.post("runs/log-batch", {"run_id": long_run, "metrics": [
            {"key": "long", "value": _long_value(s), "step": s, "timestamp": t0 + s}
            for s in range(a, min(n_points, a + 1000))]}, session())

    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(one, i) for i in range(n_runs)] + [pool.submit(chunk, a) for a in range(0, n_points, 1000)]:
            f.result()
    server.post("runs/update", {"run_id": long_run, "status": "FINISHED", "end_time": t0 + n_points})
    return exp, long_run


def seed_mlflow_store(workdir: Path, n_runs: int, n_points: int) -> tuple[str, str]:
    """The same data written into MLflow's database by MLflow's own store and ORM models, before
    its server starts: over HTTP MLflow 3 logs about 3 runs/s on this machine (an hour for
    10,000 runs), and this benchmark measures the UIs, not ingestion."""
    import uuid

    from mlflow.store.tracking.dbmodels import models as m
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{workdir / 'mlruns.db'}", "mlflow-artifacts:/")
    exp = str(store.create_experiment("bench-10k"))
    t0 = int(time.time() * 1000) - 86_400_000
    runs, params, metrics, latest, tags = [], [], [], [], []

    def run_row(name: str, start: int, end: int) -> str:
        rid = uuid.uuid4().hex
        runs.append({"run_uuid": rid, "name": name, "source_type": "LOCAL", "source_name": "", "entry_point_name": "",
                     "user_id": "bench", "status": "FINISHED", "start_time": start, "end_time": end,
                     "source_version": "", "lifecycle_stage": "active", "experiment_id": int(exp),
                     "artifact_uri": f"mlflow-artifacts:/{exp}/{rid}/artifacts"})
        tags.append({"run_uuid": rid, "key": "mlflow.runName", "value": name})
        tags.append({"run_uuid": rid, "key": "mlflow.user", "value": "bench"})
        return rid

    for i in range(n_runs):
        name, ps, ms = _bench_run(i, t0)
        rid = run_row(name, t0 + i, t0 + i + 1000)
        params += [{"run_uuid": rid, **p} for p in ps]
        for x in ms:
            row = {"run_uuid": rid, "key": x["key"], "value": x["value"], "timestamp": x["timestamp"], "step": 0, "is_nan": False}
            metrics.append(row)
            latest.append(dict(row))
    long_run = run_row("long-metric", t0, t0 + n_points)
    with store.ManagedSessionMaker() as session:
        session.bulk_insert_mappings(m.SqlRun, runs)
        session.bulk_insert_mappings(m.SqlParam, params)
        session.bulk_insert_mappings(m.SqlTag, tags)
        session.bulk_insert_mappings(m.SqlMetric, metrics)
        session.bulk_insert_mappings(m.SqlLatestMetric, latest)
        for a in range(0, n_points, 100_000):
            session.bulk_insert_mappings(m.SqlMetric, [
                {"run_uuid": long_run, "key": "long", "value": _long_value(s), "timestamp": t0 + s, "step": s, "is_nan": False}
                for s in range(a, min(n_points, a + 100_000))])
        last = n_points - 1
        session.bulk_insert_mappings(m.SqlLatestMetric, [{"run_uuid": long_run, "key": "long", "value": _long_value(last),
                                                         "timestamp": t0 + last, "step": last, "is_nan": False}])
    store.engine.dispose()
    return exp, long_run


def measure_labtrack(browser: Any, server: Server, exp: str, long_run: str, n_runs: int) -> dict[str, float]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.goto(f"{server.url}/?token={server.token}")
    page.wait_for_selector(".topbar")
    out: dict[str, float] = {}
    for _ in range(2):  # the first pass warms the server's caches and the browser's; report the second
        page.goto("about:blank")
        t = time.perf_counter()
        page.goto(f"{server.url}/#/experiments/{exp}/runs")
        page.wait_for_selector(".tbody .run-row")
        out["table_interactive_s"] = time.perf_counter() - t
        page.wait_for_function(f"document.querySelector('.view').dataset.loaded === '{n_runs + 1}'", timeout=300_000)
        out["table_all_loaded_s"] = time.perf_counter() - t
    # interactive means it answers: sort 10,001 rows by a metric
    t = time.perf_counter()
    page.click(".th[data-col='metrics.metric_0']")
    page.wait_for_selector(".th.sorted[data-col='metrics.metric_0']")
    out["table_sort_s"] = time.perf_counter() - t
    # the same sort timed inside the page (click handler through the next frame), without
    # Playwright's round trips and actionability checks
    out["table_sort_in_page_ms"] = page.evaluate("""() => new Promise(done => {
        const t = performance.now();
        document.querySelector(".th[data-col='metrics.metric_1']").click();
        requestAnimationFrame(() => setTimeout(() => done(performance.now() - t), 0)); })""")
    for _ in range(2):
        page.goto("about:blank")
        t = time.perf_counter()
        page.goto(f"{server.url}/#/runs/{long_run}?tab=charts")
        page.wait_for_selector(".chart-card[data-ready='1']", timeout=120_000)
        out["chart_1m_s"] = time.perf_counter() - t
        out["chart_1m_draw_ms"] = float(page.locator(".chart").first.get_attribute("data-draw-ms") or "nan")
        out["chart_1m_points_drawn"] = float(page.locator(".chart-card").first.get_attribute("data-shown") or "nan")
    ctx.close()
    return out


def measure_mlflow(browser: Any, server: Server, exp: str, long_run: str, timeout_s: float) -> dict[str, float]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    out: dict[str, float] = {}
    try:
        t = time.perf_counter()
        page.goto(f"{server.url}/#/experiments/{exp}/runs")
        page.wait_for_function("document.body.innerText.includes('bench-run-')", timeout=timeout_s * 1000)
        out["table_interactive_s"] = time.perf_counter() - t
    except Exception as e:  # noqa: BLE001 - report how far it got
        out["table_interactive_s"] = float("nan")
        print(f"mlflow table: {type(e).__name__}", file=sys.stderr)
    try:
        t = time.perf_counter()
        page.goto(f"{server.url}/#/metric?runs={json.dumps([long_run])}&metric=%22long%22&experiments={json.dumps([exp])}")
        page.wait_for_selector("svg.main-svg .trace, canvas", timeout=timeout_s * 1000)
        out["chart_1m_s"] = time.perf_counter() - t
    except Exception as e:  # noqa: BLE001
        out["chart_1m_s"] = float("nan")
        print(f"mlflow chart: {type(e).__name__}", file=sys.stderr)
    ctx.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--no-mlflow", action="store_true")
    ap.add_argument("--mlflow-timeout", type=float, default=60.0)
    ap.add_argument("--mlflow-seed", choices=("store", "http"), default="store",
                    help="how MLflow gets the data: its own store before its server starts (default), or over HTTP (slow)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    results: dict[str, dict[str, float]] = {}
    kinds = ["labtrack"] + ([] if args.no_mlflow or shutil.which("mlflow") is None else ["mlflow"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        for kind in kinds:
            work = Path(tempfile.mkdtemp(prefix=f"bench-ui-{kind}-"))
            server = None
            try:
                t = time.perf_counter()
                direct = kind == "mlflow" and args.mlflow_seed == "store"
                if direct:
                    exp, long_run = seed_mlflow_store(work, args.runs, args.points)
                    seeded_s = time.perf_counter() - t
                server = Server(kind, work)
                if not direct:
                    t = time.perf_counter()
                    exp, long_run = seed(server, args.runs, args.points)
                    seeded_s = time.perf_counter() - t
                how = "with MLflow's store, before its server started" if direct else "over HTTP"
                print(f"{kind}: logged {args.runs} runs and {args.points} points {how} in {seeded_s:.0f}s", file=sys.stderr)
                sampler = RssSampler(server)
                if kind == "labtrack":
                    r = measure_labtrack(browser, server, exp, long_run, args.runs)
                else:
                    r = measure_mlflow(browser, server, exp, long_run, args.mlflow_timeout)
                r["rss_peak_mb"] = sampler.stop()
                r["seed_s"] = seeded_s
                results[kind] = r
                print(f"{kind}: {json.dumps(r)}", file=sys.stderr, flush=True)
            finally:
                if server is not None:
                    server.stop()
                shutil.rmtree(work, ignore_errors=True)
        browser.close()

    keys = sorted({k for r in results.values() for k in r})
    print(f"\nweb UI, {args.runs:,} runs x 20 params x 10 metrics; one metric of {args.points:,} points")
    print(f"{'measure':28}" + "".join(f"{k:>14}" for k in results) + f"{'target':>10}")
    for k in keys:
        target = TARGETS.get(k if k != "rss_peak_mb" else "rss_mb")
        print(f"{k:28}" + "".join(f"{results[s].get(k, float('nan')):14.3f}" for s in results) + (f"{target:>10}" if target else ""))
    if "mlflow" in results:
        for k in ("table_interactive_s", "chart_1m_s", "rss_peak_mb"):
            a, b = results["labtrack"].get(k), results["mlflow"].get(k)
            if a and b and not math.isnan(a) and not math.isnan(b):
                print(f"ratio mlflow/labtrack {k}: {b / a:.1f}x")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_ui.json").write_text(json.dumps({"runs": args.runs, "points": args.points, "results": results}, indent=2))


if __name__ == "__main__":
    main()
