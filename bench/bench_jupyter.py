"""JupyterLab benchmark: from a click on labtrack's launcher tile until its UI has rendered.

A real ``jupyter lab`` (base_url /user/alice/, as under JupyterHub) and Debian's Chromium
(Playwright, headless). The clock starts at the click on the tile and stops when the
UI's experiment list shows in the new tab. Three cases:

- cold: nobody served the folder yet; the click makes jupyter-server-proxy start
  ``labtrack server`` (Python start, schema creation) and the page waits for it;
- takeover: a notebook already logged, so a background server owns the database;
  the proxied server asks it to stop and takes over;
- warm: the server already runs (a second click).

MLflow has no launcher tile; its nearest equivalent is starting ``mlflow server`` and
opening its UI, timed the same way (spawn -> experiment list rendered in Chromium).
Timings are reported, never asserted (target: cold <= 2 s).

Usage: python bench/bench_jupyter.py [--repeat N] [--no-mlflow] [--screenshot docs/screenshots/launcher.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, machine, median, quiet_env, stop_tree, write_json  # noqa: E402
from tests.browser import launch_browser  # noqa: E402
from tests.jupyter.lab import (  # noqa: E402
    execute,
    labtrack_card,
    open_lab_page,
    start_kernel,
    start_lab,
)

TARGET_S = 2.0
BASE_URL = "/user/alice/"
LOG_ONE_RUN = "import labtrack as lt\nwith lt.start_run(run_name='warmup'):\n    lt.log_metric('x', 1)\nlt.flush()\n"


def click_to_ui(page: Any) -> float:
    """Seconds from the tile's click until the UI's experiment list is on screen."""
    card = labtrack_card(page)
    with page.context.expect_page(timeout=120_000) as new_tab:
        t0 = time.perf_counter()
        card.click()
    ui = new_tab.value
    ui.locator(".exp-name a").first.wait_for(timeout=120_000)
    elapsed = time.perf_counter() - t0
    ui.close()
    return elapsed


def one_lab(browser: Any, case: str, screenshot: Path | None = None) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="lt-bench-") as tmp:
        lab = start_lab(Path(tmp) / "root", Path(tmp) / "home", base_url=BASE_URL)
        try:
            if case == "takeover":
                execute(lab, start_kernel(lab, "sub/nb.ipynb"), LOG_ONE_RUN)
            page = open_lab_page(browser, lab)
            labtrack_card(page).wait_for()
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.wait_for_timeout(500)  # let the launcher's icons settle
                page.screenshot(path=str(screenshot))
            times = [click_to_ui(page)]
            if case == "cold":  # the same lab, server now running: the warm case
                times.append(click_to_ui(page))
            page.context.close()
            return times
        finally:
            lab.stop()


def mlflow_cold(browser: Any) -> float:
    """Spawn ``mlflow server`` and time until its UI lists experiments (MLflow's 'click')."""
    with tempfile.TemporaryDirectory(prefix="lt-bench-mlflow-") as tmp:
        port = free_port()
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
               "--artifacts-destination", f"{tmp}/mlartifacts", "--workers", "1",
               "--host", "127.0.0.1", "--port", str(port)]
        context = browser.new_context()
        page = context.new_page()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = t0 + 300
            while time.perf_counter() < deadline:
                try:
                    page.goto(f"http://127.0.0.1:{port}/#/experiments", timeout=5_000)
                    break
                except Exception:  # noqa: BLE001 - not listening yet
                    time.sleep(0.05)
            page.wait_for_function("document.body.innerText.includes('Default')", timeout=120_000)
            return time.perf_counter() - t0
        finally:
            context.close()
            stop_tree(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-mlflow", action="store_true")
    ap.add_argument("--screenshot", type=Path, help="also save the launcher with labtrack's tile here")
    args = ap.parse_args()
    quiet_env()
    from playwright.sync_api import sync_playwright

    cold: list[float] = []
    warm: list[float] = []
    takeover: list[float] = []
    mlflow: list[float] = []
    with sync_playwright() as p:
        browser = launch_browser(p)
        for i in range(args.repeat):
            times = one_lab(browser, "cold", args.screenshot if i == 0 else None)
            cold.append(times[0])
            warm.append(times[1])
            takeover.extend(one_lab(browser, "takeover"))
            if not args.no_mlflow:
                mlflow.append(mlflow_cold(browser))
            print(f"round {i + 1}: cold {cold[-1]:.2f} s, warm {warm[-1]:.2f} s, takeover {takeover[-1]:.2f} s"
                  + (f", mlflow server+UI {mlflow[-1]:.2f} s" if mlflow else ""), flush=True)
        browser.close()
    result = {
        "machine": machine(), "base_url": BASE_URL, "target_s": TARGET_S,
        "click_to_ui_cold_s": cold, "click_to_ui_warm_s": warm, "click_to_ui_takeover_s": takeover,
        "mlflow_spawn_to_ui_s": mlflow,
        "median": {"cold": median(cold), "warm": median(warm), "takeover": median(takeover),
                   "mlflow": median(mlflow) if mlflow else None},
    }
    path = write_json("jupyter.json", result)
    m = result["median"]
    print(f"\nclick -> UI rendered, median of {args.repeat} (target <= {TARGET_S:.1f} s cold):")
    print(f"  cold (proxy starts labtrack)   {m['cold']:.2f} s  {'OK' if m['cold'] <= TARGET_S else 'OVER TARGET'}")
    print(f"  takeover (background server)   {m['takeover']:.2f} s")
    print(f"  warm (server running)          {m['warm']:.2f} s")
    if mlflow:
        print(f"  mlflow server spawn -> UI      {m['mlflow']:.2f} s  (ratio mlflow/labtrack cold: "
              f"{m['mlflow'] / m['cold']:.1f}x)")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
