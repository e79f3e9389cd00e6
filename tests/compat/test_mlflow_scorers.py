"""Registered scorers (``mlflow.genai.scorers``) through the unmodified mlflow client:
labtrack observed as a real mlflow server.

The same workload (tests/compat/scorer_workload.py) runs once against each server, in a process
of its own; every value it reads back (names, versions, each scorer's serialized form, list
orders, errors for a missing scorer, version or experiment and a deleted experiment, what
deleting one version and all versions leaves) must be the same.  Online scoring is the one
place they differ on purpose: labtrack runs none, and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.client.conftest import TrackingServer, start_labtrack, start_mlflow, stop

ROOT = Path(__file__).resolve().parents[2]
CUSTOM = {"MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS": "true"}


@contextmanager
def _pair(tmp_path_factory: pytest.TempPathFactory, tag: str,
          env: dict[str, str]) -> Iterator[dict[str, TrackingServer]]:
    """A labtrack server and an mlflow server, both started with ``env`` added to theirs."""
    servers: dict[str, TrackingServer] = {}
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            servers["labtrack"] = start_labtrack(tmp_path_factory.mktemp(f"lt-{tag}"))
            servers["mlflow"] = start_mlflow(tmp_path_factory.mktemp(f"mlflow-{tag}"))
        yield servers
    finally:
        for s in servers.values():
            stop(s.proc)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TrackingServer]]:
    with _pair(tmp_path_factory, "scorers", {}) as servers:
        yield servers


def observe(server: TrackingServer, part: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    child = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABTRACK_"))}
    child.update(MLFLOW_TRACKING_URI=server.uri, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
                 MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                 # a built-in scorer dumps its required_columns, a set, in the process's hash order
                 PYTHONHASHSEED="0",
                 PYTHONPATH=os.pathsep.join([str(ROOT), child.get("PYTHONPATH", "")]), **(env or {}))
    if server.token:
        child["MLFLOW_TRACKING_TOKEN"] = server.token
    out = subprocess.run([sys.executable, "-m", "tests.compat.scorer_workload", part], cwd=ROOT, env=child,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _same(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    for key in sorted(theirs):
        assert ours.get(key) == theirs[key], key
    assert ours == theirs


@pytest.mark.timeout(900)  # mlflow server's start, and two client processes, on a busy CI host
def test_same_observations_as_mlflow(both: dict[str, TrackingServer]) -> None:
    ours = observe(both["labtrack"], "builtin")
    theirs = observe(both["mlflow"], "builtin")
    our_online, their_online = ours.pop("online"), theirs.pop("online")
    _same(ours, theirs)

    # And what both must show, so that two equally wrong servers would fail too.
    assert ours["registered"] == {"name": "polite", "same_dump": True}
    assert [s["name"] for s in ours["list"]] == ["Tone", "polite", "relevance", "safety", "tone"]
    assert [v for _, v in ours["versions"]] == [1, 2]
    french = "Answer in French <b>é</b>"
    assert ours["versions"][1][0]["dump"]["builtin_scorer_pydantic_data"]["guidelines"][1] == french
    assert ours["get_latest"] == ours["versions"][1][0] and ours["get_v1"] == ours["versions"][0][0]
    assert ours["get_v1_round_trip"] and ours["judge_round_trip"]
    assert ours["rest"]["get"]["body"]["scorer"]["scorer_version"] == 1
    assert [(s["experiment_id"], s["scorer_name"]) for s in ours["rest"]["everywhere"]["body"]["scorers"]] == [
        (0, "zeta"), (1, "Tone"), (1, "polite"), (1, "relevance"), (1, "safety"), (1, "tone"),
        (2, "safety-elsewhere")]
    assert [s["experiment_id"] for s in ours["rest"]["across"]["body"]["scorers"]] == [1] * 5 + [2]
    assert ours["rest"]["both"]["status"] == 400
    errors = ours["errors"]
    assert errors["missing_scorer"] == {"error_code": "RESOURCE_DOES_NOT_EXIST", "message":
                                        "RESOURCE_DOES_NOT_EXIST: Scorer with name 'nope' not found for experiment 1."}
    assert errors["missing_version"]["message"].endswith("Scorer with name 'polite' and version 99 not found "
                                                         "for experiment 1.")
    assert errors["missing_experiment"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert ours["after_delete_v1"] == [2] and ours["latest_after_delete_v1"] == ["Be polite", french]
    assert ours["after_delete_each"]["list"] == ["Tone", "relevance", "safety", "tone"]
    assert ours["after_delete_each"]["delete_all"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert ours["reregistered_versions"] == [1] and ours["relevance_again"] == [1]
    assert "relevance" not in ours["after_delete_all"]["list"]
    scorer_ids = {s["scorer_name"]: s["scorer_id"] for s in ours["rest"]["everywhere"]["body"]["scorers"]}
    after = {s["scorer_name"]: s["scorer_id"] for s in ours["rest"]["after"]["body"]["scorers"]}
    assert after["polite"] == scorer_ids["polite"]  # emptied one version at a time: the same scorer
    assert after["relevance"] != scorer_ids["relevance"]  # deleted whole: a new scorer
    assert "MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS" in ours["custom_refused"]["message"]
    assert ours["deleted_experiment"]["across"] == {"status": 200, "body": {}}

    # Online scoring: each refuses with an MlflowException the user can read; labtrack's names why.
    assert their_online["error_code"] == "INVALID_PARAMETER_VALUE"
    assert our_online["error_code"] == "NOT_IMPLEMENTED"
    assert "labtrack does not run online scoring" in our_online["message"]
    assert "mlflow.genai.evaluate" in our_online["message"]


def test_online_scoring_endpoints(both: dict[str, TrackingServer]) -> None:
    """``list_scorers``/``get_scorer`` ask for online configurations (none here); setting one is a
    501 in MLflow's error JSON, not a 500 or a page."""
    lt = both["labtrack"]
    headers = {"Authorization": f"Bearer {lt.token}"}
    base = lt.uri + "/api/3.0/mlflow/scorers/"
    configs = requests.get(base + "online-configs", params={"scorer_ids": ["a", "b"]}, headers=headers, timeout=30)
    assert configs.status_code == 200 and configs.json() == {"configs": []}
    missing = requests.get(base + "online-configs", headers=headers, timeout=30)
    assert missing.status_code == 400 and missing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    put = requests.put(base + "online-config", json={"experiment_id": "0", "name": "x", "sample_rate": 0.5},
                       headers=headers, timeout=30)
    assert put.status_code == 501
    assert set(put.json()) == {"error_code", "message"} and put.json()["error_code"] == "NOT_IMPLEMENTED"


