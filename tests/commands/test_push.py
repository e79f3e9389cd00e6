"""``labtrack push --to``: runs logged to a labtrack server, published to a real ``mlflow
server`` and to another labtrack server, read back there with the real mlflow client (runs,
models, traces, prompts and evaluation datasets).

The source is filled by the unmodified mlflow client (nested runs, NaN/±Inf and a
2,000-point history, artifacts, a logged sklearn model registered with a stage and
an alias); ``labtrack push`` runs as a user runs it, in the source's folder, where
it finds the server through ``mlruns.db``.  A second push must add nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import TrackingServer
from tests.client.conftest import stop
from tests.commands.conftest import ADMIN, command_env, start_team_server
from tests.servers import ServerProcess, start_server

EXPERIMENT = "push-exp"
MODEL = "push-model"
PROMPT = "push-prompt"
DATASET = "push-eval-set"
HISTORY = 2000
MAPPING_TAGS = ("labtrack.push.source_run_id",)

SOURCE_SCRIPT = textwrap.dedent("""
    import math, os, sys, tempfile
    import mlflow, numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    mlflow.set_experiment(sys.argv[1])
    mlflow.genai.register_prompt(sys.argv[3], "Answer {{question}}", commit_message="first", tags={"team": "nlp"})
    mlflow.genai.register_prompt(sys.argv[3], [{"role": "user", "content": "Answer {{question}} well"}],
                                 commit_message="chat form")
    mlflow.genai.set_prompt_alias(sys.argv[3], "production", 1)
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.genai.load_prompt(f"prompts:/{sys.argv[3]}/1")  # links the prompt to the run
        with mlflow.start_span("answer", span_type="CHAIN") as span:
            span.set_inputs({"question": "why?"})
            with mlflow.start_span("llm", span_type="LLM") as llm:
                llm.set_attribute("model", "tiny")
                llm.set_outputs({"text": "because"})
            span.set_outputs({"answer": "because"})
        trace_id = mlflow.get_last_active_trace_id()
        mlflow.log_feedback(trace_id=trace_id, name="helpful", value=True, rationale="short and right")
        mlflow.log_expectation(trace_id=trace_id, name="expected", value="because")
        mlflow.log_params({"lr": "0.1", "layers": "3"})
        mlflow.set_tags({"team": "vision", "note": "offline", "publish": "yes"})
        for step in range(%(history)d):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("odd", float("nan"), step=0)
        mlflow.log_metric("odd", float("inf"), step=1)
        mlflow.log_metric("odd", float("-inf"), step=2)
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "notes.txt"), "w").write("hello from the cluster")
            os.makedirs(os.path.join(d, "plots"))
            open(os.path.join(d, "plots", "a.bin"), "wb").write(bytes(range(256)) * 40)
            mlflow.log_artifacts(d)
        X = np.arange(10, dtype=float).reshape(-1, 1)
        mlflow.log_input(mlflow.data.from_numpy(X, name="train"), context="training")
        model = LinearRegression().fit(X, 2 * X.ravel() + 1)
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=sys.argv[2])
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_param("fold", "1")
            mlflow.set_tag("publish", "yes")
            mlflow.log_metric("acc", 0.75, step=0)
            mlflow.log_metric("acc", 0.8, step=1)
    with mlflow.start_run(run_name="other"):
        mlflow.log_param("lr", "0.5")  # the filter below leaves this run out
        with mlflow.start_span("not-pushed"):
            pass
    with mlflow.start_span("judged-later"):  # of no run, then linked to the pushed child
        pass
    client = MlflowClient()
    client.link_traces_to_run([mlflow.get_last_active_trace_id()], child.info.run_id)
    from mlflow.genai.datasets import create_dataset
    exp_id = mlflow.get_experiment_by_name(sys.argv[1]).experiment_id
    dataset = create_dataset(name=sys.argv[4], experiment_id=exp_id, tags={"stage": "v1", "owner": "nlp"})
    dataset.merge_records([
        {"inputs": {"question": "what?"}, "expectations": {"answer": "that"}, "tags": {"topic": "things"}},
        {"inputs": {"question": "how?", "detail": [1, 2.5, None]}, "outputs": {"answer": "so"},
         "expectations": {"answer": "like so", "score": 0.9}},
    ])
    dataset.merge_records([client.get_trace(trace_id)])  # a record made from a trace: its source is the trace
    from mlflow.genai.scorers import Guidelines, Safety
    Guidelines(name="polite", guidelines=["Be polite"]).register(experiment_id=exp_id)
    Guidelines(name="polite", guidelines=["Be polite", "Be brief"]).register(experiment_id=exp_id)
    Safety().register(experiment_id=exp_id)
    client.transition_model_version_stage(sys.argv[2], "1", "Staging")
    client.set_registered_model_alias(sys.argv[2], "champion", "1")
    client.set_model_version_tag(sys.argv[2], "1", "validated", "yes")
    client.update_model_version(sys.argv[2], "1", description="first cut")
