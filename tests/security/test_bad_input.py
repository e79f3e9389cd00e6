"""Item 8 of issue #19: authenticated bad input gets a 4xx with MLflow's error JSON, never a 5xx."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
import requests

from tests.servers import ServerProcess

DEEP = 10_000


@pytest.fixture(scope="module")
def run_id(server: ServerProcess) -> str:
    exp = server.api("POST", "experiments/create", {"name": "bad-input"}).json()["experiment_id"]
    return server.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]


def _raw_post(server: ServerProcess, path: str, body: str) -> requests.Response:
    return server.session.post(server.url + "/api/2.0/mlflow/" + path, data=body.encode(),
                               headers={"Content-Type": "application/json"}, timeout=60)


def _assert_4xx(reply: requests.Response, code: str | None = None) -> dict[str, Any]:
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text[:300])
    body = reply.json()
    assert set(body) >= {"error_code", "message"}
    if code:
        assert body["error_code"] == code
    return body


@pytest.mark.parametrize("depth", [DEEP, 100_000])
def test_deeply_nested_json_body(server: ServerProcess, depth: int) -> None:
    _assert_4xx(_raw_post(server, "runs/search", '{"filter": ' + "[" * depth + "]" * depth + "}"))
    _assert_4xx(_raw_post(server, "experiments/create", "[" * depth + "]" * depth))


def test_page_token_holding_deeply_nested_json(server: ServerProcess) -> None:
    # 10,000 deep: far past the parser's recursion limit, and within a GET's 64 KB of headers.
    token = base64.b64encode(("[" * DEEP + "]" * DEEP).encode()).decode()
    for method, path, body in [("POST", "runs/search", {"experiment_ids": ["0"], "page_token": token}),
                               ("GET", "experiments/search", {"max_results": 10, "page_token": token}),
                               ("GET", "registered-models/search", {"page_token": token})]:
        _assert_4xx(server.api(method, path, body), "INVALID_PARAMETER_VALUE")


def test_filter_of_thousands_of_ands_is_refused_at_once(server: ServerProcess) -> None:
    filt = " AND ".join(f"metrics.m{i} > 0" for i in range(3000))
    t0 = time.monotonic()
    reply = server.api("POST", "runs/search", {"experiment_ids": ["0"], "filter": filt})
    assert time.monotonic() - t0 < 2.0
    _assert_4xx(reply, "INVALID_PARAMETER_VALUE")
    # A long but reasonable filter still works.
    ok = " AND ".join(f"params.p{i} = 'x'" for i in range(50))
    assert server.api("POST", "runs/search", {"experiment_ids": ["0"], "filter": ok}).status_code == 200


@pytest.mark.parametrize("path,body", [
    ("experiments/create", '{"name": "x\\ud800"}'),
    ("runs/set-tag", '{"run_id": "%(run)s", "key": "k", "value": "\\udfff"}'),
    ("runs/log-parameter", '{"run_id": "%(run)s", "key": "k\\ud800", "value": "v"}'),
    ("runs/log-batch", '{"run_id": "%(run)s", "tags": [{"key": "t", "value": "a\\udc00b"}]}'),
    ("runs/search", '{"experiment_ids": ["0"], "filter": "params.a = \'\\ud800\'"}'),
    ("registered-models/create", '{"name": "m\\ud800"}'),
], ids=["experiment-name", "tag-value", "param-key", "batch-tag", "filter", "model-name"])
def test_lone_surrogates_are_refused(server: ServerProcess, run_id: str, path: str, body: str) -> None:
    _assert_4xx(_raw_post(server, path, body % {"run": run_id}), "BAD_REQUEST")


def test_surrogate_pairs_are_ordinary_text(server: ServerProcess, run_id: str) -> None:
    reply = _raw_post(server, "runs/set-tag", '{"run_id": "%s", "key": "emoji", "value": "\\ud83d\\ude00"}' % run_id)
    assert reply.status_code == 200, reply.text
    tags = {t["key"]: t["value"] for t in server.api("GET", "runs/get", {"run_id": run_id}).json()["run"]["data"]["tags"]}
    assert tags["emoji"] == "\U0001F600"


@pytest.mark.parametrize("rel", ["a" * 6000, "/".join(["d" * 200] * 30), "ok/" + "n" * 300],
                         ids=["6000-char-name", "6000-char-path", "300-char-name"])
def test_very_long_artifact_paths(server: ServerProcess, rel: str) -> None:
    base = server.url + "/api/2.0/mlflow-artifacts/artifacts"
    _assert_4xx(server.session.put(f"{base}/{rel}", data=b"x", timeout=30))
    _assert_4xx(server.session.get(f"{base}/{rel}", timeout=30))
    _assert_4xx(server.session.get(base, params={"path": rel}, timeout=30))
    _assert_4xx(server.session.delete(f"{base}/{rel}", timeout=30))
