"""`labtrack import` of MLflow 3's GenAI traces: what the mlflow client sees of the traces
(their infos, tags, metadata, spans, assessments and run links) after an import is what it
sees on the MLflow side, read from MLflow's database or from a running `mlflow server`."""

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

# The unmodified mlflow client: spans of several types, an error, feedback (overridden), expectations
# (a text and a structure), a trace of no run linked to a run afterwards, tags and a client request id.
FILL = textwrap.dedent("""
    import sys, mlflow
    from mlflow import MlflowClient
    from mlflow.entities import AssessmentSource

    mlflow.set_tracking_uri(sys.argv[1])
    mlflow.set_experiment("genai")
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_span("answer", span_type="CHAIN") as span:
            span.set_inputs({"question": "why?"})
            with mlflow.start_span("llm", span_type="LLM") as llm:
                llm.set_attributes({"model": "tiny", "temperature": 0.5})
                llm.set_outputs({"text": "because"})
            span.set_outputs({"answer": "because"})
        tid = mlflow.get_last_active_trace_id()
        fb = mlflow.log_feedback(trace_id=tid, name="helpful", value=True, rationale="short and right",
                                 metadata={"batch": "7"})
        mlflow.log_expectation(trace_id=tid, name="expected", value="because")
        mlflow.log_expectation(trace_id=tid, name="facts", value={"must": ["cause"], "n": 1},
                               source=AssessmentSource(source_type="HUMAN", source_id="ann"))
        mlflow.override_feedback(trace_id=tid, assessment_id=fb.assessment_id, value=False, rationale="vague")
        with mlflow.start_run(run_name="child", nested=True) as child:
            try:
                with mlflow.start_span("fails", span_type="TOOL") as bad:
                    bad.set_inputs({"x": 1})
                    raise ValueError("no tool")
            except ValueError:
                pass
    with mlflow.start_span("judged-later") as s:
        s.set_attribute("k", 1)
        mlflow.update_current_trace(tags={"team": "nlp"}, client_request_id="req-1")
    later = mlflow.get_last_active_trace_id()
    if not sys.argv[1].startswith("file:"):  # MLflow's file store cannot link traces to runs
        MlflowClient().link_traces_to_run([later], child.info.run_id)
    mlflow.log_feedback(trace_id=later, name="score", value=0.25,
                        source=AssessmentSource(source_type="LLM_JUDGE", source_id="judge-1"))
    mlflow.set_experiment("quiet")
    with mlflow.start_span("alone"):
        pass
""")

# Where MLflow keeps a trace: the copy's are labtrack's.
LOCATION_TAGS = {"mlflow.artifactLocation", "mlflow.trace.spansLocation"}


