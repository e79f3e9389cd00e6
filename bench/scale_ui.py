"""Issue 21's web UI figures: the runs table at 100,000 runs and a metric of 10,000,000 points,
in Debian's Chromium (Playwright, headless, bench_ui.py's browser and flags).

Data (``scale_data.py``, built once and cached): ``runs_dataset()`` (one experiment of 100,000
runs x 20 params x 10 metrics x 5 tags, 99 small ones beside it) and ``long_metric_dataset()``
(one run whose metric ``long`` has 10,000,000 points, its min/max pyramid filled by labtrack's
bulk insert).  Each server gets a private copy of its database.

Measured (each timing the median of a few repetitions after one warm-up, like bench_ui.py):

* table interactive: navigation -> the first rows of the table drawn (the windowed table:
  count, keys of the newest runs, first window);
* sort: a click on a metric's header -> the first window in the new order drawn (in the page);
* scroll: a jump to the middle of the table -> its rows drawn (in the page);
* group: choosing a param in "Group by" -> the group rows with mean ± std drawn (in the page);
* chart: navigation to the run's Charts tab -> the 10,000,000-point metric drawn;
* zoom: drags that each pick a tenth of what the chart shows, at random places, from the whole
  metric down to a ten-thousandth of it -> that window redrawn with its finer points (in the
  page, mouse-up to redrawn: a drag's window is fetched at once, only the wheel waits 150 ms);
* server RSS: the labtrack server's peak over all of the above, sampled every 50 ms.

Each timing also records the server's CPU seconds during it and the durations of its requests
as the browser saw them (Resource Timing), so a miss shows whether the time went to the
server, the wire or the page.  MLflow's UI is measured beside it on the same runs (its runs
page -> first rows), capped at 15 minutes; MLflow draws a metric from its whole history
(get-history pages, no downsampling), so its 10,000,000-point chart is not attempted here:
the note says so.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
for _p in (BENCH_DIR.parent, BENCH_DIR):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench.common import Server, quiet_env, scratch, start_labtrack, start_mlflow, tree_cpu_s  # noqa: E402
from bench_ui import CHROMIUM, FLAGS  # noqa: E402
from scale_search import Peak  # noqa: E402

LAST_RECORD: dict[str, Any] = {}
TOKEN = "scale-ui-bench-token"

# In-page timings: the action, then poll until the view says it is done, then one frame.
_SORT_JS = """(col) => new Promise(done => {
  const v = document.querySelector('.view'); const before = v.dataset.ready; const t = performance.now();
  document.querySelector(`.th[data-col='${col}']`).click();
  const check = () => (v.dataset.ready !== before && document.querySelector('.tbody .run-row')
      && !document.querySelector('.tbody .pending-row'))
    ? requestAnimationFrame(() => done(performance.now() - t)) : setTimeout(check, 2);
  check(); })"""
_GROUP_JS = """(g) => new Promise(done => {
  const v = document.querySelector('.view'); const before = v.dataset.ready; const t = performance.now();
  const sel = document.querySelector('.group-by'); sel.value = g; sel.dispatchEvent(new Event('change'));
  const check = () => (v.dataset.ready !== before && (!g || document.querySelector('.tbody .group-row .agg-mean'))
      && !document.querySelector('.tbody .pending-row'))
    ? requestAnimationFrame(() => done(performance.now() - t)) : setTimeout(check, 2);
  check(); })"""
_SCROLL_JS = """(frac) => new Promise(done => {
  const s = document.querySelector('.scroller'); const t = performance.now();
  s.scrollTop = Math.floor((s.scrollHeight - s.clientHeight) * frac);
  let seen = false;
  const check = () => { const pending = document.querySelector('.tbody .pending-row');
    if (pending) seen = true;
    (!pending && (seen || performance.now() - t > 50)) ? requestAnimationFrame(() => done(performance.now() - t))
      : setTimeout(check, 2); };
  setTimeout(check, 0); })"""
_ZOOM_JS = """([a, b, reset]) => new Promise(done => {
  const card = document.querySelector('.chart-card'); const canvases = card.querySelectorAll('canvas');
  const over = canvases[canvases.length - 1]; const r = over.getBoundingClientRect();
  const x = (f) => r.left + 60 + (r.width - 80) * f; const y = r.top + r.height / 2;
  if (reset) over.dispatchEvent(new MouseEvent('dblclick', {bubbles: true, clientX: x(0.5), clientY: y}));
  const before = card.dataset.zoomed;
  over.dispatchEvent(new MouseEvent('mousedown', {bubbles: true, button: 0, clientX: x(a), clientY: y}));
  over.dispatchEvent(new MouseEvent('mousemove', {bubbles: true, button: 0, clientX: x(b), clientY: y}));
  const t = performance.now();
  window.dispatchEvent(new MouseEvent('mouseup', {bubbles: true, button: 0, clientX: x(b), clientY: y}));
  const check = () => card.dataset.zoomed !== before
    ? requestAnimationFrame(() => done([performance.now() - t, Number(card.dataset.shown)]))
    : performance.now() - t > 60000 ? done([NaN, 0]) : setTimeout(check, 2);
  check(); })"""
_REQUESTS_JS = """(since) => performance.getEntriesByType('resource').filter(e => e.startTime >= since
  && e.name.includes('/api/')).map(e => [e.name.split('/api/')[1].split('?')[0], e.responseEnd - e.startTime])"""


class Timed:
    """Timings of one action: wall (ms), the server's CPU (ms) and its requests' durations."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.server_cpu_ms: list[float] = []
        self.requests: list[list[Any]] = []

    def add(self, page: Any, server: Server, fn: Any) -> Any:
        since = page.evaluate("performance.now()")
        cpu = tree_cpu_s(server.pid)
        out = fn()
        self.ms.append(out[0] if isinstance(out, list) else out)
        self.server_cpu_ms.append(round((tree_cpu_s(server.pid) - cpu) * 1000, 1))
        self.requests.append([[p, round(d, 1)] for p, d in page.evaluate(_REQUESTS_JS, since)])
        return out

    def median(self) -> float | None:
        return round(statistics.median(self.ms), 1) if self.ms else None

    def record(self) -> dict[str, Any]:
        return {"ms": [round(x, 1) for x in self.ms], "median_ms": self.median(),
                "server_cpu_ms": self.server_cpu_ms, "requests_ms": self.requests}


