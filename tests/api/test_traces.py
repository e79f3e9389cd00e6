"""The trace endpoints over HTTP, on SQLite and PostgreSQL: OTLP export, the search grammar,
assessments, deletes, and MLflow's error JSON for bad input."""

from __future__ import annotations

import gzip
import os
import uuid
from typing import Any

import pytest

from tests.servers import ServerProcess


def otlp_body(trace_hex: str, spans: list[tuple[str, str | None, str, int]]) -> bytes:
    """An ExportTraceServiceRequest as the mlflow client encodes it (with the real protobuf classes)."""
    pytest.importorskip("opentelemetry.proto")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    for span_hex, parent_hex, name, code in spans:
        s: Any = scope.spans.add()
        s.trace_id = bytes.fromhex(trace_hex)
        s.span_id = bytes.fromhex(span_hex)
        if parent_hex:
            s.parent_span_id = bytes.fromhex(parent_hex)
        s.name = name
        s.start_time_unix_nano = 1_790_000_000_000_000_000
        s.end_time_unix_nano = 1_790_000_000_500_000_000
        s.status.CopyFrom(Status(code=code, message="boom" if code == 2 else ""))
        for key, value in (("mlflow.spanType", "LLM"), ("mlflow.spanInputs", "x" * 100_000)):
            a = s.attributes.add()
            a.key = key
            a.value.string_value = value
        n = s.attributes.add()
        n.key = "nested"
        kv = n.value.kvlist_value.values.add()
        kv.key = "neg"
        kv.value.int_value = -5
        e = s.events.add()
        e.name = "evt"
        e.time_unix_nano = 1_790_000_000_100_000_000
        assert isinstance(s, Span)
    return req.SerializeToString()


def _exp(server: ServerProcess) -> str:
    return server.api("POST", "experiments/create", {"name": f"t-{uuid.uuid4().hex[:8]}"}).json()["experiment_id"]


def _search(server: ServerProcess, exp: str, **kw: Any) -> Any:
    body = {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}], **kw}
    return server.api("POST", "/api/3.0/mlflow/traces/search", body)


