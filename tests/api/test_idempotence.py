"""Repeating a write is harmless (the mlflow client retries POSTs), and what runs hold.

Reference §1 "Retries" and §2.2 "Server rules": the same batch twice stores
one copy of each point, the same param value again is fine, tags overwrite;
non-finite values survive as "NaN"/"Infinity"/"-Infinity"; ``data.metrics``
is the max of (step, timestamp, value) per key; the run-name rule.
Each test makes its own experiment and runs on a server shared by the module.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from tests.servers import ServerProcess

ART = "/api/2.0/mlflow-artifacts/artifacts"


def ok(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:500]}"
    return strict_json(resp.text) if resp.text else {}


def strict_json(text: str) -> Any:
    """Parse as a strict JSON parser would: bare NaN/Infinity are not JSON."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"the server sent the non-JSON literal {name}")
    return json.loads(text, parse_constant=refuse)


def new_run(srv: ServerProcess, **body: Any) -> dict[str, Any]:
    exp = ok(srv.api("POST", "experiments/create", {"name": f"idem-{uuid.uuid4().hex[:10]}"}))["experiment_id"]
    return ok(srv.api("POST", "runs/create", {"experiment_id": exp, **body}))["run"]


def get_run(srv: ServerProcess, run_id: str) -> dict[str, Any]:
    return ok(srv.api("GET", "runs/get", {"run_id": run_id}))["run"]


def history(srv: ServerProcess, run_id: str, key: str) -> list[tuple[int, int, Any]]:
    points = ok(srv.api("GET", "metrics/get-history", {"run_id": run_id, "metric_key": key}))["metrics"]
    return sorted(((p["step"], p["timestamp"], p["value"]) for p in points), key=repr)


def params(run: dict[str, Any]) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}


