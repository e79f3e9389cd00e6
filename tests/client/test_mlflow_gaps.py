"""Compatibility gaps a new user hit (issue #14, gaps 1, 2, 5, 6, 7), each against both servers.

Every test runs once against a real ``mlflow server`` 3.17 and once against a real
``labtrack server`` (the session's ``tracking_server``): what a user observes must
be the same.  Gap 3 (server flags) is tests/compat/test_server_flags.py, gap 4
(the links the mlflow client prints) tests/ui/test_mlflow_links.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import labtrack as lt
from labtrack.errors import LabtrackError, MissingExtra
from tests.client_state import reset_client_state

from .conftest import TrackingServer


@pytest.fixture
def mlflow_on(server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The unmodified mlflow client pointed at the same server as ``lt``."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token or "")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server.uri)
    yield mlflow
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


# -- gap 1: lt.Client() follows lt.set_tracking_uri, as MlflowClient() follows mlflow's ------------

def test_client_without_uri_follows_set_tracking_uri(server: TrackingServer, mlflow_on: Any,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # an empty folder: discovery would start a server for ./mlruns.db
    name = f"gap1-{uuid.uuid4().hex[:8]}"
    assert MlflowClient().tracking_uri == server.uri
    exp_id = lt.Client().create_experiment(name)
    assert lt.Client().tracking_uri == server.uri
    assert MlflowClient().get_experiment_by_name(name).experiment_id == exp_id
    assert not (tmp_path / "mlruns.db").exists()


# -- gap 2: MLflow 3.17's limits, as they are --------------------------------------------------------

def test_limits_table_matches_mlflow_3_17() -> None:
    """Each limit's value is the MLflow constant its source names (one table: labtrack/limits.py)."""
    import importlib

    from labtrack.limits import TABLE

    checked = 0
    for limit in TABLE:
        path, _, rest = limit.source.partition(" ")
        constant = rest.split(" ")[0]
        if not (path.startswith("mlflow/") and constant.isupper()):
            continue
        module = importlib.import_module(path.removesuffix(".py").removesuffix("/__init__").replace("/", "."))
        assert getattr(module, constant) == limit.value, limit
        checked += 1
    assert checked >= 20


def test_long_param_and_tag_values_are_kept_as_mlflow_keeps_them(server: TrackingServer) -> None:
    with lt.start_run() as run:
        lt.log_param("long", "p" * 7000)
        lt.set_tag("long", "t" * 9000)
        lt.log_param("fits", "q" * 6000)
    lt.flush()
    got = lt.Client().get_run(run.info.run_id).data
    assert got.params["long"] == "p" * 6000  # the first 6,000 characters, as MLflow 3.17 stores
    assert got.tags["long"] == "t" * 8000
    assert got.params["fits"] == "q" * 6000


def test_limits_that_mlflow_refuses_are_refused(server: TrackingServer) -> None:
    client = lt.Client()
    with pytest.raises(LabtrackError) as too_long_name:
        client.create_experiment("e" * 501)
    assert too_long_name.value.error_code == "INVALID_PARAMETER_VALUE"
    exp_id = client.create_experiment(f"gap2-{uuid.uuid4().hex[:8]}")
    with pytest.raises(LabtrackError) as too_long_tag:
        client.set_experiment_tag(exp_id, "k", "v" * 20001)
    assert too_long_tag.value.error_code == "INVALID_PARAMETER_VALUE"


# -- gap 4: the links the mlflow client prints (their pages: tests/ui/test_mlflow_links.py) ---------

