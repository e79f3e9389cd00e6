"""Prompts and the gateway's endpoint API, observed the same on labtrack and on a real ``mlflow server``.

One workload through the unmodified mlflow 3.17 client (register, versions,
aliases, load, search, tags, what model searches show) and one set of bad
endpoint configurations over REST run against both servers; what a user sees
must match, timestamps and generated ids aside.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.client.conftest import TrackingServer, start_labtrack, start_mlflow, stop


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TrackingServer]]:
    servers: dict[str, TrackingServer] = {}
    try:
        servers["mlflow"] = start_mlflow(tmp_path_factory.mktemp("mlflow-prompts"))
        servers["labtrack"] = start_labtrack(tmp_path_factory.mktemp("labtrack-prompts"))
        yield servers
    finally:
        for s in servers.values():
            stop(s.proc)


def use(server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token or "")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(server.uri)
    mlflow.set_experiment(experiment_id="0")
    return mlflow


def version_view(p: Any) -> dict[str, Any]:
    return {"name": p.name, "version": p.version, "template": p.template, "variables": sorted(p.variables),
            "commit_message": p.commit_message, "tags": dict(p.tags), "aliases": sorted(p.aliases)}


def prompt_workload(mlflow: Any) -> dict[str, Any]:
    """What a user observes of prompts through mlflow.genai and MlflowClient."""
    from mlflow.exceptions import MlflowException

    out: dict[str, Any] = {}
    client = mlflow.MlflowClient()
    v1 = mlflow.genai.register_prompt("qa", "Answer {{question}} briefly.", commit_message="first",
                                      tags={"team": "nlp"})
    v2 = mlflow.genai.register_prompt("qa", "Answer {{ question }} about {{topic}}.\nCite sources.",
                                      commit_message="add topic", tags={"reviewed": "yes"})
    chat = mlflow.genai.register_prompt("chatty", [{"role": "system", "content": "You are {{persona}}."},
                                                   {"role": "user", "content": "{{question}}"}])
    out["registered"] = [version_view(v) for v in (v1, v2, chat)]
    mlflow.genai.set_prompt_alias("qa", "production", 1)
    mlflow.genai.set_prompt_alias("qa", "staging", 2)
    out["by_alias"] = version_view(mlflow.genai.load_prompt("prompts:/qa@production"))
    out["latest"] = version_view(mlflow.genai.load_prompt("prompts:/qa@latest"))
    out["by_number"] = version_view(mlflow.genai.load_prompt("qa", version=1))
    out["formatted"] = mlflow.genai.load_prompt("prompts:/qa/2").format(question="why", topic="sky")
    out["chat_formatted"] = mlflow.genai.load_prompt("prompts:/chatty/1").format(persona="kind", question="hi")
    mlflow.genai.delete_prompt_alias("qa", "staging")
    try:
        mlflow.genai.load_prompt("prompts:/qa@staging")
        out["deleted_alias"] = "loaded"
    except MlflowException as e:
        out["deleted_alias"] = e.error_code
    out["search"] = sorted((p.name, sorted((k, v) for k, v in p.tags.items() if not k.startswith("_")))
                           for p in mlflow.genai.search_prompts())
    out["search_filtered"] = [p.name for p in mlflow.genai.search_prompts(filter_string="name LIKE 'q%'")]
    out["versions"] = sorted((v.version, v.commit_message) for v in client.search_prompt_versions("qa"))
    client.set_prompt_version_tag("qa", "1", "quality", "good")
    out["version_tag"] = dict(mlflow.genai.load_prompt("qa", version=1).tags)
    client.create_registered_model("plain-model")
    out["models"] = sorted(m.name for m in client.search_registered_models())
    return out


def test_prompt_workload_is_observed_the_same(both: dict[str, TrackingServer],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    seen = {}
    try:
        for kind, server in both.items():
            seen[kind] = prompt_workload(use(server, monkeypatch))
    finally:
        mlflow.set_tracking_uri(None)
    assert seen["labtrack"] == seen["mlflow"]
    assert seen["labtrack"]["models"] == ["plain-model"]  # prompts never show among models
    assert seen["labtrack"]["by_alias"]["version"] == 1 and seen["labtrack"]["latest"]["version"] == 2


def test_raw_registry_searches_leave_prompts_out(both: dict[str, TrackingServer]) -> None:
    """What the web UI and other REST callers see (the workload above registered prompts)."""
    for server in both.values():
        auth = {"Authorization": f"Bearer {server.token}"} if server.token else {}
        models = requests.get(server.uri + "/api/2.0/mlflow/registered-models/search", headers=auth,
                              timeout=30).json()
        assert [m["name"] for m in models.get("registered_models", [])] == ["plain-model"]
        versions = requests.get(server.uri + "/api/2.0/mlflow/model-versions/search", headers=auth,
                                timeout=30).json()
        assert versions.get("model_versions", []) == []
        prompts = requests.get(server.uri + "/api/2.0/mlflow/registered-models/search", headers=auth, timeout=30,
                               params={"filter": "tags.`mlflow.prompt.is_prompt` = 'true'"}).json()
        assert sorted(m["name"] for m in prompts["registered_models"]) == ["chatty", "qa"]


BAD_ENDPOINT_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "endpoints/create", {}),
    ("POST", "endpoints/create", {"name": "bad name!", "model_configs": [{"model_definition_id": "d",
                                                                         "linkage_type": "PRIMARY"}]}),
    ("POST", "endpoints/create", {"name": "e1", "model_configs": [{"model_definition_id": "nope"}]}),
    ("POST", "endpoints/create", {"name": "e1", "model_configs": [{"model_definition_id": "d",
                                                                  "linkage_type": "SIDEWAYS"}]}),
    ("POST", "endpoints/create", {"name": "e1", "model_configs": [{"model_definition_id": "nope",
                                                                  "linkage_type": "PRIMARY"}]}),
    ("GET", "endpoints/get", {"name": "nope"}),
    ("GET", "endpoints/get", {"endpoint_id": "nope"}),
    ("POST", "endpoints/update", {"endpoint_id": "nope", "name": "y"}),
    ("DELETE", "endpoints/delete", {"endpoint_id": "nope"}),
    ("POST", "model-definitions/create", {"name": "m", "secret_id": "nope", "provider": "openai",
                                          "model_name": "x"}),
]


def test_bad_endpoint_configs_get_mlflows_error_json(both: dict[str, TrackingServer]) -> None:
    answers: dict[str, list[tuple[int, str]]] = {}
    for kind, server in both.items():
        auth = {"Authorization": f"Bearer {server.token}"} if server.token else {}
        answers[kind] = []
        for method, path, body in BAD_ENDPOINT_REQUESTS:
            url = f"{server.uri}/api/3.0/mlflow/gateway/{path}"
            r = (requests.get(url, params=body, headers=auth, timeout=30) if method == "GET"
                 else requests.request(method, url, json=body, headers=auth, timeout=30))
            error = r.json()
            assert isinstance(error.get("message"), str) and error["message"], (kind, path, error)
            answers[kind].append((r.status_code, error["error_code"]))
    assert answers["labtrack"] == answers["mlflow"]
    assert {code for _, code in answers["labtrack"]} == {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"}


def test_lt_prompts_load_with_mlflow_and_back(both: dict[str, TrackingServer],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """lt.register_prompt writes what mlflow.genai reads, on either server, and the other way round."""
    import labtrack as lt
    import mlflow

    from tests.client_state import reset_client_state

    for kind, server in both.items():
        reset_client_state()
        monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", server.token or "")
        lt.set_tracking_uri(server.uri)
        made = lt.register_prompt("lt-made", "Summarise {{text}} in {{n}} words", commit_message="by lt",
                                  tags={"owner": "me"})
        use(server, monkeypatch)
        try:
            read = mlflow.genai.load_prompt("prompts:/lt-made/1")
            assert (read.template, read.commit_message, read.tags, sorted(read.variables)) == (
                made.template, "by lt", {"owner": "me"}, ["n", "text"]), kind
            mlflow.genai.register_prompt("lt-made", "Summarise {{text}}", commit_message="by mlflow")
            mlflow.genai.set_prompt_alias("lt-made", "best", 2)
        finally:
            mlflow.set_tracking_uri(None)
        back = lt.load_prompt("prompts:/lt-made@best")
        assert (back.version, back.template, back.commit_message) == (2, "Summarise {{text}}", "by mlflow"), kind
        assert back.format(text="a b c") == "Summarise a b c"
        assert lt.load_prompt("lt-made").version == 2
        assert "lt-made" in [p.name for p in lt.search_prompts()]
        reset_client_state()
    os.environ.pop("LABTRACK_TRACKING_TOKEN", None)
