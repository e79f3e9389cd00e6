"""The runs table of issue 20, in Debian's Chromium against a real server: columns sized to
their content and stretched to the width, whole headers, parameters in view beside many
metrics, a horizontal scrollbar on screen at 900 px, exports, and the note in the side panel."""

from __future__ import annotations

import json
import math
import time
from typing import Any, Iterator
from urllib.parse import quote

import pytest

from tests.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.servers import ServerProcess
from tests.ui.conftest import PageWatch, open_page
from tests.ui.seed import Logger

pytestmark = pytest.mark.timeout(240)

METRICS = [f"metric_{c}_{i}" for i, c in enumerate("abcdefghijklmn")]  # 14 metrics, as a real model logs
PARAMS = {"optimizer": "adam", "learning_rate": "0.001", "batch_size": "64"}


def metric_a_0(step: int, k: int) -> float:
    return math.cos(step + k) / (step + 1)


def val_loss(step: int, k: int) -> float:
    return (step - 2) ** 2 + k / 10


class Wide:
    """An experiment whose runs log many metrics and a few params, and a narrow one."""

    def __init__(self, server: ServerProcess) -> None:
        lg = Logger(server)
        now = int(time.time() * 1000) - 600_000
        # A long name, as workspace paths are: the title above the table takes two lines at 900 px.
        self.exp = lg.experiment(f"/Users/alice@example.org/projects/vision/resnet50-imagenet-sweep-lr-schedule-ablation-{time.time_ns()}")
        self.narrow = lg.experiment(f"narrow-{time.time_ns()}")
        self.runs: dict[str, str] = {}
        for k in range(4):
            info = lg.run(self.exp, f"wide-{k}", start=now + k * 1000)
            points = [(m, math.cos(s + j + k) / (s + 1), s, now + s) for j, m in enumerate(METRICS) for s in range(5)]
            points += [("val_loss", val_loss(s, k), s, now + s) for s in range(5)]  # falls, then rises
            lg.batch(info["run_id"], {**PARAMS, "seed": str(k)}, points, {})
            lg.finish(info["run_id"], now + 10_000)
            self.runs[f"wide-{k}"] = info["run_id"]
        for k in range(2):
            info = lg.run(self.narrow, f"n{k}", start=now + k)
            lg.batch(info["run_id"], {"optimizer": "sgd"}, [("loss", 0.5 + k, 0, now)], {})
            lg.finish(info["run_id"], now + 5_000)
            self.runs[f"n{k}"] = info["run_id"]


@pytest.fixture(scope="module")
def wide(ui_server: ServerProcess) -> Wide:
    return Wide(ui_server)


@pytest.fixture(scope="module")
def browser_with_scrollbars(browser: Any) -> Iterator[Any]:
    """The session's Chromium again, drawing scrollbars as macOS and touch screens do: overlay
    scrollbars, which take no room and show only while scrolling (Playwright's headless
    default, --hide-scrollbars, would draw none at all)."""
    b = browser.browser_type.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS + ["--enable-features=OverlayScrollbar"],
                                    headless=True, ignore_default_args=["--hide-scrollbars"])
    yield b
    b.close()


@pytest.fixture
def page_at(browser_with_scrollbars: Any, ui_server: ServerProcess) -> Iterator[Any]:
    """open(width, height) -> a page on the server; checks no error and no foreign request after."""
    opened: list[tuple[Any, PageWatch]] = []

    def open_(width: int = 1400, height: int = 900) -> Any:
        ctx, page, watch = open_page(browser_with_scrollbars, ui_server.url + "/", ui_server.token, viewport=(width, height))
        opened.append((ctx, watch))
        return page

    yield open_
    for ctx, watch in opened:
        assert watch.errors == [], f"uncaught errors in the page: {watch.errors}"
        assert watch.foreign() == []
        ctx.close()


def open_runs(page: Any, exp: str, query: str = "") -> None:
    page.evaluate("h => { location.hash = h }", f"#/experiments/{exp}/runs{query}")
    page.wait_for_selector(".run-row")
    page.wait_for_function("() => { const d = document.querySelector('.view').dataset; return d.loaded !== undefined || d.ready !== undefined }")


