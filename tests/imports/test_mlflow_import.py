"""`labtrack import`: what the mlflow client observes after an import equals what it observes
from an `mlflow server` on the original MLflow database, and the source never changes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.client.conftest import stop
from tests.imports.conftest import copy_store, finish, sha256, snapshot, start_mlflow_on, write
from tests.servers import start_server

# The session's MLflow stores take a minute or two to write on a busy machine; mlflow server as long.
pytestmark = pytest.mark.timeout(1200)

X = [[0.5, 1.0], [2.0, 3.0], [4.0, 1.5]]


def _x() -> Any:
    import numpy as np

    return np.array(X)


def run_import(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABTRACK_"))}
    return subprocess.run([sys.executable, "-m", "labtrack", "import", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _num(v: float) -> Any:
    return "nan" if isinstance(v, float) and math.isnan(v) else v


def observe(uri: str, workdir: Path) -> dict[str, Any]:
    """Everything the mlflow client sees of the data, minus what an import must change
    (artifact locations and model-version sources, checked on their own)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    out: dict[str, Any] = {}
    exps = client.search_experiments(view_type=ViewType.ALL)
    out["experiments"] = sorted((e.experiment_id, e.name, e.lifecycle_stage, sorted(e.tags.items()))
                                for e in exps)
    runs = client.search_runs([e.experiment_id for e in exps], run_view_type=ViewType.ALL, max_results=1000)
    out["runs"] = {}
    for r in runs:
        i = r.info
        datasets = sorted((d.dataset.name, d.dataset.digest, d.dataset.source_type,
                           sorted((t.key, t.value) for t in d.tags)) for d in r.inputs.dataset_inputs)
        histories = {k: [(m.step, m.timestamp, _num(m.value)) for m in
                         sorted(client.get_metric_history(i.run_id, k), key=lambda m: (m.step, m.timestamp))]
                     for k in r.data.metrics}
        folder = workdir / "artifacts" / i.run_id
        files = {}
        if client.list_artifacts(i.run_id):
            local = Path(client.download_artifacts(i.run_id, "", str(folder)))
            files = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}
        out["runs"][i.run_id] = {
            "info": (i.run_name, i.experiment_id, i.status, i.start_time, i.end_time, i.lifecycle_stage, i.user_id),
            "params": r.data.params, "tags": r.data.tags,
            "latest": {k: _num(v) for k, v in r.data.metrics.items()}, "histories": histories,
            "datasets": datasets, "artifacts": files}
    models = client.search_registered_models()
    out["registry"] = {}
    for m in models:
        versions = client.search_model_versions(f"name = '{m.name}'")
        out["registry"][m.name] = {
            "description": m.description, "tags": m.tags, "aliases": m.aliases,
            "versions": sorted((v.version, v.current_stage, v.description, sorted(v.tags.items()), v.run_id,
                                v.status) for v in versions)}
    prompt = requests.get(f"{uri}/api/2.0/mlflow/model-versions/get",
                          params={"name": "greeting", "version": "1"}, timeout=30).json()
    out["prompt"] = sorted((t["key"], t["value"]) for t in prompt.get("model_version", {}).get("tags", []))
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        out["predictions"] = {ref: mlflow.pyfunc.load_model(f"models:/price{ref}").predict(_x()).tolist()
                              for ref in ("@champion", "/Staging", "/1", "/2")}
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    return out


def test_import_equals_mlflow_server_and_leaves_the_source_alone(
        mlflow_stores: dict[str, Path], tmp_path: Path, no_mlflow_env: None) -> None:
    folder = mlflow_stores["sqlite"]
    source = folder / "mlflow.db"
    before = snapshot(folder)
    done = run_import(str(source), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = done.stdout.splitlines()[0]
    assert f"into {folder / 'labtrack.db'}" in summary
    assert "10,007 metric points" in summary  # 10,003 + the children's 2 + "broken" and "ancient"
    assert "importing runs" in done.stderr  # the progress bar
    assert "Traceback" not in done.stderr
    # Not a byte changed, and nothing appeared beside it (no -journal, -wal, -shm or lock).
    assert snapshot(folder) == before
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("mlflow.db")) == ["mlflow.db"]

    mlflow_server = start_mlflow_on(f"sqlite:///{source}", tmp_path / "mlflow")
    try:
        theirs = observe(mlflow_server.uri, tmp_path / "theirs")
    finally:
        stop(mlflow_server.proc)
    labtrack_server = start_server(f"sqlite:///{folder / 'labtrack.db'}", tmp_path, token=None,
                                   extra=["--artifacts-destination", str(folder / "labtrack")])
    try:
        ours = observe(labtrack_server.url, tmp_path / "ours")
    finally:
        labtrack_server.stop()
    assert ours["experiments"] == theirs["experiments"]
    assert ours["runs"].keys() == theirs["runs"].keys() and len(ours["runs"]) == 6
    for run_id, seen in theirs["runs"].items():
        assert ours["runs"][run_id] == seen, run_id
    sweep = next(r for r in ours["runs"].values() if r["info"][0] == "sweep")
    assert len(sweep["histories"]["loss"]) == 10_003
    assert sweep["histories"]["loss"][-3][2] == "nan"
    assert sweep["artifacts"]["notes/readme.txt"] == b"hello"
    assert ours["registry"] == theirs["registry"]
    assert ours["registry"]["price"]["aliases"] == {"champion": "1", "challenger": "2"}
    assert ours["prompt"] == theirs["prompt"] and ("mlflow.prompt.text", "Hello {{name}}!") in ours["prompt"]
    assert ours["predictions"] == theirs["predictions"]
    # The version whose source was a path into MLflow's artifacts now points into labtrack's.
    v2 = labtrack_v2_source(folder)
    assert v2.startswith("mlflow-artifacts:/1/") and v2.endswith("/artifacts/extra_model")


