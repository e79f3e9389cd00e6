"""The status-bar item in a real JupyterLab (Chromium): a run shorter than its poll interval,
started and ended between two polls, still shows up (issue 20)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jupyter.lab import execute, open_lab_page, start_kernel, start_lab

pytestmark = pytest.mark.timeout(600)

POLL_S = 15  # the item's poll interval here: far longer than the run below

SHORT_RUN = """
import labtrack as lt
lt.set_experiment("status-bar")
with lt.start_run(run_name="blink-<b>run</b>") as run:
    lt.log_metric("loss", 0.1)
lt.flush()
info = lt.get_run(run.info.run_id).info
assert (info.end_time - info.start_time) / 1000 < {poll}, info  # shorter than the poll interval
"""


def test_a_run_shorter_than_the_poll_interval_shows_in_the_status_bar(tmp_path: Path, browser: Any) -> None:
    lab = start_lab(tmp_path / "root", tmp_path / "home", settings={"statusInterval": POLL_S})
    try:
        kernel = start_kernel(lab, "train.ipynb")
        execute(lab, kernel, "import labtrack")  # the kernel is up before the page polls
        page = open_lab_page(browser, lab)
        try:
            label = page.locator(".lt-StatusItem-label")
            label.filter(has_text="labtrack: off").wait_for(timeout=60_000)  # the first poll: no server
            # Checked in the kernel (the reply's status): its stdout may come after the reply.
            execute(lab, kernel, SHORT_RUN.replace("{poll}", str(POLL_S)))
            # The next poll asks what ended since the last one: the run's name, as text (not markup).
            label.filter(has_text="blink-<b>run</b> finished").wait_for(timeout=(2 * POLL_S + 30) * 1000)
            assert page.locator(".lt-StatusItem-label b").count() == 0
            assert "1 run ended since this page loaded" in (page.locator(".lt-StatusItem").get_attribute("title") or "")
        finally:
            page.context.close()
    except BaseException:
        print(lab.log()[-4000:])
        raise
    finally:
        lab.stop()
