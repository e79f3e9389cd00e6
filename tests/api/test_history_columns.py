"""labtrack's metrics/history-columns: get-history's pages, column by column.

labtrack's client reads every history through it, so it must hold exactly the
points, order, page tokens and errors that metrics/get-history gives.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest

import labtrack as lt
from labtrack import columns
from labtrack.entities import Metric
from tests.servers import ServerProcess

COLUMNS = "/api/2.0/labtrack/metrics/history-columns"


@pytest.fixture
def srv(module_server: ServerProcess) -> ServerProcess:
    return module_server


def _run(srv: ServerProcess, metrics: list[dict[str, Any]]) -> str:
    exp = srv.api("POST", "experiments/create", {"name": f"cols-{uuid.uuid4().hex[:10]}"}).json()["experiment_id"]
    run_id = srv.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]
    for i in range(0, len(metrics), 1000):
        assert srv.api("POST", "runs/log-batch", {"run_id": run_id, "metrics": metrics[i:i + 1000]}).ok
    return run_id


def _pages(srv: ServerProcess, path: str, run_id: str, key: str, size: int) -> list[dict[str, Any]]:
    pages, token = [], None
    while True:
        query = {"run_id": run_id, "metric_key": key, "max_results": size}
        if token:
            query["page_token"] = token
        reply = srv.api("GET", path, query)
        assert reply.status_code == 200, reply.text
        pages.append(reply.json())
        token = pages[-1].get("next_page_token")
        if not token:
            return pages


def _as_points(page: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """A history-columns page as get-history's point objects."""
    steps = columns.unpack(columns.STEP, page["steps"])
    stamps = columns.unpack(columns.STEP, page["timestamps"])
    values = columns.unpack(columns.VALUE, page["values"])
    out = []
    for i, (step, ts, v) in enumerate(zip(steps, stamps, values)):
        value: Any = "NaN" if math.isnan(v) else "Infinity" if v == math.inf else "-Infinity" if v == -math.inf else v
        point = {"key": key, "value": value, "timestamp": ts, "step": step}
        for name, field in (("model_ids", "model_id"), ("dataset_names", "dataset_name"),
                            ("dataset_digests", "dataset_digest")):
            if name in page and page[name][i] is not None:
                point[field] = page[name][i]
        out.append(point)
    return out


def test_pages_hold_what_get_history_pages_hold(srv: ServerProcess) -> None:
    specials = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1e308]
    metrics = [{"key": "m", "value": specials[i % 7] if i % 50 == 0 else i * 0.25 - 3, "timestamp": 10 + i % 3,
                "step": i // 2} for i in range(2500)]
    # As the mlflow client sends them: JSON has no NaN or Infinity.
    metrics = [{**p, "value": "NaN" if p["value"] != p["value"] else "Infinity" if p["value"] == math.inf
                else "-Infinity" if p["value"] == -math.inf else p["value"]} for p in metrics]
    run_id = _run(srv, metrics)
    for size in (7, 1000, 25000):
        cols = _pages(srv, COLUMNS, run_id, "m", size)
        plain = _pages(srv, "metrics/get-history", run_id, "m", size)
        assert [_as_points(p, "m") for p in cols] == [p.get("metrics", []) for p in plain]
        assert [p.get("next_page_token") for p in cols] == [p.get("next_page_token") for p in plain]


def test_model_and_dataset_fields_come_only_when_a_point_has_them(srv: ServerProcess) -> None:
    run_id = _run(srv, [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0},
                        {"key": "m", "value": 2.0, "timestamp": 2, "step": 1, "dataset_name": "train",
                         "dataset_digest": "abc"}])
    assert "model_ids" not in _pages(srv, COLUMNS, run_id, "m", 1)[0]
    page = _pages(srv, COLUMNS, run_id, "m", 2)[0]
    assert page["dataset_names"] == [None, "train"] and "model_ids" not in page
    assert _as_points(page, "m") == srv.api("GET", "metrics/get-history",
                                            {"run_id": run_id, "metric_key": "m"}).json()["metrics"]


def test_errors_are_get_history_errors(srv: ServerProcess) -> None:
    run_id = _run(srv, [])
    for query in ({"run_id": "f" * 32, "metric_key": "m"}, {"run_id": run_id},
                  {"run_id": run_id, "metric_key": "m", "max_results": 0},
                  {"run_id": run_id, "metric_key": "m", "page_token": "bad"}):
        cols, plain = srv.api("GET", COLUMNS, query), srv.api("GET", "metrics/get-history", query)
        assert (cols.status_code, cols.json()["error_code"]) == (plain.status_code, plain.json()["error_code"])
    empty = _pages(srv, COLUMNS, run_id, "none", 10)
    assert empty == [{"steps": "", "timestamps": "", "values": ""}]


def test_the_client_reads_histories_through_it(srv: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _run(srv, [{"key": "m", "value": float(i), "timestamp": i, "step": i} for i in range(3)]
                  + [{"key": "m", "value": "NaN", "timestamp": 9, "step": 9, "model_id": "m-1"}])
    if srv.token:
        monkeypatch.setenv("LABTRACK_TRACKING_TOKEN", srv.token)
    client = lt.Client(srv.url)
    paths: list[str] = []
    call = client.transport.call
    monkeypatch.setattr(client.transport, "call", lambda *a, **kw: paths.append(a[1]) or call(*a, **kw))
    got = client.get_metric_history(run_id, "m")
    assert paths == ["metrics/history-columns"]
    assert [(m.step, m.timestamp, m.value, m.model_id) for m in got[:3]] == [
        (i, i, float(i), None) for i in range(3)]
    assert math.isnan(got[3].value) and (got[3].step, got[3].model_id) == (9, "m-1")
    assert all(isinstance(m, Metric) and m.key == "m" for m in got)
