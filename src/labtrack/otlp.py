"""OTLP spans: the JSON form labtrack stores and the protobuf of ``POST /v1/traces``.

The mlflow 3 client exports each trace's spans as an OpenTelemetry
``ExportTraceServiceRequest`` (binary protobuf, the experiment in the
``x-mlflow-experiment-id`` header).  The few messages involved are decoded
(the server) and encoded (``lt`` tracing to an MLflow server) here by hand,
from the protobuf wire format, to and from the OTLP JSON that the client reads
back from ``traces/get``: no protobuf runtime on either side.  labtrack's plain
span dicts (``lt.trace``, the AI gateway) become the same JSON here.  A leaf
module, shared by the store, the server and the client.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from typing import Any

from labtrack.errors import BadRequest, InvalidParameterValue

# field number -> (name, kind); kind: a message name, "bytes", "str", "varint", "sint",
# "fixed64", "fixed32", "double"; repeated fields are the names in _REPEATED.
_SCHEMA: dict[str, dict[int, tuple[str, str]]] = {
    "Request": {1: ("resource_spans", "ResourceSpans")},
    "ResourceSpans": {1: ("resource", "Resource"), 2: ("scope_spans", "ScopeSpans"), 3: ("schema_url", "str")},
    "Resource": {1: ("attributes", "KeyValue"), 2: ("dropped_attributes_count", "varint")},
    "ScopeSpans": {1: ("scope", "Scope"), 2: ("spans", "Span"), 3: ("schema_url", "str")},
    "Scope": {1: ("name", "str"), 2: ("version", "str"), 3: ("attributes", "KeyValue"),
              4: ("dropped_attributes_count", "varint")},
    "Span": {1: ("trace_id", "bytes"), 2: ("span_id", "bytes"), 3: ("trace_state", "str"),
             4: ("parent_span_id", "bytes"), 5: ("name", "str"), 6: ("kind", "varint"),
             7: ("start_time_unix_nano", "fixed64"), 8: ("end_time_unix_nano", "fixed64"),
             9: ("attributes", "KeyValue"), 10: ("dropped_attributes_count", "varint"),
             11: ("events", "Event"), 12: ("dropped_events_count", "varint"), 13: ("links", "Link"),
             14: ("dropped_links_count", "varint"), 15: ("status", "Status"), 16: ("flags", "fixed32")},
    "Event": {1: ("time_unix_nano", "fixed64"), 2: ("name", "str"), 3: ("attributes", "KeyValue"),
              4: ("dropped_attributes_count", "varint")},
    "Link": {1: ("trace_id", "bytes"), 2: ("span_id", "bytes"), 3: ("trace_state", "str"),
             4: ("attributes", "KeyValue"), 5: ("dropped_attributes_count", "varint"), 6: ("flags", "fixed32")},
    "Status": {2: ("message", "str"), 3: ("code", "varint")},
    "KeyValue": {1: ("key", "str"), 2: ("value", "AnyValue")},
    "AnyValue": {1: ("string_value", "str"), 2: ("bool_value", "varint"), 3: ("int_value", "sint"),
                 4: ("double_value", "double"), 5: ("array_value", "ArrayValue"),
                 6: ("kvlist_value", "KeyValueList"), 7: ("bytes_value", "bytes")},
    "ArrayValue": {1: ("values", "AnyValue")},
    "KeyValueList": {1: ("values", "KeyValue")},
}
_REPEATED = {"resource_spans", "scope_spans", "spans", "attributes", "events", "links", "values"}
_STATUS_CODES = {0: "STATUS_CODE_UNSET", 1: "STATUS_CODE_OK", 2: "STATUS_CODE_ERROR"}
_MAX_DEPTH = 64


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise BadRequest("Malformed OTLP protobuf: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _decode(buf: bytes, kind: str, depth: int = 0) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise BadRequest("Malformed OTLP protobuf: nested too deeply")
    schema = _SCHEMA[kind]
    out: dict[str, Any] = {}
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            raw, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise BadRequest("Malformed OTLP protobuf: truncated fixed64")
            raw, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise BadRequest("Malformed OTLP protobuf: truncated field")
            raw, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            if pos + 4 > end:
                raise BadRequest("Malformed OTLP protobuf: truncated fixed32")
            raw, pos = buf[pos:pos + 4], pos + 4
        else:
            raise BadRequest(f"Malformed OTLP protobuf: wire type {wire}")
        field = schema.get(number)
        if field is None:
            continue  # unknown fields are skipped, as protobuf does
        name, ftype = field
        if ftype == "str":
            value: Any = bytes(raw).decode("utf-8", "replace")
        elif ftype == "bytes":
            value = bytes(raw)
        elif ftype == "varint":
            value = raw
        elif ftype == "sint":  # int64 as two's complement in a varint
            value = raw - (1 << 64) if raw >= 1 << 63 else raw
        elif ftype == "fixed64":
            value = struct.unpack("<Q", raw)[0]
        elif ftype == "fixed32":
            value = struct.unpack("<I", raw)[0]
        elif ftype == "double":
            value = struct.unpack("<d", raw)[0]
        else:
            value = _decode(bytes(raw), ftype, depth + 1)
        if name in _REPEATED:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    if kind == "AnyValue" and "bool_value" in out:
        out["bool_value"] = bool(out["bool_value"])
    return out


def _json_safe(v: Any) -> Any:
    """Bytes as base64 and non-finite doubles as strings: protobuf's JSON mapping."""
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, float) and v != v:
        return "NaN"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return v