def _server_on(db: Path, work: Path) -> Server:
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(db, work / "mlruns.db")
    return start_labtrack(work, TOKEN, timeout=300)


def _page(browser: Any, server: Server, windowed_above: int | None) -> tuple[Any, Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.goto(f"{server.url}/?token={server.token}")
    page.wait_for_selector(".topbar")
    if windowed_above:
        page.evaluate(f"localStorage.setItem('labtrack.windowedAbove', '{windowed_above}')")
    return ctx, page


def measure_table(browser: Any, server: Server, exp: str, reps: int, windowed_above: int | None) -> dict[str, Any]:
    ctx, page = _page(browser, server, windowed_above)
    out: dict[str, Any] = {}
    try:
        nav = Timed()
        for i in range(reps + 1):
            page.goto("about:blank")

            def go() -> float:
                t = time.perf_counter()
                page.goto(f"{server.url}/#/experiments/{exp}/runs")
                page.wait_for_selector(".tbody .run-row", timeout=300_000)
                return (time.perf_counter() - t) * 1000
            if i == 0:
                out["table_first_visit_ms"] = round(go(), 1)  # cold: the server's and browser's caches empty
            else:
                nav.add(page, server, go)
        out["windowed"] = page.evaluate("document.querySelector('.view').dataset.windowed === '1'")
        out["total"] = page.evaluate("document.querySelector('.view').dataset.total")
        out["table_interactive"] = nav.record()
        page.wait_for_function("document.querySelector('.view').dataset.ready")
        sort = Timed()
        for i in range(reps):
            sort.add(page, server, lambda: page.evaluate(_SORT_JS, f"metrics.m{i % 10}"))
        out["sort"] = sort.record()
        scroll = Timed()
        for frac in [0.5, 0.25, 0.9, 0.1, 0.6][:max(reps, 1)]:
            scroll.add(page, server, lambda frac=frac: page.evaluate(_SCROLL_JS, frac))
        out["scroll"] = scroll.record()
        page.evaluate("document.querySelector('.scroller').scrollTop = 0")
        group = Timed()
        for i in range(reps):
            group.add(page, server, lambda: page.evaluate(_GROUP_JS, "params.p00"))
            page.evaluate(_GROUP_JS, "")  # back to no grouping
        out["group"] = group.record()
        out["group_rows"] = page.evaluate("[...document.querySelectorAll('.tbody .group-row')].map(r => r.innerText.slice(0, 200))")
    finally:
        ctx.close()
    return out


def measure_chart(browser: Any, server: Server, run_id: str, reps: int, seed: int = 21) -> dict[str, Any]:
    ctx, page = _page(browser, server, None)
    out: dict[str, Any] = {}
    try:
        draw = Timed()
        for i in range(reps + 1):
            page.goto("about:blank")

            def go() -> float:
                t = time.perf_counter()
                page.goto(f"{server.url}/#/runs/{run_id}?tab=charts")
                page.wait_for_selector(".chart-card[data-ready='1']", timeout=300_000)
                return (time.perf_counter() - t) * 1000
            if i == 0:
                out["chart_first_visit_ms"] = round(go(), 1)
            else:
                draw.add(page, server, go)
        out["chart"] = draw.record()
        out["draw_ms"] = float(page.locator(".chart").first.get_attribute("data-draw-ms") or "nan")
        out["points_drawn"] = page.locator(".chart-card").first.get_attribute("data-shown")
        out["info"] = page.locator(".chart-info").first.inner_text()
        rng = random.Random(seed)
        zoom = Timed()
        windows = []
        # A user zooms in by steps: each drag picks a tenth of what the chart shows, at a random
        # place (a drag narrower than 5 px is no zoom), four steps from the whole metric to a
        # ten-thousandth of it, then a double-click resets and the next series starts.
        for series in range(max(1, reps // 2)):
            for step in range(4):
                a = rng.uniform(0, 0.9)
                windows.append((series, step, round(a, 4)))
                zoom.add(page, server, lambda a=a, step=step: page.evaluate(_ZOOM_JS, [a, a + 0.1, step == 0]))
        out["zoom"] = zoom.record()
        out["zoom_windows"] = windows
    finally:
        ctx.close()
    return out


def measure_mlflow_table(browser: Any, server: Server, exp: str, cap_s: float) -> dict[str, Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    out: dict[str, Any] = {}
    try:
        for i in range(2):  # a warm-up, then the figure, as for labtrack
            page.goto("about:blank")
            t = time.perf_counter()
            page.goto(f"{server.url}/#/experiments/{exp}/runs")
            page.wait_for_function("document.body.innerText.includes('run-')", timeout=cap_s * 1000)
            out["table_interactive_ms" if i else "table_first_visit_ms"] = round((time.perf_counter() - t) * 1000, 1)
        out["rows_shown"] = page.evaluate("(document.body.innerText.match(/\\brun-\\d+/g) || []).length")
    except Exception as e:  # noqa: BLE001 - say how far it got
        out["error"] = f"{type(e).__name__} after {time.perf_counter() - t:.0f} s"
    finally:
        ctx.close()
    return out


def _fig(figure: str, target: str, anchor: str, measured: float | None, unit: str, ratio: float | None,
         note: str = "") -> dict[str, Any]:
    return {"figure": figure, "target": target, "anchor": anchor, "measured": measured, "unit": unit,
            "ratio": None if ratio is None else round(ratio, 1), "note": note}


def _cpu(t: dict[str, Any]) -> str:
    cpu = t.get("server_cpu_ms") or []
    return f"server CPU median {statistics.median(cpu):.0f} ms" if cpu else ""


def run(quick: bool = False, mlflow: bool = True, mlflow_cap_s: float | None = None,
        record: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright
    from scale_data import LABTRACK_DB, MLFLOW_DB, long_metric_dataset, runs_dataset

    quiet_env()
    record = record if record is not None else {}
    size = {"runs": 10_000, "other_runs": 10} if quick else {"runs": 100_000, "other_runs": 100}
    points = 1_000_000 if quick else 10_000_000
    reps = 2 if quick else 5
    cap = mlflow_cap_s if mlflow_cap_s is not None else (120.0 if quick else 900.0)
    # --quick: 10,000 runs would load whole; the table is made to window them as it does 100,000
    windowed_above = 5000 if quick else None
    folder, facts = runs_dataset(**size)
    long_folder, long_facts = long_metric_dataset(points)
    exp = facts["main_experiment_id"]
    record.update({"runs": size["runs"], "points": points, "quick": quick, "dataset": str(folder),
                   "long_dataset": str(long_folder)})
    rss: list[float] = []
    with sync_playwright() as p, scratch("scale-ui-") as work:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            lt = _server_on(folder / LABTRACK_DB, work / "runs")
            try:
                peak = Peak(lt.pid)
                record["labtrack_table"] = measure_table(browser, lt, exp, reps, windowed_above)
                rss.append(peak.stop())
                _save(record)
            finally:
                lt.stop()
            lt = _server_on(long_folder / "mlruns.db", work / "long")
            try:
                peak = Peak(lt.pid)
                record["labtrack_chart"] = measure_chart(browser, lt, long_facts["run_id"], reps)
                rss.append(peak.stop())
            finally:
                lt.stop()
            shutil.rmtree(work / "runs", ignore_errors=True)
            shutil.rmtree(work / "long", ignore_errors=True)
            _save(record)
            if mlflow and shutil.which("mlflow"):
                mw = work / "mlflow"
                mw.mkdir()
                try:
                    shutil.copyfile(folder / MLFLOW_DB, mw / "mlflow.db")
                    ml = start_mlflow(mw)
                except (OSError, RuntimeError) as e:  # say why MLflow has no figure, keep labtrack's
                    record["mlflow_table"] = {"error": f"MLflow not started: {e}"[:300]}
                else:
                    try:
                        peak = Peak(ml.pid)
                        record["mlflow_table"] = measure_mlflow_table(browser, ml, exp, cap)
                        record["mlflow_rss_peak_mb"] = round(peak.stop(), 1)
                    finally:
                        ml.stop()
        finally:
            browser.close()
    record["labtrack_rss_peak_mb"] = round(max(rss), 1) if rss else None
    return figures_from(record)


def _save(record: dict[str, Any]) -> None:
    """The raw record so far, so a run cut short keeps what it measured."""
    out = BENCH_DIR / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale_ui.partial.json").write_text(json.dumps(record, indent=2))


def figures_from(r: dict[str, Any]) -> list[dict[str, Any]]:
    n, pts = r["runs"], r["points"]
    t, c = r["labtrack_table"], r["labtrack_chart"]
    ml = r.get("mlflow_table") or {}
    ml_ms = ml.get("table_interactive_ms")
    ml_anchor = (f"MLflow here {ml_ms / 1000:,.1f} s (first {ml.get('rows_shown', 0)} rows; it pages 100 at a time)"
                 if ml_ms else f"MLflow here: {ml['error']}" if ml.get("error") else "-")
    out = [
        _fig(f"runs table interactive, {n:,} runs", "≤ 1.5 s", ml_anchor, _s(t["table_interactive"]["median_ms"]), "s",
             (ml_ms / t["table_interactive"]["median_ms"]) if ml_ms else None,
             f"navigation -> first rows; first visit {t['table_first_visit_ms'] / 1000:.1f} s; "
             f"{_cpu(t['table_interactive'])}; windowed={t['windowed']}"),
        _fig(f"sort {n:,} runs by a metric", "(interactive)", "-", _s(t["sort"]["median_ms"]), "s", None,
             _cpu(t["sort"])),
        _fig(f"scroll {n:,} runs to any row", "(interactive)", "-", _s(t["scroll"]["median_ms"]), "s", None,
             _cpu(t["scroll"])),
        _fig(f"group {n:,} runs by a param, mean ± std", "≤ 1 s",
             "MLflow groups only the runs its page loaded", _s(t["group"]["median_ms"]), "s", None,
             _cpu(t["group"])),
        _fig(f"metric of {pts:,} points drawn", "≤ 1 s", "MLflow: whole history, not attempted",
             _s(c["chart"]["median_ms"]), "s", None,
             f"navigation -> drawn; first visit {c['chart_first_visit_ms'] / 1000:.1f} s; draw {c['draw_ms']} ms; "
             f"{c['points_drawn']} points drawn; {_cpu(c['chart'])}"),
        _fig(f"zoom into a window of {pts:,} points", "≤ 300 ms", "-", c["zoom"]["median_ms"], "ms", None,
             f"mouse-up -> redrawn; max {max(c['zoom']['ms']):.0f} ms; {_cpu(c['zoom'])}"),
        _fig("server RSS, peak over the UI figures", "≤ 300 MB",
             f"MLflow here {r['mlflow_rss_peak_mb']:,.0f} MB" if r.get("mlflow_rss_peak_mb") else "-",
             r["labtrack_rss_peak_mb"], "MB",
             (r["mlflow_rss_peak_mb"] / r["labtrack_rss_peak_mb"]) if r.get("mlflow_rss_peak_mb") else None),
    ]
    return out


def _s(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


def figures(quick: bool = False, mlflow: bool = True, mlflow_cap_s: float | None = None) -> list[dict[str, Any]]:
    """The figures of this benchmark (bench_scale.py's entry point); raw data in LAST_RECORD."""
    LAST_RECORD.clear()
    return run(quick, mlflow, mlflow_cap_s, LAST_RECORD)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-mlflow", action="store_true")
    ap.add_argument("--mlflow-cap-s", type=float, default=None)
    a = ap.parse_args()
    rec: dict[str, Any] = {}
    for f in run(a.quick, not a.no_mlflow, a.mlflow_cap_s, rec):
        print(json.dumps(f))
    out = BENCH_DIR / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale_ui.json").write_text(json.dumps(rec, indent=2))