def test_mlflow_client_prints_the_same_links_for_both_servers(server: TrackingServer, mlflow_on: Any,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    """The routes the UI test opens are the ones the mlflow client prints for a real MLflow server."""
    import re

    exp_id = mlflow_on.set_experiment(f"gap4-{uuid.uuid4().hex[:8]}").experiment_id
    capfd.readouterr()
    with mlflow_on.start_run(run_name="printed") as run:
        pass
    printed = "".join(capfd.readouterr())
    base = re.escape(server.uri)
    assert re.search(rf"View run printed at: {base}/#/experiments/{exp_id}/runs/{run.info.run_id}\s", printed)
    assert re.search(rf"View experiment at: {base}/#/experiments/{exp_id}\s", printed)


# -- gap 5: MLflow's sklearn models (skops by default) load and serve with labtrack ------------------

def _fit() -> tuple[Any, Any]:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    return LinearRegression().fit(X, 2 * X.a + X.b + 1), X


def test_mlflow_sklearn_model_in_skops_format_loads_and_serves(server: TrackingServer, mlflow_on: Any,
                                                               tmp_path: Path) -> None:
    import mlflow.sklearn
    import yaml

    from tests.models.test_serving import start_serving, stop

    model, X = _fit()
    name = f"skops-{uuid.uuid4().hex[:8]}"
    mlflow_on.set_experiment(f"gap5-{uuid.uuid4().hex[:8]}")
    with mlflow_on.start_run():
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                        pip_requirements=["scikit-learn", "skops"])
    local = Path(mlflow_on.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(tmp_path / "dl")))
    flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavor["serialization_format"] == "skops"  # MLflow 3.17's default
    expected = model.predict(X).tolist()
    assert lt.sklearn.load_model(f"models:/{name}/1").predict(X).tolist() == pytest.approx(expected)
    assert list(lt.pyfunc.load_model(info.model_uri).predict(X)) == pytest.approx(expected)
    env = dict(os.environ, LABTRACK_TRACKING_URI=server.uri, LABTRACK_TRACKING_TOKEN=server.token or "")
    served = start_serving(f"models:/{name}/1", tmp_path, env)
    try:
        reply = served.post({"dataframe_split": {"columns": ["a", "b"], "data": X.values.tolist()}})
        assert reply.status_code == 200, reply.text
        assert reply.json()["predictions"] == pytest.approx(expected)
    finally:
        stop(served)


# -- gap 6: a missing optional dependency is one line naming the extra -------------------------------

