"""The run page of a SLURM run, in Chromium: job facts, the job's output as text, Cancel job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.projects.test_slurm import _client, _runs, _setup, _slurm_missing, _wait
from tests.servers import ServerProcess
from tests.ui.conftest import _ensure_bundle, goto, open_page

pytestmark = pytest.mark.skipif(_slurm_missing() is not None, reason=str(_slurm_missing()))

PAYLOAD = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def test_run_page_shows_the_job_its_output_as_text_and_cancels_it(
        browser: Any, labtrack_server: ServerProcess, project: Path, tmp_path: Path) -> None:
    _ensure_bundle()
    (project / "chatty.py").write_text(
        "import time\nimport labtrack as lt\n"
        f"print({PAYLOAD!r}, flush=True)\n"
        "with lt.start_run():\n    lt.log_metric('alive', 1.0)\n    lt.flush()\n    time.sleep(600)\n")
    cli, cfg = _setup(tmp_path, labtrack_server, time="5")
    out = cli.labtrack("run", str(project), "-b", "slurm", "-c", str(cfg), "-e", "chatty.py",
                       "--env-manager", "local", "--experiment-name", "ui-job", "--detach")
    assert out.returncode == 0, out.stderr
    client = _client(labtrack_server)
    run = _wait(lambda: next((r for r in _runs(client, "ui-job") if "alive" in r.metrics), None))
    assert run is not None
    ctx, page, watch = open_page(browser, labtrack_server.url + "/", labtrack_server.token)
    try:
        page.on("dialog", lambda d: d.accept())
        goto(page, f"#/runs/{run.info.run_id}")
        section = page.locator(".slurm-job")
        section.wait_for()
        assert run.tags["labtrack.slurm.job_id"] in section.locator(".job-facts").inner_text()
        stdout = page.locator(".job-stdout")
        stdout.wait_for()
        assert PAYLOAD in stdout.inner_text()  # shown as text, not markup
        assert page.evaluate("window.__xss") is None
        page.locator(".cancel-job").click()
        page.wait_for_function("() => !document.querySelector('.cancel-job')")
        assert client.get_run(run.info.run_id).info.status == "KILLED"
        assert "CANCELLED" in page.locator(".slurm-job .job-facts").inner_text()
        assert watch.errors == [] and watch.foreign() == []
    finally:
        ctx.close()
