"""`labtrack import` of MLflow's registered scorers (``mlflow.genai.scorers``): every version of
every scorer, with its scorer id, version number and creation time, from an MLflow database
(SQLite, PostgreSQL) and from a running mlflow server.

The scorers are registered by the unmodified mlflow client (built-in, guidelines in two versions,
and a @scorer with its code); after the import, what a client reads of them from a labtrack
server is what it reads from an `mlflow server` over the same MLflow data.  A version registered
in MLflow after the import is the only thing a second import copies.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.client.conftest import stop
from tests.imports.conftest import mlflow_env, start_mlflow_on
from tests.imports.test_mlflow_import import _counts, run_import
from tests.servers import start_server

pytestmark = pytest.mark.timeout(900)

CUSTOM = {"MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS": "true"}  # a @scorer's code is taken only when told to
FILL = textwrap.dedent("""
    import sys, mlflow
    from mlflow.genai.scorers import Guidelines, Safety, scorer

    mlflow.set_tracking_uri(sys.argv[1])
    judged = mlflow.set_experiment("judged").experiment_id
    other = mlflow.set_experiment("other").experiment_id
    Guidelines(name="polite", guidelines=["Be polite"]).register(experiment_id=judged)
    Guidelines(name="polite", guidelines=["Be polite", "Answer in French <b>\\u00e9</b>"]).register(experiment_id=judged)
    Safety().register(experiment_id=other, name="safety")

    @scorer
    def exact(outputs, expectations):
        return outputs == expectations["answer"]

    exact.register(experiment_id=judged)
""")
LATER = textwrap.dedent("""
    import sys, mlflow
    from mlflow.genai.scorers import Guidelines

    mlflow.set_tracking_uri(sys.argv[1])
    judged = mlflow.get_experiment_by_name("judged").experiment_id
    Guidelines(name="polite", guidelines=["Be polite", "Be brief"]).register(experiment_id=judged)
""")

# In labtrack, after the import: "polite" deleted (every version) and registered again (a new id).
HERE = textwrap.dedent("""
    import sys, mlflow
    from mlflow.genai.scorers import Guidelines, delete_scorer

    mlflow.set_tracking_uri(sys.argv[1])
    judged = mlflow.get_experiment_by_name("judged").experiment_id
    delete_scorer(name="polite", experiment_id=judged, version="all")
    Guidelines(name="polite", guidelines=["Our own"]).register(experiment_id=judged)
""")


def _run(script: str, uri: str, cwd: Path) -> None:
    path = cwd / "scorer_script.py"  # a file: a @scorer's code is read from its source
    path.write_text(script)
    out = subprocess.run([sys.executable, str(path), uri], cwd=cwd, env={**mlflow_env(), **CUSTOM},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


def observe(uri: str) -> dict[str, Any]:
    """Per experiment (by name), each scorer's versions as the scorer API lists them: the scorer id,
    version, serialized scorer and creation time; and the newest "polite" as the client loads it."""
    import mlflow
    from mlflow.genai.scorers import get_scorer

    def get(endpoint: str, **query: Any) -> Any:
        reply = requests.get(f"{uri}/api/3.0/mlflow/scorers/{endpoint}", params=query, timeout=60)
        assert reply.status_code == 200, reply.text
        return reply.json().get("scorers", [])

    exps = requests.get(f"{uri}/api/2.0/mlflow/experiments/search", params={"max_results": 100}, timeout=60).json()
    out: dict[str, Any] = {}
    for exp in exps["experiments"]:
        out[exp["name"]] = {s["scorer_name"]: [{k: v[k] for k in ("scorer_id", "scorer_version", "serialized_scorer",
                                                                  "creation_time")}
                                               for v in get("versions", experiment_id=exp["experiment_id"],
                                                            name=s["scorer_name"])]
                            for s in get("list", experiment_id=exp["experiment_id"])}
    judged = next(e["experiment_id"] for e in exps["experiments"] if e["name"] == "judged")
    mlflow.set_tracking_uri(uri)
    try:
        out["polite, loaded"] = get_scorer(name="polite", experiment_id=judged).guidelines
    finally:
        mlflow.set_tracking_uri(None)
    return out


def _on_labtrack(target: Path, tmp_path: Path) -> dict[str, Any]:
    server = start_server(f"sqlite:///{target}", tmp_path, token=None)
    try:
        return observe(server.url)
    finally:
        server.stop()


def _on_mlflow(url: str, tmp_path: Path) -> dict[str, Any]:
    server = start_mlflow_on(url, tmp_path / "mlflow", CUSTOM)
    try:
        return observe(server.uri)
    finally:
        stop(server.proc)


def _check(theirs: dict[str, Any], later: bool = False) -> None:
    """What the source holds: the workload's scorers, versions in order, ids and times set."""
    polite = theirs["judged"]["polite"]
    assert [v["scorer_version"] for v in polite] == ([1, 2, 3] if later else [1, 2])
    assert sorted(theirs["judged"]) == ["exact", "polite"] and list(theirs["other"]) == ["safety"]
    assert all(v["scorer_id"] and v["creation_time"] > 0 for v in polite)
    assert '"call_source"' in theirs["judged"]["exact"][0]["serialized_scorer"]


