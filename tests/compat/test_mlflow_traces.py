"""Tracing, assessments and evaluation datasets through the unmodified mlflow client:
labtrack observed as a real mlflow server.

The same workload (tests/compat/trace_workload.py) runs once against each server, in a process
of its own; every value it reads back (trace ids, span names and hierarchy, inputs and outputs,
tags, metadata, assessments, search results and pages, datasets and their records, and
``mlflow.genai.evaluate`` on one) must be the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.client.conftest import TrackingServer, start_labtrack, start_mlflow, stop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TrackingServer]]:
    servers: dict[str, TrackingServer] = {}
    try:
        servers["labtrack"] = start_labtrack(tmp_path_factory.mktemp("lt-traces"))
        servers["mlflow"] = start_mlflow(tmp_path_factory.mktemp("mlflow-traces"))
        yield servers
    finally:
        for s in servers.values():
            stop(s.proc)


def observe(server: TrackingServer) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABTRACK_"))}
    env.update(MLFLOW_TRACKING_URI=server.uri, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    if server.token:
        env["MLFLOW_TRACKING_TOKEN"] = server.token
    out = subprocess.run([sys.executable, "-m", "tests.compat.trace_workload"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    # The exporter logs a warning, not an error, when a trace is lost: none may appear.
    assert "Failed to" not in out.stderr, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(1200)  # two workloads with mlflow.genai.evaluate, and mlflow server's start, on 2 cores
def test_same_observations_as_mlflow(both: dict[str, TrackingServer]) -> None:
    ours = observe(both["labtrack"])
    theirs = observe(both["mlflow"])
    for name in sorted(theirs["traces"]):
        assert ours["traces"].get(name) == theirs["traces"][name], name
    assert ours == theirs

    # And what both must show, so that two equally wrong servers would fail too.
    t0 = ours["traces"]["T0"]
    assert t0["trace_id_round_trip"] and t0["artifact_location_ends"]
    assert [(s["name"], s["parent"]) for s in t0["spans"]] == [("add", "pipeline"), ("pipeline", None),
                                                              ("retrieve", "pipeline")]
    retrieve = next(s for s in t0["spans"] if s["name"] == "retrieve")
    assert retrieve["outputs"][0]["html"].startswith("<img src=x onerror=")
    assert retrieve["events"] == [["hits", {"n": 2}]]
    assert ours["traces"]["T1"]["spans"][1]["inputs"]["question"].startswith("long input long input")
    assert len(ours["traces"]["T1"]["spans"][1]["inputs"]["question"]) == len("long input ") * 2000
    assert ours["traces"]["T2"]["state"] == "ERROR"
    assert ours["traces"]["T3"]["metadata"]["mlflow.sourceRun"] == "R0"
    assert ours["traces"]["T4"]["metadata"]["mlflow.modelId"] == "M0"
    assessments = {a["id"]: a for a in t0["assessments"] + ours["traces"]["T1"]["assessments"]}
    assert assessments["A0"]["value"] is False and assessments["A0"]["source"] == ["HUMAN", "alice"]
    assert assessments["A2"]["valid"] is False and assessments["A3"]["overrides"] == "A2"
    assert ours["traces"]["T2"]["assessments"] == []
    assert ours["searches"]["pages"] == [["T0", "T1"], ["T2", "T3"], ["T4"]]
    assert ours["searches"]["after_delete"] == ["T3", "T2", "T1", "T0"]
    ds = ours["datasets"]
    assert ds["count"] == 3 and ds["same_by_name"] and ds["found"] == [True] and ds["experiments"]
    assert {"expectations": {"answer": "x", "style": "short"}, "inputs": {"q": "b"}} in ds["rows"]
    assert ds["tags"] == {"stage": "dev"} and ds["eval_metrics"] == {"exact/mean": 0.5}
    assert ds["eval_assessments"] == [[["answer", "A"], ["exact", "True"]], [["answer", "x"], ["exact", "False"]]]


def test_otlp_export_errors_are_mlflow_json(both: dict[str, TrackingServer]) -> None:
    lt = both["labtrack"]
    headers = {"Authorization": f"Bearer {lt.token}", "x-mlflow-experiment-id": "0"}
    bad = requests.post(lt.uri + "/v1/traces", data=b"\x0a\xff\xff", timeout=30,
                        headers={**headers, "Content-Type": "application/x-protobuf"})
    assert bad.status_code == 400 and bad.json()["error_code"] == "BAD_REQUEST"
    form = requests.post(lt.uri + "/v1/traces", data=b"a=b", timeout=30,
                         headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 400
    missing = requests.get(lt.uri + "/api/3.0/mlflow/traces/get", params={"trace_id": "tr-" + "0" * 32},
                           headers=headers, timeout=30)
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    anonymous = requests.post(lt.uri + "/v1/traces", data=b"", timeout=30,
                              headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"})
    assert anonymous.status_code == 401
