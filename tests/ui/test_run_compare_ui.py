"""The run page's overview and Metrics tab, and the compare page's colours (issue 20), in
Debian's Chromium against a real labtrack server with data logged over its REST API.

- the overview lists the run's params and a metrics summary (last, min, max, steps) and
  leaves out rows with nothing to say (no git commit, entry point or parent run);
- the Metrics tab's header cells sit over their columns (numbers right-aligned under a
  right-aligned header) and a row's metric name scrolls with its row;
- compare colours each metric's best value green and its worst red by the metric's
  direction (loss falls, accuracy rises, a run's labtrack.direction.<metric> tag
  overrides), with a legend saying so.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import ServerProcess
from tests.ui.conftest import PageWatch, goto, open_page, screenshot
from tests.ui.seed import Logger

pytestmark = pytest.mark.timeout(300)

LOSS = [1.0, 0.6, 0.8, 0.3, 0.4]  # last 0.4, min 0.3, max 1.0, 5 steps
WIDE = 60  # metrics on one run: the Metrics tab is taller than the window


@pytest.fixture(scope="module")
def logged(ui_server: ServerProcess) -> dict[str, Any]:
    lg = Logger(ui_server)
    exp = lg.experiment(f"issue20-run-compare-{uuid.uuid4().hex[:6]}")
    now = int(time.time() * 1000)
    plain = lg.run(exp, "plain", start=now)
    lg.batch(plain["run_id"], {"lr": "0.01", "optimizer": "adam"},
             [("loss", v, s, now + s) for s, v in enumerate(LOSS)]
             + [(f"wide_{i:02d}", float(i), 0, now) for i in range(WIDE - 1)]
             + [("a_long_numbers", -0.00012345, 123456789, now)])  # the first row: numbers wider than their headers
    lg.finish(plain["run_id"])
    # three runs to compare: loss is best low, accuracy best high, margin has a "min" override
    finals = {"r-a": (0.4, 0.8, 5.0), "r-b": (0.2, 0.6, 3.0), "r-c": (0.9, 0.95, 4.0)}
    ids = {}
    for name, (loss, acc, margin) in finals.items():
        info = lg.run(exp, name, start=now, tags={"labtrack.direction.margin": "min"} if name == "r-a" else None)
        lg.batch(info["run_id"], {"lr": "0.1"}, [("loss", loss, 3, now), ("accuracy", acc, 3, now), ("margin", margin, 3, now)])
        lg.finish(info["run_id"])
        ids[name] = info["run_id"]
    return {"plain": plain["run_id"], "compare": ids}


@pytest.fixture
def page(browser: Any, ui_server: ServerProcess) -> Iterator[Any]:
    ctx, pg, watch = open_page(browser, ui_server.url + "/", ui_server.token)
    yield pg
    _check(watch)
    ctx.close()


def _check(watch: PageWatch) -> None:
    assert watch.foreign() == [], "the page made requests outside the server's origin"
    assert watch.errors == [], f"uncaught errors in the page: {watch.errors}"


def test_overview_shows_params_and_metrics_summary_without_empty_rows(page: Any, logged: dict[str, Any]) -> None:
    goto(page, f"#/runs/{logged['plain']}")
    page.wait_for_selector(".overview")
    labels = page.locator(".overview th").all_inner_texts()
    assert "Run ID" in labels and "Started" in labels
    for empty in ("Git commit", "Entry point", "Parent run"):
        assert empty not in labels, f"an empty {empty!r} row is shown: {labels}"
    page.wait_for_function("document.querySelector('.child-runs-row') && document.querySelector('.child-runs-row').hidden")

    params = page.locator(".overview-params tr")
    assert params.evaluate_all("rs => rs.map(r => [r.dataset.param, r.querySelector('td').textContent])") == [
        ["lr", "0.01"], ["optimizer", "adam"]]

    loss = page.locator(".overview-metrics tr[data-metric='loss']")
    page.wait_for_function("document.querySelector(\".overview-metrics tr[data-metric='loss'] td.points\").textContent === '5'")
    assert loss.locator("td.latest").inner_text() == "0.4"
    assert loss.locator("td.min").inner_text() == "0.3"
    assert loss.locator("td.max").inner_text() == "1"
    assert page.locator(".overview-metrics thead th").all_inner_texts() == ["Metric", "Last", "Step", "Min", "Max", "Steps"]
    screenshot(page, "run-overview-summary.png", page.locator(".tab-content"))


# each column's header text and first-row text: their cell boxes, and where the text sits inside
_BOXES = """() => {
  const text = (cell) => { const r = document.createRange(); r.selectNodeContents(cell); return r.getBoundingClientRect(); };
  const head = [...document.querySelectorAll('.metrics-table thead th')];
  const row = [...document.querySelector('.metrics-table tbody tr').children];
  return head.map((hc, i) => {
    const a = hc.getBoundingClientRect(), b = row[i].getBoundingClientRect(), ta = text(hc), tb = text(row[i]);
    return {head: [a.left, a.right, ta.left, ta.right], cell: [b.left, b.right, tb.left, tb.right, b.top],
            rowTop: row[1].getBoundingClientRect().top};
  });
}"""


def test_metrics_tab_headers_line_up_with_their_columns(page: Any, logged: dict[str, Any]) -> None:
    goto(page, f"#/runs/{logged['plain']}?tab=metrics")
    page.wait_for_selector(".metrics-table")
    page.wait_for_function("![...document.querySelectorAll('.metrics-table td')].some(td => td.textContent === '…')")
    assert page.locator(".metrics-table tbody tr").count() == WIDE + 1
    cols = page.evaluate(_BOXES)
    assert len(cols) == 6
    for i, c in enumerate(cols):
        assert abs(c["head"][0] - c["cell"][0]) < 1 and abs(c["head"][1] - c["cell"][1]) < 1, (i, c)
        if i == 0:  # the metric's name: left-aligned under a left-aligned header
            assert abs(c["head"][2] - c["cell"][2]) < 2, (i, c)
        else:  # numbers: right-aligned under a right-aligned header
            assert abs(c["head"][3] - c["cell"][3]) < 2, f"column {i}'s header text does not end where its numbers do: {c}"

    # scrolled past the first rows, a row's name stays beside its values and the header stays on top
    top = page.evaluate("document.querySelector('.metrics-table tbody tr').getBoundingClientRect().top + scrollY")
    page.evaluate(f"scrollTo(0, {top} + 200)")
    cols = page.evaluate(_BOXES)
    name_top, value_top = cols[0]["cell"][4], cols[0]["rowTop"]
    assert value_top < 0, "the first row should have scrolled out of view"
    assert abs(name_top - value_top) < 1, f"the first row's name cell left its row: name at {name_top}px, values at {value_top}px"
    header_top = page.evaluate("document.querySelector('.metrics-table thead th').getBoundingClientRect().top")
    assert abs(header_top) < 1, header_top


def test_compare_colours_best_and_worst_by_direction_with_a_legend(page: Any, logged: dict[str, Any]) -> None:
    ids = logged["compare"]
    order = ["r-a", "r-b", "r-c"]
    goto(page, "#/compare?runs=" + ",".join(ids[n] for n in order))
    page.wait_for_selector(".compare-metrics")

    def marks(metric: str) -> list[str]:
        cells = page.locator(f".compare-metrics tr[data-metric='{metric}'] td")
        return cells.evaluate_all("cs => cs.map(c => c.classList.contains('best') ? 'best' : c.classList.contains('worst') ? 'worst' : '')")

    assert marks("loss") == ["", "best", "worst"]  # lower is better
    assert marks("accuracy") == ["", "worst", "best"]  # higher is better
    assert marks("margin") == ["worst", "best", ""]  # r-a's tag says lower is better
    colours = page.evaluate("""() => {
      const c = s => getComputedStyle(document.querySelector(s)).color;
      return [c('.compare-metrics td.best'), c('.compare-metrics td.worst')];
    }""")
    assert colours == ["rgb(30, 127, 60)", "rgb(179, 38, 30)"], colours  # --ok green, --danger red
    legend = page.locator(".compare-legend")
    assert "best" in legend.inner_text() and "worst" in legend.inner_text() and "lower is better" in legend.inner_text()
    assert page.locator(".compare-legend .legend-best").evaluate("e => getComputedStyle(e).color") == colours[0]
    assert page.locator(".compare-legend .legend-worst").evaluate("e => getComputedStyle(e).color") == colours[1]
    assert page.locator(".compare-metrics tr[data-metric='loss']").get_attribute("data-direction") == "min"
    screenshot(page, "compare-colours.png", page.locator(".compare-metrics"))
