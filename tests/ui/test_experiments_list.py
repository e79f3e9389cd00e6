"""The experiments list as a new user met it: run counts, a last activity that follows the runs,
aligned rows, a hint when nothing was logged, and a "Runs of selected" button that works."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import labtrack as lt
from tests.client_state import reset_client_state
from tests.servers import ServerProcess, start_server
from tests.ui.conftest import _ensure_bundle, open_page


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[ServerProcess, lt.Client]]:
    _ensure_bundle()
    server = start_server(f"sqlite:///{tmp_path}/mlruns.db", tmp_path)
    os.environ["LABTRACK_TRACKING_TOKEN"] = server.token or ""
    reset_client_state()
    yield server, lt.Client(server.url)
    server.stop()
    os.environ.pop("LABTRACK_TRACKING_TOKEN", None)


def _rows(page: Any) -> dict[str, Any]:
    page.locator(".exp-table tbody tr").first.wait_for()
    return {r.locator(".exp-name").inner_text().split("\n")[0]: r
            for r in page.locator(".exp-table tbody tr").all()}


def test_empty_list_hints_how_to_log(browser: Any, fresh: tuple[ServerProcess, lt.Client]) -> None:
    server, _ = fresh
    ctx, page, watch = open_page(browser, server.url + "/", server.token)
    try:
        hint = page.locator(".empty-hint")
        hint.wait_for()
        assert "lt.start_run()" in hint.inner_text()
        assert not page.locator(".compare-exps").is_visible()  # nothing picked: no button
        assert watch.errors == []
    finally:
        ctx.close()


def test_counts_last_activity_alignment_and_runs_of_selected(
        browser: Any, fresh: tuple[ServerProcess, lt.Client]) -> None:
    server, client = fresh
    a = client.create_experiment("alpha")
    b = client.create_experiment("beta")
    for _ in range(3):
        client.set_terminated(client.create_run(a).info.run_id)
    client.create_run(a)  # still running
    ctx, page, watch = open_page(browser, server.url + "/", server.token)
    try:
        rows = _rows(page)
        assert rows["alpha"].locator(".exp-runs").inner_text() == "4 (1 running)"
        assert rows["beta"].locator(".exp-runs").inner_text() == "0"
        assert not page.locator(".empty-hint").is_visible()
        # Cells of a row line up: the name and the buttons share one middle line.
        name_box = rows["alpha"].locator(".exp-name a").bounding_box()
        button_box = rows["alpha"].locator("button.rename").bounding_box()
        assert abs((name_box["y"] + name_box["height"] / 2) - (button_box["y"] + button_box["height"] / 2)) <= 2
        before = rows["beta"].locator(".last-activity").inner_text()
        page.wait_for_timeout(1100)
        client.create_run(b)
        page.reload()
        rows = _rows(page)
        assert rows["beta"].locator(".last-activity").inner_text() != before or \
            list(_rows(page))[0] == "beta"  # the newest activity first
        assert list(_rows(page))[0] == "beta"
        # "Runs of selected": hidden until something is picked, then it opens those runs.
        button = page.locator(".compare-exps")
        assert not button.is_visible()
        rows["alpha"].locator("input[type=checkbox]").check()
        rows["beta"].locator("input[type=checkbox]").check()
        assert button.is_visible() and button.inner_text() == "Runs of 2 selected"
        button.click()
        page.wait_for_function("() => location.hash.startsWith('#/experiments/')")
        from urllib.parse import unquote

        assert set(unquote(page.evaluate("location.hash").split("/")[2]).split(",")) == {a, b}
        assert watch.errors == [] and watch.foreign() == []
    finally:
        ctx.close()
