"""What the database leaves in the Jupyter root, as the file browser shows it (a real ``jupyter lab``,
Chromium): ``mlruns.db`` and the ``mlruns/`` folder, nothing else (issue 20).

SQLite keeps its ``-wal`` and ``-shm`` files beside the database (they cannot move), so the
server extension hides their names; the ownership record lives in ``mlruns/.labtrack/`` (an
older labtrack's ``mlruns.db.lock`` beside the database is hidden too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.jupyter.lab import execute, open_lab_page, start_kernel, start_lab

pytestmark = pytest.mark.timeout(600)

LOG = """
import labtrack as lt
with lt.start_run(run_name="clutter"):
    lt.log_metric("loss", 0.5)
lt.flush()
print("logged")
"""


def test_the_file_browser_lists_only_mlruns_db_and_mlruns(tmp_path: Path, browser: Any) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "mlruns.db.lock").write_text("")  # what a labtrack before 0.3 left behind
    lab = start_lab(root, tmp_path / "home")
    try:
        kernel = start_kernel(lab, "train.ipynb")
        assert "logged" in execute(lab, kernel, LOG)  # a background server now holds mlruns.db open
        on_disk = {p.name for p in root.iterdir()}
        assert {"mlruns.db", "mlruns"} <= on_disk and on_disk & {"mlruns.db-wal", "mlruns.db-journal"}, on_disk
        assert (root / "mlruns" / ".labtrack" / "mlruns.db.lock").is_file()
        page = open_lab_page(browser, lab)
        try:
            items = page.locator(".jp-DirListing-content .jp-DirListing-itemText")
            page.wait_for_function(
                "[...document.querySelectorAll('.jp-DirListing-content .jp-DirListing-itemText')]"
                ".some(e => e.textContent.trim() === 'mlruns.db')", timeout=60_000)
            listed = sorted(t.strip() for t in items.all_inner_texts())
            assert listed == ["mlruns", "mlruns.db"], (listed, sorted(on_disk))
        finally:
            page.context.close()
    except BaseException:
        print(lab.log()[-4000:])
        raise
    finally:
        lab.stop()
