"""Models cross-load both ways between the unmodified mlflow client and labtrack, through a
real labtrack server, with identical predictions: sklearn, custom pyfunc, and pytorch."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import labtrack as lt
from labtrack.client import fluent
from tests.servers import ServerProcess

# Stages are deprecated in mlflow; loading a pickled model warns about pickles.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
# Given requirements spare mlflow its slow inference (a subprocess that reloads the model).
REQS = ["scikit-learn"]
HAVE_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture
def both(mlflow_client_env: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """mlflow and labtrack pointed at one labtrack server, in the default experiment."""
    for name in ("LABTRACK_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", mlflow_client_env.token or "")
    # mlflow 3.17 loads no pickled model (sklearn, pyfunc, pytorch) without this opt-in.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    lt.set_tracking_uri(mlflow_client_env.url)
    fluent._state.experiment_id = None
    yield mlflow_client_env
    while lt.active_run():
        lt.end_run()
    lt.set_tracking_uri(None)  # type: ignore[arg-type]


def _data() -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x1": rng.normal(size=30), "x2": rng.normal(size=30), "x3": rng.normal(size=30)})
    y = (X.x1 * 2 - X.x2 + 0.1 * X.x3 > 0).astype(int)
    return X, y


def _fit() -> tuple[Any, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data()
    # No trees: skops (MLflow's default format) refuses tree estimators unless told to trust them.
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), X


def _same(a: Any, b: Any) -> None:
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_mlflow_sklearn_model_loads_in_labtrack(both: ServerProcess) -> None:
    import mlflow
    import mlflow.sklearn

    model, X = _fit()
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(3),
                                        pip_requirements=REQS, registered_model_name="ml-sk")
    expected = model.predict(X)
    uris = [f"runs:/{run.info.run_id}/model", info.model_uri, "models:/ml-sk/1"]
    for uri in uris:
        loaded = lt.pyfunc.load_model(uri)
        _same(loaded.predict(X), expected)
        assert loaded.loader_module == "mlflow.sklearn"
        _same(lt.sklearn.load_model(uri).predict(X), expected)
    # The input example and the signature MLflow saved are read too.
    loaded = lt.pyfunc.load_model(uris[0])
    pd.testing.assert_frame_equal(loaded.input_example(), X.head(3).reset_index(drop=True))
    _same(mlflow.pyfunc.load_model(uris[2]).predict(X), loaded.predict(X))


@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle", "skops"])
def test_labtrack_sklearn_model_loads_in_mlflow(both: ServerProcess, fmt: str) -> None:
    import mlflow
    import mlflow.sklearn

    if fmt == "skops" and importlib.util.find_spec("skops") is None:
        pytest.skip("skops is not installed")
    model, X = _fit()
    name = f"lt-sk-{fmt}"
    with lt.start_run() as run:
        info = lt.sklearn.log_model(model, "model", input_example=X.head(3), serialization_format=fmt,
                                    registered_model_name=name)
    assert info.registered_model_version == "1" and info.model_id
    expected = model.predict(X)
    for uri in (f"runs:/{run.info.run_id}/model", info.model_uri, f"models:/{name}/1"):
        _same(mlflow.pyfunc.load_model(uri).predict(X), expected)
        _same(mlflow.sklearn.load_model(uri).predict(X), expected)
        _same(lt.pyfunc.load_model(uri).predict(X), expected)
    # mlflow reads the signature and the example, and MLflow 3 tools see the logged model.
    meta = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")
    assert [c["name"] for c in meta.signature.inputs.to_dict()] == ["x1", "x2", "x3"]
    logged = mlflow.get_logged_model(info.model_id)
    assert (logged.name, logged.source_run_id) == ("model", run.info.run_id)
    assert "READY" in str(logged.status)
    assert mlflow.MlflowClient().get_model_version(name, "1").run_id == run.info.run_id


def _affine_file(tmp_path: Path) -> Path:
    path = tmp_path / "coef.txt"
    path.write_text("2.5 -1.0")
    return path


class LtAffine(lt.pyfunc.PythonModel):
    """A labtrack custom model: y = a * x1 + b, with a and b read from an artifact."""

    def load_context(self, context: Any) -> None:
        self.a, self.b = map(float, Path(context.artifacts["coef"]).read_text().split())

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> Any:
        return (model_input["x1"] * self.a + self.b).to_numpy()


def test_labtrack_pyfunc_model_loads_in_mlflow(both: ServerProcess, tmp_path: Path) -> None:
    import mlflow

    X, _ = _data()
    with lt.start_run() as run:
        info = lt.pyfunc.log_model("model", python_model=LtAffine(),
                                   artifacts={"coef": str(_affine_file(tmp_path))},
                                   input_example=X.head(2), registered_model_name="lt-py")
    expected = X.x1.to_numpy() * 2.5 - 1.0
    for uri in (f"runs:/{run.info.run_id}/model", info.model_uri, "models:/lt-py/1"):
        _same(mlflow.pyfunc.load_model(uri).predict(X), expected)
        _same(lt.pyfunc.load_model(uri).predict(X), expected)
    assert isinstance(lt.pyfunc.load_model(info.model_uri).unwrap_python_model(), LtAffine)


def test_mlflow_pyfunc_model_loads_in_labtrack(both: ServerProcess, tmp_path: Path) -> None:
    import mlflow
    import mlflow.pyfunc

    class MlAffine(mlflow.pyfunc.PythonModel):
        def load_context(self, context: Any) -> None:
            self.a, self.b = map(float, Path(context.artifacts["coef"]).read_text().split())

        def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> Any:
            return (model_input["x1"] * self.a + self.b).to_numpy()

    X, _ = _data()
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=MlAffine(),
                                       artifacts={"coef": str(_affine_file(tmp_path))},
                                       input_example=X.head(2), pip_requirements=["pandas"])
    expected = X.x1.to_numpy() * 2.5 - 1.0
    for uri in (f"runs:/{run.info.run_id}/model", info.model_uri):
        loaded = lt.pyfunc.load_model(uri)
        _same(loaded.predict(X), expected)
        _same(loaded.predict(X), mlflow.pyfunc.load_model(uri).predict(X))


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
def test_pytorch_both_ways(both: ServerProcess) -> None:
    import mlflow
    import mlflow.pytorch
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    X = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()

    with lt.start_run():
        lt_info = lt.pytorch.log_model(net, "net", input_example=X[:2])
    with mlflow.start_run():
        # MLflow's default format is pt2 (torch.export); its pickle format is the other one.
        ml_pt2 = mlflow.pytorch.log_model(net, name="net", input_example=X[:2],
                                          pip_requirements=["torch"])
        ml_pickle = mlflow.pytorch.log_model(net, name="net-pickle", input_example=X[:2],
                                             serialization_format="pickle",
                                             pip_requirements=["torch"])
    for uri in (lt_info.model_uri, ml_pt2.model_uri, ml_pickle.model_uri):
        _same(lt.pyfunc.load_model(uri).predict(X), expected)
        with torch.no_grad():
            _same(lt.pytorch.load_model(uri)(torch.from_numpy(X)).numpy(), expected)
    _same(mlflow.pyfunc.load_model(lt_info.model_uri).predict(X), expected)
    with torch.no_grad():
        _same(mlflow.pytorch.load_model(lt_info.model_uri)(torch.from_numpy(X)).numpy(), expected)