def _without(modules: list[str], code: str, *args: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python where ``modules`` cannot be imported (as if not installed)."""
    block = "".join(f"sys.modules[{m!r}] = None; " for m in modules)
    return subprocess.run([sys.executable, "-c", f"import sys; {block}\n{code}", *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


CLI = "from labtrack.cli import main; sys.argv[0] = 'labtrack'; main()"


def test_postgresql_url_without_psycopg_is_one_line(tmp_path: Path) -> None:
    out = _without(["psycopg"], CLI, "server", "--backend-store-uri",
                   "postgresql://u:p@127.0.0.1:1/db", "--port", "0", "--no-token", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "labtrack: a postgresql:// database needs psycopg, which is not installed: "
        "pip install 'labtrack[postgres]'"], out.stderr


def test_s3_artifacts_without_boto3_is_one_line(tmp_path: Path) -> None:
    out = _without(["boto3"], CLI, "server", "--backend-store-uri", f"sqlite:///{tmp_path}/l.db",
                   "--artifacts-destination", "s3://bucket/art", "--port", "0", "--no-token", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "labtrack: an s3:// artifact store needs boto3, which is not installed: "
        "pip install 'labtrack[s3]'"], out.stderr


def test_skops_model_without_skops_is_one_line(server: TrackingServer, mlflow_on: Any,
                                               tmp_path: Path) -> None:
    import mlflow.sklearn

    model, _ = _fit()
    name = f"noskops-{uuid.uuid4().hex[:8]}"
    mlflow_on.set_experiment(f"gap6-{uuid.uuid4().hex[:8]}")
    with mlflow_on.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                 pip_requirements=["scikit-learn", "skops"])
    env = dict(os.environ, LABTRACK_TRACKING_URI=server.uri, LABTRACK_TRACKING_TOKEN=server.token or "")
    out = _without(["skops", "skops.io"], CLI, "models", "serve", "-m", f"models:/{name}/1", "-p", "0",
                   env=env, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1:] == [
        "labtrack: a model in skops format needs skops, which is not installed: "
        "pip install 'labtrack[models]'"], out.stderr
    # From Python: a typed error naming the extra.
    py = _without(["skops", "skops.io"], "import labtrack as lt\nfrom labtrack.errors import MissingExtra\n"
                  f"try:\n    lt.sklearn.load_model('models:/{name}/1')\n"
                  "except MissingExtra as e:\n    print(e.extra, e.module)\n", env=env, cwd=tmp_path)
    assert py.stdout.split() == ["models", "skops.io"], py.stderr


def test_torch_model_without_torch_names_the_extra(server: TrackingServer, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch (CPU) is installed by .ci/run")
    with lt.start_run():
        info = lt.pytorch.log_model(torch.nn.Linear(2, 1), name="net", pip_requirements=["torch"])
    env = dict(os.environ, LABTRACK_TRACKING_URI=server.uri, LABTRACK_TRACKING_TOKEN=server.token or "")
    py = _without(["torch"], "import labtrack as lt\nfrom labtrack.errors import MissingExtra\n"
                  f"try:\n    lt.pytorch.load_model({info.model_uri!r})\n"
                  "except MissingExtra as e:\n    print(e.message)\n", env=env, cwd=tmp_path)
    assert py.stdout.strip() == ("a PyTorch model needs torch, which is not installed: "
                                 "pip install 'labtrack[pytorch]'"), py.stderr


def test_require_extra_keeps_a_broken_install_s_own_error() -> None:
    """Only the module itself missing becomes the one line; a failure inside it is not hidden."""
    from labtrack.errors import require_extra

    with pytest.raises(MissingExtra, match=r"pip install 'labtrack\[models\]'"):
        require_extra("labtrack_no_such_module", "models", "this test")
    out = _without(["numpy"], "from labtrack.errors import require_extra\n"
                   "require_extra('pandas', 'models', 'this test')")
    assert out.returncode != 0 and "MissingExtra" not in out.stderr and "numpy" in out.stderr


# -- gap 7: lt.sklearn.log_model(..., registered_model_name=...) works against MLflow 3.17 too -------

def test_lt_sklearn_log_model_registers(server: TrackingServer, mlflow_on: Any) -> None:
    model, X = _fit()
    name = f"ltreg-{uuid.uuid4().hex[:8]}"
    with lt.start_run():
        info = lt.sklearn.log_model(model, name="model", registered_model_name=name)
    assert info.registered_model_version == "1"
    version = mlflow_on.MlflowClient().get_model_version(name, "1")
    assert version.run_id == info.run_id
    # Both clients load the registered version and predict the same.
    expected = model.predict(X).tolist()
    assert mlflow_on.pyfunc.load_model(f"models:/{name}/1").predict(X).tolist() == pytest.approx(expected)
    assert lt.sklearn.load_model(f"models:/{name}/1").predict(X).tolist() == pytest.approx(expected)
    with lt.start_run():  # a second version of the same name
        again = lt.sklearn.log_model(model, name="model", registered_model_name=name)
    assert again.registered_model_version == "2"


def test_lt_register_model_of_a_run_with_a_logged_model(server: TrackingServer, mlflow_on: Any) -> None:
    """``runs:/<run>/model`` of a model logged with lt: registered as mlflow.register_model does."""
    model, X = _fit()
    name = f"ltrun-{uuid.uuid4().hex[:8]}"
    with lt.start_run() as run:
        lt.sklearn.log_model(model, name="model")
    version = lt.register_model(f"runs:/{run.info.run_id}/model", name)
    assert (version.version, version.run_id) == ("1", run.info.run_id)
    got = mlflow_on.pyfunc.load_model(f"models:/{name}/1").predict(X).tolist()
    assert got == pytest.approx(model.predict(X).tolist())


@pytest.fixture(autouse=True)
def _fresh_client_state() -> Iterator[None]:
    yield
    reset_client_state()
