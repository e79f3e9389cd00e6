"""The runs table of an experiment too large to load whole (issue 21), in Debian's Chromium
against a real server: the rows come a window at a time from api/2.0/labtrack/runs/table, and
the rows, sort orders, filter, count and group statistics match what numpy computes from the
seeded data. The threshold for windowing is lowered (localStorage) so a few hundred runs do."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from tests.servers import ServerProcess
from tests.ui.conftest import goto
from tests.ui.seed import Logger

pytestmark = pytest.mark.timeout(300)

N = 420  # more than one window (200 rows) of the table
OPTS = ("adam", "sgd", "rmsprop")


class Big:
    def __init__(self, server: ServerProcess) -> None:
        lg = Logger(server)
        rng = random.Random(21)
        now = int(time.time() * 1000) - 3_600_000
        self.exp = lg.experiment(f"windowed-{time.time_ns()}")
        self.rows: list[dict[str, Any]] = []
        for i in range(N):
            self.rows.append({"name": f"w-{i:03d}", "start": now + i * 1000, "opt": OPTS[rng.randrange(3)],
                              "seed": str(rng.randrange(1000)),
                              # every 13th run has no loss: missing values sort last
                              "loss": None if i % 13 == 0 else rng.random() * 3 + 100.0,
                              "acc": rng.random()})

        def log(r: dict[str, Any]) -> None:
            info = lg.run(self.exp, r["name"], start=r["start"])
            points = [("acc", r["acc"], 0, r["start"])] + ([("loss", r["loss"], 0, r["start"])] if r["loss"] is not None else [])
            lg.batch(info["run_id"], {"opt": r["opt"], "seed": r["seed"]}, points, {})
            lg.finish(info["run_id"], r["start"] + 500)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(log, self.rows))

    def order(self, key: str, desc: bool) -> list[str]:
        """Names in the table's order: missing last, ties by newest start."""
        have = [r for r in self.rows if r[key] is not None]
        missing = [r for r in self.rows if r[key] is None]
        num = (lambda r: float(r[key])) if key == "seed" else (lambda r: r[key])
        have.sort(key=lambda r: (-num(r) if desc else num(r), -r["start"]))
        missing.sort(key=lambda r: -r["start"])
        return [r["name"] for r in have + missing]


@pytest.fixture(scope="module")
def big(ui_server: ServerProcess) -> Big:
    return Big(ui_server)


def _shown(page: Any) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('.tbody .run-row')]
        .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
        .map(r => r.querySelector('.run-link').textContent)""")


def _ready_after(page: Any, before: str | None, action: Any) -> None:
    action()
    page.wait_for_function("b => { const v = document.querySelector('.view'); return v.dataset.ready !== b "
                           "&& !document.querySelector('.tbody .pending-row') }", arg=before)


def _sort(page: Any, col: str) -> None:
    before = page.evaluate("document.querySelector('.view').dataset.ready")
    _ready_after(page, before, lambda: page.click(f".th[data-col='{col}']"))


def test_windowed_rows_sort_filter_and_group_stats(ui: tuple[Any, Any], big: Big) -> None:
    page, watch = ui
    page.evaluate("localStorage.setItem('labtrack.windowedAbove', '50')")
    try:
        cols = '["attr.name","params.opt","params.seed","metrics.loss","metrics.acc"]'
        goto(page, f"#/experiments/{big.exp}/runs?cols={cols}")
        page.wait_for_function("document.querySelector('.view').dataset.windowed === '1' && document.querySelector('.tbody .run-row')")
        assert page.evaluate("document.querySelector('.view').dataset.total") == str(N)
        assert page.locator(".run-count").inner_text().startswith(f"{N} runs")
        # the default order, newest first; no run was fetched whole
        assert _shown(page)[:10] == [f"w-{i:03d}" for i in range(N - 1, N - 11, -1)]
        assert not any(p.endswith("/runs/search") for p in watch.paths())

        _sort(page, "metrics.loss")  # first click: descending
        assert _shown(page)[:10] == big.order("loss", desc=True)[:10]
        _sort(page, "metrics.loss")
        want = big.order("loss", desc=False)
        assert _shown(page)[:10] == want[:10]
        # the last window, fetched when scrolled to: runs without a loss come last
        page.evaluate("document.querySelector('.scroller').scrollTop = 1e9")
        page.wait_for_function(f"[...document.querySelectorAll('.tbody .run-row .run-link')].some(a => a.textContent === '{want[-1]}')")
        page.wait_for_function("!document.querySelector('.tbody .pending-row')")
        tail = _shown(page)
        assert tail == want[-len(tail):]

        page.evaluate("document.querySelector('.scroller').scrollTop = 0")
        _sort(page, "params.seed")  # a param that reads as a number sorts as one
        assert _shown(page)[:10] == big.order("seed", desc=True)[:10]

        # group by a param: count and mean ± std of the latest values, computed by the server
        before = page.evaluate("document.querySelector('.view').dataset.ready")
        _ready_after(page, before, lambda: page.select_option(".group-by", "params.opt"))
        # the rows under a group are that group's runs, in the table's sort order
        adam = [n for n in big.order("seed", desc=True) if next(x for x in big.rows if x["name"] == n)["opt"] == "adam"]
        first_group = page.evaluate("""() => { const rows = [...document.querySelectorAll('.tbody .tr')]
            .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top));
            const out = []; let inside = false;
            for (const r of rows) {
              if (r.classList.contains('group-row')) { if (inside) break; inside = r.dataset.group === 'adam'; continue; }
              if (inside) out.push(r.querySelector('.run-link').textContent);
            }
            return out; }""")
        assert len(first_group) >= 5 and first_group == adam[:len(first_group)]
        for opt in sorted(OPTS):  # each group's header, then collapse it to bring the next one up
            members = [r for r in big.rows if r["opt"] == opt]
            row = page.locator(f".group-row[data-group='{opt}']")
            assert f"({len(members)})" in row.inner_text()
            for key in ("loss", "acc"):
                v = np.array([r[key] for r in members if r[key] is not None])
                title = row.locator(f"[data-col='metrics.{key}'] .agg").get_attribute("title")
                fields = dict(part.replace("=", " ").split(" ") for part in title.split(", "))
                assert int(fields["n"]) == len(v)
                assert float(fields["mean"]) == pytest.approx(v.mean(), rel=1e-12)
                assert float(fields["std"]) == pytest.approx(v.std(ddof=1), rel=1e-9)
                assert float(fields["min"]) == v.min() and float(fields["max"]) == v.max()
            before = page.evaluate("document.querySelector('.view').dataset.ready")
            _ready_after(page, before, lambda: row.locator(".twisty").click())

        # a filter is the server's: the count follows it
        before = page.evaluate("document.querySelector('.view').dataset.ready")
        page.select_option(".group-by", "")
        page.fill(".filter-input", "params.opt = 'sgd' and metrics.acc < 0.5")
        page.click(".apply-filter")
        want_n = sum(1 for r in big.rows if r["opt"] == "sgd" and r["acc"] < 0.5)
        page.wait_for_function(f"document.querySelector('.view').dataset.total === '{want_n}'")
        assert page.locator(".run-count").inner_text().startswith(f"{want_n} runs")
    finally:
        page.evaluate("localStorage.removeItem('labtrack.windowedAbove')")