def labtrack_v2_source(folder: Path) -> str:
    import sqlite3

    conn = sqlite3.connect(f"file:{folder / 'labtrack.db'}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT source FROM model_versions WHERE name = 'price' AND version = 2").fetchone()[0]
    finally:
        conn.close()


def _counts(stdout: str) -> str:
    """The summary's "what was copied" part, e.g. "1 runs, 600 metric points"."""
    return stdout.splitlines()[0].split(" s: ", 1)[1].split(";")[0]


def test_reimport_copies_only_what_is_new(mlflow_stores: dict[str, Path], tmp_path: Path,
                                          no_mlflow_env: None) -> None:
    folder = copy_store(mlflow_stores["sqlite"], tmp_path / "store")
    first = run_import(str(folder / "mlflow.db"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_import(str(folder / "mlflow.db"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert _counts(again.stdout) == "nothing new"
    assert "0 artifact files" in again.stdout
    finish(write(folder, "sqlite:///mlflow.db", "more"), folder, "more")
    digest = sha256(folder / "mlflow.db")
    third = run_import(str(folder / "mlflow.db"), cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    # 500 more points on "sweep", the new run "late" (1 param, 100 points, its tags), version 3.
    copied = dict(reversed(part.split(" ", 1)) for part in _counts(third.stdout).split(", "))
    assert copied.pop("runs") == "1" and copied.pop("metric points") == "600"
    assert copied.pop("params") == "1" and copied.pop("model versions") == "1"
    assert set(copied) == {"tags"}, copied  # nothing else is new: no duplicates
    assert sha256(folder / "mlflow.db") == digest
    labtrack_server = start_server(f"sqlite:///{folder / 'labtrack.db'}", tmp_path, token=None)
    try:
        from mlflow import MlflowClient
        from mlflow.entities import ViewType

        client = MlflowClient(tracking_uri=labtrack_server.url, registry_uri=labtrack_server.url)
        runs = client.search_runs(["1"], run_view_type=ViewType.ALL)
        sweep = next(r for r in runs if r.info.run_name == "sweep")
        assert len(client.get_metric_history(sweep.info.run_id, "loss")) == 10_503
        assert len(runs) == 6  # sweep, 2 children, broken, discarded, late
        assert client.get_model_version_by_alias("price", "champion").version == "3"
    finally:
        labtrack_server.stop()
    last = run_import(str(folder / "mlflow.db"), cwd=tmp_path)
    assert _counts(last.stdout) == "nothing new"


def test_file_store_import(mlflow_stores: dict[str, Path], tmp_path: Path, no_mlflow_env: None) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    folder = mlflow_stores["files"]
    before = snapshot(folder)
    done = run_import(str(folder / "mlruns"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert snapshot(folder) == before
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    theirs = MlflowClient(tracking_uri=f"file://{folder / 'mlruns'}")
    server = start_server(f"sqlite:///{folder / 'labtrack.db'}", tmp_path, token=None,
                          extra=["--artifacts-destination", str(folder / "labtrack")])
    try:
        ours = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        exp_theirs = theirs.get_experiment_by_name("vision")
        exp_ours = ours.get_experiment_by_name("vision")
        assert exp_ours.tags == exp_theirs.tags
        runs_t = {r.info.run_id: r for r in theirs.search_runs([exp_theirs.experiment_id],
                                                               run_view_type=ViewType.ALL)}
        runs_o = {r.info.run_id: r for r in ours.search_runs([exp_ours.experiment_id], run_view_type=ViewType.ALL)}
        assert runs_o.keys() == runs_t.keys()
        for run_id, r in runs_t.items():
            o = runs_o[run_id]
            assert (o.info.run_name, o.info.status, o.info.start_time, o.info.end_time, o.info.lifecycle_stage) == (
                r.info.run_name, r.info.status, r.info.start_time, r.info.end_time, r.info.lifecycle_stage)
            assert o.data.params == r.data.params and o.data.tags == r.data.tags
            for key in r.data.metrics:
                # The file store keeps a point logged twice twice; MLflow's SQL stores (and labtrack)
                # keep it once.
                points = {(m.step, m.timestamp, _num(m.value)) for m in theirs.get_metric_history(run_id, key)}
                assert [(m.step, m.timestamp, _num(m.value)) for m in ours.get_metric_history(run_id, key)] == \
                    sorted(points, key=lambda p: (p[0], p[1]))
        sweep = next(r for r in runs_o.values() if r.info.run_name == "sweep")
        assert len(ours.get_metric_history(sweep.info.run_id, "loss")) == 10_003
        assert ours.get_model_version_by_alias("price", "challenger").current_stage == "Staging"
        import mlflow

        mlflow.set_tracking_uri(server.url)
        mlflow.set_registry_uri(server.url)
        try:
            assert mlflow.pyfunc.load_model("models:/price@champion").predict(_x()).tolist() == \
                pytest.approx([1.5 * a - 2.0 * b + 0.5 for a, b in X])
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)
    finally:
        server.stop()
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


@pytest.mark.parametrize(("version", "versions"), [("2.9.2", "2.8-2.12"), ("1.30.1", "1.29-2.2")])
def test_an_older_schema_imports(tmp_path: Path, no_mlflow_env: None, version: str, versions: str) -> None:
    """Databases of MLflow 2.9.2 and 1.30.1 (committed with the script that wrote them) read as
    that mlflow read them."""
    import json
    import shutil

    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    fixture = Path(__file__).with_name("fixtures") / f"mlflow-{version}"
    expected = json.loads((fixture / "expected.json").read_text())
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(fixture / "mlruns.db", folder / "mlruns.db")
    digest = sha256(folder / "mlruns.db")
    done = run_import("mlruns.db", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert f"MLflow {versions} database" in done.stdout
    assert sha256(folder / "mlruns.db") == digest
    server = start_server(f"sqlite:///{folder / 'labtrack.db'}", tmp_path, token=None)
    try:
        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        exp = client.get_experiment_by_name("legacy")
        assert exp.tags == {"owner": "lab"}
        runs = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL)}
        assert runs.keys() == expected["runs"].keys()
        for run_id, want in expected["runs"].items():
            r = runs[run_id]
            assert (r.info.run_name, r.info.status, r.info.start_time) == (want["name"], want["status"], want["start"])
            assert r.data.params == want["params"] and r.data.tags == want["tags"]
            got = {k: [[m.step, m.timestamp, repr(m.value)] for m in client.get_metric_history(run_id, k)]
                   for k in r.data.metrics}
            assert got == want["histories"]
        versions = sorted([int(v.version), v.current_stage, v.run_id]
                          for v in client.search_model_versions("name = 'legacy-model'"))
        assert versions == expected["versions"]
        assert client.get_registered_model("legacy-model").aliases == {k: str(v) for k, v in
                                                                      expected["aliases"].items()}
        parent = next(r for r in runs.values() if r.info.run_name == "old-run")
        assert [d.dataset.name for d in parent.inputs.dataset_inputs] == (["tiny"] if expected["aliases"] else [])
    finally:
        server.stop()


def test_import_from_a_running_mlflow_server(tmp_path: Path, no_mlflow_env: None) -> None:
    """Over the REST API: runs, histories, the registry (prompts included) and proxied artifacts."""
    from mlflow import MlflowClient

    mlflow_server = start_mlflow_on(f"sqlite:///{tmp_path / 'served.db'}", tmp_path / "mlflow")
    try:
        folder = tmp_path / "writer"
        finish(write(folder, mlflow_server.uri, "base", points=300), folder, "base")
        target = tmp_path / "copy" / "labtrack.db"
        done = run_import(mlflow_server.uri, "--to", str(target), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"imported MLflow server {mlflow_server.uri} into {target}" in done.stdout
        assert "307 metric points" in done.stdout  # 303 + 2 + 1 + 1
        again = run_import(mlflow_server.uri, "--to", str(target), cwd=tmp_path)
        assert _counts(again.stdout) == "nothing new", again.stdout
        theirs = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
        server = start_server(f"sqlite:///{target}", tmp_path, token=None,
                              extra=["--artifacts-destination", str(target.parent / "labtrack")])
        try:
            ours = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
            from mlflow.entities import ViewType

            want = {r.info.run_id: r for r in theirs.search_runs(["0", "1", "2"], run_view_type=ViewType.ALL)}
            got = {r.info.run_id: r for r in ours.search_runs(["0", "1", "2"], run_view_type=ViewType.ALL)}
            assert got.keys() == want.keys()
            for run_id, r in want.items():
                assert got[run_id].data.params == r.data.params and got[run_id].data.tags == r.data.tags
                assert got[run_id].info.status == r.info.status
            sweep = next(r for r in got.values() if r.info.run_name == "sweep")
            assert sorted((m.step, str(m.value)) for m in ours.get_metric_history(sweep.info.run_id, "loss")) == \
                sorted((m.step, str(m.value)) for m in theirs.get_metric_history(sweep.info.run_id, "loss"))
            local = Path(ours.download_artifacts(sweep.info.run_id, "notes/readme.txt", str(tmp_path / "dl")))
            assert local.read_text() == "hello"
            assert ours.get_registered_model("price").aliases == {"champion": "1", "challenger": "2"}
            import mlflow

            mlflow.set_tracking_uri(server.url)
            mlflow.set_registry_uri(server.url)
            try:
                assert mlflow.pyfunc.load_model("models:/price/Staging").predict(_x()).tolist() == \
                    pytest.approx([2 * (1.5 * a - 2.0 * b + 0.5) for a, b in X])
            finally:
                mlflow.set_tracking_uri(None)
                mlflow.set_registry_uri(None)
        finally:
            server.stop()
    finally:
        stop(mlflow_server.proc)


@pytest.mark.postgres
def test_import_from_postgresql(tmp_path: Path, no_mlflow_env: None, pg_database: str) -> None:
    """Any SQLAlchemy URL MLflow used: here MLflow's tables on a real PostgreSQL server."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    url = pg_database
    folder = tmp_path / "writer"
    finish(write(folder, url, "base", points=200), folder, "base")
    target = tmp_path / "copy" / "labtrack.db"
    done = run_import(url, "--to", str(target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "labtrack" not in done.stdout.split("***")[0].split("//", 1)[1]  # the password is hidden
    assert "207 metric points" in done.stdout
    theirs = MlflowClient(tracking_uri=url, registry_uri=url)
    server = start_server(f"sqlite:///{target}", tmp_path, token=None)
    try:
        ours = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        want = {r.info.run_id: r for r in theirs.search_runs(["0", "1", "2"], run_view_type=ViewType.ALL)}
        got = {r.info.run_id: r for r in ours.search_runs(["0", "1", "2"], run_view_type=ViewType.ALL)}
        assert got.keys() == want.keys()
        for run_id, r in want.items():
            assert (got[run_id].data.params, got[run_id].data.tags) == (r.data.params, r.data.tags)
            for key in r.data.metrics:
                assert sorted((m.step, m.timestamp, str(m.value)) for m in ours.get_metric_history(run_id, key)) \
                    == sorted((m.step, m.timestamp, str(m.value)) for m in theirs.get_metric_history(run_id, key))
        # (the mlflow client on a SQL store gives versions as ints, over REST as strings)
        assert ours.get_registered_model("price").aliases == {
            k: str(v) for k, v in theirs.get_registered_model("price").aliases.items()}
    finally:
        server.stop()


def test_a_live_wal_source_is_read_through_its_own_wal(tmp_path: Path) -> None:
    """An MLflow database in WAL mode with a writer still attached: the import reads what that
    writer committed (still in the -wal file) and creates no file beside it."""
    import shutil
    import sqlite3

    from labtrack.imports.sql_source import SqlSource

    db = tmp_path / "mlflow.db"
    shutil.copy(Path(__file__).with_name("fixtures") / "mlflow-2.9.2" / "mlruns.db", db)
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA journal_mode = wal")
        writer.execute("PRAGMA wal_autocheckpoint = 0")  # keep what follows in the -wal file
        run_id = writer.execute("SELECT run_uuid FROM runs WHERE name = 'old-run'").fetchone()[0]
        writer.execute("INSERT INTO params (key, value, run_uuid) VALUES ('late', 'yes', ?)", (run_id,))
        writer.commit()
        files = sorted(os.listdir(tmp_path))
        assert files == ["mlflow.db", "mlflow.db-shm", "mlflow.db-wal"]
        wal = sha256(tmp_path / "mlflow.db-wal")
        source = SqlSource(f"sqlite:///{db}")
        try:
            (run,) = source.runs([run_id])
        finally:
            source.close()
        assert run.params["late"] == "yes"
        assert sorted(os.listdir(tmp_path)) == files and sha256(tmp_path / "mlflow.db-wal") == wal
    finally:
        writer.close()
