"""The launcher tile in a folder of MLflow data (issue 14): a real `jupyter lab`, Chromium clicking.

The Jupyter root holds an `mlruns.db` that MLflow made (the JupyterHub MLflow launcher's name).
The tile shows what it found in one line with an Import button and changes nothing; one click
imports into `labtrack.db` beside it, and the page becomes labtrack's UI with the old runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.imports.conftest import snapshot
from tests.jupyter.lab import labtrack_card, open_lab_page, start_lab

pytestmark = pytest.mark.timeout(600)

FIXTURE = Path(__file__).parents[1] / "imports" / "fixtures" / "mlflow-2.9.2" / "mlruns.db"


def test_tile_offers_the_import_and_shows_the_old_runs(tmp_path: Path, browser: Any) -> None:
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    shutil.copy(FIXTURE, root / "mlruns.db")
    before = snapshot(root)
    lab = start_lab(root, home)
    try:
        page = open_lab_page(browser, lab)
        try:
            with page.context.expect_page(timeout=90_000) as new_tab:
                labtrack_card(page).click()
            ui = new_tab.value
            ui.wait_for_load_state()
            found = ui.locator("#found")
            found.wait_for(timeout=90_000)
            assert found.text_content() == (f"{root / 'mlruns.db'} is an MLflow database "
                                            "(MLflow 2.8-2.12, schema acf3f17fdcc7).")
            # Showing the page changed nothing: no labtrack.db, lock, journal or WAL yet.
            assert snapshot(root) == before and sorted(p.name for p in root.iterdir()) == ["mlruns.db"]
            ui.locator("#import").click()
            # One click: the import runs, the page becomes the UI, the old runs are there.
            ui.locator(".exp-name a", has_text="legacy").click(timeout=120_000)
            ui.get_by_text("old-run").first.wait_for(timeout=60_000)
            ui.close()
        finally:
            page.context.close()
        runs = lab.get("labtrack/api/2.0/mlflow/runs/search?experiment_ids=1").json()
        assert [r["info"]["run_name"] for r in runs["runs"]] == ["old-run"]
        assert snapshot(root) == before  # MLflow's file: not a byte changed
        assert (root / "labtrack.db").is_file() and (root / "labtrack" / ".mlflow-imports.json").is_file()
    except BaseException:
        print(lab.log()[-6000:])
        raise
    finally:
        lab.stop()
