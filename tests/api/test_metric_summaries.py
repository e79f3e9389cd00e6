"""Metric summaries (issue 20) on a real server, SQLite and PostgreSQL, against numpy's truth.

``POST /api/2.0/labtrack/runs/metric-summaries`` gives min, max and last of each
metric with their steps; ``metrics.<key>.min|max|last`` filters and sorts runs
in ``runs/search``.  Histories arrive in several batches, out of step order,
with NaN, ties and a key that itself holds a dot.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np
import pytest
import requests

from tests.servers import ServerProcess

S = "/api/2.0/labtrack/runs/metric-summaries"
KEYS = ("loss", "val.loss", "acc")


def _error(reply: requests.Response, status: int, code: str) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    return str(body["message"])


@pytest.fixture(scope="module")
def logged(module_server: ServerProcess) -> dict[str, Any]:
    """An experiment of 12 runs; each metric's history as numpy arrays (steps, values)."""
    srv = module_server
    exp = srv.api("POST", "experiments/create", {"name": f"summaries-{uuid.uuid4().hex[:8]}"}).json()["experiment_id"]
    rng = np.random.default_rng(20)
    truth: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for i in range(12):
        run_id = srv.api("POST", "runs/create", {"experiment_id": exp, "run_name": f"r{i}"}).json()["run"]["info"]["run_id"]
        truth[run_id] = {}
        for key in KEYS:
            if key == "loss" and i == 3:
                continue  # a run without the metric
            n = int(rng.integers(5, 40))
            steps = rng.permutation(n).astype(np.int64) * 2  # out of order, unique
            values = np.round(rng.normal(1.0, 0.5, n), 2)  # rounding makes ties
            if key == "acc" and i == 5:
                values[:] = np.nan  # only NaN: no min or max
            elif i % 4 == 0:
                values[rng.integers(0, n, 2)] = np.nan
            truth[run_id][key] = (steps, values)
            for chunk in np.array_split(np.arange(n), 3):  # three batches
                metrics = [{"key": key, "value": "NaN" if math.isnan(values[j]) else float(values[j]),
                            "timestamp": 1_700_000_000_000 + int(steps[j]), "step": int(steps[j])} for j in chunk]
                reply = srv.api("POST", "runs/log-batch", {"run_id": run_id, "metrics": metrics})
                assert reply.status_code == 200, reply.text
    return {"experiment_id": exp, "truth": truth}


def _expected(steps: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    finite = ~np.isnan(values)
    last = int(np.argmax(steps))
    out: dict[str, Any] = {"last": "NaN" if math.isnan(values[last]) else float(values[last]),
                           "last_step": int(steps[last])}
    if not finite.any():
        return {**out, "min": None, "max": None, "min_step": None, "max_step": None}
    lo, hi = float(values[finite].min()), float(values[finite].max())
    return {**out, "min": lo, "max": hi, "min_step": int(steps[finite & (values == lo)].min()),
            "max_step": int(steps[finite & (values == hi)].min())}


def test_summaries_match_numpy(module_server: ServerProcess, logged: dict[str, Any]) -> None:
    truth = logged["truth"]
    reply = module_server.api("POST", S, {"run_ids": list(truth)})
    assert reply.status_code == 200, reply.text
    got = reply.json()["summaries"]
    assert set(got) == set(truth)
    for run_id, per_key in truth.items():
        assert got[run_id] == {k: _expected(*h) for k, h in per_key.items()}, run_id

    # only the asked keys; a run without them maps to {}; an unknown run is left out
    some = list(truth)[:4]
    reply = module_server.api("POST", S, {"run_ids": some + ["0" * 32], "keys": ["loss", "nope"]})
    assert reply.status_code == 200, reply.text
    got = reply.json()["summaries"]
    assert set(got) == set(some)
    for run_id in some:
        expected = {"loss": _expected(*truth[run_id]["loss"])} if "loss" in truth[run_id] else {}
        assert got[run_id] == expected


@pytest.mark.parametrize("body, fragment", [
    ({}, "run_ids"),
    ({"run_ids": []}, "run_ids"),
    ({"run_ids": "abc"}, "run_ids"),
    ({"run_ids": [1, 2]}, "run_ids"),
    ({"run_ids": ["a"], "keys": "loss"}, "keys"),
    ({"run_ids": ["a"], "keys": [None]}, "keys"),
    ({"run_ids": ["a"] * 1001}, "at most 1000"),
])
def test_bad_requests_are_400(module_server: ServerProcess, body: dict[str, Any], fragment: str) -> None:
    message = _error(module_server.api("POST", S, body), 400, "INVALID_PARAMETER_VALUE")
    assert fragment in message