@pytest.mark.timeout(900)
def test_custom_scorers_when_both_servers_allow_them(tmp_path_factory: pytest.TempPathFactory) -> None:
    """With MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS=true (server and client), @scorer scorers register,
    list and load back, and score as they did."""
    with _pair(tmp_path_factory, "custom", CUSTOM) as servers:
        ours = observe(servers["labtrack"], "custom", CUSTOM)
        theirs = observe(servers["mlflow"], "custom", CUSTOM)
        _same(ours, theirs)
        assert ours["exact"] == {"dump_round_trip": True, "scores": [True, False]}
        assert [s["name"] for s in ours["list"]] == ["exact", "length_ok"]
        assert "outputs == expectations" in ours["list"][0]["dump"]["call_source"]
        assert ours["versions"] == [1, 2] and ours["short_scores"] is True


def test_a_gateway_judge_must_name_an_endpoint_of_the_gateway(tmp_path: Path) -> None:
    """As mlflow server refuses a judge on ``gateway:/<name>`` when it has no such endpoint (its
    message, 404), labtrack asks its own gateway (here an endpoint from --gateway-config)."""
    config = tmp_path / "gateway.yaml"
    config.write_text("endpoints:\n  - name: chat\n    endpoint_type: llm/v1/chat\n    model:\n"
                      "      provider: openai\n      name: m\n      config:\n"
                      "        openai_api_base: http://127.0.0.1:9/v1\n")
    lt = start_labtrack(tmp_path, "--gateway-config", str(config))
    try:
        def register(model: str) -> requests.Response:
            judge = {"name": "j",
                     "instructions_judge_pydantic_data": {"instructions": "{{ outputs }}?", "model": model}}
            return requests.post(lt.uri + "/api/3.0/mlflow/scorers/register", timeout=30,
                                 headers={"Authorization": f"Bearer {lt.token}"},
                                 json={"experiment_id": "0", "name": "j", "serialized_scorer": json.dumps(judge)})

        missing = register("gateway:/nosuch")
        assert missing.status_code == 404 and missing.json() == {
            "error_code": "RESOURCE_DOES_NOT_EXIST", "message": "GatewayEndpoint not found (name='nosuch')"}
        found = register("gateway:/chat")
        assert found.status_code == 200 and json.loads(found.json()["serialized_scorer"])[
            "instructions_judge_pydantic_data"]["model"] == "gateway:/chat"
    finally:
        stop(lt.proc)
