"""The unmodified mlflow client's model registry against a real labtrack server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.servers import ServerProcess

# Stages are deprecated in mlflow (not removed); the client warns on every call.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated since 2.9.0:FutureWarning")

# Given requirements spare mlflow its slow inference (a subprocess that reloads the model).
REQS = ["scikit-learn"]


def _fit() -> tuple[Any, Any]:
    import numpy as np
    from sklearn.linear_model import LinearRegression

    X = np.arange(20, dtype=float).reshape(10, 2)
    return LinearRegression().fit(X, X @ np.array([1.5, -2.0]) + 0.5), X


def _error_code(fn: Any, *args: Any, **kwargs: Any) -> str:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as err:
        fn(*args, **kwargs)
    return err.value.error_code


def test_registered_models(mlflow_client_env: ServerProcess) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    rm = client.create_registered_model("alpha", tags={"team": "ml"}, description="first")
    assert (rm.name, rm.description, rm.tags) == ("alpha", "first", {"team": "ml"})
    assert _error_code(client.create_registered_model, "alpha") == "RESOURCE_ALREADY_EXISTS"
    for name in ("beta", "gamma", "delta"):
        client.create_registered_model(name)
    # The client appends "AND tag.`mlflow.prompt.is_prompt` != 'true'": untagged models match.
    assert [m.name for m in client.search_registered_models()] == ["alpha", "beta", "delta", "gamma"]
    assert [m.name for m in client.search_registered_models("name LIKE '%ta'")] == ["beta", "delta"]
    assert [m.name for m in client.search_registered_models("tags.team = 'ml'")] == ["alpha"]
    assert [m.name for m in client.search_registered_models(order_by=["name DESC"])][0] == "gamma"
    page = client.search_registered_models(max_results=3)
    assert len(page) == 3 and page.token
    rest = client.search_registered_models(max_results=3, page_token=page.token)
    assert [m.name for m in rest] == ["gamma"] and not rest.token

    client.set_registered_model_tag("alpha", "stage", "dev")
    client.set_registered_model_tag("alpha", "stage", "prod")  # a tag set again is overwritten
    client.delete_registered_model_tag("alpha", "team")
    assert client.get_registered_model("alpha").tags == {"stage": "prod"}
    assert client.update_registered_model("alpha", description="second").description == "second"
    assert client.get_registered_model("alpha").description == "second"

    client.rename_registered_model("alpha", "omega")
    renamed = client.get_registered_model("omega")
    assert (renamed.name, renamed.tags, renamed.description) == ("omega", {"stage": "prod"}, "second")
    assert _error_code(client.get_registered_model, "alpha") == "RESOURCE_DOES_NOT_EXIST"
    assert _error_code(client.rename_registered_model, "beta", "omega") == "RESOURCE_ALREADY_EXISTS"

    client.delete_registered_model("omega")
    assert _error_code(client.get_registered_model, "omega") == "RESOURCE_DOES_NOT_EXIST"
    assert [m.name for m in client.search_registered_models()] == ["beta", "delta", "gamma"]


def test_prompts_are_not_listed_as_models(mlflow_client_env: ServerProcess) -> None:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    client.create_registered_model("plain")
    # The client refuses the tag itself; a model may still carry it (e.g. imported data).
    reply = mlflow_client_env.api("POST", "registered-models/create", {
        "name": "tagged-false", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "false"}]})
    assert reply.status_code == 200, reply.text
    mlflow.genai.register_prompt("greeting", "Hello {{name}}")
    assert mlflow.genai.load_prompt("prompts:/greeting/1").format(name="Ada") == "Hello Ada"
    assert [m.name for m in client.search_registered_models()] == ["plain", "tagged-false"]


def test_log_model_registers_versions_and_loads_them(mlflow_client_env: ServerProcess) -> None:
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    model, X = _fit()
    client = MlflowClient()
    with mlflow.start_run() as run:
        first = mlflow.sklearn.log_model(model, name="model", registered_model_name="m", pip_requirements=REQS)
    with mlflow.start_run():
        second = mlflow.sklearn.log_model(model, name="model", registered_model_name="m", pip_requirements=REQS)
    assert (first.registered_model_version, second.registered_model_version) == ("1", "2")
    v1 = client.get_model_version("m", "1")
    assert (v1.status, v1.current_stage, v1.run_id) == ("READY", "None", run.info.run_id)
    assert v1.source == f"models:/{first.model_id}"
    # mlflow's ModelVersion entity drops model_id; the wire carries it.
    raw = mlflow_client_env.api("GET", "model-versions/get", {"name": "m", "version": "1"}).json()
    assert raw["model_version"]["model_id"] == first.model_id
    assert client.get_model_version_download_uri("m", "1") == mlflow.get_logged_model(first.model_id).artifact_location

    reg = mlflow.register_model(f"runs:/{run.info.run_id}/model", "m2")
    assert (reg.name, reg.version, reg.run_id) == ("m2", "1", run.info.run_id)

    expected = model.predict(X)
    client.transition_model_version_stage("m", "1", "production")
    client.set_registered_model_alias("m", "champion", "2")
    for uri in ("models:/m/1", "models:/m/Production", "models:/m@champion", "models:/m2/1"):
        np.testing.assert_allclose(mlflow.pyfunc.load_model(uri).predict(X), expected)


def test_versions_stages_tags_aliases(mlflow_client_env: ServerProcess) -> None:
    import mlflow
    from mlflow import MlflowClient

    model, _ = _fit()
    client = MlflowClient()
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=REQS)
    client.create_registered_model("reg")
    source = f"models:/{info.model_id}"
    for i in range(1, 5):
        mv = client.create_model_version("reg", source, run_id=run.info.run_id, model_id=info.model_id,
                                         tags={"i": str(i)}, description=f"v{i}")
        assert (mv.version, mv.status, mv.current_stage) == (str(i), "READY", "None")

    mv = client.update_model_version("reg", "2", description="changed")
    assert mv.description == "changed" and client.get_model_version("reg", "2").description == "changed"
    client.set_model_version_tag("reg", "2", "quality", "good")
    client.delete_model_version_tag("reg", "2", "i")
    assert client.get_model_version("reg", "2").tags == {"quality": "good"}

    # Stages, case-insensitively; archive_existing_versions archives the stage's other holders.
    assert client.transition_model_version_stage("reg", "1", "production").current_stage == "Production"
    client.transition_model_version_stage("reg", "2", "Staging")
    client.transition_model_version_stage("reg", "3", "PRODUCTION", archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in client.search_model_versions("name = 'reg'")}
    assert stages == {"1": "Archived", "2": "Staging", "3": "Production", "4": "None"}
    latest = {v.current_stage: v.version for v in client.get_latest_versions("reg")}
    assert latest == {"None": "4", "Staging": "2", "Production": "3", "Archived": "1"}
    assert [v.version for v in client.get_latest_versions("reg", stages=["production"])] == ["3"]
    rm = client.get_registered_model("reg")
    assert {v.current_stage: v.version for v in rm.latest_versions} == latest
    assert _error_code(client.transition_model_version_stage, "reg", "1", "Bogus") == "INVALID_PARAMETER_VALUE"

    # Aliases: set, move, reserved names, get by alias, delete.
    client.set_registered_model_alias("reg", "champion", "2")
    client.set_registered_model_alias("reg", "champion", "3")
    client.set_registered_model_alias("reg", "shadow", "3")
    assert client.get_model_version_by_alias("reg", "champion").version == "3"
    assert sorted(client.get_model_version("reg", "3").aliases) == ["champion", "shadow"]
    assert client.get_registered_model("reg").aliases == {"champion": "3", "shadow": "3"}
    for reserved in ("latest", "Latest", "v1", "V12", "bad alias", "a/b", "x" * 256):
        assert _error_code(client.set_registered_model_alias, "reg", reserved, "1") == "INVALID_PARAMETER_VALUE"
    client.delete_registered_model_alias("reg", "shadow")
    assert client.get_model_version("reg", "3").aliases == ["champion"]

    # Searches over versions: filters, order_by and paging.
    found = client.search_model_versions(f"run_id = '{run.info.run_id}'", order_by=["version_number ASC"])
    assert [v.version for v in found] == ["1", "2", "3", "4"]
    assert [v.version for v in client.search_model_versions("name = 'reg' AND tags.quality = 'good'")] == ["2"]
    assert [v.version for v in client.search_model_versions("name = 'reg' and version_number > 2",
                                                            order_by=["version_number DESC"])] == ["4", "3"]
    page = client.search_model_versions("name = 'reg'", max_results=3, order_by=["version_number ASC"])
    assert [v.version for v in page] == ["1", "2", "3"] and page.token
    assert [v.version for v in client.search_model_versions(
        "name = 'reg'", max_results=3, order_by=["version_number ASC"], page_token=page.token)] == ["4"]

    # Deleting a version takes its aliases along; its number is never handed out again.
    client.delete_model_version("reg", "3")
    assert _error_code(client.get_model_version, "reg", "3") == "RESOURCE_DOES_NOT_EXIST"
    # A missing alias is INVALID_PARAMETER_VALUE, as MLflow's server answers (tests/llm/test_mlflow_parity.py).
    assert _error_code(client.get_model_version_by_alias, "reg", "champion") == "INVALID_PARAMETER_VALUE"
    assert "Production" not in {v.current_stage for v in client.get_latest_versions("reg")}
    assert client.create_model_version("reg", source, model_id=info.model_id).version == "5"
    assert [v.version for v in client.search_model_versions("name = 'reg'", order_by=["version_number ASC"])] \
        == ["1", "2", "4", "5"]

    # A rename takes versions, version tags and aliases along.
    client.set_registered_model_alias("reg", "best", "2")
    client.rename_registered_model("reg", "reg2")
    moved = client.get_model_version("reg2", "2")
    assert (moved.name, moved.tags, moved.aliases) == ("reg2", {"quality": "good"}, ["best"])
    assert client.get_model_version_by_alias("reg2", "best").version == "2"
    assert client.search_model_versions("name = 'reg'") == []

    client.delete_registered_model("reg2")
    assert client.search_model_versions(f"run_id = '{run.info.run_id}'") == []