def test_otlp_spans_and_trace_info_round_trip(server: ServerProcess) -> None:
    exp = _exp(server)
    trace_hex, root, child = uuid.uuid4().hex, os.urandom(8).hex(), os.urandom(8).hex()
    body = otlp_body(trace_hex, [(root, None, "root", 1), (child, root, "child", 2)])
    headers = {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": exp}
    for _ in range(2):  # a retried export changes nothing
        r = server.session.post(server.url + "/v1/traces", data=body, headers=headers, timeout=60)
        assert r.status_code == 200, r.text
    # OpenTelemetry's own exporters compress their exports.
    r = server.session.post(server.url + "/v1/traces", data=gzip.compress(body), timeout=60,
                            headers={**headers, "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    r = server.session.post(server.url + "/v1/traces", data=body[:-3], timeout=60,
                            headers={**headers, "Content-Encoding": "gzip"})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST"
    trace_id = "tr-" + trace_hex
    got = server.api("GET", "/api/3.0/mlflow/traces/get", {"trace_id": trace_id}).json()["trace"]
    assert got["trace_info"]["tags"]["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    assert got["trace_info"]["tags"]["mlflow.traceName"] == "root"
    assert got["trace_info"]["state"] == "OK" and got["trace_info"]["execution_duration"] == "0.500s"
    assert [s["name"] for s in got["spans"]] == ["root", "child"] or sorted(s["name"] for s in got["spans"]) == ["child", "root"]
    by_name = {s["name"]: s for s in got["spans"]}
    assert by_name["child"]["status"] == {"code": "STATUS_CODE_ERROR", "message": "boom"}
    attrs = {a["key"]: a["value"] for a in by_name["child"]["attributes"]}
    assert len(attrs["mlflow.spanInputs"]["string_value"]) == 100_000
    assert attrs["nested"] == {"kvlist_value": {"values": [{"key": "neg", "value": {"int_value": -5}}]}}

    # The client's StartTraceV3 after the spans: its info wins, the spans stay.
    info = {"trace_id": trace_id, "trace_location": {"type": "MLFLOW_EXPERIMENT",
                                                     "mlflow_experiment": {"experiment_id": exp}},
            "request_time": "2026-12-03T10:32:59.364123Z", "execution_duration": "1.5s", "state": "ERROR",
            "trace_metadata": {"mlflow.user": "ana"}, "tags": {"team": "nlp"}, "request_preview": "q"}
    started = server.api("POST", "/api/3.0/mlflow/traces", {"trace": {"trace_info": info}}).json()["trace"]["trace_info"]
    assert started["request_time"] == "2026-12-03T10:32:59.364Z" and started["execution_duration"] == "1.500s"
    assert started["tags"]["team"] == "nlp" and started["tags"]["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    assert started["tags"]["mlflow.artifactLocation"].endswith(f"/traces/{trace_id}/artifacts")
    assert len(server.api("GET", "/api/3.0/mlflow/traces/get", {"trace_id": trace_id}).json()["trace"]["spans"]) == 2
    info_only = server.api("GET", f"/api/3.0/mlflow/traces/{trace_id}", {"trace_id": trace_id}).json()
    assert info_only["trace"]["trace_info"]["trace_metadata"]["mlflow.user"] == "ana"

    # Span-level and attribute filters.
    assert [t["trace_id"] for t in _search(server, exp, filter="span.status = 'ERROR'").json()["traces"]] == [trace_id]
    assert _search(server, exp, filter="span.name = 'nope'").json()["traces"] == []
    assert [t["trace_id"] for t in _search(server, exp, filter="trace.execution_time_ms > 1000").json()["traces"]] == [trace_id]


def test_search_order_pages_assessments_and_deletes(server: ServerProcess) -> None:
    exp = _exp(server)
    ids = []
    for i in range(5):
        trace_id = "tr-" + uuid.uuid4().hex
        spans = [{"span_id": os.urandom(8).hex(), "name": f"step{i}", "start_time_ns": (1_790_000_000_000 + i * 10) * 10**6,
                  "end_time_ns": (1_790_000_000_000 + i * 10 + 5 * i) * 10**6, "status": "ERROR" if i == 2 else "OK",
                  "inputs": {"i": i, "word": f"w{i}x"}, "outputs": i * i}]
        r = server.api("POST", "/api/2.0/labtrack/traces/log", {"experiment_id": exp, "trace_id": trace_id,
                                                                "spans": spans, "tags": {"parity": str(i % 2)}})
        assert r.status_code == 200, r.text
        ids.append(trace_id)
    page = _search(server, exp, max_results=2, order_by=["timestamp_ms ASC"]).json()
    assert [t["trace_id"] for t in page["traces"]] == ids[:2] and page["next_page_token"]
    rest = _search(server, exp, max_results=10, order_by=["timestamp_ms ASC"], page_token=page["next_page_token"]).json()
    assert [t["trace_id"] for t in rest["traces"]] == ids[2:] and "next_page_token" not in rest
    slowest = _search(server, exp, order_by=["execution_time_ms DESC"]).json()["traces"]
    assert [t["trace_id"] for t in slowest] == ids[::-1]
    assert [t["trace_id"] for t in _search(server, exp, filter="tags.parity = '1'", order_by=["timestamp_ms ASC"]).json()["traces"]] == [ids[1], ids[3]]
    assert [t["trace_id"] for t in _search(server, exp, filter="trace.status != 'OK'").json()["traces"]] == [ids[2]]
    assert [t["trace_id"] for t in _search(server, exp, filter="trace.text ILIKE '%W4X%'").json()["traces"]] == [ids[4]]

    # Assessments: create, update by mask, override, delete.
    fb = {"assessment_name": "good", "trace_id": ids[0], "source": {"source_type": "HUMAN", "source_id": "ana"},
          "feedback": {"value": 0.5}, "rationale": "ok"}
    a = server.api("POST", f"/api/3.0/mlflow/traces/{ids[0]}/assessments", {"assessment": fb}).json()["assessment"]
    aid = a["assessment_id"]
    upd = server.api("PATCH", f"/api/3.0/mlflow/traces/{ids[0]}/assessments/{aid}",
                     {"assessment": {"feedback": {"value": 0.9}}, "update_mask": "feedback,rationale"}).json()["assessment"]
    assert upd["feedback"] == {"value": 0.9} and "rationale" not in upd
    over = server.api("POST", f"/api/3.0/mlflow/traces/{ids[0]}/assessments",
                      {"assessment": {**fb, "feedback": {"value": 1.0}, "overrides": aid}}).json()["assessment"]
    old = server.api("GET", f"/api/3.0/mlflow/traces/{ids[0]}/assessments/{aid}").json()["assessment"]
    assert old["valid"] is False
    assert [t["trace_id"] for t in _search(server, exp, filter="feedback.good = '1.0'").json()["traces"]] == [ids[0]]
    server.api("DELETE", f"/api/3.0/mlflow/traces/{ids[0]}/assessments/{over['assessment_id']}")
    assert server.api("GET", f"/api/3.0/mlflow/traces/{ids[0]}/assessments/{aid}").json()["assessment"]["valid"] is True
    missing = server.api("GET", f"/api/3.0/mlflow/traces/{ids[0]}/assessments/a-nope")
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    # Tags, run links, deletes.
    assert server.api("PATCH", f"/api/2.0/mlflow/traces/{ids[1]}/tags", {"key": "k", "value": "v"}).status_code == 200
    assert server.api("DELETE", f"/api/2.0/mlflow/traces/{ids[1]}/tags", {"key": "k"}).status_code == 200
    assert server.api("DELETE", f"/api/2.0/mlflow/traces/{ids[1]}/tags", {"key": "k"}).status_code == 404
    run = server.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]
    assert server.api("POST", "traces/link-to-run", {"trace_ids": [ids[3]], "run_id": run}).status_code == 200
    assert [t["trace_id"] for t in _search(server, exp, filter=f"run_id = '{run}'").json()["traces"]] == [ids[3]]
    n = server.api("POST", "traces/delete-traces", {"experiment_id": exp, "request_ids": ids[:2]}).json()
    assert n == {"traces_deleted": 2}
    n = server.api("POST", "traces/delete-traces", {"experiment_id": exp, "max_timestamp_millis": 1_790_000_000_025,
                                                    "max_traces": 1}).json()
    assert n == {"traces_deleted": 1}
    assert [t["trace_id"] for t in _search(server, exp, order_by=["timestamp_ms ASC"]).json()["traces"]] == ids[3:]


@pytest.mark.parametrize("body, code", [
    ({"filter": "tags.a = 'x' OR tags.b = 'y'"}, "INVALID_PARAMETER_VALUE"),
    ({"filter": "nonsense.x = 1"}, "INVALID_PARAMETER_VALUE"),
    ({"filter": "trace.timestamp_ms > 'abc'"}, "INVALID_PARAMETER_VALUE"),
    ({"order_by": ["tags.x DESC"]}, "INVALID_PARAMETER_VALUE"),
    ({"max_results": 0}, "INVALID_PARAMETER_VALUE"),
    ({"page_token": "!!"}, "INVALID_PARAMETER_VALUE"),
])
def test_bad_searches_get_mlflow_errors(server: ServerProcess, body: dict[str, Any], code: str) -> None:
    r = _search(server, "0", **body)
    assert r.status_code == 400 and r.json()["error_code"] == code, r.text


def test_bad_writes_get_mlflow_errors(server: ServerProcess) -> None:
    bad_span = {"experiment_id": "0", "spans": [{"span_id": "zz", "name": "x", "start_time_ns": 1}]}
    for path, body in [("/api/2.0/labtrack/traces/log", bad_span),
                       ("/api/2.0/labtrack/traces/log", {"experiment_id": "0", "spans": []}),
                       ("/api/2.0/labtrack/traces/log", {"experiment_id": "999999", "spans": [
                           {"span_id": "0" * 16, "name": "x", "start_time_ns": 1}]}),
                       ("/api/3.0/mlflow/traces", {"trace": {"trace_info": {"trace_id": "tr-1"}}}),
                       ("/api/3.0/mlflow/traces", {})]:
        r = server.api("POST", path, body)
        assert 400 <= r.status_code < 500 and "error_code" in r.json(), (path, r.text)
    r = server.session.post(server.url + "/v1/traces", data=b"\xff", timeout=30,
                            headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": "0"})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST"
    r = server.session.post(server.url + "/v1/traces", data=otlp_body(uuid.uuid4().hex, [(os.urandom(8).hex(), None, "x", 1)]),
                            timeout=30, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400  # no experiment header