def decode_spans(body: bytes) -> list[dict[str, Any]]:
    """The spans of an ExportTraceServiceRequest, each with hex ids and its OTLP JSON.

    Returns dicts with ``trace_hex``, ``span_id``, ``parent_span_id`` (hex or
    None), ``name``, ``span_type``, ``status``, ``start_ns``, ``end_ns`` and
    ``content`` (the JSON text ``traces/get`` returns for the span).
    """
    try:
        request = _decode(body, "Request")
    except (IndexError, struct.error, RecursionError):
        raise BadRequest("Malformed OTLP protobuf") from None
    out = []
    for rs in request.get("resource_spans", []):
        for ss in rs.get("scope_spans", []):
            for span in ss.get("spans", []):
                trace_id, span_id = span.get("trace_id", b""), span.get("span_id", b"")
                if len(trace_id) != 16 or len(span_id) != 8:
                    raise BadRequest("Every OTLP span needs a 16-byte trace_id and an 8-byte span_id")
                parent = span.get("parent_span_id") or None
                status = span.get("status") or {}
                code = _STATUS_CODES.get(int(status.get("code", 0)), "STATUS_CODE_UNSET")
                status_json: dict[str, Any] = {"code": code}
                if status.get("message"):
                    status_json["message"] = status["message"]
                span_type = span_type_of(span.get("attributes") or [])
                content = {k: v for k, v in span.items() if k not in ("status",)}
                content["status"] = status_json
                out.append({
                    "trace_hex": trace_id.hex(), "span_id": span_id.hex(),
                    "parent_span_id": parent.hex() if parent and len(parent) == 8 else None,
                    "name": span.get("name") or "", "span_type": span_type,
                    "status": code.replace("STATUS_CODE_", ""),
                    "start_ns": int(span.get("start_time_unix_nano", 0)),
                    "end_ns": span.get("end_time_unix_nano"),
                    "content": json.dumps(_json_safe(content), separators=(",", ":"), ensure_ascii=False),
                })
    return out




# -- encoding ---------------------------------------------------------------------------------
_FIELDS = {kind: {name: (number, ftype) for number, (name, ftype) in fields.items()} for kind, fields in _SCHEMA.items()}
_CODES = {v: k for k, v in _STATUS_CODES.items()}


def _put_varint(out: bytearray, n: int) -> None:
    n &= (1 << 64) - 1
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _encode(msg: dict[str, Any], kind: str) -> bytes:
    out = bytearray()
    fields = _FIELDS[kind]
    for name, value in msg.items():
        spec = fields.get(name)
        if spec is None or value is None:
            continue
        number, ftype = spec
        for v in (value if name in _REPEATED else [value]):
            if ftype in ("varint", "sint"):
                if name == "code" and isinstance(v, str):
                    v = _CODES.get(v, 0)
                _put_varint(out, number << 3)
                _put_varint(out, int(v))
            elif ftype == "fixed64":
                _put_varint(out, number << 3 | 1)
                out += struct.pack("<Q", int(v))
            elif ftype == "double":
                _put_varint(out, number << 3 | 1)
                out += struct.pack("<d", float(v))
            elif ftype == "fixed32":
                _put_varint(out, number << 3 | 5)
                out += struct.pack("<I", int(v))
            else:
                if ftype == "str":
                    data = str(v).encode("utf-8")
                elif ftype == "bytes":
                    data = base64.b64decode(v) if isinstance(v, str) else bytes(v)
                else:
                    data = _encode(v, ftype)
                _put_varint(out, number << 3 | 2)
                _put_varint(out, len(data))
                out += data
    return bytes(out)


