"""metrics/get-history reads the next page ahead while the client parses this one
(issue 21): a page made ahead is served only if nothing was written since it was read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from labtrack.server.read_ahead import KEEP, ReadAhead
from labtrack.store.tracking import TrackingStore
from tests.servers import ServerProcess


def _run(srv: ServerProcess, steps: range) -> str:
    exp = srv.api("POST", "experiments/create", {"name": f"ahead-{uuid.uuid4().hex[:10]}"}).json()["experiment_id"]
    run_id = srv.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]
    metrics = [{"key": "m", "value": float(i), "timestamp": 1_700_000_000_000 + i, "step": i} for i in steps]
    assert srv.api("POST", "runs/log-batch", {"run_id": run_id, "metrics": metrics}).ok
    return run_id


def _page(srv: ServerProcess, run_id: str, token: str | None = None) -> dict[str, Any]:
    query = {"run_id": run_id, "metric_key": "m", "max_results": 4, **({"page_token": token} if token else {})}
    reply = srv.api("GET", "metrics/get-history", query)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _steps(page: dict[str, Any]) -> list[int]:
    return [int(m["step"]) for m in page["metrics"]]


def test_pages_read_ahead_are_the_pages(server: ServerProcess) -> None:
    run_id = _run(server, range(10))
    first = _page(server, run_id)
    second = _page(server, run_id, first["next_page_token"])
    third = _page(server, run_id, second["next_page_token"])
    assert (_steps(first), _steps(second), _steps(third)) == ([0, 1, 2, 3], [4, 5, 6, 7], [8, 9])
    assert "next_page_token" not in third
    again = _page(server, run_id, first["next_page_token"])  # asked twice: the second read is the server's own
    assert again == second


def test_a_write_between_pages_is_seen_by_the_next_page(server: ServerProcess) -> None:
    run_id = _run(server, range(10))
    first = _page(server, run_id)
    # A point before every other one moves the next page's points by one: a page
    # read ahead before this write would still hold 4..7.
    point = {"run_id": run_id, "key": "m", "value": -1.0, "timestamp": 1, "step": -1}
    assert server.api("POST", "runs/log-metric", point).ok
    assert _steps(_page(server, run_id, first["next_page_token"])) == [3, 4, 5, 6]


def _made(ahead: ReadAhead) -> None:
    """Wait until the pages asked for are made (a page not yet begun is not waited for by take)."""
    for _, _, future in list(ahead.pages.values()):
        future.exception()


def test_a_page_is_served_only_while_no_write_has_committed(store: TrackingStore) -> None:
    ahead = ReadAhead(store)
    if store.engines.writer.dialect.name != "sqlite":  # other servers may write the database: never ahead
        ahead.start("k", lambda: "page")
        assert ahead.take("k") is None
        return
    ahead.start("k", lambda: "page")
    _made(ahead)
    assert ahead.take("k") == "page"
    assert ahead.take("k") is None  # taken once
    ahead.start("k", lambda: "page")
    _made(ahead)
    store.create_experiment("a write")
    assert ahead.take("k") is None
    for i in range(KEEP + 1):
        ahead.start(i, lambda i=i: i)
        _made(ahead)
    assert ahead.take(0) is None and ahead.take(KEEP) == KEEP  # the oldest made way
    ahead.start("fails", lambda: 1 / 0)
    _made(ahead)
    assert ahead.take("fails") is None
    ahead.close()
