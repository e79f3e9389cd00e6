"""The web UI as a user sees it: Debian's Chromium (Playwright) against a real labtrack
server holding data logged over HTTP. Every test also checks (in the ``ui`` fixture) that
the page made no request outside the server's origin, raised no uncaught error, and never
executed a logged string as markup."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from tests.servers import ServerProcess
from tests.ui.conftest import DOCS_VIEWPORT, PREFIX, PageWatch, PrefixProxy, goto, open_page, screenshot
from tests.ui.seed import XSS, XSS_SCRIPT, Logger, Seeded

pytestmark = pytest.mark.timeout(180)


def rows(page: Any) -> list[str]:
    return page.locator(".tbody .run-row .run-link").all_inner_texts()


def wait_rows(page: Any, predicate: Any, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        got = rows(page)
        if predicate(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def hash_query(page: Any) -> dict[str, list[str]]:
    frag = page.evaluate("location.hash")
    return parse_qs(frag.split("?", 1)[1]) if "?" in frag else {}


# ---- experiments

def test_experiments_search_create_rename_delete_restore(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    page.wait_for_selector(".exp-table")
    names = page.locator(".exp-name").all_inner_texts()
    assert "cnn-sweep" in names and "nlp-baselines" in names
    assert not any("old-experiment" in n for n in names), "deleted experiments are hidden by default"

    page.fill(".exp-search", "nlp")
    assert page.locator(".exp-name").all_inner_texts() == ["nlp-baselines"]
    page.fill(".exp-search", "")

    page.fill(".new-exp-name", "created-in-ui")
    page.click(".create-exp button")
    row = page.locator("tr", has_text="created-in-ui")
    row.wait_for()
    page.fill(".new-exp-name", "created-in-ui")
    page.click(".create-exp button")
    page.wait_for_selector(".inline-error:has-text('already exists')")

    row.locator("button.rename").click()
    page.fill(".rename-input", "renamed-in-ui")
    page.locator(".rename-input").press("Enter")
    page.locator("tr", has_text="renamed-in-ui").wait_for()

    page.on("dialog", lambda d: d.accept())
    page.locator("tr", has_text="renamed-in-ui").locator("button.delete").click()
    page.wait_for_function("!document.body.innerText.includes('renamed-in-ui')")

    page.check(".show-deleted")
    deleted = page.locator("tr.deleted", has_text="renamed-in-ui")
    deleted.wait_for()
    assert deleted.locator(".badge.deleted").is_visible()
    assert page.locator("tr.deleted", has_text="old-experiment").count() == 1
    deleted.locator("button.restore").click()
    page.locator("tr:not(.deleted)", has_text="renamed-in-ui").wait_for()


# ---- runs table

def test_runs_table_columns_sort_and_state_in_url(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    goto(page, f"#/experiments/{data.exp_sweep}/runs")
    page.wait_for_selector(".run-row")
    headers = page.locator(".th").all_inner_texts()
    assert any("loss" in h for h in headers) and any("lr" in h for h in headers)
    assert "cnn-adam-lr0.1-b32" in rows(page)

    # sort by the loss metric, ascending: the smallest loss comes first
    page.locator(".th[data-col='metrics.loss']").click()
    page.locator(".th[data-col='metrics.loss']").click()
    assert hash_query(page)["sort"] == ["metrics.loss:asc"]
    first = page.locator(".tbody .run-row").first.locator(".td[data-col='metrics.loss']").inner_text()
    values = [float(v) for v in page.locator(".tbody .run-row .td[data-col='metrics.loss']").all_inner_texts() if v]
    assert float(first) == min(values)

    # choose columns: add the tag column "team", drop the User column
    page.click(".columns-btn")
    page.check(".column-picker input[data-col='tags.team']")
    page.uncheck(".column-picker input[data-col='attr.user']")
    page.click(".column-picker button:has-text('Close')")
    assert page.locator(".th[data-col='tags.team']").count() == 1
    assert page.locator(".th[data-col='attr.user']").count() == 0

    # select two runs: the selection is in the URL too
    page.locator(".run-row", has_text="cnn-sgd-lr0.01-b64").locator("input[type=checkbox]").check()
    page.locator(".run-row", has_text="cnn-adam-lr0.01-b32").locator("input[type=checkbox]").check()
    assert page.locator(".sel-count").inner_text() == "2 selected"
    q = hash_query(page)
    assert len(q["sel"][0].split(",")) == 2 and "tags.team" in q["cols"][0]

    # a reload keeps sort, columns and selection
    page.reload()
    page.wait_for_selector(".run-row")
    assert page.locator(".th[data-col='tags.team']").count() == 1
    assert page.locator(".th.sorted").get_attribute("data-col") == "metrics.loss"
    assert page.locator(".sel-count").inner_text() == "2 selected"

    # the README's picture: summary columns of whole histories (min, max, best step), Export open
    cols = ["attr.name", "summary.min.loss", "summary.best_step.loss", "summary.max.accuracy", "summary.best_step.accuracy",
            "params.optimizer", "params.lr", "metrics.loss"]
    state = {"filter": "attributes.run_name LIKE 'cnn-%'", "cols": json.dumps(cols, separators=(",", ":")), "sort": "metrics.loss:asc"}
    goto(page, f"#/experiments/{data.exp_sweep}/runs?{urlencode(state, quote_via=quote)}")
    page.wait_for_function("() => { const cells = [...document.querySelectorAll(\".run-row .td[data-col='summary.best_step.accuracy']\")];"
                           " return cells.length === 12 && cells.every(td => td.textContent !== ''); }")
    assert page.locator(".th[data-col='summary.best_step.loss']").inner_text().endswith("loss best step")
    page.set_viewport_size({"width": DOCS_VIEWPORT[0], "height": DOCS_VIEWPORT[1]})
    page.click(".export-btn")
    menu = page.locator(".export-menu")
    menu.wait_for()
    assert menu.evaluate("m => m.getBoundingClientRect().right") <= DOCS_VIEWPORT[0], "the Export menu runs off the window"
    screenshot(page, "runs-table.png", viewport=DOCS_VIEWPORT)


def test_filter_grammar_and_inline_server_error(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    goto(page, f"#/experiments/{data.exp_sweep}/runs")
    page.wait_for_selector(".run-row")
    before = len(rows(page))

    page.fill(".filter-input", "params.optimizer = 'sgd' and metrics.loss < 0.2")
    page.press(".filter-input", "Enter")
    got = wait_rows(page, lambda r: r and all("sgd" in n for n in r))
    assert got and all("cnn-sgd" in n for n in got) and len(got) < before
    assert hash_query(page)["filter"] == ["params.optimizer = 'sgd' and metrics.loss < 0.2"]

    # a bad filter: the server's message shows inline and the rows stay usable
    page.fill(".filter-input", "metrics.loss <<< banana")
    page.press(".filter-input", "Enter")
    err = page.locator(".filter-error")
    err.wait_for(state="visible")
    assert err.inner_text().strip() != ""
    assert rows(page) == got
    page.fill(".filter-input", "")
    page.press(".filter-input", "Enter")
    wait_rows(page, lambda r: len(r) == before)
    assert page.locator(".filter-error").inner_text() == ""


def test_metric_range_filter_and_group_by(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    goto(page, f"#/experiments/{data.exp_sweep}/runs")
    page.wait_for_selector(".run-row")
    page.select_option(".range-key", "loss")
    page.fill(".range-max", "0.1")
    page.click(".range-form button")
    page.wait_for_selector(".range-chip")
    cells = page.locator(".tbody .run-row .td[data-col='metrics.loss']").all_inner_texts()
    assert cells and all(float(c) <= 0.1 for c in cells)
    assert "outside metric ranges" in page.locator(".run-count").inner_text()
    page.click(".range-chip .chip-x")

    page.select_option(".group-by", "params.optimizer")
    page.wait_for_selector(".group-row")
    groups = page.locator(".group-row").all_inner_texts()
    assert any("optimizer = adam" in g for g in groups) and any("optimizer = sgd" in g for g in groups)
    agg = page.locator(".group-row[data-group='sgd'] .td[data-col='metrics.loss'] .agg-mean").inner_text()
    assert re.fullmatch(r"-?[\d.e+-]+ ± [\d.e+-]+", agg), agg
    assert page.locator(".group-row[data-group='sgd'] .td[data-col='metrics.loss'] .agg-range").inner_text().count("…") == 1
    assert hash_query(page)["group"] == ["params.optimizer"]
    # collapsing a group hides its runs
    n = len(rows(page))
    page.locator(".group-row[data-group='sgd'] .twisty").click()
    assert len(wait_rows(page, lambda r: len(r) < n)) == n - 6


def test_nested_runs_tree(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    goto(page, f"#/experiments/{data.exp_sweep}/runs")
    page.wait_for_selector(".run-row")
    assert "hpo-child-0" not in rows(page)
    parent = page.locator(".run-row", has_text="hpo-parent")
    assert "(3)" in parent.inner_text()
    parent.locator(".twisty").click()
    got = wait_rows(page, lambda r: "hpo-child-0" in r)
    i = got.index("hpo-parent")
    assert sorted(got[i + 1:i + 4]) == ["hpo-child-0", "hpo-child-1", "hpo-child-2"]
    pad = page.locator(".run-row", has_text="hpo-child-1").locator(".name-cell").evaluate("e => e.style.paddingLeft")
    assert pad == "18px"


def test_virtualized_scrolling_many_runs(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    goto(page, f"#/experiments/{data.exp_big}/runs")
    page.wait_for_function(f"document.querySelector('.view').dataset.loaded === '{data.big_runs}'", timeout=30000)
    assert page.locator(".view").get_attribute("data-rows") == str(data.big_runs)
    in_dom = page.locator(".tbody .run-row").count()
    assert 10 < in_dom < 100, f"{in_dom} rows in the DOM for {data.big_runs} runs"
    page.locator(".scroller").evaluate("e => { e.scrollTop = e.scrollHeight }")
    page.wait_for_function("[...document.querySelectorAll('.run-link')].some(a => a.textContent === 'big-0000')")
    assert page.locator(".tbody .run-row").count() < 100


def test_live_updates_without_reload(ui: tuple[Any, PageWatch], data: Seeded, ui_server: ServerProcess) -> None:
    page, watch = ui
    goto(page, f"#/experiments/{data.exp_sweep}/runs")
    page.wait_for_selector(".run-row")
    page.evaluate("window.__marker = 42")
    live = page.locator(".run-row", has_text="live-run")
    assert live.locator(".td[data-col='metrics.loss']").inner_text() == "1"
    lg = Logger(ui_server)
    lg.batch(data.runs["live-run"], metrics=[("loss", 0.25, 1, int(time.time() * 1000))])
    new = lg.run(data.exp_sweep, "arrived-later")
    page.wait_for_function("[...document.querySelectorAll('.run-link')].some(a => a.textContent === 'arrived-later')", timeout=15000)
    page.wait_for_function(
        "document.querySelector(`.run-row[data-run='%s'] .td[data-col='metrics.loss']`).textContent === '0.25'" % data.runs["live-run"],
        timeout=15000)
    assert page.evaluate("window.__marker") == 42, "the page was reloaded"
    searches = [u for u in watch.urls if u.endswith("runs/search")]
    assert searches, "live updates use runs/search"
    lg.call("runs/delete", {"run_id": new["run_id"]})


def test_deleted_runs_shown_and_restored(ui: tuple[Any, PageWatch], data: Seeded, ui_server: ServerProcess) -> None:
    page, _ = ui
    goto(page, f"#/experiments/{data.exp_sweep}/runs")
    page.wait_for_selector(".run-row")
    assert "deleted-run" not in rows(page)
    page.check(".show-deleted")
    wait_rows(page, lambda r: "deleted-run" in r)
    row = page.locator(".run-row.deleted", has_text="deleted-run")
    assert row.locator(".badge.deleted").is_visible()
    row.locator("input[type=checkbox]").check()
    page.click(".restore-runs")
    page.wait_for_selector(".run-row:not(.deleted):has-text('deleted-run')")
    r = ui_server.api("GET", "runs/get", {"run_id": data.runs["deleted-run"]}).json()
    assert r["run"]["info"]["lifecycle_stage"] == "active"
    Logger(ui_server).call("runs/delete", {"run_id": data.runs["deleted-run"]})


def test_runs_across_experiments(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    goto(page, "#/runs?filter=" + "tags.team%20%3D%20'vision'%20and%20params.lr%20%3D%20'0.01'")
    page.wait_for_selector(".run-row")
    got = wait_rows(page, lambda r: "bert-0" in r)
    assert "bert-0" in got and "bert-1" in got and "bert-2" not in got
    assert "cnn-adam-lr0.01-b32" in got
    exps = set(page.locator(".tbody .run-row .td[data-col='attr.experiment']").all_inner_texts())
    assert {"cnn-sweep", "nlp-baselines"} <= exps


# ---- run page

def test_run_page_overview_params_metrics_and_safe_description(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    goto(page, f"#/runs/{data.runs['evil']}")
    page.wait_for_selector(".overview")
    assert page.locator("h1.run-name").inner_text() == f"evil {XSS_SCRIPT}"
    md = page.locator(".description .markdown")
    assert md.locator("h2").inner_text() == "Sweep notes"
    assert md.locator("strong").inner_text() == "adam"
    assert md.locator("li").count() == 2
    assert XSS in md.inner_text(), "raw HTML in markdown stays visible text"
    assert md.locator("img").count() == 0
    assert md.locator("a", has_text="click me").get_attribute("href") == "#", "javascript: links are neutralised"
    assert md.locator("a", has_text="docs").get_attribute("href") == "https://example.org/docs"

    # edit the description
    page.click(".edit-description")
    page.fill(".description-input", "## Updated\n\nnow *better*")
    page.click(".save-description")
    page.wait_for_selector(".markdown h3:has-text('Updated')")
    assert page.locator(".markdown em").inner_text() == "better"

    page.click(".tab[data-tab='params']")
    assert page.locator(".params-table tr", has_text="payload").locator(".value").inner_text() == XSS

    page.click(".tab[data-tab='metrics']")
    page.wait_for_selector(".metrics-table td.points")
    loss = page.locator(".metrics-table tr[data-metric='loss']")
    page.wait_for_function("document.querySelector(`.metrics-table tr[data-metric='loss'] td.points`).textContent === '20'")
    assert float(loss.locator("td.min").inner_text()) <= float(loss.locator("td.latest").inner_text()) <= float(loss.locator("td.max").inner_text())

    goto(page, f"#/runs/{data.runs['hpo-child-1']}")
    page.wait_for_selector(".parent-link")
    page.click(".parent-link")
    page.wait_for_selector(".child-link")
    assert sorted(page.locator(".child-link").all_inner_texts()) == ["hpo-child-0", "hpo-child-1", "hpo-child-2"]

    # the docs' picture: a training run's overview, its params and the summary of its metrics
    goto(page, f"#/runs/{data.runs['cnn-adam-lr0.01-b64']}")
    page.wait_for_function("document.querySelector(\".overview-metrics tr[data-metric='loss'] td.points\")?.textContent === '30'")
    screenshot(page, "run-page.png", viewport=DOCS_VIEWPORT)


def test_run_tags_are_editable(ui: tuple[Any, PageWatch], data: Seeded, ui_server: ServerProcess) -> None:
    page, _ = ui
    run_id = data.runs["cnn-adam-lr0.01-b64"]
    goto(page, f"#/runs/{run_id}?tab=tags")
    page.wait_for_selector(".add-tag")
    page.fill(".new-tag-key", "reviewed")
    page.fill(".new-tag-value", "yes <b>bold</b>")
    page.click(".add-tag button")
    row = page.locator(".tags-table tr[data-tag='reviewed']")
    row.wait_for()
    assert row.locator(".value").inner_text() == "yes <b>bold</b>"
    row.locator(".edit-tag").click()
    page.fill(".tag-value-input", "no")
    page.press(".tag-value-input", "Enter")
    page.wait_for_selector(".tags-table tr[data-tag='reviewed'] td.value:text-is('no')")
    tags = {t["key"]: t["value"] for t in ui_server.api("GET", "runs/get", {"run_id": run_id}).json()["run"]["data"]["tags"]}
    assert tags["reviewed"] == "no"
    page.locator(".tags-table tr[data-tag='reviewed'] .delete-tag").click()
    page.wait_for_selector(".tags-table tr[data-tag='reviewed']", state="detached")


def test_artifact_browser_previews(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    goto(page, f"#/runs/{data.runs['evil']}?tab=artifacts")
    page.wait_for_selector(".art-item")
    page.click(".art-file[data-path='notes.txt']")
    page.wait_for_selector(".preview-text")
    assert XSS in page.locator(".preview-text").inner_text()
    page.click(".art-file[data-path='config.json']")
    page.wait_for_selector(".preview-text.json")
    assert '"layers": 4' in page.locator(".preview-text.json").inner_text()
    page.click(".art-file[data-path='params.yaml']")
    page.wait_for_selector(".preview-text:has-text('optimizer: adam')")
    page.click(".art-file[data-path='table.csv']")
    page.wait_for_selector(".csv-table")
    assert page.locator(".csv-table th").all_inner_texts() == ["epoch", "loss", "acc"]
    assert page.locator(".csv-table tbody tr").count() == 3
    page.click(".art-dir[data-path='plots']")
    page.click(".art-file[data-path='plots/curve.png']")
    img = page.locator(".preview-image")
    img.wait_for()
    page.wait_for_function("document.querySelector('.preview-image').naturalWidth === 64")
    with page.expect_download() as dl:
        page.click(".preview .download")
    assert dl.value.suggested_filename == "curve.png"


# ---- charts

def test_chart_downsampled_zoom_log_and_hover(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, watch = ui
    goto(page, f"#/runs/{data.runs['long-run']}?tab=charts")
    card = page.locator(".chart-card[data-metric='long']")
    page.wait_for_selector(".chart-card[data-metric='long'][data-ready='1']")
    assert int(card.get_attribute("data-total")) == data.long_points
    shown = int(card.get_attribute("data-shown"))
    assert 0 < shown <= 2000, "the browser got a downsampled series"
    assert "downsampled" in card.locator(".chart-info").inner_text()
    reqs = [u for u in watch.urls if "history-downsampled" in u]
    assert reqs and all("max_points=" in u for u in reqs)
    assert not any("get-history" in u for u in watch.urls), "the whole history is never pulled"
    screenshot(page, "chart.png", card)

    # hover shows the value under the cursor
    over = card.locator(".chart-over")
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    tip = card.locator(".chart-tip")
    tip.wait_for(state="visible")
    assert re.search(r"long-run\s*-?\d", tip.inner_text())

    # drag to zoom: the page asks the server for the visible step window
    n_before = len([u for u in watch.urls if "history-downsampled" in u])
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.65, box["y"] + 60, steps=5)
    page.mouse.up()
    page.wait_for_function("document.querySelector(\".chart-card[data-metric='long']\").dataset.zoomed")
    zoom_reqs = [u for u in watch.urls if "history-downsampled" in u][n_before:]
    assert zoom_reqs
    q = parse_qs(urlsplit(zoom_reqs[-1]).query)
    lo, hi = int(q["min_step"][0]), int(q["max_step"][0])
    assert 0 < lo < hi < data.long_points and hi - lo < data.long_points / 3
    # the zoomed window is drawn at full resolution (window < max_points)
    assert int(card.get_attribute("data-shown")) > shown - 2000

    # double-click resets; log scale and relative time redraw without errors
    over.dblclick()
    page.check(".log-y")
    page.select_option(".x-mode", "relative")
    assert parse_qs(page.evaluate("location.hash").split("?", 1)[1])["x"] == ["relative"]


def test_compare_view(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    goto(page, f"#/experiments/{data.exp_sweep}/runs")
    page.wait_for_selector(".run-row")
    for name in ("cnn-adam-lr0.1-b32", "cnn-sgd-lr0.01-b64", "cnn-adam-lr0.001-b64", "cnn-sgd-lr0.001-b32"):
        page.locator(".run-row", has_text=name).locator("input[type=checkbox]").check()
    page.click(".compare-btn")
    page.wait_for_selector(".compare-params")
    assert page.locator(".compare-params thead th.run-col").count() == 4
    assert page.locator(".compare-params tr[data-param='lr']").get_attribute("class") == "diff"
    assert page.locator(".compare-params tr[data-param='epochs']").get_attribute("class") == "same"
    page.check(".only-diff")
    assert page.locator(".compare-params tr[data-param='epochs']").count() == 0
    assert page.locator(".compare-metrics tr[data-metric='loss'] td.best").count() == 1  # loss: lower is better
    page.wait_for_selector(".chart-card[data-metric='loss'][data-ready='1']")
    assert page.locator(".chart-card[data-metric='loss'] .legend-item").count() == 4
    pc = page.locator(".plot.parallel")
    assert pc.get_attribute("data-lines") == "4" and int(pc.get_attribute("data-axes")) >= 3
    page.select_option(".scatter-x", "params.lr")
    page.select_option(".scatter-y", "metrics.loss")
    assert page.locator(".plot.scatter").get_attribute("data-points") == "4"
    # the scatter plot is drawn (non-blank canvas)
    painted = page.locator(".plot.scatter canvas").evaluate(
        "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }")
    assert painted > 100
    page.evaluate("scrollTo(0, 0)")
    screenshot(page, "compare.png", viewport=DOCS_VIEWPORT)


# ---- serving: prefix, token, origin

def test_under_a_path_prefix(browser: Any, data: Seeded, prefix_proxy: PrefixProxy, ui_server: ServerProcess) -> None:
    ctx, page, watch = open_page(browser, prefix_proxy.url, ui_server.token)
    try:
        page.wait_for_selector(".exp-table")
        page.click(".exp-name a:text-is('cnn-sweep')")
        page.wait_for_selector(".run-row")
        page.locator(".run-link", has_text="evil").click()
        page.wait_for_selector(".overview")
        page.click(".tab[data-tab='artifacts']")
        page.click(".art-dir[data-path='plots']")
        page.click(".art-file[data-path='plots/curve.png']")
        page.wait_for_function("document.querySelector('.preview-image') && document.querySelector('.preview-image').naturalWidth === 64")
        page.click(".tab[data-tab='charts']")
        page.wait_for_selector(".chart-card[data-ready='1']")
        assert page.url.startswith(prefix_proxy.url + "#/runs/")
        assert watch.foreign() == []
        paths = watch.paths()
        assert paths and all(p.startswith(PREFIX + "/") for p in paths), [p for p in paths if not p.startswith(PREFIX)]
        assert any("/ajax-api/2.0/mlflow/runs/search" in p for p in paths)
        assert watch.errors == []
    finally:
        ctx.close()


def test_token_required_message(browser: Any, ui_server: ServerProcess, data: Seeded) -> None:
    assert ui_server.token, "the UI server runs with a token"
    ctx = browser.new_context()
    page = ctx.new_page()
    try:
        page.goto(ui_server.url + "/")
        page.wait_for_selector(".notice:has-text('Token required')")
        page.goto(ui_server.url + "/?token=" + ui_server.token)
        page.wait_for_selector(".exp-table")
        assert page.locator(".notice").is_hidden()
        assert "token=" not in page.url, "the token does not stay in the address bar"
    finally:
        ctx.close()


def test_runs_charts_tab_and_experiment_selection(ui: tuple[Any, PageWatch], data: Seeded) -> None:
    page, _ = ui
    page.wait_for_selector(".exp-table")
    page.locator("tr", has_text="cnn-sweep").locator("input[type=checkbox]").check()
    page.locator("tr", has_text="nlp-baselines").locator("input[type=checkbox]").check()
    page.click(".compare-exps")
    page.wait_for_selector(".run-row")
    assert page.locator("h1").inner_text() == "Runs of 2 experiments"
    got = wait_rows(page, lambda r: "bert-2" in r and "cnn-sgd-lr0.1-b32" in r)
    assert "bert-2" in got and "cnn-sgd-lr0.1-b32" in got
    for name in ("bert-0", "cnn-sgd-lr0.1-b32"):
        page.locator(".run-row", has_text=name).locator("input[type=checkbox]").check()
    page.click(".charts-tab")
    card = page.locator(".chart-card[data-metric='loss']")
    page.wait_for_selector(".chart-card[data-metric='loss'][data-ready='1']")
    assert card.locator(".legend-item").all_inner_texts() == ["bert-0", "cnn-sgd-lr0.1-b32"]
    assert hash_query(page)["view"] == ["charts"]
    page.locator(".smoothing").fill("0.6")
    page.locator(".smoothing").dispatch_event("change")
    assert hash_query(page)["smooth"] == ["0.6"]
