"""The unmodified mlflow client's tracking API against a real labtrack server."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.servers import ServerProcess


def test_experiments_and_nested_runs(mlflow_client_env: ServerProcess) -> None:
    import mlflow

    exp_id = mlflow.set_experiment("compat").experiment_id
    assert mlflow.get_experiment_by_name("compat").experiment_id == exp_id
    assert mlflow.get_experiment_by_name("missing") is None
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"beta": "b", "gamma": 3})
        mlflow.log_metric("loss", 1.0, step=0)
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metrics({"acc": 0.9, "nan": float("nan"), "inf": float("inf")}, step=1)
        mlflow.set_tag("team", "ml")
        mlflow.set_tags({"a": "1", "b": "2"})
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("loss", 0.1)
    run = mlflow.get_run(parent.info.run_id)
    assert run.info.run_name == "parent"
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.5", "beta": "b", "gamma": "3"}
    assert run.data.metrics["loss"] == 0.5
    assert math.isnan(run.data.metrics["nan"])
    assert run.data.metrics["inf"] == math.inf
    assert run.data.tags["team"] == "ml" and run.data.tags["mlflow.runName"] == "parent"
    c = mlflow.get_run(child.info.run_id)
    assert c.data.tags["mlflow.parentRunId"] == parent.info.run_id
    client = mlflow.MlflowClient()
    hist = client.get_metric_history(parent.info.run_id, "loss")
    assert [(m.step, m.value) for m in hist] == [(0, 1.0), (1, 0.5)]


def test_log_batch_history_and_search(mlflow_client_env: ServerProcess) -> None:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    client = mlflow.MlflowClient()
    exp_id = client.create_experiment("search-exp")
    ids = []
    for i in range(5):
        run = client.create_run(exp_id, run_name=f"r{i}")
        client.log_batch(run.info.run_id,
                         metrics=[Metric("rmse", 1.0 / (i + 1), 1000 + s, s) for s in range(300)],
                         params=[Param("lr", str(0.1 * i)), Param("opt", "adam" if i % 2 else "sgd")],
                         tags=[RunTag("idx", str(i))])
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    assert len(client.get_metric_history(ids[0], "rmse")) == 300
    found = mlflow.search_runs([exp_id], filter_string="params.opt = 'adam' and metrics.rmse < 0.4",
                               order_by=["metrics.rmse DESC"], output_format="list")
    assert [r.info.run_name for r in found] == ["r3"]
    found = mlflow.search_runs([exp_id], order_by=["params.lr DESC"], output_format="list")
    assert [r.info.run_name for r in found] == ["r4", "r3", "r2", "r1", "r0"]
    df = mlflow.search_runs([exp_id], filter_string="attributes.status = 'FINISHED'")
    assert len(df) == 5
    page = client.search_runs([exp_id], max_results=2)
    assert len(page) == 2 and page.token
    rest = client.search_runs([exp_id], max_results=10, page_token=page.token)
    assert len(rest) == 3
    client.delete_run(ids[0])
    assert len(client.search_runs([exp_id])) == 4
    from mlflow.entities import ViewType
    assert len(client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)) == 1
    client.restore_run(ids[0])
    assert len(client.search_runs([exp_id])) == 5


def test_changed_param_is_rejected(mlflow_client_env: ServerProcess) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    with mlflow.start_run():
        mlflow.log_param("p", "1")
        mlflow.log_param("p", "1")  # the same value again is fine
        with pytest.raises(MlflowException) as err:
            mlflow.log_param("p", "2")
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_artifacts_roundtrip(mlflow_client_env: ServerProcess, tmp_path: Path) -> None:
    import mlflow

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src / "a.txt"))
        mlflow.log_artifacts(str(src), artifact_path="dir")
        mlflow.log_text("some text", "notes/n.txt")
        mlflow.log_dict({"k": [1, 2]}, "cfg.json")
    client = mlflow.MlflowClient()
    names = sorted(f.path for f in client.list_artifacts(run.info.run_id))
    assert names == ["a.txt", "cfg.json", "dir", "notes"]
    assert sorted(f.path for f in client.list_artifacts(run.info.run_id, "dir")) == ["dir/a.txt", "dir/sub"]
    out = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="dir",
                                                   dst_path=str(tmp_path / "dl")))
    assert (out / "a.txt").read_text() == "hello"
    assert (out / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 1000
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/n.txt") == "some text"
    # The files live in the server's artifact destination, not in the client's folder.
    assert any(mlflow_client_env.artifacts.rglob("b.bin"))


def test_sklearn_model_roundtrip(mlflow_client_env: ServerProcess) -> None:
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    X = np.arange(20, dtype=float).reshape(10, 2)
    y = X @ np.array([1.5, -2.0]) + 0.5
    model = LinearRegression().fit(X, y)
    with mlflow.start_run() as run:
        mlflow.log_metric("r2", model.score(X, y))
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))
    loaded2 = mlflow.pyfunc.load_model(info.model_uri)
    np.testing.assert_allclose(loaded2.predict(X), model.predict(X))
    lm = mlflow.get_logged_model(info.model_id)
    assert lm.status.to_proto() is not None and str(lm.status).endswith("READY")
