"""Saved views and dashboards in Chromium, on runs logged over HTTP with real metric histories.

A sweep of 18 runs (3 learning rates x 2 optimizers x 3 seeds, 40 steps of loss and acc each)
is logged through the REST API. On its runs page a user filters, picks columns, sorts, groups,
adds dashboard panels (grouped by a param: mean ± std bands) and saves it all as a view; the
view's link opened in a fresh browser context (another person, no shared storage) shows the same
rows, columns and panels. The bands' numbers are checked against numpy on the logged values.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pytest

from tests.servers import ServerProcess
from tests.ui.conftest import DOCS_VIEWPORT, goto, open_page, screenshot
from tests.ui.seed import Logger

STEPS = 40
LRS = ["0.1", "0.01", "0.001"]
OPTS = ["adam", "sgd"]
SEEDS = [0, 1, 2]


class Sweep:
    def __init__(self, exp: str, histories: dict[str, dict[str, list[float]]], params: dict[str, dict[str, str]]) -> None:
        self.exp = exp
        self.histories = histories  # run id -> metric -> values by step
        self.params = params  # run id -> params


@pytest.fixture(scope="module")
def sweep(ui_server: ServerProcess) -> Sweep:
    log = Logger(ui_server)
    exp = log.experiment(f"views-sweep-{uuid.uuid4().hex[:6]}")
    histories: dict[str, dict[str, list[float]]] = {}
    params: dict[str, dict[str, str]] = {}
    t0 = int(time.time() * 1000) - 3_600_000
    for i, (lr, opt, seed) in enumerate((lr, opt, seed) for lr in LRS for opt in OPTS for seed in SEEDS):
        rng = random.Random(f"{lr}-{opt}-{seed}")
        start = t0 + i * 60_000
        info = log.run(exp, f"{opt}-lr{lr}-s{seed}", start=start)
        # seeds learn at somewhat different rates, so a group's ± std band has a visible width
        rate = {"0.1": 0.15, "0.01": 0.08, "0.001": 0.02}[lr] * (1.2 if opt == "adam" else 1.0) * (1 + 0.25 * (seed - 1))
        loss = [math.exp(-rate * s) + 0.05 * rng.random() for s in range(STEPS)]
        acc = [1 - 0.9 * math.exp(-rate * s) - 0.03 * rng.random() for s in range(STEPS)]
        metrics = [("loss", v, s, start + 1000 * s) for s, v in enumerate(loss)]
        metrics += [("acc", v, s, start + 1000 * s) for s, v in enumerate(acc)]
        run_params = {"lr": lr, "opt": opt, "seed": str(seed)}
        log.batch(info["run_id"], params=run_params, metrics=metrics)
        log.finish(info["run_id"], start + 1000 * STEPS)
        histories[info["run_id"]] = {"loss": loss, "acc": acc}
        params[info["run_id"]] = run_params
    return Sweep(exp, histories, params)


@pytest.fixture
def pages(browser: Any, ui_server: ServerProcess) -> Iterator[Any]:
    """Opens browser contexts (each a separate person) and checks each for page errors at the end."""
    opened: list[tuple[Any, Any]] = []

    def open_one() -> Any:
        ctx, page, watch = open_page(browser, ui_server.url + "/", ui_server.token)
        opened.append((ctx, watch))
        return page

    yield open_one
    for ctx, watch in opened:
        assert watch.errors == [], f"uncaught errors in the page: {watch.errors}"
        assert watch.foreign() == []
        ctx.close()


def _hash_query(page: Any) -> dict[str, list[str]]:
    raw = page.evaluate("location.hash")
    return parse_qs(raw.split("?", 1)[1]) if "?" in raw else {}


def _table(page: Any) -> dict[str, Any]:
    """What the runs table shows: its columns, and its rows (group rows and run rows) in order."""
    return page.evaluate("""() => ({
        cols: [...document.querySelectorAll('.th-row .th')].map(e => e.dataset.col),
        rows: [...document.querySelectorAll('.tbody .tr')].sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
              .map(e => e.dataset.group !== undefined ? 'group:' + e.dataset.group : 'run:' + e.dataset.run),
    })""")


def _panels(page: Any) -> list[dict[str, Any]]:
    return page.evaluate("""() => [...document.querySelectorAll('.dash-panel')].map(p => ({
        metrics: p.dataset.metrics, group: p.dataset.group, lines: p.dataset.lines,
        title: p.querySelector('.chart-title').textContent }))""")


def _band_rows(page: Any, panel: Any) -> list[dict[str, str]]:
    details = panel.locator("details.panel-data")
    if not details.evaluate("d => d.open"):
        details.locator("summary").click()
    panel.locator(".panel-table tbody tr").first.wait_for()
    return panel.locator(".panel-table tbody tr").evaluate_all("rows => rows.map(r => ({...r.dataset}))")


def _add_panel(page: Any, metrics: list[str], group: str, smoothing: float, title: str) -> None:
    page.click(".add-panel")
    editor = page.locator(".dash-editor")
    editor.locator(".panel-title").fill(title)
    for m in metrics:
        editor.locator(f".panel-metric[value='{m}']").check()
    editor.locator(".panel-group").select_option(group)
    if smoothing:
        # the smoothing slider of the shared chart controls (metricchart.ts); its change event sets it
        editor.locator("input.smoothing").evaluate(
            "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('change')); }", smoothing)
    editor.locator(".save-panel").click()


def _ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased exponential moving average, as the charts smooth."""
    out, last = [], 0.0
    for n, v in enumerate(values, 1):
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** n))
    return out


