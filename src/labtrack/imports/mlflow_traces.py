"""MLflow 3 traces as MLflow keeps them (its tables, its ``traces.json``) in the wire forms
labtrack stores: TraceInfo JSON, Assessment JSON and OTLP JSON spans.

These are the JSON forms MLflow's own server sends (``traces/search``, ``traces/batchGet``),
so a trace read from MLflow's database and one read from its server are stored alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labtrack.otlp import any_value, duration_json, rfc3339

# MLflow 2's trace status, renamed "state" in MLflow 3.
_STATES = {"TRACE_STATUS_UNSPECIFIED": "STATE_UNSPECIFIED", "OK": "OK", "ERROR": "ERROR",
           "IN_PROGRESS": "IN_PROGRESS", "STATE_UNSPECIFIED": "STATE_UNSPECIFIED"}


def trace_info(trace_id: str, experiment_id: str, request_time: int | None, duration_ms: int | None,
               status: str | None, tags: dict[str, str], metadata: dict[str, str],
               client_request_id: str | None = None, request_preview: str | None = None,
               response_preview: str | None = None) -> dict[str, Any]:
    """A row of MLflow's ``trace_info`` (with its tags and metadata) as TraceInfoV3 JSON."""
    info: dict[str, Any] = {
        "trace_id": trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_time": rfc3339(int(request_time or 0)),
        "state": _STATES.get(str(status or ""), "STATE_UNSPECIFIED"),
        "tags": tags, "trace_metadata": metadata,
    }
    if duration_ms is not None:
        info["execution_duration"] = duration_json(int(duration_ms))
    if client_request_id:
        info["client_request_id"] = client_request_id
    if request_preview is not None:
        info["request_preview"] = request_preview
    if response_preview is not None:
        info["response_preview"] = response_preview
    return info


def assessment(m: Any) -> dict[str, Any]:
    """A row of MLflow's ``assessments`` table (a mapping) as Assessment JSON."""
    out: dict[str, Any] = {
        "assessment_id": m["assessment_id"], "assessment_name": m["name"], "trace_id": m["trace_id"],
        "source": {"source_type": m["source_type"] or "SOURCE_TYPE_UNSPECIFIED", "source_id": m["source_id"] or ""},
        "create_time": rfc3339(int(m["created_timestamp"] or 0)),
        "last_update_time": rfc3339(int(m["last_updated_timestamp"] or m["created_timestamp"] or 0)),
    }
    value = _loads(m["value"])
    if str(m["assessment_type"]).lower() == "expectation":
        if value is None or isinstance(value, (str, int, float, bool)):
            out["expectation"] = {"value": value}
        else:  # MLflow sends a structured expectation serialized
            out["expectation"] = {"serialized_value": {"serialization_format": "JSON_FORMAT",
                                                       "value": json.dumps(value)}}
    else:
        feedback: dict[str, Any] = {"value": value}
        error = _loads(m["error"])
        if error:
            feedback["error"] = error
        out["feedback"] = feedback
    for key in ("rationale", "span_id", "run_id", "overrides"):
        if m[key]:
            out[key] = m[key]
    metadata = _loads(m["assessment_metadata"])
    if metadata:
        out["metadata"] = {str(k): str(v) for k, v in metadata.items()}
    out["valid"] = m["valid"] is None or bool(m["valid"])
    return out


def span(d: dict[str, Any]) -> dict[str, Any] | None:
    """A span as MLflow 3 stores it (``Span.to_dict``: its ``spans`` table and ``traces.json``) as
    OTLP JSON; None for an MLflow 2 span (no ``span_id`` at the top)."""
    if not isinstance(d, dict) or not d.get("span_id") or not d.get("trace_id"):
        return None
    out: dict[str, Any] = {"trace_id": d["trace_id"], "span_id": d["span_id"]}
    if d.get("parent_span_id"):
        out["parent_span_id"] = d["parent_span_id"]
    out["name"] = d.get("name") or ""
    out["start_time_unix_nano"] = int(d.get("start_time_unix_nano") or 0)
    if d.get("end_time_unix_nano") is not None:
        out["end_time_unix_nano"] = int(d["end_time_unix_nano"])
    out["attributes"] = _attributes(d.get("attributes"), encoded=True)
    events = [{"time_unix_nano": int(e.get("time_unix_nano") or 0), "name": str(e.get("name") or ""),
               "attributes": _attributes(e.get("attributes"), encoded=False)} for e in d.get("events") or []]
    if events:
        out["events"] = events
    status = d.get("status") or {}
    out["status"] = {"code": str(status.get("code") or "STATUS_CODE_UNSET")}
    if status.get("message"):
        out["status"]["message"] = status["message"]
    return out


def spans_file(path: Path | None, trace_id: str, skip: Callable[[str], None]) -> list[dict[str, Any]]:
    """The spans of a trace's ``traces.json`` artifact (``{"spans": [...]}``) as OTLP JSON; none
    (and ``skip`` told why) when it is unreadable or in MLflow 2's span format."""
    if path is None or not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        skip(f"spans of trace {trace_id} ({path}: {e})")
        return []
    spans = [span(d) for d in (data.get("spans") or [])] if isinstance(data, dict) else []
    if any(s is None for s in spans):
        skip(f"spans of trace {trace_id} (MLflow 2's span format)")
        return []
    return [s for s in spans if s is not None]


def _attributes(attrs: Any, encoded: bool) -> list[dict[str, Any]]:
    """MLflow keeps a span's attributes JSON-encoded (``encoded``); OTLP lists their values, decoded,
    as MLflow's own ``Span.to_otel_proto`` does."""
    if isinstance(attrs, list):
        return attrs
    return [{"key": str(k), "value": any_value(_loads(v) if encoded and isinstance(v, str) else v)}
            for k, v in (attrs or {}).items()]


def _loads(text: Any) -> Any:
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text
