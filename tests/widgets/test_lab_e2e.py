"""The RunTable in a real JupyterLab, driven through Debian's Chromium (Playwright).

A notebook (written with kernelspec metadata, so no kernel picker blocks the
page) logs runs with zero setup and shows a RunTable.  In the browser we check
what a user sees: the rendered rows (escaped), the Open links through the
proxy, a sort picked in the dropdown, and a Plot image after selecting runs in
the list; every click goes from the page to the kernel and back over the
widget comm.  The widget's screenshot is docs/screenshots/widgets.png (see tests.browser.screenshot_path).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser import screenshot_path
from tests.jupyter.conftest import _require
from tests.jupyter.lab import JupyterLab, start_lab

pytestmark = pytest.mark.timeout(600)


LOG_CELL = """\
import labtrack as lt
lt.set_experiment("widgets-e2e")
for i, lr in enumerate([0.3, 0.1, 0.03, 0.01]):
    with lt.start_run(run_name=f"lr-{lr}"):
        lt.log_params({"lr": lr, "optimizer": "adam", "batch": 64 if i % 2 else 32})
        for step in range(60):
            lt.log_metric("loss", (1.5 - i * 0.3) / (1 + step * lr * 3) + 0.05 * (step % 5), step=step)
with lt.start_run(run_name="<img src=x onerror=alert(1)>"):
    lt.log_param("lr", 1.0)
lt.flush()
"""
TABLE_CELL = """\
table = lt.widgets.RunTable(experiment="widgets-e2e", columns=["params.lr", "params.batch", "metrics.loss"])
table
"""


def _notebook(cells: list[str]) -> dict[str, Any]:
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None,
                   "outputs": [], "source": src} for i, src in enumerate(cells)],
    }


def _row_names(page: Any) -> list[str]:
    return page.locator(".lt-runs tbody tr td:nth-child(3)").all_inner_texts()


def test_run_table_in_jupyterlab(tmp_path: Path, browser: Any) -> None:  # noqa: F811
    _require("ipywidgets")
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    (root / "widgets.ipynb").write_text(json.dumps(_notebook([LOG_CELL, TABLE_CELL])))
    lab = start_lab(root, home, base_url="/user/alice/")
    try:
        _drive(lab, browser, tmp_path)
    except BaseException:
        print(lab.log()[-6000:])
        raise
    finally:
        lab.stop()


def _drive(lab: JupyterLab, browser: Any, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    try:
        _steps(lab, page)
    except BaseException:
        page.screenshot(path=str(shots / "failure.png"))  # kept in the test's tmp dir
        print("page text:", page.locator("body").inner_text()[-3000:])
        raise
    finally:
        context.close()


def _steps(lab: JupyterLab, page: Any) -> None:
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    page.goto(lab.url(f"lab/tree/widgets.ipynb?reset&token={lab.token}"))
    page.locator(".jp-Notebook").first.wait_for(timeout=90_000)
    # The kernel must be up before a cell runs (the status bar says so).
    page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=90_000)
    page.locator(".jp-Cell .cm-content").first.click()
    page.keyboard.press("Shift+Enter")  # the logging cell; the next cell is then active
    page.keyboard.press("Shift+Enter")  # the table cell

    # The rows, rendered by ipywidgets' HTML view; the evil name is text, not an element.
    table = page.locator(".lt-runs")
    table.wait_for(timeout=120_000)
    page.wait_for_function("document.querySelectorAll('.lt-runs tbody tr').length === 5", timeout=30_000)
    names = _row_names(page)
    assert names[0] == "<img src=x onerror=alert(1)>" and set(names[1:]) == {
        "lr-0.3", "lr-0.1", "lr-0.03", "lr-0.01"}, names
    assert page.locator(".lt-runs img").count() == 0 and not alerts
    # Open links lead to the run pages through the proxy: <base_url>labtrack/#/runs/<id>.
    href = page.locator(".lt-runs tbody tr a").first.get_attribute("href")
    assert re.fullmatch(r"/user/alice/labtrack/#/runs/[0-9a-f]{32}", href or ""), href

    # Sort by the final loss, ascending, with the widget's own controls.
    widget = page.locator(".jp-OutputArea-output", has=page.locator(".lt-runs"))
    widget.locator(".widget-dropdown select").first.select_option("metrics.loss")
    widget.locator(".widget-toggle-button", has_text="asc").first.click()
    page.wait_for_function(
        "document.querySelector('.lt-runs th[data-col=\"metrics.loss\"]').textContent.includes('▲')",
        timeout=30_000)
    page.wait_for_function("document.querySelectorAll('.lt-runs tbody tr').length === 5", timeout=30_000)
    assert _row_names(page)[:4] == ["lr-0.3", "lr-0.1", "lr-0.03", "lr-0.01"], _row_names(page)

    # Select three runs in the list, then Plot: a PNG image appears under the table.
    selector = widget.locator(".widget-select-multiple select")
    values = selector.locator("option").evaluate_all(
        "opts => opts.filter(o => o.textContent.startsWith('lr-')).slice(0, 3).map(o => o.value)")
    selector.select_option(values)
    page.wait_for_function("document.querySelectorAll('.lt-runs tr.lt-selected').length === 3",
                           timeout=30_000)
    widget.locator("button", has_text="Plot").click()
    image = widget.locator(".widget-image")
    image.wait_for(timeout=60_000)
    page.wait_for_function(
        "(() => { const i = document.querySelector('.widget-image');"
        " return i && i.complete && i.naturalWidth > 300; })()", timeout=30_000)
    assert image.get_attribute("src", timeout=5_000).startswith("blob:")
    widget.scroll_into_view_if_needed()
    widget.screenshot(path=str(screenshot_path("widgets.png")))
    assert not alerts