def _expected_bands(sweep: Sweep, metric: str, smoothing: float) -> dict[str, dict[float, tuple[float, float, int]]]:
    """numpy's mean and sample std (ddof=1) per lr and step, over the adam runs (the view's filter)."""
    out: dict[str, dict[float, tuple[float, float, int]]] = {}
    for lr in LRS:
        runs = [rid for rid, p in sweep.params.items() if p["lr"] == lr and p["opt"] == "adam"]
        series = np.array([_ema(sweep.histories[r][metric], smoothing) if smoothing else sweep.histories[r][metric]
                           for r in runs])
        out[f"lr = {lr}"] = {float(s): (float(series[:, s].mean()), float(series[:, s].std(ddof=1)), len(runs))
                             for s in range(STEPS)}
    return out


def _check_bands(rows: list[dict[str, str]], expected: dict[str, dict[float, tuple[float, float, int]]]) -> int:
    got: dict[str, dict[float, tuple[float, float, int]]] = {}
    for r in rows:
        got.setdefault(r["series"], {})[float(r["x"])] = (float(r["y"]), float(r["std"]), int(r["n"]))
    assert sorted(got) == sorted(expected)
    checked = 0
    for label, steps in expected.items():
        assert sorted(got[label]) == sorted(steps), label
        for x, (mean, std, n) in steps.items():
            g_mean, g_std, g_n = got[label][x]
            assert g_n == n
            assert g_mean == pytest.approx(mean, rel=1e-9, abs=1e-12), (label, x)
            assert g_std == pytest.approx(std, rel=1e-9, abs=1e-12), (label, x)
            checked += 1
    return checked


STATE = {
    "filter": "params.opt = 'adam'",
    "cols": json.dumps(["attr.name", "metrics.loss", "metrics.acc", "params.lr", "params.seed"], separators=(",", ":")),
    "sort": "metrics.loss:asc",
    "group": "params.lr",
}