def tags(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def latest(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["key"]: m for m in run["data"].get("metrics", [])}


def m(key: str, value: Any, step: int, timestamp: int) -> dict[str, Any]:
    return {"key": key, "value": value, "step": step, "timestamp": timestamp}


@pytest.fixture
def srv(module_server: ServerProcess) -> ServerProcess:
    return module_server


def test_same_log_batch_twice_stores_one_copy_of_each_point(srv: ServerProcess) -> None:
    run_id = new_run(srv)["info"]["run_id"]
    batch = {"run_id": run_id,
             "metrics": [m("loss", 1.0 / (s + 1), s, 1000 + s) for s in range(5)] + [m("acc", 0.5, 0, 7)],
             "params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "phase", "value": "train"}]}
    ok(srv.api("POST", "runs/log-batch", batch))
    first = get_run(srv, run_id)
    ok(srv.api("POST", "runs/log-batch", batch))  # the client's retry
    ok(srv.api("POST", "runs/log-batch", {"run_id": run_id, "metrics": batch["metrics"][:2]}))  # a partial retry
    assert history(srv, run_id, "loss") == sorted(((s, 1000 + s, 1.0 / (s + 1)) for s in range(5)), key=repr)
    assert history(srv, run_id, "acc") == [(0, 7, 0.5)]
    again = get_run(srv, run_id)
    assert again["data"] == first["data"]
    assert params(again) == {"lr": "0.1"} and tags(again)["phase"] == "train"


def test_identical_points_in_one_batch_are_one_point_distinct_values_are_two(srv: ServerProcess) -> None:
    run_id = new_run(srv)["info"]["run_id"]
    ok(srv.api("POST", "runs/log-batch", {"run_id": run_id, "metrics": [m("x", 1.0, 0, 5)] * 3}))
    ok(srv.api("POST", "runs/log-metric", {"run_id": run_id, **m("x", 1.0, 0, 5)}))
    assert history(srv, run_id, "x") == [(0, 5, 1.0)]
    # Same step and timestamp but another value is another point (MLflow's rule).
    ok(srv.api("POST", "runs/log-metric", {"run_id": run_id, **m("x", 2.0, 0, 5)}))
    assert history(srv, run_id, "x") == [(0, 5, 1.0), (0, 5, 2.0)]


def test_same_param_value_again_is_fine_and_a_changed_one_is_not(srv: ServerProcess) -> None:
    run_id = new_run(srv)["info"]["run_id"]
    for _ in range(2):
        ok(srv.api("POST", "runs/log-parameter", {"run_id": run_id, "key": "alpha", "value": "0.5"}))
    ok(srv.api("POST", "runs/log-batch", {"run_id": run_id, "params": [
        {"key": "alpha", "value": "0.5"}, {"key": "beta", "value": "2"}, {"key": "beta", "value": "2"}]}))
    assert params(get_run(srv, run_id)) == {"alpha": "0.5", "beta": "2"}
    resp = srv.api("POST", "runs/log-parameter", {"run_id": run_id, "key": "alpha", "value": "0.7"})
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert params(get_run(srv, run_id)) == {"alpha": "0.5", "beta": "2"}


def test_tags_overwrite(srv: ServerProcess) -> None:
    run_id = new_run(srv)["info"]["run_id"]
    ok(srv.api("POST", "runs/set-tag", {"run_id": run_id, "key": "stage", "value": "a"}))
    ok(srv.api("POST", "runs/set-tag", {"run_id": run_id, "key": "stage", "value": "b"}))
    assert tags(get_run(srv, run_id))["stage"] == "b"
    ok(srv.api("POST", "runs/log-batch", {"run_id": run_id, "tags": [{"key": "stage", "value": "c"}]}))
    ok(srv.api("POST", "runs/set-tag", {"run_id": run_id, "key": "stage", "value": "c"}))
    run = get_run(srv, run_id)
    assert tags(run)["stage"] == "c"
    assert [t["key"] for t in run["data"]["tags"]].count("stage") == 1
    exp_id = run["info"]["experiment_id"]
    for value in ("x", "y", "y"):
        ok(srv.api("POST", "experiments/set-experiment-tag", {"experiment_id": exp_id, "key": "k", "value": value}))
    exp = ok(srv.api("GET", "experiments/get", {"experiment_id": exp_id}))["experiment"]
    assert [t for t in exp["tags"] if t["key"] == "k"] == [{"key": "k", "value": "y"}]


def test_non_finite_values_are_stored_and_returned_as_strings(srv: ServerProcess) -> None:
    run_id = new_run(srv)["info"]["run_id"]
    ok(srv.api("POST", "runs/log-metric", {"run_id": run_id, **m("nan", "NaN", 0, 1)}))
    ok(srv.api("POST", "runs/log-metric", {"run_id": run_id, **m("inf", "Infinity", 0, 1)}))
    ok(srv.api("POST", "runs/log-batch", {"run_id": run_id, "metrics": [
        m("ninf", "-Infinity", 0, 1), m("mixed", "NaN", 0, 1), m("mixed", "Infinity", 1, 2),
        m("mixed", "-Infinity", 2, 3), m("mixed", 1.5, 3, 4)]}))
    # Retried: still one copy each (NaN must de-duplicate too).
    ok(srv.api("POST", "runs/log-metric", {"run_id": run_id, **m("nan", "NaN", 0, 1)}))
    assert history(srv, run_id, "nan") == [(0, 1, "NaN")]
    assert history(srv, run_id, "inf") == [(0, 1, "Infinity")]
    assert history(srv, run_id, "ninf") == [(0, 1, "-Infinity")]
    assert history(srv, run_id, "mixed") == [(0, 1, "NaN"), (1, 2, "Infinity"), (2, 3, "-Infinity"), (3, 4, 1.5)]
    data = latest(get_run(srv, run_id))
    assert {k: v["value"] for k, v in data.items()} == {
        "nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "mixed": 1.5}


def test_data_metrics_holds_the_max_of_step_timestamp_value(srv: ServerProcess) -> None:
    run_id = new_run(srv)["info"]["run_id"]

    def now() -> tuple[int, int, Any]:
        point = latest(get_run(srv, run_id))["score"]
        return point["step"], point["timestamp"], point["value"]

    ok(srv.api("POST", "runs/log-batch", {"run_id": run_id, "metrics": [
        m("score", 3.0, 1, 500), m("score", 1.0, 2, 100)]}))
    assert now() == (2, 100, 1.0)  # the larger step wins over the later timestamp and larger value
    ok(srv.api("POST", "runs/log-batch", {"run_id": run_id, "metrics": [
        m("score", 0.5, 2, 100), m("score", 100.0, 1, 9999), m("score", 50.0, 2, 50)]}))
    assert now() == (2, 100, 1.0)  # nothing later arrived: a later request does not win by being later
    ok(srv.api("POST", "runs/log-metric", {"run_id": run_id, **m("score", 2.0, 2, 100)}))
    assert now() == (2, 100, 2.0)  # same step and timestamp: the larger value
    ok(srv.api("POST", "runs/log-metric", {"run_id": run_id, **m("score", "NaN", 2, 100)}))
    assert now() == (2, 100, 2.0)  # NaN never beats a number at the same step and timestamp
    ok(srv.api("POST", "runs/log-metric", {"run_id": run_id, **m("score", -7.0, 2, 101)}))
    assert now() == (2, 101, -7.0)
    ok(srv.api("POST", "runs/log-metric", {"run_id": run_id, **m("score", -9.0, 3, 0)}))
    assert now() == (3, 0, -9.0)
    assert len(history(srv, run_id, "score")) == 9


def test_repeated_lifecycle_and_update_calls_are_harmless(srv: ServerProcess) -> None:
    run = new_run(srv)
    run_id = run["info"]["run_id"]
    body = {"run_id": run_id, "status": "FINISHED", "end_time": 123456}
    first = ok(srv.api("POST", "runs/update", body))["run_info"]
    second = ok(srv.api("POST", "runs/update", body))["run_info"]
    assert first["status"] == second["status"] == "FINISHED" and second["end_time"] == 123456
    for _ in range(2):
        ok(srv.api("POST", "runs/delete", {"run_id": run_id}))
    assert get_run(srv, run_id)["info"]["lifecycle_stage"] == "deleted"
    for _ in range(2):
        ok(srv.api("POST", "runs/restore", {"run_id": run_id}))
    assert get_run(srv, run_id)["info"]["lifecycle_stage"] == "active"


def test_repeated_log_inputs_and_artifact_uploads_store_one_copy(srv: ServerProcess) -> None:
    run = new_run(srv)
    run_id = run["info"]["run_id"]
    ds = {"tags": [{"key": "mlflow.data.context", "value": "training"}],
          "dataset": {"name": "iris", "digest": "d1", "source_type": "local", "source": "{}"}}
    for _ in range(2):
        ok(srv.api("POST", "runs/log-inputs", {"run_id": run_id, "datasets": [ds]}))
    inputs = get_run(srv, run_id)["inputs"]["dataset_inputs"]
    assert [(i["dataset"]["name"], i["dataset"]["digest"]) for i in inputs] == [("iris", "d1")]

    rel = f"{run['info']['experiment_id']}/{run_id}/artifacts/model/weights.bin"
    for _ in range(2):
        ok(srv.session.put(f"{srv.url}{ART}/{rel}", data=b"\x00\x01weights", timeout=30))
    folder = srv.artifacts / rel.rsplit("/", 1)[0]
    assert sorted(p.name for p in folder.iterdir()) == ["weights.bin"]  # no temp files left behind
    assert (folder / "weights.bin").read_bytes() == b"\x00\x01weights"


# -- the run-name rule --------------------------------------------------------------------

RUN_NAME = "mlflow.runName"


def test_run_name_and_tag_equal_is_fine(srv: ServerProcess) -> None:
    run = new_run(srv, run_name="same", tags=[{"key": RUN_NAME, "value": "same"}])
    assert run["info"]["run_name"] == "same" and tags(run)[RUN_NAME] == "same"
    assert tags(get_run(srv, run["info"]["run_id"]))[RUN_NAME] == "same"


def test_run_name_and_tag_different_is_refused_and_creates_nothing(srv: ServerProcess) -> None:
    exp = ok(srv.api("POST", "experiments/create", {"name": f"idem-{uuid.uuid4().hex[:10]}"}))["experiment_id"]
    resp = srv.api("POST", "runs/create", {"experiment_id": exp, "run_name": "a",
                                           "tags": [{"key": RUN_NAME, "value": "b"}]})
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    found = ok(srv.api("POST", "runs/search", {"experiment_ids": [exp], "run_view_type": "ALL"}))
    assert found.get("runs", []) == []


def test_run_name_from_either_side_or_generated(srv: ServerProcess) -> None:
    by_arg = new_run(srv, run_name="by-arg")
    assert by_arg["info"]["run_name"] == "by-arg" and tags(get_run(srv, by_arg["info"]["run_id"]))[RUN_NAME] == "by-arg"
    by_tag = new_run(srv, tags=[{"key": RUN_NAME, "value": "by-tag"}])
    assert get_run(srv, by_tag["info"]["run_id"])["info"]["run_name"] == "by-tag"
    names = set()
    for _ in range(2):
        run = get_run(srv, new_run(srv)["info"]["run_id"])
        name = run["info"]["run_name"]
        assert name and tags(run)[RUN_NAME] == name
        names.add(name)
    assert len(names) == 2, "generated names should differ"


def test_set_tag_run_name_renames_and_update_run_name_sets_the_tag(srv: ServerProcess) -> None:
    run = new_run(srv, run_name="before")
    run_id, exp = run["info"]["run_id"], run["info"]["experiment_id"]
    ok(srv.api("POST", "runs/set-tag", {"run_id": run_id, "key": RUN_NAME, "value": "renamed"}))
    assert get_run(srv, run_id)["info"]["run_name"] == "renamed"
    found = ok(srv.api("POST", "runs/search", {"experiment_ids": [exp], "filter": "attributes.run_name = 'renamed'"}))
    assert [r["info"]["run_id"] for r in found["runs"]] == [run_id]

    info = ok(srv.api("POST", "runs/update", {"run_id": run_id, "run_name": "again"}))["run_info"]
    assert info["run_name"] == "again"
    got = get_run(srv, run_id)
    assert got["info"]["run_name"] == "again" and tags(got)[RUN_NAME] == "again"
    ok(srv.api("POST", "runs/log-batch", {"run_id": run_id, "tags": [{"key": RUN_NAME, "value": "batched"}]}))
    assert get_run(srv, run_id)["info"]["run_name"] == "batched"