""") % {"history": HISTORY}

FILTER = "tags.publish = 'yes'"


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A labtrack server on <folder>/mlruns.db, filled by the mlflow client (once: the
    destinations are session-wide, so a module-wide source would be filled again for each)."""
    folder = tmp_path_factory.mktemp("push-source")
    srv = start_server(f"sqlite:///{folder / 'mlruns.db'}", folder)
    env = _mlflow_env(srv.url, srv.token)
    env["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    out = subprocess.run([sys.executable, "-c", SOURCE_SCRIPT, EXPERIMENT, MODEL, PROMPT, DATASET], env=env,
                         capture_output=True, text=True, timeout=300, cwd=folder)
    assert out.returncode == 0, out.stderr[-3000:]
    yield srv
    srv.stop()


@pytest.fixture
def destination(remote: TrackingServer) -> TrackingServer:
    """A real ``mlflow server`` and a real labtrack server (tests/commands/conftest.py)."""
    return remote


def _mlflow_env(url: str, token: str | None) -> dict[str, str]:
    env = command_env(token)
    env["MLFLOW_TRACKING_URI"] = url
    return env


def _push(source: ServerProcess, dest: TrackingServer, experiment: str = EXPERIMENT,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``labtrack push`` run in the source's folder; the destination's token in MLflow's variable."""
    return subprocess.run([sys.executable, "-m", "labtrack", "push", "--to", dest.uri,
                           "--experiment", experiment, "--filter", FILTER],
                          cwd=source.artifacts.parent, env=env or command_env(dest.token),
                          capture_output=True, text=True, timeout=600)


def _client(url: str, token: str | None, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token or "")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return MlflowClient(tracking_uri=url, registry_uri=url)


def _runs(client: Any, experiment: str = EXPERIMENT) -> dict[str, Any]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id], max_results=100)}


def _history(client: Any, run_id: str, key: str) -> list[tuple[int, int, str]]:
    return sorted((m.step, m.timestamp, repr(m.value)) for m in client.get_metric_history(run_id, key))


def _tree(client: Any, run_id: str, path: str | None = None) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            out.update(_tree(client, run_id, f.path))
        else:
            out[f.path] = f.file_size
    return out


def _summary(out: subprocess.CompletedProcess[str]) -> dict[str, int]:
    line = out.stdout.strip().splitlines()[-1]
    return {name: int(n) for n, name in re.findall(r"(\d+) (new|completed|unchanged|metric points|"
                                                   r"artifact files|logged models|model versions|traces|"
                                                   r"trace links|assessments|prompt versions|dataset records|"
                                                   r"evaluation datasets|scorer versions)[,; ]", line)}


def _as_stored(histories: dict[str, list[tuple[int, int, str]]], kind: str) -> dict[str, Any]:
    """Histories as a server of ``kind`` keeps them: MLflow's SQL store turns ±Inf into ±max float."""
    if kind != "mlflow":
        return histories
    big = {"inf": repr(sys.float_info.max), "-inf": repr(-sys.float_info.max)}
    return {k: [(s, t, big.get(v, v)) for s, t, v in points] for k, points in histories.items()}


