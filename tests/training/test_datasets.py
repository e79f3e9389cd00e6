"""Datasets, tables and images as MLflow writes them: ``lt.data`` + ``lt.log_input``,
``lt.log_table`` and ``lt.log_image(key=, step=)`` / ``log_figure`` / ``log_dict`` / ``log_text``,
checked against mlflow's own functions and a real mlflow server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import labtrack as lt
from tests.client.conftest import CLIENT_ENV, TrackingServer
from tests.client_state import reset_client_state

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def lt_env(lt_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[TrackingServer]:
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    if lt_server.token:
        monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", lt_server.token)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", lt_server.token)
    reset_client_state()
    lt.set_tracking_uri(lt_server.uri)
    lt.set_experiment("datasets")
    yield lt_server
    reset_client_state()


@pytest.fixture
def mlflow_env(mlflow_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    mlflow.set_tracking_uri(mlflow_server.uri)
    mlflow.set_experiment("datasets")
    yield mlflow
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"x": rng.normal(size=50), "name": [f"n{i}" for i in range(50)],
                         "label": rng.integers(0, 2, size=50)})


def test_digest_schema_profile_match_mlflow() -> None:
    import mlflow.data

    df = _frame()
    ours, theirs = lt.data.from_pandas(df, targets="label", name="d").to_dict(), \
        mlflow.data.from_pandas(df, targets="label", name="d").to_dict()
    for field in ("name", "digest", "schema", "profile", "source_type"):
        assert ours[field] == theirs[field], field
    features, targets = np.arange(24.0).reshape(8, 3), np.arange(8)
    ours, theirs = lt.data.from_numpy(features, targets=targets).to_dict(), \
        mlflow.data.from_numpy(features, targets=targets).to_dict()
    for field in ("digest", "schema", "profile"):
        assert ours[field] == theirs[field], field
    columns = {"a": [1.0, 2.0], "b": ["u", "v"]}
    assert lt.data.from_dict(columns).digest == mlflow.data.from_pandas(pd.DataFrame(columns)).digest


def test_log_input_is_shown_and_searchable(lt_env: TrackingServer) -> None:
    from mlflow import MlflowClient

    dataset = lt.data.from_pandas(_frame(), targets="label", name="train-set")
    with lt.start_run() as run:
        lt.log_input(dataset, context="training")
    with lt.start_run():
        lt.log_input(lt.data.from_numpy(np.ones((3, 2))), context="eval")
    read = MlflowClient(lt_env.uri).get_run(run.info.run_id)
    (entry,) = read.inputs.dataset_inputs
    assert entry.dataset.name == "train-set" and entry.dataset.digest == dataset.digest
    assert json.loads(entry.dataset.profile) == {"num_rows": 50, "num_elements": 150}
    assert {t.key: t.value for t in entry.tags}["mlflow.data.context"] == "training"
    by_name = lt.search_runs(filter_string="datasets.name = 'train-set'")
    by_digest = lt.search_runs(filter_string=f"datasets.digest = '{dataset.digest}'")
    assert [r.info.run_id for r in by_name] == [run.info.run_id] == [r.info.run_id for r in by_digest]


def test_log_table_writes_mlflows_format(lt_env: TrackingServer, mlflow_env, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    data = {"question": ["a?", "b?"], "score": [0.5, 0.25]}
    with lt.start_run() as run:
        lt.log_table(data, "eval/table.json")
        lt.log_table({"question": ["c?"], "score": [1.0]}, "eval/table.json")  # appends
    with mlflow_env.start_run() as theirs:
        mlflow_env.log_table(data, "eval/table.json")
        mlflow_env.log_table({"question": ["c?"], "score": [1.0]}, "eval/table.json")
    ours_file = Path(lt.download_artifacts(run_id=run.info.run_id, artifact_path="eval/table.json",
                                           dst_path=tmp_path / "ours"))
    theirs_file = Path(MlflowClient().download_artifacts(theirs.info.run_id, "eval/table.json",
                                                         str(tmp_path / "theirs")))
    assert json.loads(ours_file.read_text()) == json.loads(theirs_file.read_text())
    tag = lt.get_run(run.info.run_id).data.tags["mlflow.loggedArtifacts"]
    assert json.loads(tag) == [{"path": "eval/table.json", "type": "table"}]
    assert list(lt.load_table("eval/table.json", run_ids=[run.info.run_id])["score"]) == [0.5, 0.25, 1.0]


def test_images_figures_dicts_texts_as_mlflow(lt_env: TrackingServer, mlflow_env) -> None:
    from mlflow import MlflowClient

    image = (np.arange(48).reshape(4, 4, 3) * 5).astype(np.uint8)

    def log_all(module) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, ax = plt.subplots()
        ax.plot([1, 2, 3])
        with module.start_run() as run:
            for step in (0, 1, 2):
                module.log_image(image, key="sample/img", step=step)
            module.log_image(image, artifact_file="static/picture.png")
            module.log_figure(figure, "plots/curve.png")
            module.log_dict({"a": 1, "b": [1, 2]}, "config/d.json")
            module.log_dict({"a": 1}, "config/d.yaml")
            module.log_text("hello", "notes/n.txt")
        plt.close(figure)
        return run.info.run_id

    ours, theirs = log_all(lt), log_all(mlflow_env)

    def layout(uri: str, run_id: str, token: str | None = None) -> tuple[list[str], dict[str, str]]:
        import os

        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
        if token:
            os.environ["MLFLOW_TRACKING_TOKEN"] = token
        client = MlflowClient(uri)
        names = []
        for folder in ("images", "static", "plots", "config", "notes"):
            for f in client.list_artifacts(run_id, folder):
                # the uuid and timestamp differ from call to call; the shape must not
                names.append(re.sub(r"\+timestamp\+\d+\+[0-9a-f-]{36}", "+timestamp+T+U", f.path))
        return sorted(names), client.get_run(run_id).data.tags

    our_names, our_tags = layout(lt_env.uri, ours, lt_env.token)
    their_names, their_tags = layout(mlflow_env.get_tracking_uri(), theirs)
    assert our_names == their_names
    assert our_tags.get("mlflow.loggedImages") == their_tags.get("mlflow.loggedImages")