def test_saved_view_opens_the_same_page_in_another_browser(pages: Any, sweep: Sweep, ui_server: ServerProcess) -> None:
    from urllib.parse import urlencode

    alice = pages()
    goto(alice, f"#/experiments/{sweep.exp}/runs?{urlencode(STATE)}")
    alice.wait_for_function("document.querySelector('.view').dataset.loaded === '9'")
    alice.click(".dashboard-btn")
    _add_panel(alice, ["loss"], "params.lr", 0, "Loss by lr")
    _add_panel(alice, ["acc"], "params.lr", 0.6, "Accuracy by lr, smoothed")
    alice.wait_for_function("[...document.querySelectorAll('.dash-panel')].length === 2 && "
                            "[...document.querySelectorAll('.dash-panel')].every(p => p.dataset.ready === '1')")
    before = _table(alice)
    assert before["cols"][:5] == json.loads(STATE["cols"])
    assert [r for r in before["rows"] if r.startswith("group:")] == ["group:0.001", "group:0.01", "group:0.1"]
    assert len([r for r in before["rows"] if r.startswith("run:")]) == 9
    panels_before = _panels(alice)
    assert [(p["metrics"], p["group"], p["lines"]) for p in panels_before] == [("loss", "params.lr", "3"), ("acc", "params.lr", "3")]

    alice.click(".views-btn")
    alice.fill(".view-name", "adam by lr")
    alice.click(".save-view")
    alice.wait_for_selector(".current-view-name")
    assert alice.inner_text(".current-view-name") == "adam by lr"
    link = alice.input_value(".view-url")
    view_id = _hash_query(alice)["saved"][0]
    assert link.endswith(f"#/experiments/{sweep.exp}/views/{view_id}")
    screenshot(alice, "saved-view-dashboard.png", viewport=DOCS_VIEWPORT)

    stored = ui_server.api("GET", "/api/2.0/labtrack/views/get", {"view_id": view_id}).json()["view"]
    saved_query = parse_qs(stored["state"]["query"])
    for key, value in STATE.items():
        assert saved_query[key] == [value]
    assert [p["title"] for p in stored["state"]["panels"]] == ["Loss by lr", "Accuracy by lr, smoothed"]
    assert stored["state"]["panels"][1]["smoothing"] == 0.6

    # Bob: a fresh browser context (no cookie but the token's, no storage) opens the link
    bob = pages()
    bob.goto(link)
    bob.wait_for_function("location.hash.includes('/runs?')")
    bob.wait_for_function("document.querySelector('.view').dataset.loaded === '9'")
    bob.wait_for_function("[...document.querySelectorAll('.dash-panel')].length === 2 && "
                          "[...document.querySelectorAll('.dash-panel')].every(p => p.dataset.ready === '1')")
    assert _table(bob) == before
    assert _panels(bob) == panels_before
    bob_query = _hash_query(bob)
    for key, value in STATE.items():
        assert bob_query[key] == [value]
    assert bob.input_value(".filter-input") == STATE["filter"]
    assert bob.locator(".group-by").input_value() == "params.lr"
    # the bands Bob sees are numpy's mean ± std of the logged values
    loss_rows = _band_rows(bob, bob.locator(".dash-panel").nth(0))
    assert _check_bands(loss_rows, _expected_bands(sweep, "loss", 0)) == 3 * STEPS
    acc_rows = _band_rows(bob, bob.locator(".dash-panel").nth(1))
    assert _check_bands(acc_rows, _expected_bands(sweep, "acc", 0.6)) == 3 * STEPS
    screenshot(bob, "saved-view-opened-elsewhere.png")