def encode_spans(spans: list[dict[str, Any]]) -> bytes:
    """An ExportTraceServiceRequest of ``spans`` (OTLP JSON, as ``span_json`` makes them)."""
    return _encode({"resource_spans": [{"scope_spans": [{"spans": spans}]}]}, "Request")


# -- labtrack's plain spans ---------------------------------------------------------------------
SPAN_INPUTS = "mlflow.spanInputs"
SPAN_OUTPUTS = "mlflow.spanOutputs"
SPAN_TYPE = "mlflow.spanType"
SPAN_REQUEST_ID = "mlflow.traceRequestId"
SPAN_TOKEN_USAGE = "mlflow.chat.tokenUsage"
PREVIEW_CHARS = 1000  # request/response previews, as MLflow truncates them
_HEX16 = re.compile(r"[0-9a-f]{16}")


def any_value(value: Any) -> dict[str, Any]:
    """A Python value as OTLP's AnyValue JSON (what the mlflow client writes for attributes)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, int):
        return {"int_value": value}
    if isinstance(value, float):
        return {"double_value": value}
    if isinstance(value, str):
        return {"string_value": value}
    if isinstance(value, (list, tuple)):
        return {"array_value": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlist_value": {"values": [{"key": str(k), "value": any_value(v)} for k, v in value.items()]}}
    return {"string_value": str(value)}


def _span_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _HEX16.fullmatch(value):
        raise InvalidParameterValue(f"Invalid {field} {value!r}: expected 16 lowercase hex digits")
    return value


def trace_hex(trace_id: str) -> str:
    """The 32 hex digits (the OTLP trace id) of an MLflow trace id ``tr-...``."""
    hexpart = trace_id[3:] if trace_id.startswith("tr-") else ""
    if not re.fullmatch(r"[0-9a-f]{32}", hexpart):
        raise InvalidParameterValue(f"Invalid trace id {trace_id!r}: expected 'tr-' and 32 hex digits")
    return hexpart


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode("ascii")


def span_json(trace_id: str, d: dict[str, Any]) -> dict[str, Any]:
    """labtrack's plain span dict as OTLP JSON.

    ``d``: span_id and parent_span_id (16 hex digits, parent None for the root),
    name, span_type, start_time_ns, end_time_ns, status ("OK", "ERROR" or
    "UNSET"), status_message, inputs, outputs, attributes {name: value} and
    events [{name, time_ns, attributes}].
    """
    span_id = _span_id(d.get("span_id"), "span_id")
    parent = d.get("parent_span_id") or None
    if parent is not None:
        parent = _span_id(parent, "parent_span_id")
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidParameterValue("Every span needs a name")
    status = str(d.get("status") or "OK").upper()
    if status not in ("OK", "ERROR", "UNSET"):
        raise InvalidParameterValue(f"Invalid span status {status!r}: expected OK, ERROR or UNSET")
    try:
        start = int(d["start_time_ns"])
        end = None if d.get("end_time_ns") is None else int(d["end_time_ns"])
    except (KeyError, TypeError, ValueError):
        raise InvalidParameterValue("Every span needs an integer start_time_ns") from None
    attrs: list[dict[str, Any]] = [
        {"key": SPAN_REQUEST_ID, "value": {"string_value": trace_id}},
        {"key": SPAN_TYPE, "value": {"string_value": str(d.get("span_type") or "UNKNOWN")}},
    ]
    for key, attr in (("inputs", SPAN_INPUTS), ("outputs", SPAN_OUTPUTS)):
        if d.get(key) is not None:
            attrs.append({"key": attr, "value": any_value(d[key])})
    for key, value in (d.get("attributes") or {}).items():
        attrs.append({"key": str(key), "value": any_value(value)})
    content: dict[str, Any] = {"trace_id": _b64(trace_hex(trace_id)), "span_id": _b64(span_id)}
    if parent:
        content["parent_span_id"] = _b64(parent)
    content.update(name=name, start_time_unix_nano=start)
    if end is not None:
        content["end_time_unix_nano"] = end
    content["attributes"] = attrs
    events = [{"time_unix_nano": int(e.get("time_ns") or start), "name": str(e.get("name") or "event"),
               "attributes": [{"key": str(k), "value": any_value(v)} for k, v in (e.get("attributes") or {}).items()]}
              for e in d.get("events") or []]
    if events:
        content["events"] = events
    content["status"] = {"code": "STATUS_CODE_" + status}
    if d.get("status_message"):
        content["status"]["message"] = str(d["status_message"])
    return content


def preview(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:PREVIEW_CHARS]


def summary(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """What a trace's info says of its plain spans: name, times, state, previews, token usage."""
    roots = [d for d in spans if not d.get("parent_span_id")]
    root = roots[0] if roots else spans[0]
    start_ms = min(int(d["start_time_ns"]) for d in spans) // 1_000_000
    ends = [int(d["end_time_ns"]) for d in spans if d.get("end_time_ns") is not None]
    end_ms = max(ends) // 1_000_000 if ends else None
    status = str(root.get("status") or "OK").upper()
    state = "ERROR" if status == "ERROR" else ("OK" if root.get("end_time_ns") is not None else "IN_PROGRESS")
    usage: dict[str, int] = {}
    for d in spans:
        u = (d.get("attributes") or {}).get(SPAN_TOKEN_USAGE)
        if isinstance(u, str):
            try:
                u = json.loads(u)
            except ValueError:
                u = None
        if isinstance(u, dict):
            for k in ("input_tokens", "output_tokens", "total_tokens"):
                if isinstance(u.get(k), int):
                    usage[k] = usage.get(k, 0) + u[k]
    return {"name": str(root.get("name") or ""), "start_ms": start_ms,
            "duration_ms": None if end_ms is None else end_ms - start_ms, "state": state,
            "inputs": root.get("inputs"), "outputs": root.get("outputs"), "usage": usage}


