"""`labtrack tui` driven through Textual's pilot against a real labtrack server with real runs."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("textual", reason="Textual is not installed (pip install 'labtrack[tui]')")

import labtrack as lt  # noqa: E402
from tests.client_state import reset_client_state  # noqa: E402
from tests.servers import ServerProcess, start_server  # noqa: E402

MARKUP = "[bold red]boom[/bold red]"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, lt.Client]]:
    work = tmp_path_factory.mktemp("tui")
    server = start_server(f"sqlite:///{work}/mlruns.db", work)
    os.environ["LABTRACK_TRACKING_TOKEN"] = server.token or ""
    reset_client_state()
    client = lt.Client(server.url)
    exp = client.create_experiment("sweep")
    client.create_experiment("other")
    for i, lr in enumerate(["0.1", "0.01", "0.001"]):
        run = client.create_run(exp, run_name=MARKUP if i == 2 else f"lr-{lr}")
        points = [lt.Metric("loss", float(lr) * 100 / (s + 1), int(time.time() * 1000), s) for s in range(50)]
        client.log_batch(run.info.run_id, metrics=points, params={"lr": lr, "layers": str(i + 2)},
                         synchronous=True)
        client.set_terminated(run.info.run_id)
    yield server, client
    server.stop()
    os.environ.pop("LABTRACK_TRACKING_TOKEN", None)


async def _until(pilot: Any, predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the viewer did not get there in time"
        await pilot.pause(0.05)


def _cells(table: Any) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def test_browse_filter_sort_and_sparklines(seeded: tuple[ServerProcess, lt.Client]) -> None:
    from textual.widgets import DataTable, Input, Label, Sparkline

    from labtrack.tui.app import LabtrackTUI

    _, client = seeded

    async def scenario() -> None:
        app = LabtrackTUI(client, experiment="sweep")
        async with app.run_test(size=(180, 50)) as pilot:
            runs = app.query_one("#runs", DataTable)
            await _until(pilot, lambda: runs.row_count == 3)
            names = {row[0] for row in _cells(runs)}
            assert MARKUP in names  # a run name that looks like markup is shown as it is
            headers = [str(c.label) for c in runs.columns.values()]
            assert headers[:4] == ["run", "status", "started", "duration"]
            assert "lr" in headers and "loss" in headers
            # Sparklines of the highlighted run, from the downsampled series.
            await _until(pilot, lambda: len(app.query(Sparkline)) >= 1)
            assert len(app.query(Sparkline).first().data) >= 40

            # Filter with MLflow's grammar.
            await pilot.press("slash")
            app.query_one("#filter", Input).value = "params.lr = '0.01'"
            loaded = app.loaded
            await pilot.press("enter")
            await _until(pilot, lambda: app.loaded > loaded)
            assert [row[0] for row in _cells(runs)] == ["lr-0.01"]

            # A filter the server refuses: its message, and the rows stay.
            app.query_one("#filter", Input).value = "params.lr >>> 1"
            await pilot.press("enter")
            status = app.query_one("#status", Label)
            await _until(pilot, lambda: status.has_class("error"))
            assert "lr" in str(status.render()) or "filter" in str(status.render()).lower()
            assert [row[0] for row in _cells(runs)] == ["lr-0.01"]

            # Sort by the loss column on the server: descending, then ascending.
            app.query_one("#filter", Input).value = ""
            loaded = app.loaded
            await pilot.press("enter")
            await _until(pilot, lambda: app.loaded > loaded and runs.row_count == 3)
            runs.focus()
            loss_col = [str(c.label) for c in runs.columns.values()].index("loss")
            runs.move_cursor(row=0, column=loss_col)
            for mark, descending in (("▼", True), ("▲", False)):
                loaded = app.loaded
                await pilot.press("s")
                await _until(pilot, lambda: app.loaded > loaded)
                labels = [str(c.label) for c in runs.columns.values()]
                assert f"loss {mark}" in labels
                col = labels.index(f"loss {mark}")
                losses = [float(row[col]) for row in _cells(runs)]
                assert losses == sorted(losses, reverse=descending) and len(set(losses)) == 3

            # Another experiment.
            exps = app.query_one("#experiments", DataTable)
            names = [row[1] for row in _cells(exps)]
            exps.focus()
            loaded = app.loaded
            exps.move_cursor(row=names.index("other"))
            await _until(pilot, lambda: app.loaded > loaded)
            assert runs.row_count == 0
            await pilot.press("q")

    _run_in_own_loop(scenario)


def _run_in_own_loop(scenario: Any) -> None:
    """asyncio.run in a thread: in the full suite the session's Playwright keeps a loop
    running in the main thread, where asyncio.run refuses to start another."""
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(e)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(300)
    assert not thread.is_alive(), "the viewer's scenario did not end"
    if errors:
        raise errors[0]


def test_cli_names_the_extra_when_textual_is_missing(tmp_path: Path) -> None:
    import subprocess
    import sys

    blocker = tmp_path / "textual.py"
    blocker.write_text("raise ImportError('no textual here')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    out = subprocess.run([sys.executable, "-m", "labtrack", "tui"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == "labtrack: labtrack tui needs Textual: pip install 'labtrack[tui]'"


def test_a_series_the_server_stopped_counting_says_more_than(seeded: tuple[ServerProcess, lt.Client]) -> None:
    # The server counts a window up to 100,000 points; the viewer's label said "(100001 points)"
    # for a metric of 10,000,000.
    from labtrack.client.charts import downsampled_history
    from labtrack.store.downsample import COUNT_CAP

    _, client = seeded
    exp = client.create_experiment("long-metric")
    run_id = client.create_run(exp).info.run_id
    n = COUNT_CAP + 5
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[lt.Metric("long", float(i % 91), now, i) for i in range(n)], synchronous=True)
    series = downsampled_history(client, run_id, "long", 200)
    assert series.downsampled and not series.total_exact
    assert series.total_text() == f"more than {COUNT_CAP:,} points"
    short = downsampled_history(client, run_id, "long", 200, min_step=0, max_step=999)
    assert short.total_exact and short.total_text() == "1,000 points"