def _import(source: str, target: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = run_import(source, "--to", str(target), cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return done


def _left_out(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith("labtrack: not imported: scorer")]


def _database_round_trip(url: str, tmp_path: Path) -> None:
    _run(FILL, url, tmp_path)
    target = tmp_path / "copy" / "labtrack.db"
    first = _import(url, target, tmp_path)
    assert "3 scorers, 4 scorer versions" in first.stdout and not _left_out(first), first.stdout
    assert _counts(_import(url, target, tmp_path).stdout) == "nothing new"
    _run(LATER, url, tmp_path)
    third = _import(url, target, tmp_path)
    assert _counts(third.stdout) == "1 scorer versions", third.stdout
    theirs = _on_mlflow(url, tmp_path)
    _check(theirs, later=True)
    assert _on_labtrack(target, tmp_path) == theirs


def test_scorers_import_from_an_mlflow_sqlite_database(tmp_path: Path, no_mlflow_env: None) -> None:
    _database_round_trip(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)


@pytest.mark.postgres
def test_scorers_import_from_an_mlflow_postgresql_database(tmp_path: Path, no_mlflow_env: None,
                                                           pg_database: str) -> None:
    _database_round_trip(pg_database, tmp_path)


def test_scorers_import_from_a_running_mlflow_server(tmp_path: Path, no_mlflow_env: None) -> None:
    server = start_mlflow_on(f"sqlite:///{tmp_path / 'served.db'}", tmp_path / "mlflow", CUSTOM)
    try:
        _run(FILL, server.uri, tmp_path)
        target = tmp_path / "copy" / "labtrack.db"
        first = _import(server.uri, target, tmp_path)
        assert "3 scorers, 4 scorer versions" in first.stdout and not _left_out(first), first.stdout
        theirs = observe(server.uri)
    finally:
        stop(server.proc)
    _check(theirs)
    assert _on_labtrack(target, tmp_path) == theirs


def test_an_experiment_scorer_registered_here_since_is_kept_and_named(tmp_path: Path, no_mlflow_env: None) -> None:
    """A scorer of the same name registered in labtrack after a first import (another id) is
    kept; the source's newer versions of it are left out, each named in the summary."""
    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _run(FILL, url, tmp_path)
    target = tmp_path / "copy" / "labtrack.db"
    _import(url, target, tmp_path)
    server = start_server(f"sqlite:///{target}", tmp_path, token=None)
    try:
        _run(HERE, server.url, tmp_path)
    finally:
        server.stop()
    _run(LATER, url, tmp_path)
    again = _import(url, target, tmp_path)
    assert _counts(again.stdout) == "nothing new", again.stdout
    left_out = _left_out(again)
    assert [line.split(" (id ")[0] for line in left_out] == [
        f"labtrack: not imported: scorer 'polite' version {v}" for v in (1, 2, 3)], again.stdout
    assert all("the experiment's scorer of that name has id" in line for line in left_out)
    ours = _on_labtrack(target, tmp_path)
    assert [v["scorer_version"] for v in ours["judged"]["polite"]] == [1] and ours["polite, loaded"] == ["Our own"]
