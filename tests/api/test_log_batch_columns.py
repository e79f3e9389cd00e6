"""``runs/log-batch`` takes a batch of plain points ({key, value, timestamp, step}, what every
client sends) as columns, and anything else point by point.  Both paths must store and refuse
exactly alike: each batch here goes to one run as sent and to a twin run with
``"dataset_name": null`` added to every point, which is the same point but not the plain
shape, and the answers, histories and latest values of the two runs are compared."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.servers import ServerProcess

T0 = 1_700_000_000_000


def _points(keys: list[str], n: int, *, start: int = 0) -> list[dict[str, Any]]:
    return [{"key": keys[i % len(keys)], "value": math.sin(i) * 10, "timestamp": T0 + i, "step": start + i}
            for i in range(n)]


def _odd_points() -> list[dict[str, Any]]:
    """Interleaved keys, an identical point twice, one step with two values, steps out of
    order and negative, NaN and both infinities, zero and huge timestamps."""
    pts = [{"key": "a", "value": 1.5, "timestamp": T0, "step": 3},
           {"key": "b/x", "value": -0.0, "timestamp": 0, "step": -7},
           {"key": "a", "value": 1.5, "timestamp": T0, "step": 3},
           {"key": "a", "value": 2.5, "timestamp": T0 + 1, "step": 3},
           {"key": "a", "value": 0.25, "timestamp": T0 + 2, "step": 1},
           {"key": "c", "value": float("nan"), "timestamp": T0, "step": 0},
           {"key": "c", "value": float("inf"), "timestamp": T0 + 5, "step": 1},
           {"key": "c", "value": float("-inf"), "timestamp": 2**63 - 1, "step": 2**63 - 1},
           {"key": "d", "value": "Infinity", "timestamp": T0, "step": 0}]  # as protobuf's JSON writes it
    return pts


BATCHES: dict[str, dict[str, Any]] = {
    "one key, 1,000 points": {"metrics": _points(["loss"], 1000)},
    "three keys interleaved, with params and tags": {
        "metrics": _points(["m1", "m2", "m3"], 600, start=10),
        "params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "t", "value": "v"}]},
    "odd points": {"metrics": _odd_points()},
    "an int value": {"metrics": [{"key": "a", "value": 3, "timestamp": T0, "step": 0}]},
    "a string value": {"metrics": [{"key": "a", "value": "NaN", "timestamp": T0, "step": 0}]},
    "a bool step": {"metrics": [{"key": "a", "value": 1.0, "timestamp": T0, "step": True}]},
    "a bad key in the middle": {"metrics": _points(["ok"], 5) + [{"key": "../x", "value": 1.0,
                                                                   "timestamp": T0, "step": 0}]},
    "a bad key and a bad param": {"metrics": [{"key": "bad key!", "value": 1.0, "timestamp": T0, "step": 0}],
                                  "params": [{"key": "", "value": "v"}]},
    "a negative timestamp": {"metrics": [{"key": "a", "value": 1.0, "timestamp": -1, "step": 0}]},
    "a step beyond int64": {"metrics": [{"key": "a", "value": 1.0, "timestamp": T0, "step": 2**63}]},
    "1,001 points": {"metrics": _points(["a"], 1001)},
    "1,000 points and a param": {"metrics": _points(["a"], 1000), "params": [{"key": "p", "value": "v"}]},
}


def _twin(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "metrics": [{**m, "dataset_name": None} for m in body["metrics"]]}


def _stored(server: ServerProcess, run_id: str) -> dict[str, Any]:
    run = server.api("GET", "runs/get", {"run_id": run_id}).json()["run"]
    latest = sorted((m["key"], m["value"], m["step"], m["timestamp"]) for m in run["data"].get("metrics", []))
    histories = {}
    for key, *_ in latest:
        pts = server.api("GET", "metrics/get-history", {"run_id": run_id, "metric_key": key,
                                                          "max_results": 25000}).json().get("metrics", [])
        histories[key] = sorted((str(m["value"]), m["step"], m["timestamp"]) for m in pts)
    params = sorted((p["key"], p["value"]) for p in run["data"].get("params", []))
    return {"latest": [tuple(map(str, x)) for x in latest], "histories": histories, "params": params}


@pytest.mark.parametrize("name", list(BATCHES))
def test_plain_batches_store_and_refuse_as_point_by_point(server: ServerProcess, name: str) -> None:
    exp = server.api("POST", "experiments/create", {"name": "columns"}).json()["experiment_id"]
    runs = [server.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]
            for _ in range(2)]
    body = BATCHES[name]
    answers = []
    for run_id, sent in zip(runs, (body, _twin(body))):
        # NaN and the infinities as JSON's NaN/Infinity, which requests' json= refuses to send.
        r = server.session.post(server.url + "/api/2.0/mlflow/runs/log-batch",
                                data=json.dumps({"run_id": run_id, **sent}),
                                headers={"Content-Type": "application/json"}, timeout=60)
        answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1], name
    stored = _stored(server, runs[0])
    assert stored == _stored(server, runs[1]), name
    refused = name.startswith(("a bad", "a bool", "a negative", "a step beyond", "1,0"))
    assert answers[0][0] == (400 if refused else 200), answers[0]
    if refused:
        assert answers[0][1]["error_code"] == "INVALID_PARAMETER_VALUE" and stored["histories"] == {}
    elif name != "odd points":  # (it repeats a point on purpose)
        assert sum(len(h) for h in stored["histories"].values()) == len(body["metrics"])
