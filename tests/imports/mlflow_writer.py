"""Writes MLflow data with the real mlflow client, for the import tests (run as a script).

    python tests/imports/mlflow_writer.py TRACKING_URI base|more POINTS

``base`` logs what ``labtrack import`` must copy: an experiment with tags, a
run with params, tags, a POINTS-point history with NaN and ±Inf, a dataset
input, artifacts in folders, nested runs, a failed and a deleted run, a
deleted experiment, an MLflow 3 logged model registered as a model version,
a second version whose source is a run's artifact folder, stages, aliases,
tags, descriptions and a prompt.  ``more`` is what MLflow logs later: more
points on the same history, one new run, one new model version.
It runs in the folder where the store lives (MLflow puts ``./mlruns`` there).
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402

T0 = 1_700_000_000_000
X = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 4.0], [3.0, 5.0]])
Y = X @ np.array([1.5, -2.0]) + 0.5
REQUIREMENTS = ["scikit-learn"]


def log_history(client: MlflowClient, run_id: str, start: int, n: int, key: str = "loss") -> None:
    points = [Metric(key, 1.0 / (i + 1), T0 + i, i) for i in range(start, start + n)]
    for i in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[i:i + 1000], synchronous=True)


def base(client: MlflowClient, points: int) -> None:
    exp = mlflow.set_experiment("vision")
    client.set_experiment_tag(exp.experiment_id, "team", "cv")
    with mlflow.start_run(run_name="sweep") as parent:
        run_id = parent.info.run_id
        mlflow.log_params({"lr": "0.1", "optimizer": "adam"})
        mlflow.set_tag("stage", "dev")
        log_history(client, run_id, 0, points)
        client.log_batch(run_id, metrics=[Metric("loss", float("nan"), T0 + points, points),
                                          Metric("loss", float("inf"), T0 + points + 1, points + 1),
                                          Metric("loss", float("-inf"), T0 + points + 2, points + 2)])
        mlflow.log_input(mlflow.data.from_numpy(X, targets=Y, name="train"), context="training")
        mlflow.log_text("hello", "notes/readme.txt")
        mlflow.log_dict({"a": 1, "b": [1, 2]}, "config/params.json")
        for i in range(2):
            with mlflow.start_run(run_name=f"child-{i}", nested=True):
                mlflow.log_param("seed", str(i))
                mlflow.log_metric("acc", 0.5 + i / 10, step=i)
        # Requirements named: inferring them runs the model in a subprocess (a minute here).
        mlflow.sklearn.log_model(LinearRegression().fit(X, Y), name="model", registered_model_name="price",
                                 input_example=X[:2], pip_requirements=REQUIREMENTS)
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.sklearn.save_model(LinearRegression().fit(X, Y * 2), os.path.join(tmp, "m"),
                                      pip_requirements=REQUIREMENTS)
            mlflow.log_artifacts(os.path.join(tmp, "m"), "extra_model")
        artifact_uri = parent.info.artifact_uri
    client.create_model_version("price", f"{artifact_uri}/extra_model", run_id=run_id)
    client.transition_model_version_stage("price", "1", "Production")
    client.transition_model_version_stage("price", "2", "Staging")
    client.set_registered_model_alias("price", "champion", "1")
    client.set_registered_model_alias("price", "challenger", "2")
    client.set_model_version_tag("price", "1", "validated", "yes")
    client.update_model_version("price", "1", description="the first fit")
    client.update_registered_model("price", description="House prices")
    client.set_registered_model_tag("price", "owner", "ana")
    with mlflow.start_run(run_name="broken") as broken:
        mlflow.log_metric("loss", 3.0)
    client.set_terminated(broken.info.run_id, "FAILED")
    with mlflow.start_run(run_name="discarded") as gone:
        mlflow.log_param("p", "1")
    client.delete_run(gone.info.run_id)
    old = client.create_experiment("old-exp")
    with mlflow.start_run(experiment_id=old, run_name="ancient"):
        mlflow.log_metric("m", 1.0)
    client.delete_experiment(old)
    try:
        mlflow.genai.register_prompt(name="greeting", template="Hello {{name}}!", commit_message="first")
    except Exception as e:  # the file store keeps no prompts
        print(f"no prompt: {e}"[:200], file=sys.stderr)


def more(client: MlflowClient, points: int) -> None:
    exp = mlflow.set_experiment("vision")
    sweep = client.search_runs([exp.experiment_id], "attributes.run_name = 'sweep'")[0]
    log_history(client, sweep.info.run_id, points + 3, 500)
    with mlflow.start_run(run_name="late") as late:
        mlflow.log_param("batch", "64")
        log_history(client, late.info.run_id, 0, 100)
    client.create_model_version("price", f"runs:/{sweep.info.run_id}/extra_model", run_id=sweep.info.run_id)
    client.set_registered_model_alias("price", "champion", "3")


def main() -> None:
    uri, phase, points = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    (base if phase == "base" else more)(client, points)


if __name__ == "__main__":
    main()
