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

from tests.api.conftest import mlflow_error
from tests.servers import ServerProcess

S = "/api/2.0/labtrack/runs/metric-summaries"
KEYS = ("loss", "val.loss", "acc")


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
    message = mlflow_error(module_server.api("POST", S, body), 400, "INVALID_PARAMETER_VALUE")
    assert fragment in message


def _search(srv: ServerProcess, exp: str, filt: str = "", order: list[str] | None = None) -> list[str]:
    reply = srv.api("POST", "runs/search", {"experiment_ids": [exp], "filter": filt, "order_by": order or [],
                                            "max_results": 1000})
    assert reply.status_code == 200, reply.text
    return [r["info"]["run_id"] for r in reply.json().get("runs", [])]


def _stat(truth: dict[str, Any], run_id: str, key: str, stat: str) -> float | None:
    """numpy's min / max / last of one run's metric; None when missing (or only NaN, for min/max)."""
    if key not in truth[run_id]:
        return None
    value = _expected(*truth[run_id][key])[stat]
    return float("nan") if value == "NaN" else value


@pytest.mark.parametrize("filt, key, stat, test", [
    ("metrics.loss.min < 0.5", "loss", "min", lambda v: v < 0.5),
    ("metrics.loss.max >= 1.8", "loss", "max", lambda v: v >= 1.8),
    ("metrics.`val.loss`.min > 0.2", "val.loss", "min", lambda v: v > 0.2),
    ("metrics.val.loss.max <= 1.9", "val.loss", "max", lambda v: v <= 1.9),
    ("metrics.acc.last > 1", "acc", "last", lambda v: v > 1),
    ("metrics.acc.min != 0.5", "acc", "min", lambda v: True),  # only-NaN (no min) counts as unequal
])
def test_filters_on_summaries_match_numpy(module_server: ServerProcess, logged: dict[str, Any], filt: str, key: str,
                                          stat: str, test: Any) -> None:
    truth = logged["truth"]
    expected = set()
    for run_id in truth:
        v = _stat(truth, run_id, key, stat)
        if v is None:
            if stat != "last" and key in truth[run_id] and filt.split()[-2] == "!=":
                expected.add(run_id)
            continue
        if not math.isnan(v) and test(v) and not (filt.split()[-2] == "!=" and v == 0.5):
            expected.add(run_id)
    got = set(_search(module_server, logged["experiment_id"], filt))
    assert got == expected, filt


def test_plain_dotted_key_keeps_mlflows_meaning(module_server: ServerProcess, logged: dict[str, Any]) -> None:
    truth = logged["truth"]
    # metrics.val.loss is the metric "val.loss" (its latest value), as in MLflow
    expected = {r for r in truth if "val.loss" in truth[r] and not math.isnan(v := _stat(truth, r, "val.loss", "last"))
                and v < 1}
    assert set(_search(module_server, logged["experiment_id"], "metrics.val.loss < 1")) == expected
    # a metric whose own name ends in .min is reached in backquotes
    assert _search(module_server, logged["experiment_id"], "metrics.`loss.min` < 100") == []


@pytest.mark.parametrize("order", ["metrics.loss.min ASC", "metrics.loss.max DESC", "metrics.`val.loss`.min DESC",
                                   "metrics.acc.max ASC", "metrics.acc.last DESC"])
def test_order_by_summaries_matches_numpy(module_server: ServerProcess, logged: dict[str, Any], order: str) -> None:
    truth = logged["truth"]
    ident, direction = order.rsplit(" ", 1)
    key, stat = ("val.loss", ident.rsplit(".", 1)[1]) if "`" in ident else tuple(ident.split(".")[1:])
    got = _search(module_server, logged["experiment_id"], "", [order])
    values = [_stat(truth, r, key, stat) for r in got]
    # numbers first, in order; then NaN / no min or max; then runs without the metric
    rank = [2 if key not in truth[r] else 1 if v is None or math.isnan(v) else 0 for r, v in zip(got, values)]
    assert rank == sorted(rank), order
    numbers = [v for v, k in zip(values, rank) if k == 0]
    assert numbers == sorted(numbers, reverse=direction == "DESC"), order
    assert sorted(got) == sorted(truth)


@pytest.mark.parametrize("filt", ["metrics.loss.min < 'a'", "metrics.loss.min LIKE '1'"])
def test_bad_summary_filters_are_400(module_server: ServerProcess, logged: dict[str, Any], filt: str) -> None:
    reply = module_server.api("POST", "runs/search", {"experiment_ids": [logged["experiment_id"]], "filter": filt})
    mlflow_error(reply, 400, "INVALID_PARAMETER_VALUE")
