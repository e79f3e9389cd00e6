"""metrics/get-history pages longer than a slice are streamed (issue 21: memory under load).

A client may ask for a whole history in one page (``max_results`` up to 10**9).  The
server writes such a page in slices of ``HISTORY_SLICE`` points, chunked, so that its
memory does not grow with the history's length; the page must hold exactly what the
same points read in pages of 25,000 hold, with the same next_page_token.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest

from labtrack import columns
from labtrack.server.api_tracking import HISTORY_SLICE
from tests.servers import ServerProcess

POINTS = 2 * HISTORY_SLICE + 1234


@pytest.fixture(scope="module")
def history(module_server: ServerProcess) -> tuple[ServerProcess, str]:
    srv = module_server
    exp = srv.api("POST", "experiments/create", {"name": f"stream-{uuid.uuid4().hex[:10]}"}).json()["experiment_id"]
    run_id = srv.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]
    steps = list(range(POINTS))
    # A NaN and infinities where slices meet: their order and text must survive the cut.
    values = [math.sin(i / 100) for i in steps]
    values[HISTORY_SLICE - 1], values[HISTORY_SLICE], values[2 * HISTORY_SLICE] = math.nan, math.inf, -math.inf
    series = {"key": "long", "steps": columns.pack(columns.STEP, steps),
              "timestamps": columns.pack(columns.STEP, [1_700_000_000_000 + i for i in steps]),
              "values": columns.pack(columns.VALUE, values)}
    assert srv.api("POST", "/api/2.0/labtrack/runs/log-series", {"run_id": run_id, "series": [series]}).ok
    return srv, run_id


def _get(srv: ServerProcess, query: dict[str, Any]) -> Any:
    reply = srv.api("GET", "metrics/get-history", {"metric_key": "long", **query})
    assert reply.status_code == 200, reply.text
    return reply


def _paged(srv: ServerProcess, run_id: str, size: int, token: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = _get(srv, {"run_id": run_id, "max_results": size, **({"page_token": token} if token else {})}).json()
        out += page["metrics"]
        token = page.get("next_page_token")
        if not token:
            return out


def test_a_whole_history_in_one_page_is_streamed_and_equals_its_pages(history: tuple[ServerProcess, str]) -> None:
    srv, run_id = history
    reply = _get(srv, {"run_id": run_id, "max_results": 10**9})
    assert reply.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in reply.headers
    body = reply.json()
    assert "next_page_token" not in body
    assert body["metrics"] == _paged(srv, run_id, 25000)
    assert len(body["metrics"]) == POINTS
    assert [body["metrics"][i]["value"] for i in (HISTORY_SLICE - 1, HISTORY_SLICE, 2 * HISTORY_SLICE)] == [
        "NaN", "Infinity", "-Infinity"]


def test_a_streamed_page_ends_with_the_token_of_the_rest(history: tuple[ServerProcess, str]) -> None:
    srv, run_id = history
    size = HISTORY_SLICE + 10
    first = _get(srv, {"run_id": run_id, "max_results": size}).json()
    assert len(first["metrics"]) == size and first["next_page_token"]
    rest = _paged(srv, run_id, size, first["next_page_token"])
    assert first["metrics"] + rest == _paged(srv, run_id, 25000)


def test_a_streamed_page_of_a_missing_run_is_mlflows_error(module_server: ServerProcess) -> None:
    reply = module_server.api("GET", "metrics/get-history",
                              {"run_id": uuid.uuid4().hex, "metric_key": "long", "max_results": 10**6})
    assert reply.status_code == 404
    assert reply.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
