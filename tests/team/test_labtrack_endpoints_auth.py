"""labtrack's own endpoints and the trace endpoints keep a team server's permissions.

Bob holds DENY on alice's experiment.  Every labtrack endpoint that reads a run or an
experiment (downsampled and packed histories, metric summaries, media, the runs table,
exports, saved views, spans), every trace endpoint (get, search, batch, info, tags,
assessments, delete, the OTLP export) and every registered scorer endpoint must refuse him with 403 and MLflow's error JSON, as
``runs/get`` does (and as ``mlflow server --app-name basic-auth`` refuses trace reads),
while alice may do each.  A rule that names a wrong path, or an endpoint whose route the
permission check never learned, would let him through.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.test_traces import otlp_body
from tests.client.conftest import stop, wait_healthy
from tests.servers import free_port
from tests.team.conftest import labtrack_cmd, launch

ADMIN = ("admin", "admin-Secret-4821")
ALICE = ("alice", "alice-Secret-7302")
BOB = ("bob", "bob-Secret-5519")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("labtrack-team")
    out = subprocess.run([sys.executable, "-m", "labtrack", "users", "create", ADMIN[0], "--admin",
                          "--password-stdin", "--backend-store-uri", f"sqlite:///{work}/l.db"],
                         input=ADMIN[1] + "\n", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    port = free_port()
    proc, log = launch(labtrack_cmd(work, port, "--app-name", "basic-auth", "--artifacts-destination",
                                    str(work / "art")), work, {}, "labtrack")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log, 300)
        api = f"{url}/api/2.0/mlflow/"
        for who in (ALICE, BOB):
            r = requests.post(api + "users/create", json={"username": who[0], "password": who[1]},
                              auth=ADMIN, timeout=30)
            assert r.ok, r.text
        exp = requests.post(api + "experiments/create", json={"name": f"alice-{uuid.uuid4().hex[:6]}"},
                            auth=ALICE, timeout=30).json()["experiment_id"]
        run = requests.post(api + "runs/create", json={"experiment_id": exp}, auth=ALICE,
                            timeout=30).json()["run"]["info"]["run_id"]
        r = requests.post(api + "runs/log-batch", auth=ALICE, timeout=30, json={
            "run_id": run, "metrics": [{"key": "loss", "value": 1.0 / (s + 1), "timestamp": 1, "step": s}
                                       for s in range(10)]})
        assert r.ok, r.text
        trace = "tr-" + uuid.uuid4().hex
        span = {"span_id": "a1b2c3d4e5f60718", "name": "root", "start_time_ns": 1_790_000_000_000_000_000,
                "end_time_ns": 1_790_000_000_500_000_000, "status": "OK", "inputs": {"q": "secret plan"}}
        r = requests.post(f"{url}/api/2.0/labtrack/traces/log", auth=ALICE, timeout=30,
                          json={"experiment_id": exp, "trace_id": trace, "spans": [span]})
        assert r.ok, r.text
        r = requests.post(api + "users/permissions/grant", auth=ALICE, timeout=30, json={
            "username": "bob", "resource_type": "experiment", "resource_id": exp, "permission": "DENY"})
        assert r.ok, r.text
        yield {"url": url, "exp": exp, "run": run, "trace": trace}
    finally:
        stop(proc)


def _probes(exp: str, run: str, trace: str) -> list[tuple[str, str, dict[str, Any]]]:
    lt, v3 = "/api/2.0/labtrack/", "/api/3.0/mlflow/"
    where = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}]
    return [
        ("GET", "/api/2.0/mlflow/runs/get", {"run_id": run}),  # the reference: MLflow's own endpoint
        ("GET", lt + "metrics/history-downsampled", {"run_id": run, "metric_key": "loss"}),
        ("GET", lt + "metrics/history-columns", {"run_id": run, "metric_key": "loss"}),
        ("POST", lt + "runs/metric-summaries", {"run_ids": [run]}),
        ("GET", lt + "media/images", {"run_id": run}),
        ("POST", lt + "runs/export", {"experiment_ids": [exp], "format": "csv"}),
        ("POST", lt + "runs/export-histories", {"run_ids": [run], "format": "csv"}),
        ("GET", lt + "views/list", {"experiment_id": exp}),
        ("POST", lt + "runs/table", {"experiment_ids": [exp]}),
        ("GET", v3 + "traces/get", {"trace_id": trace}),
        ("POST", v3 + "traces/search", {"locations": where}),
        ("GET", "/api/2.0/mlflow/traces/search", {"experiment_ids": exp}),
        ("GET", v3 + "traces/batchGet", {"trace_ids": trace}),
        ("POST", v3 + "traces/batchGetInfos", {"trace_ids": [trace]}),
        ("GET", v3 + f"traces/{trace}/info", {}),
        ("GET", lt + "traces/spans", {"trace_id": trace}),
        ("PATCH", v3 + f"traces/{trace}/tags", {"key": "k", "value": "v"}),
        ("POST", v3 + f"traces/{trace}/assessments", {"assessment": {
            "assessment_name": "good", "trace_id": trace, "source": {"source_type": "HUMAN", "source_id": "x"},
            "feedback": {"value": 1.0}}}),
        ("POST", lt + "traces/log", {"experiment_id": exp, "spans": [{
            "span_id": "0102030405060708", "name": "more", "start_time_ns": 1_790_000_000_000_000_000,
            "end_time_ns": 1_790_000_000_100_000_000, "status": "OK"}]}),
        ("POST", v3 + "traces/delete-traces", {"experiment_id": exp, "request_ids": ["tr-" + "0" * 32]}),
        ("POST", v3 + "scorers/register", {"experiment_id": exp, "name": "judge", "serialized_scorer": "{}"}),
        ("GET", v3 + "scorers/get", {"experiment_id": exp, "name": "judge"}),
        ("GET", v3 + "scorers/versions", {"experiment_id": exp, "name": "judge"}),
        ("GET", v3 + "scorers/list", {"experiment_id": exp}),
        ("GET", v3 + "scorers/list", {"experiment_ids": [exp]}),
        ("DELETE", v3 + "scorers/delete", {"experiment_id": exp, "name": "judge", "version": 1}),
    ]


@pytest.mark.timeout(600)
def test_denied_user_is_refused_by_every_labtrack_read_endpoint(team: dict[str, Any]) -> None:
    leaks, refusals = [], []
    for method, path, params in _probes(team["exp"], team["run"], team["trace"]):
        kw: dict[str, Any] = {"params": params} if method == "GET" else {"json": params}
        alice = requests.request(method, team["url"] + path, auth=ALICE, timeout=60, **kw)
        if alice.status_code == 404 and "No such endpoint" in alice.text:
            continue  # an endpoint this checkout does not have
        assert alice.ok, (path, alice.status_code, alice.text[:300])
        bob = requests.request(method, team["url"] + path, auth=BOB, timeout=60, **kw)
        if bob.status_code != 403:
            leaks.append((path, bob.status_code, bob.text[:200]))
        else:
            refusals.append(bob.json())
    assert not leaks, leaks
    assert refusals and all(r["error_code"] == "PERMISSION_DENIED" for r in refusals), refusals


@pytest.mark.timeout(300)
def test_denied_user_cannot_export_spans_over_otlp(team: dict[str, Any]) -> None:
    body = otlp_body(uuid.uuid4().hex, [("0a0b0c0d0e0f1011", None, "root", 1)])
    headers = {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": team["exp"]}
    bob = requests.post(team["url"] + "/v1/traces", data=body, headers=headers, auth=BOB, timeout=60)
    assert bob.status_code == 403 and bob.json()["error_code"] == "PERMISSION_DENIED", bob.text
    alice = requests.post(team["url"] + "/v1/traces", data=body, headers=headers, auth=ALICE, timeout=60)
    assert alice.status_code == 200, alice.text


@pytest.mark.timeout(300)
def test_a_search_answered_from_memory_is_still_refused_to_a_denied_user(team: dict[str, Any]) -> None:
    # server/search_cache.py keeps alice's answer; bob's identical request must still be
    # checked, and refused, before any answer is looked up.
    url, body = team["url"] + "/api/2.0/mlflow/runs/search", {"experiment_ids": [team["exp"]], "max_results": 5}
    first = requests.post(url, json=body, auth=ALICE, timeout=60)
    again = requests.post(url, json=body, auth=ALICE, timeout=60)
    assert first.ok and again.text == first.text and team["run"] in first.text, first.text[:300]
    bob = requests.post(url, json=body, auth=BOB, timeout=60)
    assert bob.status_code == 403 and bob.json()["error_code"] == "PERMISSION_DENIED", bob.text[:300]
    assert team["run"] not in bob.text


@pytest.mark.timeout(300)
def test_a_list_of_every_experiments_scorers_leaves_out_what_the_user_cannot_read(team: dict[str, Any]) -> None:
    v3 = team["url"] + "/api/3.0/mlflow/scorers/"
    r = requests.post(v3 + "register", auth=ALICE, timeout=30,
                      json={"experiment_id": team["exp"], "name": "private", "serialized_scorer": "{}"})
    assert r.ok, r.text
    r = requests.post(v3 + "register", auth=ADMIN, timeout=30,
                      json={"experiment_id": "0", "name": "public", "serialized_scorer": "{}"})
    assert r.ok, r.text
    mine = {(x["experiment_id"], x["scorer_name"]) for x in requests.get(
        v3 + "list", auth=ALICE, timeout=30).json()["scorers"]}
    assert {(int(team["exp"]), "private"), (0, "public")} <= mine
    bobs = requests.get(v3 + "list", auth=BOB, timeout=30).json()["scorers"]
    assert {x["experiment_id"] for x in bobs} == {0}