def fill(uri: str, cwd: Path) -> None:
    env = {**mlflow_env(), "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false"}
    out = subprocess.run([sys.executable, "-c", FILL, uri], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


def _assessment(a: Any) -> dict[str, Any]:
    d = a.to_dictionary()
    d.pop("last_update_time", None)  # MLflow rewrites it when an override invalidates the original
    return d


def _trace(t: Any) -> dict[str, Any]:
    i = t.info
    return {
        "info": (i.trace_id, i.state, i.request_time, i.execution_duration, i.request_preview, i.response_preview,
                 i.client_request_id),
        "tags": {k: v for k, v in i.tags.items() if k not in LOCATION_TAGS},
        "metadata": dict(i.trace_metadata),
        "assessments": sorted((_assessment(a) for a in i.assessments), key=lambda a: a["assessment_id"]),
        "spans": sorted((s.span_id, s.parent_id, s.name, s.span_type, s.status.status_code, s.status.description,
                         s.start_time_ns, s.end_time_ns, repr(s.inputs), repr(s.outputs),
                         sorted((k, repr(v)) for k, v in s.attributes.items()),
                         [(e.name, e.timestamp, sorted(e.attributes)) for e in s.events]) for s in t.data.spans),
    }


def observe(uri: str) -> dict[str, Any]:
    """The traces the mlflow client finds per experiment and per run, with all they hold."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    out: dict[str, Any] = {}
    for name in ("genai", "quiet"):
        exp = client.get_experiment_by_name(name)
        assert exp is not None
        traces = client.search_traces(locations=[exp.experiment_id], max_results=100)
        out[name] = {t.info.trace_id: _trace(t) for t in traces}
        for run in client.search_runs([exp.experiment_id]):
            found = client.search_traces(locations=[exp.experiment_id], run_id=run.info.run_id, max_results=100)
            out[f"{name}/{run.info.run_name}"] = sorted(t.info.trace_id for t in found)
        for trace_id in out[name]:
            out[f"get/{trace_id}"] = _trace(client.get_trace(trace_id))
    return out


def _compare(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert ours.keys() == theirs.keys()
    assert len(theirs["genai"]) == 3 and len(theirs["quiet"]) == 1
    assert theirs["genai/child"] and theirs["genai/parent"]
    assert sum(len(t["assessments"]) for t in theirs["genai"].values()) == 5
    assert sum(len(t["assessments"]) for t in theirs["quiet"].values()) in (0, 1)  # "late", where logged
    for key, seen in theirs.items():
        if key in ("genai", "quiet"):  # trace by trace, field by field: a difference says where it is
            assert ours[key].keys() == seen.keys(), key
            for trace_id, trace in seen.items():
                for field, value in trace.items():
                    assert ours[key][trace_id][field] == value, (key, trace_id, field)
        assert ours[key] == seen, key


def test_traces_import_from_an_mlflow_sqlite_database(tmp_path: Path, no_mlflow_env: None) -> None:
    _database_round_trip(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)


@pytest.mark.postgres
def test_traces_import_from_an_mlflow_postgresql_database(tmp_path: Path, no_mlflow_env: None,
                                                          pg_database: str) -> None:
    _database_round_trip(pg_database, tmp_path)


# Feedback logged after a first import: the next one copies just that.
LATER = textwrap.dedent("""
    import sys, mlflow
    mlflow.set_tracking_uri(sys.argv[1])
    exp = mlflow.get_experiment_by_name("quiet")
    trace = mlflow.search_traces(locations=[exp.experiment_id], return_type="list")[0]
    mlflow.log_feedback(trace_id=trace.info.trace_id, name="late", value="yes")
""")


def _import_twice(source: str, tmp_path: Path, to: Path | None = None,
                  counts: str = "4 traces, 5 assessments, 1 trace links") -> Path:
    """Import ``source`` into a fresh labtrack.db (``to``, else the import's default beside it):
    every trace the first time, nothing the second."""
    where = ["--to", str(to)] if to else []
    done = run_import(source, *where, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert counts in done.stdout, done.stdout
    again = run_import(source, *where, cwd=tmp_path)
    assert again.returncode == 0 and _counts(again.stdout) == "nothing new", again.stdout
    return to or tmp_path / "labtrack.db"


def _compare_on_labtrack(target: Path, theirs: dict[str, Any], tmp_path: Path) -> None:
    """What the mlflow client sees on a labtrack server over ``target`` equals ``theirs``."""
    server = start_server(f"sqlite:///{target}", tmp_path, token=None,
                          extra=["--artifacts-destination", str(target.parent / "labtrack")])
    try:
        _compare(observe(server.url), theirs)
    finally:
        server.stop()


def _database_round_trip(url: str, tmp_path: Path) -> None:
    fill(url, tmp_path)
    target = _import_twice(url, tmp_path, tmp_path / "copy" / "labtrack.db")
    later = subprocess.run([sys.executable, "-c", LATER, url], cwd=tmp_path, env=mlflow_env(), capture_output=True,
                           text=True, timeout=300)
    assert later.returncode == 0, later.stderr[-3000:]
    third = run_import(url, "--to", str(target), cwd=tmp_path)
    assert third.returncode == 0 and _counts(third.stdout) == "1 assessments", third.stdout
    mlflow_server = start_mlflow_on(url, tmp_path / "mlflow")
    try:  # the mlflow client reads traces over REST as it does from labtrack (an assessment's "valid" too)
        theirs = observe(mlflow_server.uri)
    finally:
        stop(mlflow_server.proc)
    _compare_on_labtrack(target, theirs, tmp_path)


def test_traces_import_from_a_running_mlflow_server(tmp_path: Path, no_mlflow_env: None) -> None:
    mlflow_server = start_mlflow_on(f"sqlite:///{tmp_path / 'served.db'}", tmp_path / "mlflow")
    try:
        fill(mlflow_server.uri, tmp_path)
        target = _import_twice(mlflow_server.uri, tmp_path, tmp_path / "copy" / "labtrack.db")
        _compare_on_labtrack(target, observe(mlflow_server.uri), tmp_path)
    finally:
        stop(mlflow_server.proc)


def test_traces_import_from_a_file_store(tmp_path: Path, no_mlflow_env: None) -> None:
    store = tmp_path / "mlruns"
    fill(store.as_uri(), tmp_path)
    target = _import_twice(str(store), tmp_path, counts="4 traces, 5 assessments;")  # no links in a file store
    mlflow_server = start_mlflow_on(store.as_uri(), tmp_path / "mlflow")
    try:
        theirs = observe(mlflow_server.uri)
    finally:
        stop(mlflow_server.proc)
    _compare_on_labtrack(target, theirs, tmp_path)