def box(page: Any, selector: str) -> dict[str, float]:
    return page.eval_on_selector(selector, "e => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width} }")


# ---- layout (defects of issue 20)

def test_columns_fill_the_width_and_headers_are_whole(page_at: Any, wide: Wide) -> None:
    page = page_at(1400, 900)
    open_runs(page, wide.narrow)
    # A few columns fill the table's width: no empty band right of the last column.
    scroller = page.eval_on_selector(".scroller", "e => ({client: e.clientWidth, scroll: e.scrollWidth})")
    row_width = page.eval_on_selector(".thead .th-row", "e => e.getBoundingClientRect().width")
    assert row_width >= scroller["client"] - 1, (row_width, scroller)
    assert scroller["scroll"] <= scroller["client"] + 1, "filling the width must not make a scrollbar"
    # Every header shows its whole label where there is room ("optimizer", not "optimiz…").
    cut = page.eval_on_selector_all(".th", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)")
    assert cut == []
    # Cells are sized to their content: the run's start time is not cut either.
    cut_cells = page.eval_on_selector_all(".tbody .run-row .td", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)")
    assert cut_cells == []


def test_params_stay_in_view_beside_many_metrics(page_at: Any, wide: Wide) -> None:
    page = page_at(1400, 900)
    open_runs(page, wide.exp)
    headers = page.eval_on_selector_all(".th", "els => els.map(e => e.dataset.col)")
    assert "params.optimizer" in headers and "metrics.metric_a_0" in headers
    area = box(page, ".scroller")
    for name in PARAMS:
        col = box(page, f".th[data-col='params.{name}']")
        assert area["left"] <= col["left"] and col["right"] <= area["right"], f"params.{name} is off-screen: {col} {area}"
        assert page.locator(f".th[data-col='params.{name}']").inner_text().endswith(name)
    # The metrics are still there, to the right, reached by scrolling.
    assert page.eval_on_selector(".scroller", "e => e.scrollWidth > e.clientWidth")


def test_horizontal_scrollbar_visible_at_900px(page_at: Any, wide: Wide) -> None:
    page = page_at(900, 700)
    # Two metric ranges: their chips wrap to a line of their own above the table.
    ranges = json.dumps([["metric_a_0", -10, 10], ["metric_b_1", -10, 10]])
    open_runs(page, wide.exp, "?range=" + quote(ranges))
    assert page.locator(".range-chip").count() == 2
    s = page.eval_on_selector(".scroller", """e => {
        const r = e.getBoundingClientRect(); const cs = getComputedStyle(e);
        const borders = parseFloat(cs.borderTopWidth) + parseFloat(cs.borderBottomWidth);
        return {scroll: e.scrollWidth, client: e.clientWidth, bottom: r.bottom, inner: innerHeight,
                bar: e.offsetHeight - e.clientHeight - borders, right: r.right, innerW: innerWidth}
    }""")
    assert s["scroll"] > s["client"], "the table is wider than the window"
    assert s["bar"] >= 8, f"no horizontal scrollbar takes room under the rows: {s}"
    assert s["bottom"] <= s["inner"], f"the scrollbar is below the window: {s}"
    assert s["right"] <= s["innerW"], s
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"), "the page itself must not scroll sideways"
    # Dragging the scrollbar (scrolling the table sideways) keeps header and rows aligned.
    page.eval_on_selector(".scroller", "e => { e.scrollLeft = 400 }")
    page.wait_for_timeout(100)
    th = box(page, ".th[data-col='attr.status']")
    td = box(page, ".tbody .run-row .td[data-col='attr.status']")
    assert abs(th["left"] - td["left"]) < 1 and abs(th["width"] - td["width"]) < 1


