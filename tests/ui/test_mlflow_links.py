"""The links the unmodified mlflow client prints open the same pages in labtrack's UI (#14, gap 4).

The mlflow client logs a run and registers a model against a real labtrack server and
prints "View run ... at: <url>/#/experiments/<id>/runs/<run_id>" and "View experiment
at: <url>/#/experiments/<id>".  Those exact URLs, taken from its output, and MLflow's
models routes (#/models/<name>, #/models/<name>/versions/<v>) are opened in Chromium.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import ServerProcess
from tests.ui.conftest import open_page

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def mlflow_logged(ui_server: ServerProcess, monkeypatch: pytest.MonkeyPatch,
                  capfd: pytest.CaptureFixture[str]) -> Iterator[dict[str, Any]]:
    import mlflow
    from sklearn.linear_model import LinearRegression

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ui_server.token or "")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(ui_server.url)
    exp_name = f"links-{uuid.uuid4().hex[:8]}"
    model_name = f"linked-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(exp_name)
    capfd.readouterr()
    with mlflow.start_run(run_name="linked-run") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.sklearn.log_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), name="model",
                                 registered_model_name=model_name, pip_requirements=["scikit-learn"])
    printed = "".join(capfd.readouterr())
    yield {"printed": printed, "run_id": run.info.run_id, "exp_id": run.info.experiment_id,
           "exp_name": exp_name, "model": model_name}
    mlflow.set_experiment(experiment_id="0")
    mlflow.set_tracking_uri(None)


def test_view_run_and_view_experiment_links_open_their_pages(
        browser: Any, ui_server: ServerProcess, mlflow_logged: dict[str, Any]) -> None:
    printed = mlflow_logged["printed"]
    run_link = re.search(r"View run linked-run at: (\S+)", printed)
    exp_link = re.search(r"View experiment at: (\S+)", printed)
    assert run_link and exp_link, printed
    run_url, exp_url = run_link.group(1), exp_link.group(1)
    assert run_url.endswith(f"#/experiments/{mlflow_logged['exp_id']}/runs/{mlflow_logged['run_id']}")
    assert exp_url.endswith(f"#/experiments/{mlflow_logged['exp_id']}")

    ctx, page, watch = open_page(browser, ui_server.url + "/", ui_server.token)
    try:
        page.goto(run_url)
        page.wait_for_selector("h1.run-name:has-text('linked-run')")
        assert page.locator(".run-tabs").count() == 1  # the run's page, not a list of runs

        page.goto(ui_server.url + "/?x=1" + exp_url[exp_url.index("#"):])  # a fresh load of the link
        page.wait_for_selector(f"h1:has-text('{mlflow_logged['exp_name']}')")
        page.wait_for_selector(f".run-row[data-run='{mlflow_logged['run_id']}']")

        # MLflow's run tabs: #/experiments/<id>/runs/<run>/artifacts opens the run's artifacts.
        page.goto(run_url + "/artifacts")
        page.wait_for_selector(".run-tabs .tab.active[data-tab='artifacts']")
        assert watch.errors == []
    finally:
        ctx.close()


def test_mlflow_models_routes_open_the_model_and_its_version(
        browser: Any, ui_server: ServerProcess, mlflow_logged: dict[str, Any]) -> None:
    name = mlflow_logged["model"]
    ctx, page, watch = open_page(browser, ui_server.url + "/", ui_server.token)
    try:
        page.goto(f"{ui_server.url}/#/models/{name}")
        page.wait_for_selector(f"h1.model-name:has-text('{name}')")
        page.goto(f"{ui_server.url}/#/models/{name}/versions/1")
        page.wait_for_selector(f"h1.version-title:has-text('{name} · version 1')")
        assert watch.errors == []
    finally:
        ctx.close()