def _model_files(url: str, token: str | None, monkeypatch: pytest.MonkeyPatch,
                 dst: Path) -> dict[str, bytes]:
    import mlflow

    _client(url, token, monkeypatch)  # sets the token for this server
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    try:
        root = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}@champion", dst_path=str(dst)))
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert "MLmodel" in files
    return files


def _snapshot(url: str, token: str | None, monkeypatch: pytest.MonkeyPatch,
              experiment: str = EXPERIMENT) -> dict[str, dict[str, Any]]:
    """What the mlflow client sees of the experiment's runs, by run name."""
    client = _client(url, token, monkeypatch)
    out = {}
    for name, run in _runs(client, experiment).items():
        out[name] = {
            "id": run.info.run_id, "params": run.data.params, "tags": run.data.tags,
            "info": (run.info.status, run.info.start_time, run.info.end_time, run.info.user_id),
            "histories": {k: _history(client, run.info.run_id, k) for k in run.data.metrics},
            "artifacts": _tree(client, run.info.run_id),
            "inputs": sorted((d.dataset.name, d.dataset.digest, d.dataset.source_type,
                              tuple((t.key, t.value) for t in d.tags))
                             for d in (run.inputs.dataset_inputs if run.inputs else []))}
    return out


def test_push_copies_runs_and_a_second_push_adds_nothing(
        source: ServerProcess, destination: TrackingServer, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    first = _push(source, destination)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "pushing runs" in first.stderr  # the progress bar
    counts = _summary(first)
    assert counts["new"] == 2 and counts["unchanged"] == 0, first.stdout
    assert counts["metric points"] == HISTORY + 3 + 2
    assert counts["logged models"] == 1 and counts["model versions"] == 1

    src = _snapshot(source.url, source.token, monkeypatch)
    dst = _snapshot(destination.uri, destination.token, monkeypatch)
    assert set(dst) == {"parent", "child"}  # "other" is not matched by the filter
    for name in ("parent", "child"):
        a, b = src[name], dst[name]
        assert b["params"] == a["params"] and b["info"] == a["info"]
        assert b["tags"]["labtrack.push.source_run_id"] == a["id"]
        for key, value in a["tags"].items():
            if key == "mlflow.parentRunId":
                assert b["tags"][key] == dst["parent"]["id"]
            else:
                assert b["tags"].get(key) == value, key
        assert b["histories"] == _as_stored(a["histories"], destination.kind)
        assert b["artifacts"] == a["artifacts"]
        assert b["inputs"] == a["inputs"]
    assert [i[0] for i in dst["parent"]["inputs"]] == ["train"]
    assert len(dst["parent"]["histories"]["loss"]) == HISTORY
    assert [v for _, _, v in dst["parent"]["histories"]["odd"]] == [
        v for _, _, v in _as_stored({"odd": [(0, 0, "nan"), (1, 0, "inf"), (2, 0, "-inf")]},
                                    destination.kind)["odd"]]
    assert dst["parent"]["artifacts"]["plots/a.bin"] == 256 * 40

    client = _client(destination.uri, destination.token, monkeypatch)
    parent = dst["parent"]["id"]
    got = Path(client.download_artifacts(parent, "notes.txt", str(tmp_path)))
    assert got.read_text() == "hello from the cluster"
    # The registered version: its stage, alias, tag and description, and a model that predicts.
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert version.current_stage == "Staging" and version.description == "first cut"
    assert version.tags["validated"] == "yes" and version.run_id == parent
    models = client.search_logged_models([client.get_run(parent).info.experiment_id])
    assert len(models) == 1 and models[0].source_run_id == parent
    assert version.source == f"models:/{models[0].model_id}"
    # The model's files, fetched through the registry as pyfunc.load_model fetches them.
    assert _model_files(destination.uri, destination.token, monkeypatch, tmp_path / "d") == \
        _model_files(source.url, source.token, monkeypatch, tmp_path / "s")

    # Again: nothing new, and the destination holds exactly what it held.
    client = _client(destination.uri, destination.token, monkeypatch)
    versions = len(client.search_model_versions(f"name = '{MODEL}'"))
    second = _push(source, destination)
    assert second.returncode == 0, second.stderr[-3000:]
    counts = _summary(second)
    assert counts["new"] == 0 and counts["completed"] == 0 and counts["unchanged"] == 2, second.stdout
    assert counts["metric points"] == counts["artifact files"] == counts["model versions"] == 0
    assert _snapshot(destination.uri, destination.token, monkeypatch) == dst
    client = _client(destination.uri, destination.token, monkeypatch)
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == versions == 1
    assert len(client.search_logged_models([client.get_run(parent).info.experiment_id])) == 1


def test_push_completes_a_run_that_logged_more(
        source: ServerProcess, destination: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run pushed while it was running gets only its new points on the next push."""
    src = _client(source.url, source.token, monkeypatch)
    experiment = f"push-live-{destination.kind}"
    run = src.create_run(src.create_experiment(experiment), run_name="live", tags={"publish": "yes"})
    src.log_param(run.info.run_id, "lr", "0.1")
    for step in range(5):
        src.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    first = _push(source, destination, experiment)
    assert first.returncode == 0, first.stderr[-3000:]
    assert _summary(first)["new"] == 1
    for step in range(5, 8):
        src.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    src.set_terminated(run.info.run_id)
    second = _push(source, destination, experiment)
    counts = _summary(second)
    assert counts["completed"] == 1 and counts["new"] == 0 and counts["metric points"] == 3, second.stdout
    want = _snapshot(source.url, source.token, monkeypatch, experiment)["live"]
    copy = _snapshot(destination.uri, destination.token, monkeypatch, experiment)["live"]
    assert copy["info"] == want["info"] and want["info"][0] == "FINISHED"
    assert copy["histories"] == want["histories"] and len(copy["histories"]["loss"]) == 8
    third = _push(source, destination, experiment)
    assert _summary(third)["completed"] == 0


def test_push_errors_are_one_line(source: ServerProcess, tmp_path: Path) -> None:
    env = command_env()
    out = subprocess.run([sys.executable, "-m", "labtrack", "push", "--to", "http://127.0.0.1:9",
                          "--experiment", "no-such-experiment"], cwd=source.artifacts.parent,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "no-such-experiment" in out.stderr
    assert "Traceback" not in out.stderr


def test_push_signs_in_with_basic_auth(source: ServerProcess, tmp_path: Path) -> None:
    """A team server's user and password come from MLflow's variables, as for the mlflow client."""
    import requests

    team = start_team_server(tmp_path)
    try:
        env = command_env()
        env.update(MLFLOW_TRACKING_USERNAME=ADMIN[0], MLFLOW_TRACKING_PASSWORD="wrong-" + ADMIN[1])
        refused = _push(source, team, env=env)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert refused.stderr.strip().splitlines()[-1].startswith("labtrack: ")
        assert ADMIN[1] not in refused.stderr
        env["MLFLOW_TRACKING_PASSWORD"] = ADMIN[1]
        first = _push(source, team, env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        assert _summary(first)["new"] == 2
        second = _push(source, team, env=env)
        assert _summary(second)["unchanged"] == 2 and _summary(second)["new"] == 0
        found = requests.post(f"{team.uri}/api/2.0/mlflow/runs/search", auth=ADMIN, timeout=60, json={
            "experiment_ids": [requests.get(f"{team.uri}/api/2.0/mlflow/experiments/get-by-name",
                                            params={"experiment_name": EXPERIMENT}, auth=ADMIN,
                                            timeout=60).json()["experiment"]["experiment_id"]]}).json()
        assert len(found["runs"]) == 2
    finally:
        stop(team.proc)


def _genai(url: str, token: str | None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The experiment's traces (spans, assessments, run) and the prompt, as the mlflow client sees them."""
    import mlflow

    client = _client(url, token, monkeypatch)
    runs = {r.info.run_id: name for name, r in _runs(client).items()}
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    traces = {}
    for t in client.search_traces(locations=[exp]):
        full = client.get_trace(t.info.trace_id)
        traces[t.info.trace_id] = {
            "run": runs.get(full.info.trace_metadata.get("mlflow.sourceRun", "")),
            "state": str(full.info.state), "request_time": full.info.request_time,
            "spans": sorted((s.name, s.span_type, str(s.inputs), str(s.outputs), s.start_time_ns, s.end_time_ns,
                             s.parent_id is None, s.attributes.get("model")) for s in full.data.spans),
            "assessments": sorted((a.name, a.source.source_type, str(a.value), a.rationale, a.create_time_ms)
                                  for a in full.info.assessments),
            # MLflow's search by run finds the traces a run logged and those linked to it.
            "found_by_run": sorted(name for rid, name in runs.items()
                                   if t.info.trace_id in {x.info.trace_id for x in
                                                          client.search_traces(locations=[exp], run_id=rid)})}
    # The tracking URI too: load_prompt records its use there, and MLflow's default is an
    # mlflow.db in the working directory.
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    try:
        versions = [mlflow.genai.load_prompt(f"prompts:/{PROMPT}/{v}") for v in (1, 2)]
        alias = mlflow.genai.load_prompt(f"prompts:/{PROMPT}@production").version
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    prompt = [(v.version, v.template, v.commit_message, v.tags.get("team")) for v in versions]
    return {"traces": traces, "prompt": prompt, "alias": alias}


def test_push_copies_traces_with_their_assessments_and_the_prompts(
        source: ServerProcess, destination: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an LLM app logged goes with its runs: traces keep their ids and spans and point at the
    copied run, feedback and expectations follow, and prompts keep their names and versions."""
    first = _push(source, destination)
    assert first.returncode == 0, first.stderr[-3000:]
    want = _genai(source.url, source.token, monkeypatch)
    got = _genai(destination.uri, destination.token, monkeypatch)
    pushed = {tid: t for tid, t in want["traces"].items() if t["run"] != "other"}
    assert len(pushed) == 2 and len(want["traces"]) == 3  # the filtered-out run's trace stays behind
    assert got["traces"] == pushed
    trace, linked = sorted(got["traces"].values(), key=lambda t: t["run"] is None)
    assert trace["run"] == "parent" and len(trace["spans"]) == 2 and len(trace["assessments"]) == 2
    assert trace["found_by_run"] == ["parent"]
    assert linked["run"] is None and linked["found_by_run"] == ["child"]  # its link came along
    assert got["prompt"] == want["prompt"] and got["alias"] == want["alias"] == 1
    assert got["prompt"][1][1] == [{"role": "user", "content": "Answer {{question}} well"}]
    again = _push(source, destination)
    assert again.returncode == 0, again.stderr[-3000:]
    counts = _summary(again)
    assert counts["traces"] == counts["trace links"] == counts["assessments"] == counts["prompt versions"] == 0, \
        again.stdout
    assert _genai(destination.uri, destination.token, monkeypatch) == got


def _eval_datasets(url: str, token: str | None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The push experiment's evaluation datasets, their tags and records, as the mlflow client sees them."""
    import mlflow
    from mlflow.genai.datasets import get_dataset, search_datasets

    client = _client(url, token, monkeypatch)
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    mlflow.set_tracking_uri(url)
    try:
        found = {d.name: d for d in search_datasets(experiment_ids=[exp])}
        out = {}
        for name, d in found.items():
            d = get_dataset(name=name)  # by name, as a user finds it
            records = sorted(
                (json.dumps(r["inputs"], sort_keys=True), json.dumps(r["outputs"] or None, sort_keys=True),
                 json.dumps(r["expectations"] or None, sort_keys=True),
                 json.dumps({k: v for k, v in (r["tags"] or {}).items() if k != "mlflow.user"}, sort_keys=True),
                 getattr(r["source"].source_type, "value", None) if r["source"] else None, r["source_id"],
                 json.dumps(r["source"].source_data if r["source"] else None, sort_keys=True))
                for r in d.to_df().to_dict("records"))
            out[name] = {"tags": {k: v for k, v in d.tags.items() if k != "mlflow.user"},
                         "experiments": d.experiment_ids == [exp], "records": records}
        return out
    finally:
        mlflow.set_tracking_uri(None)


def test_push_copies_evaluation_datasets_with_their_records(
        source: ServerProcess, destination: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """An evaluation dataset goes with its experiment: its tags, and every record's inputs,
    outputs, expectations, tags and source (a trace's id for one made from a trace)."""
    first = _push(source, destination)
    assert first.returncode == 0, first.stderr[-3000:]
    want = _eval_datasets(source.url, source.token, monkeypatch)
    assert list(want) == [DATASET] and len(want[DATASET]["records"]) >= 3  # another destination's may follow
    assert {"HUMAN", "TRACE"} <= {r[4] for r in want[DATASET]["records"]}
    got = _eval_datasets(destination.uri, destination.token, monkeypatch)
    assert got == want
    again = _push(source, destination)
    assert again.returncode == 0, again.stderr[-3000:]
    counts = _summary(again)
    assert counts["dataset records"] == counts["evaluation datasets"] == 0, again.stdout
    assert _eval_datasets(destination.uri, destination.token, monkeypatch) == got
    # Records added and changed at the source since: only those two go.
    checked = {f"checked for {destination.uri}": True}
    _merge(source, monkeypatch, [{"inputs": {"question": "added later", "to": destination.uri}},
                                 {"inputs": {"question": "what?"}, "expectations": checked}])
    third = _push(source, destination)
    assert third.returncode == 0, third.stderr[-3000:]
    assert _summary(third)["dataset records"] == 2, third.stdout
    assert _eval_datasets(destination.uri, destination.token, monkeypatch) == \
        _eval_datasets(source.url, source.token, monkeypatch)


def _merge(source: ServerProcess, monkeypatch: pytest.MonkeyPatch, records: list[dict[str, Any]]) -> None:
    import mlflow
    from mlflow.genai.datasets import get_dataset

    _client(source.url, source.token, monkeypatch)
    mlflow.set_tracking_uri(source.url)
    try:
        get_dataset(name=DATASET).merge_records(records)
    finally:
        mlflow.set_tracking_uri(None)


def _scorers(url: str, token: str | None, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The push experiment's registered scorers, each with its versions as the mlflow client loads them."""
    import mlflow
    from mlflow.genai.scorers import list_scorers
    from mlflow.genai.scorers.registry import list_scorer_versions

    client = _client(url, token, monkeypatch)
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    mlflow.set_tracking_uri(url)
    try:
        return {s.name: [(version, loaded.model_dump()) for loaded, version in
                         list_scorer_versions(name=s.name, experiment_id=exp)]
                for s in list_scorers(experiment_id=exp)}
    finally:
        mlflow.set_tracking_uri(None)


def test_push_copies_registered_scorers_with_every_version(
        source: ServerProcess, destination: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered scorer goes with its experiment, every version in order, numbered as at the
    source; a second push sends none, and a version registered since is the one that goes."""
    first = _push(source, destination)
    assert first.returncode == 0, first.stderr[-3000:]
    want = _scorers(source.url, source.token, monkeypatch)
    assert {"polite", "safety"} <= set(want) and [v for v, _ in want["polite"]][:2] == [1, 2]
    assert _scorers(destination.uri, destination.token, monkeypatch) == want
    again = _push(source, destination)
    assert again.returncode == 0 and _summary(again)["scorer versions"] == 0, again.stdout
    import mlflow
    from mlflow.genai.scorers import Guidelines

    exp = _client(source.url, source.token, monkeypatch).get_experiment_by_name(EXPERIMENT).experiment_id
    mlflow.set_tracking_uri(source.url)
    try:
        Guidelines(name="polite", guidelines=["Be polite", f"Cite {destination.uri}"]).register(experiment_id=exp)
    finally:
        mlflow.set_tracking_uri(None)
    third = _push(source, destination)
    assert third.returncode == 0 and _summary(third)["scorer versions"] == 1, third.stdout
    assert _scorers(destination.uri, destination.token, monkeypatch) == \
        _scorers(source.url, source.token, monkeypatch)
