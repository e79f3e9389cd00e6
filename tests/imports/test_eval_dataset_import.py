"""`labtrack import` of MLflow's evaluation datasets (``mlflow.genai.datasets``), and the summary's
"not imported" lines for what it does not copy (webhooks).

The datasets are made by the unmodified mlflow client; after an import, what that client sees of
them on a labtrack server (names, tags, records and their every field, experiments) is what it
sees on an `mlflow server` over the same MLflow data.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import stop
from tests.imports.conftest import mlflow_env, start_mlflow_on
from tests.imports.test_mlflow_import import _counts, run_import
from tests.servers import start_server

pytestmark = pytest.mark.timeout(900)

SECRET = "TOPSECRET-webhook-42"
# Records of several shapes: outputs a text (MLflow wraps those), a merge into an existing record,
# a record without outputs; a tag changed and one deleted; a dataset without records.
FILL = textwrap.dedent("""
    import sys, mlflow
    from mlflow import MlflowClient
    from mlflow.genai.datasets import create_dataset, delete_dataset_tag, set_dataset_tags

    mlflow.set_tracking_uri(sys.argv[1])
    a = mlflow.set_experiment("evals").experiment_id
    b = mlflow.set_experiment("other").experiment_id
    qa = create_dataset(name="qa", experiment_id=[a, b], tags={"team": "nlp", "stage": "draft", "gone": "x"})
    qa.merge_records([
        {"inputs": {"question": "why?"}, "outputs": "because",
         "expectations": {"answer": "because", "facts": ["cause"]}, "tags": {"split": "train"}},
        {"inputs": {"question": "how?", "n": 2}, "outputs": "so", "expectations": {"answer": "so"}},
        {"inputs": {"question": "when?"}, "expectations": {"answer": "now"}},
    ])
    qa.merge_records([{"inputs": {"question": "why?"}, "expectations": {"extra": 1}}])
    set_dataset_tags(qa.dataset_id, {"stage": "final"})
    delete_dataset_tag(qa.dataset_id, "gone")
    create_dataset(name="empty", experiment_id=[b])
    if len(sys.argv) > 2:  # a scorer (imported) and a webhook (with a secret: not imported, and never shown)
        from mlflow.tracking._tracking_service.utils import _get_store
        _get_store().register_scorer(a, "exact", '{"name": "exact", "call_source": "def exact(outputs): return 1"}')
        MlflowClient().create_webhook("notify", "https://127.0.0.1:9/hook", events=["model_version.created"],
                                      secret=sys.argv[2])
""")
ALLOW_LOCAL_HOOKS = {"MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true"}  # the webhook's URL is this machine's
# An mlflow server takes a code scorer only when told to (the SQL store takes it as it is).
SERVER_ENV = {**ALLOW_LOCAL_HOOKS, "MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS": "true"}


def fill(uri: str, cwd: Path, *extra: str) -> None:
    out = subprocess.run([sys.executable, "-c", FILL, uri, *extra], cwd=cwd, env={**mlflow_env(), **ALLOW_LOCAL_HOOKS},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


def _record(r: Any) -> dict[str, Any]:
    return {"id": r.dataset_record_id, "inputs": r.inputs, "outputs": r.outputs, "expectations": r.expectations,
            "tags": r.tags, "source": r.source.to_dict() if r.source else None, "source_type": r.source_type,
            "created_time": r.created_time, "last_update_time": r.last_update_time, "created_by": r.created_by,
            "last_updated_by": r.last_updated_by}


def observe(uri: str) -> dict[str, Any]:
    """The datasets the mlflow client finds per experiment, and each with all it holds (experiments by name)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.genai.datasets import get_dataset, search_datasets

    client = MlflowClient(tracking_uri=uri)
    names = {e.experiment_id: e.name for e in client.search_experiments()}
    mlflow.set_tracking_uri(uri)
    try:
        out: dict[str, Any] = {}
        for exp_id, exp_name in names.items():
            out[f"in {exp_name}"] = sorted(d.name for d in search_datasets(experiment_ids=[exp_id]))
        for d in search_datasets(experiment_ids=list(names)):
            ds = get_dataset(dataset_id=d.dataset_id)
            out[ds.name] = {
                "id": ds.dataset_id, "tags": ds.tags, "digest": ds.digest, "schema": ds.schema,
                "profile": ds.profile, "experiments": sorted(names[e] for e in ds.experiment_ids),
                "created_time": ds.created_time, "last_update_time": ds.last_update_time,
                "created_by": ds.created_by, "last_updated_by": ds.last_updated_by,
                "records": sorted((_record(r) for r in ds._mlflow_dataset.records), key=lambda r: r["id"]),
                "frame": sorted(map(repr, ds.to_df().to_dict("records"))),  # what to_df() shows
            }
        return out
    finally:
        mlflow.set_tracking_uri(None)


def _compare(ours: dict[str, Any], theirs: dict[str, Any], later: bool = False) -> None:
    assert theirs["in evals"] == ["qa"] and theirs["in other"] == ["empty", "qa"]
    qa = theirs["qa"]
    assert len(qa["records"]) == 3 + later and qa["tags"].get("stage") == ("reviewed" if later else "final")
    assert "gone" not in qa["tags"]
    outputs = ["'because'", "'now'", "'so'", "{}"] if later else ["'because'", "'so'", "{}"]  # {}: none given
    assert sorted(repr(r["outputs"]) for r in qa["records"]) == outputs
    assert ours.keys() == theirs.keys()
    for key, seen in theirs.items():
        if isinstance(seen, dict):  # field by field: a difference says where it is
            for field, value in seen.items():
                assert ours[key][field] == value, (key, field)
        assert ours[key] == seen, key