def trace_info(experiment_id: str, trace_id: str, spans: list[dict[str, Any]], *,
               tags: dict[str, str] | None = None, metadata: dict[str, str] | None = None,
               request_preview: str | None = None, response_preview: str | None = None,
               client_request_id: str | None = None) -> dict[str, Any]:
    """MLflow's TraceInfo JSON (as StartTraceV3 takes it) of a finished trace of plain spans."""
    if not spans:
        raise InvalidParameterValue("A trace needs at least one span")
    sm = summary(spans)
    meta = {"mlflow.trace_schema.version": "3"}
    if sm["usage"]:
        meta["mlflow.trace.tokenUsage"] = json.dumps(sm["usage"])
    if sm["inputs"] is not None:
        meta["mlflow.traceInputs"] = preview(sm["inputs"]) or ""
    if sm["outputs"] is not None:
        meta["mlflow.traceOutputs"] = preview(sm["outputs"]) or ""
    meta.update(metadata or {})
    info: dict[str, Any] = {
        "trace_id": trace_id,
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": str(experiment_id)}},
        "request_time": rfc3339(sm["start_ms"]), "state": sm["state"], "trace_metadata": meta,
        "tags": {"mlflow.traceName": sm["name"], **(tags or {})},
    }
    if sm["duration_ms"] is not None:
        info["execution_duration"] = duration_json(sm["duration_ms"])
    req = request_preview if request_preview is not None else preview(sm["inputs"])
    resp = response_preview if response_preview is not None else preview(sm["outputs"])
    if req is not None:
        info["request_preview"] = req
    if resp is not None:
        info["response_preview"] = resp
    if client_request_id:
        info["client_request_id"] = client_request_id
    return info


def rfc3339(ms: int) -> str:
    """Epoch milliseconds as protobuf's Timestamp JSON (``2026-12-03T10:32:59.364Z``)."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def duration_json(ms: int) -> str:
    """Milliseconds as protobuf's Duration JSON (``1.663s``)."""
    return f"{ms // 1000}.{ms % 1000:03d}s"


__all__ = ["any_value", "decode_spans", "duration_json", "encode_spans", "preview", "rfc3339", "span_json",
           "summary", "trace_hex", "trace_info"]


def span_type_of(attributes: list[dict[str, Any]]) -> str | None:
    """The ``mlflow.spanType`` of an OTLP span's attributes (a JSON string, as MLflow writes it,
    or a bare one), or None."""
    span_type = None
    for a in attributes:
        if a.get("key") == "mlflow.spanType":
            raw = (a.get("value") or {}).get("string_value")
            try:
                span_type = json.loads(raw) if isinstance(raw, str) and raw.startswith('"') else raw
            except ValueError:
                span_type = raw
    return span_type
