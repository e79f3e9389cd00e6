"""The run page shows what a training run records by itself (issue 15), in Debian's Chromium
against a real labtrack server: the SLURM context with a link to the array's runs, the input
datasets, an Evaluation section with lt.evaluate's metrics and plots (the images load), system
metrics as a chart group of their own (and out of the runs table's default columns), and a
log_table artifact as a table sorted by a click.  Logged strings stay text."""

from __future__ import annotations

import time
from typing import Any

import pytest

import labtrack as lt
from labtrack.entities import Metric
from tests.client_state import reset_client_state
from tests.servers import ServerProcess
from tests.ui.conftest import PageWatch, goto, screenshot

pytestmark = [pytest.mark.timeout(600), pytest.mark.filterwarnings("ignore::UserWarning")]
pytest.importorskip("sklearn", reason="scikit-learn is not installed")
pytest.importorskip("matplotlib", reason="matplotlib is not installed")

EVIL = "<img src=x onerror=window.__xss=1>"
SBATCH = {"SLURM_JOB_ID": "9101", "SLURM_ARRAY_JOB_ID": "9100", "SLURM_ARRAY_TASK_ID": "1",
          "SLURM_JOB_NAME": "sweep", "SLURM_JOB_NODELIST": "node[03-04]", "SLURM_JOB_PARTITION": "gpu",
          "SLURM_CPUS_ON_NODE": "16", "SLURM_GPUS_ON_NODE": "2"}


@pytest.fixture(scope="module")
def training_run(ui_server: ServerProcess) -> dict[str, str]:
    import os

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    reset_client_state()
    saved = {k: os.environ.get(k) for k in [*SBATCH, "LABTRACK_TRACKING_TOKEN"]}
    os.environ.update(SBATCH)
    if ui_server.token:
        os.environ["LABTRACK_TRACKING_TOKEN"] = ui_server.token
    try:
        lt.set_tracking_uri(ui_server.url)
        experiment = lt.set_experiment("training-ui")
        X, y = load_breast_cancer(return_X_y=True, as_frame=True)
        X, y = X.iloc[:150, :5], y.iloc[:150]
        model = LogisticRegression(max_iter=500).fit(X, y)
        with lt.start_run(run_name="trained") as run:
            lt.log_input(lt.data.from_pandas(X.assign(label=y), targets="label", name=EVIL), context="training")
            lt.log_metric("loss", 0.5, step=0)
            lt.log_metric("loss", 0.25, step=1)
            now = int(time.time() * 1000)
            lt.Client(ui_server.url).log_batch(run.info.run_id, metrics=[
                Metric(f"system/{k}", v + step, now, step) for step in range(3)
                for k, v in (("cpu_utilization_percentage", 40.0), ("system_memory_usage_megabytes", 900.0))])
            lt.evaluate(model, X.assign(label=y), targets="label", model_type="classifier")
            lt.log_table({"name": ["b", "a", "c", EVIL], "score": [2.0, 10.0, 1.0, 3.0]}, "results/table.json")
        lt.flush()
        return {"run": run.info.run_id, "experiment": experiment.experiment_id,
                "digest": lt.data.from_pandas(X.assign(label=y), targets="label").digest}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_client_state()


def test_run_page_shows_slurm_datasets_and_evaluation(ui: tuple[Any, PageWatch], training_run: dict[str, str]) -> None:
    page, _ = ui
    goto(page, f"#/runs/{training_run['run']}")
    slurm = page.locator(".slurm-context")
    slurm.wait_for()
    assert slurm.locator("tr[data-tag='slurm.job_id'] td").inner_text() == "9101"
    assert slurm.locator("tr[data-tag='slurm.partition'] td").inner_text() == "gpu"
    link = slurm.locator("a.array-runs")
    assert "9100" in link.inner_text()

    page.locator(".run-datasets .dataset-row").first.wait_for()
    assert page.locator(".run-datasets .dataset-row").count() == 2  # the training input and lt.evaluate's
    row = page.locator(".run-datasets .dataset-row", has_text="training")
    assert row.locator("td").first.inner_text() == EVIL  # the hostile name is shown as text
    assert training_run["digest"] in row.inner_text() and "training" in row.inner_text()

    evaluation = page.locator(".run-evaluation")
    evaluation.locator(".evaluation-plot").first.wait_for()
    names = evaluation.locator("figcaption").all_inner_texts()
    assert {"confusion_matrix.png", "roc_curve_plot.png", "precision_recall_curve_plot.png"} <= set(names)
    page.wait_for_function(
        "[...document.querySelectorAll('.evaluation-plot img')].every(i => i.complete && i.naturalWidth > 0)")
    metrics = evaluation.locator(".evaluation-metrics tr").evaluate_all("rs => rs.map(r => r.dataset.metric)")
    assert {"accuracy_score", "f1_score", "roc_auc", "example_count"} <= set(metrics)
    screenshot(page, "run-training.png", page.locator(".tab-content"))

    link.click()  # the array's runs, found by the array id
    page.wait_for_selector(".run-row")
    assert "slurm.array_job_id" in page.evaluate("location.hash")
    assert page.locator(".run-link", has_text="trained").count() == 1


def test_system_metrics_are_a_group_of_their_own(ui: tuple[Any, PageWatch], training_run: dict[str, str]) -> None:
    page, _ = ui
    goto(page, f"#/runs/{training_run['run']}?tab=charts")
    page.wait_for_selector(".system-metrics .chart-card")
    system = page.locator(".system-metrics .chart-card").evaluate_all("cs => cs.map(c => c.dataset.metric)")
    assert sorted(system) == ["system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"]
    own = page.locator(".tab-content > .chart-grid .chart-card").evaluate_all("cs => cs.map(c => c.dataset.metric)")
    assert "loss" in own and not any(k.startswith("system/") for k in own)

    goto(page, f"#/experiments/{training_run['experiment']}/runs")
    page.wait_for_selector(".run-row")
    page.wait_for_selector(".thead [role=columnheader]")
    columns = page.locator(".thead [role=columnheader]").evaluate_all("hs => hs.map(h => h.dataset.col)")
    assert "metrics.loss" in columns, columns
    assert not any(c.startswith("metrics.system/") for c in columns), columns

    goto(page, f"#/compare?runs={training_run['run']}")
    page.wait_for_selector(".compare-section.system-metrics .chart-card")


def test_logged_table_sorts_by_a_click(ui: tuple[Any, PageWatch], training_run: dict[str, str]) -> None:
    page, _ = ui
    goto(page, f"#/runs/{training_run['run']}?tab=artifacts&path=results/table.json")
    table = page.locator(".logged-table")  # the path in the URL opens the file
    table.wait_for()

    def column(i: int) -> list[str]:
        return table.locator(f"tbody tr td:nth-child({i})").all_inner_texts()

    assert column(1) == ["b", "a", "c", EVIL]
    table.locator("th[data-col='1']").click()
    assert column(2) == ["1", "2", "3", "10"]  # numbers sort as numbers
    table.locator("th[data-col='1']").click()
    assert column(2) == ["10", "3", "2", "1"]
