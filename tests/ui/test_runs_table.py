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
    page.wait_for_function("() => document.querySelector('.view').dataset.loaded !== undefined")


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
