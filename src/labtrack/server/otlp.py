"""OTLP/HTTP span export (``POST /v1/traces``): the protobuf the mlflow client sends, decoded.

The mlflow 3 client exports each trace's spans as an OpenTelemetry
``ExportTraceServiceRequest`` (binary protobuf, the experiment in the
``x-mlflow-experiment-id`` header).  The few messages involved are decoded
here by hand, from the protobuf wire format, into the OTLP JSON that the
client reads back from ``traces/get``: no protobuf runtime in the server.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from labtrack.errors import BadRequest

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
                span_type = None
                for a in span.get("attributes", []):
                    if a.get("key") == "mlflow.spanType":
                        raw = (a.get("value") or {}).get("string_value")
                        try:
                            span_type = json.loads(raw) if isinstance(raw, str) and raw.startswith('"') else raw
                        except ValueError:
                            span_type = raw
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


__all__ = ["decode_spans"]