def test_views_menu_saves_changes_renames_and_deletes(pages: Any, sweep: Sweep, ui_server: ServerProcess) -> None:
    page = pages()
    goto(page, f"#/experiments/{sweep.exp}/runs?group=params.opt")
    page.wait_for_function("document.querySelector('.view').dataset.loaded === '18'")
    page.click(".views-btn")
    page.fill(".view-name", "by optimizer")
    page.click(".save-view")
    page.wait_for_selector(".current-view-name")
    view_id = _hash_query(page)["saved"][0]

    # a new panel, then "Save changes to this view" keeps it in the same view
    page.click(".views-btn")  # close the menu
    page.click(".dashboard-btn")
    _add_panel(page, ["loss", "acc"], "", 0, "")
    page.wait_for_selector(".dash-panel[data-ready='1']")
    assert page.locator(".dash-panel").get_attribute("data-lines") == str(18 * 2)  # one line per run and metric
    page.click(".views-btn")
    page.click(".update-view")
    page.wait_for_function(
        f"fetch('api/2.0/labtrack/views/get?view_id={view_id}').then(r => r.json())"
        ".then(b => window.__panels = b.view.state.panels.length)")
    page.wait_for_function("window.__panels === 1")

    page.locator(f".saved-view[data-view-id='{view_id}'] .rename-view").click()
    page.fill(".rename-input", "by optimizer, renamed")
    page.click(".rename-ok")
    page.wait_for_function(f"document.querySelector(\".saved-view[data-view-id='{view_id}'] .view-link\")"
                           "?.textContent === 'by optimizer, renamed'")
    listed = ui_server.api("GET", "/api/2.0/labtrack/views/list", {"experiment_id": sweep.exp}).json()["views"]
    assert "by optimizer, renamed" in [v["name"] for v in listed]

    # a taken name: the server's message, inline
    page.fill(".view-name", "by optimizer, renamed")
    page.click(".save-view")
    page.wait_for_function("document.querySelector('.views-error').textContent.includes('already exists')")

    page.on("dialog", lambda d: d.accept())
    page.locator(f".saved-view[data-view-id='{view_id}'] .delete-view").click()
    page.wait_for_function(f"!document.querySelector(\".saved-view[data-view-id='{view_id}']\")")
    assert "saved" not in _hash_query(page)
    missing = ui_server.api("GET", "/api/2.0/labtrack/views/get", {"view_id": view_id})
    assert missing.status_code == 404

    # the deleted view's link says so, with a way back
    goto(page, f"#/experiments/{sweep.exp}/views/{view_id}")
    page.wait_for_selector(".view .error")
    assert "No saved view" in page.inner_text(".view .error")


def test_bands_on_relative_time_are_binned_per_run(pages: Any, sweep: Sweep) -> None:
    """On a time axis the runs' x values differ, so each band is made of bins (each run counted once
    per bin); here every run logs step s at s seconds after its start, so each bin holds one step."""
    from urllib.parse import urlencode

    panel = {"title": "", "metrics": ["loss"], "x": "relative", "smoothing": 0, "log": False, "group": "params.lr"}
    page = pages()
    goto(page, f"#/experiments/{sweep.exp}/runs?" + urlencode({"filter": STATE["filter"], "dash": "1",
                                                                "panels": json.dumps([panel])}))
    page.wait_for_selector(".dash-panel[data-ready='1']")
    rows = _band_rows(page, page.locator(".dash-panel"))
    expected = _expected_bands(sweep, "loss", 0)
    got: dict[str, list[tuple[float, float, float, int]]] = {}
    for r in rows:
        got.setdefault(r["series"], []).append((float(r["x"]), float(r["y"]), float(r["std"]), int(r["n"])))
    assert sorted(got) == sorted(expected)
    width = (STEPS - 1) / 500  # the dashboard's 500 bins over the panel's x range
    for label, points in got.items():
        points.sort()
        assert len(points) == STEPS
        for (x, mean, std, n), step in zip(points, range(STEPS)):
            want_mean, want_std, want_n = expected[label][float(step)]
            assert abs(x - step) <= width, (label, x, step)  # the bin's centre, near the step's second
            assert n == want_n
            assert mean == pytest.approx(want_mean, rel=1e-9, abs=1e-12)
            assert std == pytest.approx(want_std, rel=1e-9, abs=1e-12)
    assert page.locator(".dash-panel .chart").get_attribute("data-points") == str(3 * STEPS)
