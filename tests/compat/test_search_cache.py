"""A repeated identical search_runs through the unmodified mlflow client may be answered
from the server's memory (server/search_cache.py), but never with anything stale: each
kind of write in between, through the server or by another process on the database, is
in the next answer, which is what a server without the cache answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.servers import ServerProcess

FILTER = "params.p = 'x'"
ORDER = "attributes.start_time ASC"


def _search(client: Any, exp: str) -> list[dict[str, Any]]:
    return [r.to_dictionary() for r in client.search_runs([exp], FILTER, max_results=1000,
                                                             order_by=[ORDER])]


def _raw(server: ServerProcess, exp: str) -> str:
    body = {"experiment_ids": [exp], "filter": FILTER, "max_results": 1000, "order_by": [ORDER]}
    reply = server.api("POST", "runs/search", body)
    assert reply.status_code == 200, reply.text
    return reply.text


def test_every_write_between_two_searches_is_in_the_second(mlflow_client_env: ServerProcess) -> None:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    from labtrack.store.tracking import TrackingStore

    client = mlflow.MlflowClient()
    exp = client.create_experiment("cached-search")
    runs = [client.create_run(exp, start_time=1_700_000_000_000 + i).info.run_id for i in range(3)]
    for run in runs:
        client.log_batch(run, metrics=[Metric("m", 0.5, 1, 0)], params=[Param("p", "x")], tags=[RunTag("t", "a")])
    other = TrackingStore(mlflow_client_env.backend_uri)  # another process's view of the database
    writes: list[tuple[str, Callable[[], Any]]] = [
        ("log_metric", lambda: client.log_metric(runs[0], "m", 0.25, timestamp=2, step=1)),
        ("set_tag", lambda: client.set_tag(runs[1], "t", "b")),
        ("log_param", lambda: client.log_param(runs[2], "q", "new")),
        ("update_run", lambda: client.set_terminated(runs[0], "FAILED")),
        ("delete_tag", lambda: client.delete_tag(runs[1], "t")),
        ("delete_run", lambda: client.delete_run(runs[1])),
        ("restore_run", lambda: client.restore_run(runs[1])),
        ("create_run", lambda: client.log_param(client.create_run(exp, start_time=1_800_000_000_000).info.run_id,
                                                "p", "x")),
        ("another process", lambda: other.log_batch(runs[0], tags=[("by", "store")])),
    ]
    try:
        for name, write in writes:
            before = _raw(mlflow_client_env, exp)
            assert _raw(mlflow_client_env, exp) == before and _search(client, exp) == _search(client, exp)
            write()
            texts, _ = other.search_runs_text([exp], FILTER, order_by=[ORDER])
            after = _raw(mlflow_client_env, exp)
            assert after == '{"runs":[' + ",".join(texts) + "]}" and after != before, name
            assert [r["info"]["run_id"] for r in _search(client, exp)] == [
                json.loads(t)["info"]["run_id"] for t in texts], name
    finally:
        other.close()