def test_table_height_follows_the_toolbars_as_they_change(page_at: Any, wide: Wide) -> None:
    page = page_at(900, 700)
    open_runs(page, wide.exp)
    # Ranges added after the page is drawn: their chips take a line of their own above the table.
    for key in ("metric_a_0", "metric_b_1", "metric_c_2"):
        page.select_option(".range-key", key)
        page.fill(".range-min", "-10")
        page.click(".range-form button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('.range-chip').length === 3")
    page.wait_for_function("() => document.querySelector('.scroller').getBoundingClientRect().bottom <= innerHeight",
                           timeout=5000)


# ---- export (issue 20): the table as CSV or Parquet, histories as one long table

@pytest.fixture
def lt_client(ui_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``lt`` pointed at the UI's server, to compare the downloads with its DataFrames."""
    import labtrack as lt
    from tests.client.conftest import CLIENT_ENV
    from tests.client_state import reset_client_state

    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    if ui_server.token:
        monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", ui_server.token)
    reset_client_state()
    lt.set_tracking_uri(ui_server.url)
    yield lt
    reset_client_state()


def download(page: Any, item: str) -> Any:
    with page.expect_download() as info:
        page.click(".export-btn")
        page.click(f".export-menu .{item}")
    return info.value


def plain(values: Any) -> list[Any]:
    """Values with NaN and None alike, for comparing frames read from different files."""
    import pandas as pd

    return [None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT else v for v in values]


def test_export_runs_table_csv_and_parquet(page_at: Any, wide: Wide, lt_client: Any) -> None:
    pd = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    page = page_at(1400, 900)
    open_runs(page, wide.exp, "?filter=" + quote("params.seed != '3'") + "&sort=" + quote("metrics.metric_a_0:asc"))
    page.wait_for_function("() => document.querySelectorAll('.tbody .run-row').length === 3")
    shown_names = page.locator(".tbody .run-row .run-link").all_inner_texts()
    shown_cols = page.eval_on_selector_all(".th", "els => els.map(e => e.dataset.col)")

    # What is shown, as CSV: the rows in the table's order, its columns (run_id first).
    d = download(page, "export-csv-shown")
    assert d.suggested_filename.startswith("runs-") and d.suggested_filename.endswith(".csv")
    csv = pd.read_csv(d.path())
    assert list(csv.run_name) == shown_names
    names = {"attr.name": "run_name", "attr.status": "status", "attr.start": "start_time", "attr.duration": "duration_s",
             "attr.user": "user_id"}
    assert list(csv.columns) == ["run_id"] + [names.get(c, c) for c in shown_cols]
    frame = lt_client.search_runs(experiment_ids=[wide.exp], filter_string="params.seed != '3'",
                                  order_by=["metrics.metric_a_0 ASC"], output_format="pandas")
    assert list(csv.run_id) == list(frame.run_id)
    for col in [c for c in shown_cols if c.startswith(("metrics.", "params."))]:
        assert plain(csv[col].astype(float if col.startswith("metrics.") else str)) == \
            plain(frame[col].astype(float if col.startswith("metrics.") else str)), col
    assert list(pd.to_datetime(csv.start_time, utc=True)) == list(frame.start_time)

    # Everything, as Parquet: every run and column, as lt.search_runs(output_format="pandas") has them.
    d = download(page, "export-parquet-all")
    assert d.suggested_filename.endswith(".parquet")
    got = pq.read_table(d.path()).to_pandas()
    want = lt_client.search_runs(experiment_ids=[wide.exp], output_format="pandas")
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(wide.runs) - 2 == 4  # the narrow experiment's two runs are elsewhere
    got, want = got.sort_values("run_id").reset_index(drop=True), want.sort_values("run_id").reset_index(drop=True)
    for col in want.columns:
        if col.endswith("_time"):
            assert list(got[col].astype("int64") // 10**6 if got[col].dtype.unit == "ns" else got[col].astype("int64")) == \
                list(want[col].astype("datetime64[ms, UTC]").astype("int64")), col
        else:
            assert plain(got[col]) == plain(want[col]), col


def test_export_histories_of_selected_runs(page_at: Any, wide: Wide, lt_client: Any) -> None:
    pd = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    page = page_at(1400, 900)
    open_runs(page, wide.exp)
    picked = ["wide-1", "wide-2"]
    for name in picked:
        page.locator(".run-row", has_text=name).locator("input[type=checkbox]").check()
    ids = [wide.runs[n] for n in picked]
    keys = METRICS + ["val_loss"]  # every metric of the runs
    want = lt_client.get_metric_histories(ids, keys)
    for item, read in (("export-histories", pd.read_csv), ("export-histories-parquet", lambda p: pq.read_table(p).to_pandas())):
        d = download(page, item)
        assert d.suggested_filename.startswith("metric-histories-")
        got = read(d.path())
        assert list(got.columns) == ["run_id", "run_name", "key", "step", "timestamp", "value"]
        assert len(got) == 2 * len(keys) * 5 == len(want)
        got = got.sort_values(["run_id", "key", "step"]).reset_index(drop=True)
        assert list(got.run_id) == list(want.run_id) and list(got.key) == list(want.key)
        assert list(got.step) == list(want.step) and list(got.value) == pytest.approx(list(want.value))
        assert list(pd.to_datetime(got.timestamp, utc=True)) == list(want.timestamp)
        assert set(got.run_name) == set(picked)


def test_export_error_is_shown_not_saved(page_at: Any, wide: Wide) -> None:
    page = page_at(1400, 900)
    open_runs(page, wide.exp)
    page.fill(".filter-input", "metrics.metric_a_0 <")
    page.press(".filter-input", "Enter")
    page.wait_for_selector(".filter-error:not(:empty)")
    page.click(".export-btn")
    page.click(".export-menu .export-csv-shown")
    page.wait_for_selector(".export-status.error")
    assert "Invalid filter" in page.locator(".export-status").inner_text()
    # Histories need a selection first.
    page.click(".export-btn")
    page.click(".export-menu .export-histories")
    assert "Select runs first" in page.locator(".export-status").inner_text()


def test_export_api_errors_and_missing_pyarrow(ui_server: ServerProcess, wide: Wide, monkeypatch: pytest.MonkeyPatch) -> None:
    for body, status, code in (({"experiment_ids": [wide.exp], "format": "xlsx"}, 400, "INVALID_PARAMETER_VALUE"),
                               ({"format": "csv"}, 400, "INVALID_PARAMETER_VALUE"),
                               ({"experiment_ids": [wide.exp], "columns": ["nope"]}, 400, "INVALID_PARAMETER_VALUE")):
        r = ui_server.api("POST", "/api/2.0/labtrack/runs/export", body)
        assert r.status_code == status and r.json()["error_code"] == code, r.text
    r = ui_server.api("POST", "/api/2.0/labtrack/runs/export-histories", {"run_ids": ["0" * 32]})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # GET works too (curl, a link): the query's comma-separated lists.
    r = ui_server.api("GET", "/api/2.0/labtrack/runs/export-histories",
                      {"run_ids": ",".join([wide.runs["wide-0"], wide.runs["wide-3"]]), "keys": "metric_a_0"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert len(r.text.strip().splitlines()) == 1 + 2 * 5
    # Without pyarrow, Parquet names the extra to install.
    import sys

    from labtrack.errors import MissingExtra
    from labtrack.server import api_export

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingExtra, match=r"labtrack\[parquet\]"):
        api_export.writer_for("parquet", api_export.HISTORY_COLUMNS)


# ---- the note in the side panel (issue 20)

def test_note_is_editable_in_the_side_panel(page_at: Any, wide: Wide, ui_server: ServerProcess) -> None:
    page = page_at(1400, 900)
    open_runs(page, wide.exp)
    run_id = wide.runs["wide-2"]
    # A click on the row (not on its link or box) opens the run beside the table.
    page.locator(".run-row", has_text="wide-2").locator(".td[data-col='attr.status']").click()
    panel = page.locator(".run-panel")
    panel.locator(".panel-run-link", has_text="wide-2").wait_for()
    assert "learning_rate" in panel.locator("table.kv").first.inner_text()
    # It leaves the toolbars above the table in reach.
    page.click(".export-btn", timeout=5000)
    assert page.locator(".export-menu").is_visible()
    page.click(".export-btn")
    note = "## Findings\n\nThe **warm-up** helped; see <b>run 3</b>."  # "##" is drawn as an h3
    panel.locator("button.edit-description").click()
    panel.locator("textarea.description-input").fill(note)
    panel.locator("button.save-description").click()
    panel.locator(".markdown h3", has_text="Findings").wait_for()
    assert panel.locator(".markdown strong").inner_text() == "warm-up"
    # The note is the run's mlflow.note.content tag, as MLflow keeps it.
    tags = {t["key"]: t["value"] for t in ui_server.api("GET", "runs/get", {"run_id": run_id}).json()["run"]["data"]["tags"]}
    assert tags["mlflow.note.content"] == note
    # The panel is in the URL: a reload opens it again, with the note.
    page.reload()
    page.locator(".run-panel .markdown h3", has_text="Findings").wait_for()
    page.locator(".run-panel .panel-close").click()
    assert not page.locator(".run-panel").is_visible()
    assert "panel=" not in page.evaluate("location.hash")
    # The run page shows the same note.
    page.evaluate("h => { location.hash = h }", f"#/runs/{run_id}")
    page.locator(".description .markdown h3", has_text="Findings").wait_for()
    assert page.locator(".description .markdown strong").inner_text() == "warm-up"
    assert page.locator(".description .markdown b").count() == 0, "markup in a note is shown as text"


# ---- metric summary columns (issue 20): min, max, last and best step of a whole history

def test_metric_summary_columns(page_at: Any, wide: Wide) -> None:
    pd = pytest.importorskip("pandas")
    page = page_at(1400, 900)
    open_runs(page, wide.exp)
    page.click(".columns-btn")
    for cid in ("summary.min.metric_a_0", "summary.max.metric_a_0", "summary.last.metric_a_0",
                "summary.best_step.metric_a_0", "summary.best_step.val_loss", "summary.min.val_loss"):
        page.check(f".column-picker input[data-col='{cid}']")
    page.click(".column-picker button:has-text('Close')")
    assert page.locator(".th[data-col='summary.best_step.val_loss']").inner_text().endswith("val_loss best step")

    def cell(name: str, cid: str) -> str:
        return page.locator(".run-row", has_text=name).locator(f".td[data-col='{cid}']").inner_text()

    page.wait_for_function("() => document.querySelector(\".run-row .td[data-col='summary.min.metric_a_0']\").textContent !== ''")
    for k in range(4):
        name = f"wide-{k}"
        values = [metric_a_0(s, k) for s in range(5)]
        assert float(cell(name, "summary.min.metric_a_0")) == pytest.approx(min(values), rel=1e-3)
        assert float(cell(name, "summary.max.metric_a_0")) == pytest.approx(max(values), rel=1e-3)
        assert float(cell(name, "summary.last.metric_a_0")) == pytest.approx(values[-1], rel=1e-3)
        # accuracy-like names rise (best = the max's step), loss-like ones fall (best = the min's step)
        assert cell(name, "summary.best_step.metric_a_0") == str(values.index(max(values)))
        assert cell(name, "summary.best_step.val_loss") == "2"
    # Sorting by a summary: the smallest minimum first.
    header = page.locator(".th[data-col='summary.min.metric_a_0']")
    header.click()
    header.click()
    order = page.locator(".tbody .run-row .run-link").all_inner_texts()
    want = sorted(range(4), key=lambda k: min(metric_a_0(s, k) for s in range(5)))
    assert order == [f"wide-{k}" for k in want]
    assert "summary.min.metric_a_0" in page.evaluate("decodeURIComponent(location.hash)")


def _summary_grammar() -> bool:
    from labtrack.store import search_syntax

    return hasattr(search_syntax, "METRIC_STATS")


@pytest.mark.skipif(not _summary_grammar(), reason="the filter grammar's metrics.<key>.min|max|last "
                    "(store/search_syntax.py, another change of issue 20) is not in this checkout")
def test_metric_summaries_filtered_ordered_and_exported_by_the_server(page_at: Any, wide: Wide) -> None:
    """The filter grammar's labtrack extension (metrics.<key>.min|max|last) through the table."""
    pd = pytest.importorskip("pandas")
    page = page_at(1400, 900)
    cols = json.dumps(["attr.name", "summary.min.metric_a_0", "summary.best_step.metric_a_0", "summary.best_step.val_loss",
                       "summary.min.val_loss"])
    mins = {k: min(metric_a_0(s, k) for s in range(5)) for k in range(4)}
    cut = sorted(mins.values())[2]  # keeps the two runs with the smallest minimum
    open_runs(page, wide.exp, "?cols=" + quote(cols) + "&filter=" + quote(f"metrics.metric_a_0.min < {cut}"))
    page.wait_for_function("() => document.querySelectorAll('.tbody .run-row').length === 2")
    header = page.locator(".th[data-col='summary.min.metric_a_0']")
    header.click()
    header.click()
    page.wait_for_function("() => document.querySelector(\".run-row .td[data-col='summary.min.metric_a_0']\").textContent !== ''")
    order = page.locator(".tbody .run-row .run-link").all_inner_texts()
    assert order == [f"wide-{k}" for k in sorted(mins, key=mins.get)[:2]]
    # The export of what is shown carries them as metrics.<key>.<stat>, the best step as the
    # step of the max (metric_a_0 rises) or of the min (val_loss falls), sorted by the server.
    d = download(page, "export-csv-shown")
    csv = pd.read_csv(d.path())
    assert list(csv.columns) == ["run_id", "run_name", "metrics.metric_a_0.min", "metrics.metric_a_0.max_step",
                                 "metrics.val_loss.min_step", "metrics.val_loss.min"]
    assert list(csv.run_name) == order
    for row in csv.itertuples(index=False):
        k = int(row.run_name.split("-")[1])
        values = [metric_a_0(s, k) for s in range(5)]
        assert row[2] == pytest.approx(min(values)) and row[3] == values.index(max(values))
        assert row[4] == 2 and row[5] == pytest.approx(k / 10)


@pytest.mark.parametrize("windowed", [False, True], ids=["whole", "windowed"])
def test_summary_column_sort_from_the_url(page_at: Any, wide: Wide, windowed: bool) -> None:
    """A link or saved view sorted by a summary column opens sorted, whole or windowed (the
    server then sorts, issue 21's runs/table), with the summary values shown."""
    page = page_at(1400, 900)
    if windowed:
        page.evaluate("localStorage.setItem('labtrack.windowedAbove', '2')")
    try:
        cols = json.dumps(["attr.name", "summary.min.metric_a_0", "summary.best_step.val_loss"])
        for sort, key in (("summary.min.metric_a_0:asc", lambda k: min(metric_a_0(s, k) for s in range(5))),
                          ("summary.best_step.val_loss:desc", lambda k: -k)):  # all 2: ties newest first
            page.evaluate("h => { location.hash = h }", "#/")
            page.wait_for_selector(".exp-table")
            open_runs(page, wide.exp, "?cols=" + quote(cols) + "&sort=" + quote(sort))
            if windowed:
                assert page.evaluate("document.querySelector('.view').dataset.windowed") == "1"
            page.wait_for_function("() => document.querySelectorAll('.tbody .run-row').length === 4")
            page.wait_for_function("() => [...document.querySelectorAll(\".run-row .td[data-col='summary.best_step.val_loss']\")].every(e => e.textContent === '2')")
            order = page.locator(".tbody .run-row .run-link").all_inner_texts()
            assert order == [f"wide-{k}" for k in sorted(range(4), key=key)], sort
            assert page.locator(".filter-error").inner_text() == ""
    finally:
        page.evaluate("localStorage.removeItem('labtrack.windowedAbove')")
