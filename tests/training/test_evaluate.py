"""``lt.evaluate`` gives ``mlflow.evaluate``'s default metrics (same names, values within 1e-9)
for classifiers and regressors, writes the plots as artifacts, and validates against a baseline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import labtrack as lt
from tests.client.conftest import CLIENT_ENV, TrackingServer
from tests.client_state import reset_client_state

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
pytest.importorskip("sklearn", reason="scikit-learn is not installed")
pytest.importorskip("matplotlib", reason="matplotlib is not installed")


@pytest.fixture
def lt_env(lt_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackingServer]:
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    if lt_server.token:
        monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", lt_server.token)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    reset_client_state()
    lt.set_tracking_uri(lt_server.uri)
    lt.set_experiment("evaluate")
    yield lt_server
    reset_client_state()


def _mlflow_metrics(server: TrackingServer, model: Any, df: pd.DataFrame, model_type: str) -> dict[str, float]:
    import mlflow

    mlflow.set_tracking_uri(server.uri)
    mlflow.set_experiment("evaluate")
    try:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
            result = mlflow.evaluate(info.model_uri, df, targets="label", model_type=model_type)
        return dict(result.metrics)
    finally:
        mlflow.set_tracking_uri(None)


def _same(ours: dict[str, float], theirs: dict[str, float]) -> None:
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        assert abs(ours[key] - value) <= 1e-9, (key, ours[key], value)


def _binary() -> tuple[Any, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:200, :6]
    y = y.iloc[:200]
    model = LogisticRegression(max_iter=500).fit(X, y)
    return model, X.assign(label=y)


def test_binary_classifier_matches_mlflow(lt_env: TrackingServer, mlflow_server: TrackingServer) -> None:
    model, df = _binary()
    with lt.start_run() as run:
        info = lt.sklearn.log_model(model, name="model")
        ours = lt.evaluate(info.model_uri, df, targets="label", model_type="classifier")
    _same(ours.metrics, _mlflow_metrics(mlflow_server, model, df, "classifier"))
    logged = lt.get_run(run.info.run_id).data.metrics
    assert logged["accuracy_score"] == pytest.approx(ours.metrics["accuracy_score"], abs=1e-12)
    names = {f.path for f in lt.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "roc_curve_plot.png", "precision_recall_curve_plot.png",
            "lift_curve_plot.png", "calibration_curve_plot.png"} <= names, names


def test_multiclass_and_regressor_match_mlflow(lt_env: TrackingServer, mlflow_server: TrackingServer) -> None:
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.linear_model import Ridge
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True, as_frame=True)
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    iris = X.assign(label=y)
    ours = lt.evaluate(tree, iris, targets="label", model_type="classifier")
    _same(ours.metrics, _mlflow_metrics(mlflow_server, tree, iris, "classifier"))
    assert "per_class_metrics" in ours.artifacts

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    ridge = Ridge().fit(X, y)
    diabetes = X.assign(label=y)
    with lt.start_run() as run:
        ours = lt.models.evaluate(ridge, diabetes, targets="label", model_type="regressor")
    _same(ours.metrics, _mlflow_metrics(mlflow_server, ridge, diabetes, "regressor"))
    assert "residuals_plot.png" in {f.path for f in lt.list_artifacts(run.info.run_id)}


def test_callable_numpy_data_baseline_and_thresholds(lt_env: TrackingServer) -> None:
    from labtrack.models.evaluation import MetricThreshold, ModelValidationFailedError

    model, df = _binary()
    features, labels = df.drop(columns=["label"]).to_numpy(), df["label"].to_numpy()

    def always_one(x: Any) -> Any:
        return np.ones(len(x), dtype=int)

    good = lt.evaluate(model.predict, features, targets=labels, model_type="classifier",
                       baseline_model=always_one,
                       validation_thresholds={"accuracy_score": MetricThreshold(
                           threshold=0.8, min_absolute_change=0.05, greater_is_better=True)})
    assert good.metrics["accuracy_score"] > good.baseline_model_metrics["accuracy_score"] + 0.05
    with pytest.raises(ModelValidationFailedError, match="accuracy_score"):
        lt.evaluate(always_one, features, targets=labels, model_type="classifier",
                    baseline_model=model.predict,
                    validation_thresholds={"accuracy_score": MetricThreshold(
                        min_relative_change=0.01, greater_is_better=True)})