def _import_twice(source: str, tmp_path: Path) -> tuple[Path, str]:
    """A fresh copy of ``source``: both datasets and their 3 records the first time, nothing the second."""
    target = tmp_path / "copy" / "labtrack.db"
    done = run_import(source, "--to", str(target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 evaluation datasets, 3 dataset records" in done.stdout, done.stdout
    again = run_import(source, "--to", str(target), cwd=tmp_path)
    assert again.returncode == 0 and _counts(again.stdout) == "nothing new", again.stdout
    return target, done.stdout + done.stderr


def _compare_on_labtrack(target: Path, theirs: dict[str, Any], tmp_path: Path, later: bool = False) -> None:
    server = start_server(f"sqlite:///{target}", tmp_path, token=None)
    try:
        _compare(observe(server.url), theirs, later)
    finally:
        server.stop()


def _not_imported(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("labtrack: not imported: ")]


# What MLflow's users change after a first import: a record merged into, a new record, a tag.
LATER = textwrap.dedent("""
    import sys, mlflow
    from mlflow.genai.datasets import get_dataset, search_datasets, set_dataset_tags

    mlflow.set_tracking_uri(sys.argv[1])
    exp = mlflow.get_experiment_by_name("evals").experiment_id
    qa = get_dataset(dataset_id=search_datasets(experiment_ids=[exp])[0].dataset_id)
    qa.merge_records([{"inputs": {"question": "when?"}, "outputs": "now", "expectations": {"why": "late"}},
                      {"inputs": {"question": "where?"}, "expectations": {"answer": "here"}}])
    set_dataset_tags(qa.dataset_id, {"stage": "reviewed"})
""")


def _database_round_trip(url: str, tmp_path: Path) -> None:
    fill(url, tmp_path)
    target, _ = _import_twice(url, tmp_path)
    later = subprocess.run([sys.executable, "-c", LATER, url], cwd=tmp_path, env=mlflow_env(), capture_output=True,
                           text=True, timeout=300)
    assert later.returncode == 0, later.stderr[-3000:]
    third = run_import(url, "--to", str(target), cwd=tmp_path)  # the new record; the changes overwrite
    assert third.returncode == 0 and _counts(third.stdout) == "1 dataset records", third.stdout
    mlflow_server = start_mlflow_on(url, tmp_path / "mlflow")
    try:
        theirs = observe(mlflow_server.uri)
    finally:
        stop(mlflow_server.proc)
    _compare_on_labtrack(target, theirs, tmp_path, later=True)


def test_eval_datasets_import_from_an_mlflow_sqlite_database(tmp_path: Path, no_mlflow_env: None) -> None:
    _database_round_trip(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)


@pytest.mark.postgres
def test_eval_datasets_import_from_an_mlflow_postgresql_database(tmp_path: Path, no_mlflow_env: None,
                                                                 pg_database: str) -> None:
    _database_round_trip(pg_database, tmp_path)


def test_eval_datasets_import_from_a_running_mlflow_server(tmp_path: Path, no_mlflow_env: None) -> None:
    mlflow_server = start_mlflow_on(f"sqlite:///{tmp_path / 'served.db'}", tmp_path / "mlflow", SERVER_ENV)
    try:
        fill(mlflow_server.uri, tmp_path, SECRET)
        target, output = _import_twice(mlflow_server.uri, tmp_path)
        theirs = observe(mlflow_server.uri)
    finally:
        stop(mlflow_server.proc)
    # What the server lists and labtrack does not copy is named, counted, once each.
    lines = _not_imported(output)
    assert lines == ["labtrack: not imported: 1 webhooks (/api/2.0/mlflow/webhooks)"], output  # the scorer is imported
    assert SECRET not in output and "Traceback" not in output
    _compare_on_labtrack(target, theirs, tmp_path)


def test_what_is_not_imported_is_named_with_its_count(tmp_path: Path, no_mlflow_env: None) -> None:
    db = tmp_path / "mlflow.db"
    fill(f"sqlite:///{db}", tmp_path, SECRET)
    done = run_import(str(db), "--to", str(tmp_path / "copy" / "labtrack.db"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "Traceback" not in output and SECRET not in output
    lines = _not_imported(done.stdout)
    # One line per kind with its rows; the MLflow bookkeeping every 3.17 database has (the default
    # workspace, the schema revision, metric rollups) is not mentioned.
    assert sorted(lines) == [  # the scorer is imported (tests/imports/test_scorer_import.py)
        "labtrack: not imported: 1 webhook event subscriptions (MLflow's webhook_events table)",
        "labtrack: not imported: 1 webhooks (MLflow's webhooks table)",
    ], done.stdout
    again = run_import(str(db), "--to", str(tmp_path / "copy" / "labtrack.db"), cwd=tmp_path)
    assert again.returncode == 0 and sorted(_not_imported(again.stdout)) == sorted(lines), again.stdout
