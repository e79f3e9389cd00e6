"""`labtrack recipes init` + `run` on datasets scikit-learn ships, against a real labtrack server."""

from __future__ import annotations

from pathlib import Path

import pytest

import labtrack as lt
from tests.projects.conftest import Cli, base_env
from tests.projects.test_slurm import _client, _runs, _slurm_missing
from tests.servers import ServerProcess


def _cli(tmp_path: Path, server: ServerProcess) -> Cli:
    env = base_env(tmp_path)
    env["MLFLOW_TRACKING_URI"] = server.url
    env["MLFLOW_TRACKING_TOKEN"] = server.token or ""
    return Cli(tmp_path, env)


def _versions(client: lt.Client, name: str) -> list[str]:
    return sorted(v.version for v in client.search_model_versions(f"name='{name}'"))


def test_classification_recipe_steps_cards_registration_and_cache(labtrack_server: ServerProcess,
                                                                 tmp_path: Path) -> None:
    cli = _cli(tmp_path, labtrack_server)
    assert cli.labtrack("recipes", "init", "classification", "rec").returncode == 0
    folder = tmp_path / "rec"
    out = cli.labtrack("recipes", "run", "--dir", str(folder))
    assert out.returncode == 0, out.stderr
    assert "6 step(s) ran" in out.stdout
    client = _client(labtrack_server)
    runs = _runs(client, "recipe-classification")
    steps = {r.tags.get("labtrack.recipe.step"): r for r in runs if "labtrack.recipe.step" in r.tags}
    assert set(steps) == {"ingest", "split", "transform", "train", "evaluate", "register"}
    parent = next(r for r in runs if "labtrack.recipe.step" not in r.tags)
    assert all(r.tags["mlflow.parentRunId"] == parent.info.run_id for r in steps.values())
    assert all(r.info.status == "FINISHED" for r in runs)
    for run in steps.values():
        assert "card.html" in [f.path for f in client.list_artifacts(run.info.run_id)]
    card = (Path(client.download_artifacts(steps["evaluate"].info.run_id, "card.html",
                                           str(tmp_path / "dl")))).read_text()
    assert "Confusion matrix" in card and "data:image/png;base64," in card and "accuracy" in card
    assert steps["evaluate"].metrics["accuracy"].value > 0.9
    assert steps["evaluate"].tags["labtrack.recipe.thresholds"] == "passed"
    assert _versions(client, "recipe-classifier") == ["1"]

    # Nothing changed: nothing runs, and no run is recorded.
    out = cli.labtrack("recipes", "run", "--dir", str(folder))
    assert out.returncode == 0 and "0 step(s) ran, 6 cached" in out.stdout, out.stdout
    assert len(_runs(client, "recipe-classification")) == len(runs)

    # Thresholds that fail: evaluate and register run again, and nothing is registered.
    out = cli.labtrack("recipes", "run", "--dir", str(folder), "--profile", "strict")
    assert out.returncode == 0 and "2 step(s) ran (evaluate, register), 4 cached" in out.stdout, out.stdout
    assert _versions(client, "recipe-classifier") == ["1"]
    register = max((r for r in _runs(client, "recipe-classification")
                    if r.tags.get("labtrack.recipe.step") == "register"), key=lambda r: r.info.start_time)
    assert register.tags["labtrack.recipe.registered"].startswith("no: accuracy = ")

    # A changed setting re-runs its step and what follows it, not what comes before.
    spec = folder / "recipe.yaml"
    spec.write_text(spec.read_text().replace("max_iter: 500", "max_iter: 400"))
    out = cli.labtrack("recipes", "run", "--dir", str(folder))
    assert "3 step(s) ran (train, evaluate, register), 3 cached" in out.stdout, out.stdout
    assert _versions(client, "recipe-classifier") == ["1", "2"]


def test_bad_recipe_input_is_one_line(labtrack_server: ServerProcess, tmp_path: Path) -> None:
    cli = _cli(tmp_path, labtrack_server)
    out = cli.labtrack("recipes", "run", "--dir", str(tmp_path))
    assert out.returncode == 2 and "no recipe.yaml" in out.stderr and "Traceback" not in out.stderr
    assert cli.labtrack("recipes", "init", "regression", "r").returncode == 0
    out = cli.labtrack("recipes", "run", "--dir", str(tmp_path / "r"), "--profile", "nope")
    assert out.returncode == 2 and "no profile 'nope'" in out.stderr
    out = cli.labtrack("recipes", "run", "--dir", str(tmp_path / "r"), "--step", "deploy")
    assert out.returncode == 2 and "unknown step 'deploy'" in out.stderr


@pytest.mark.skipif(_slurm_missing() is not None, reason=str(_slurm_missing()))
def test_regression_recipe_step_by_step_on_slurm(labtrack_server: ServerProcess, tmp_path: Path) -> None:
    env = base_env(tmp_path)
    env["LABTRACK_DATABASE"] = str(labtrack_server.artifacts.parent / "mlruns.db")
    env["LABTRACK_TRACKING_TOKEN"] = labtrack_server.token or ""
    cli = Cli(tmp_path, env)
    assert cli.labtrack("recipes", "init", "regression", "reg").returncode == 0
    (tmp_path / "slurm.yaml").write_text("mem: 500M\ntime: 5\n")
    out = cli.labtrack("recipes", "run", "--dir", str(tmp_path / "reg"), "--backend", "slurm",
                       "-c", str(tmp_path / "slurm.yaml"), timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("ran as SLURM job") == 6
    client = _client(labtrack_server)
    steps = {r.tags.get("labtrack.recipe.step") for r in _runs(client, "recipe-regression")}
    assert {"ingest", "split", "transform", "train", "evaluate", "register"} <= steps
    assert _versions(client, "recipe-regressor") == ["1"]
    again = cli.labtrack("recipes", "run", "--dir", str(tmp_path / "reg"), "--backend", "slurm",
                         "-c", str(tmp_path / "slurm.yaml"))
    assert "0 step(s) ran, 6 cached" in again.stdout, again.stdout
