"""MLflow 3 trace endpoints (reference §2.8), the OTLP span export, and labtrack's own trace log.

The mlflow 3.17 client, on a server whose ``/version`` is 3.4 or newer, sends
each trace's spans to ``POST /v1/traces`` (OTLP protobuf) and, once the trace
has ended, its info to ``POST /api/3.0/mlflow/traces``; it reads them back
through ``traces/get``, ``traces/batchGet`` and ``traces/search``.  The ``lt``
client, its spool and the AI gateway record a whole trace in one call
(``POST /api/2.0/labtrack/traces/log``).
"""

from __future__ import annotations

import json
from typing import Any

from labtrack.errors import BadRequest, InvalidParameterValue
from labtrack.server.args import Args
from labtrack.server.base import BaseHandler, RawJson, ServerContext, on_pool
from labtrack.otlp import decode_spans
from labtrack.store.traces import TraceStore, span_row

EXPERIMENT_HEADER = "x-mlflow-experiment-id"


def trace_store(ctx: ServerContext) -> TraceStore:
    """The server's TraceStore (one per server, made on first use)."""
    return ctx.one("traces", lambda: TraceStore(ctx.store))


def _message(a: Args, name: str) -> dict[str, Any]:
    value = a.data.get(name)
    if not isinstance(value, dict):
        raise InvalidParameterValue(f"Missing value for required parameter '{name}'")
    return value


# -- MLflow's trace endpoints -----------------------------------------------------------------
def start_trace(ctx: ServerContext, a: Args) -> dict[str, Any]:
    trace = _message(a, "trace")
    info = trace.get("trace_info")
    if not isinstance(info, dict):
        raise InvalidParameterValue("Missing value for required parameter 'trace.trace_info'")
    return {"trace": {"trace_info": trace_store(ctx).start_trace(info)}}


def get_info(ctx: ServerContext, a: Args, trace_id: str) -> dict[str, Any]:
    return {"trace": {"trace_info": trace_store(ctx).get_info(trace_id)}}


def get_trace(ctx: ServerContext, a: Args) -> RawJson:
    return RawJson('{"trace":' + trace_store(ctx).get_trace_json(a.req("trace_id")) + "}")


def batch_get(ctx: ServerContext, a: Args) -> RawJson:
    return RawJson('{"traces":[' + ",".join(trace_store(ctx).batch_get_json(a.str_list("trace_ids"))) + "]}")


def batch_get_infos(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"trace_infos": trace_store(ctx).batch_get_infos(a.str_list("trace_ids"))}


def search(ctx: ServerContext, a: Args) -> dict[str, Any]:
    exp_ids = []
    for loc in a.objects("locations"):
        exp = (loc.get("mlflow_experiment") or {}).get("experiment_id")
        if exp is None:
            raise InvalidParameterValue("Only MLflow experiment locations can be searched on this server")
        exp_ids.append(exp)
    exp_ids += a.str_list("experiment_ids")  # the v2 request
    infos, token = trace_store(ctx).search(exp_ids, filter_string=a.str("filter"),
                                           max_results=a.int("max_results"), order_by=a.str_list("order_by"),
                                           page_token=a.str("page_token"))
    out: dict[str, Any] = {"traces": infos}
    if token:
        out["next_page_token"] = token
    return out


def set_tag(ctx: ServerContext, a: Args, trace_id: str) -> dict[str, Any]:
    value = a.data.get("value", "")
    trace_store(ctx).set_tag(trace_id, a.req("key"), value if isinstance(value, str) else json.dumps(value))
    return {}


def delete_tag(ctx: ServerContext, a: Args, trace_id: str) -> dict[str, Any]:
    trace_store(ctx).delete_tag(trace_id, a.req("key"))
    return {}


def delete_traces(ctx: ServerContext, a: Args) -> dict[str, Any]:
    n = trace_store(ctx).delete_traces(a.req("experiment_id"), max_timestamp_millis=a.int("max_timestamp_millis"),
                                       max_traces=a.int("max_traces"), trace_ids=a.str_list("request_ids"))
    return {"traces_deleted": n}


def link_to_run(ctx: ServerContext, a: Args) -> dict[str, Any]:
    trace_store(ctx).link_to_run(a.str_list("trace_ids"), a.req("run_id"))
    return {}


# -- assessments --------------------------------------------------------------------------------
def create_assessment(ctx: ServerContext, a: Args, trace_id: str) -> dict[str, Any]:
    return {"assessment": trace_store(ctx).create_assessment(trace_id, _message(a, "assessment"))}


def get_assessment(ctx: ServerContext, a: Args, trace_id: str, assessment_id: str) -> dict[str, Any]:
    return {"assessment": trace_store(ctx).get_assessment(trace_id, assessment_id)}


def update_assessment(ctx: ServerContext, a: Args, trace_id: str, assessment_id: str) -> dict[str, Any]:
    mask = a.data.get("update_mask") or ""
    paths = mask.get("paths", []) if isinstance(mask, dict) else str(mask).split(",")
    changes = _message(a, "assessment")
    return {"assessment": trace_store(ctx).update_assessment(trace_id, assessment_id, changes,
                                                               [p for p in paths if p.strip()])}


def delete_assessment(ctx: ServerContext, a: Args, trace_id: str, assessment_id: str) -> dict[str, Any]:
    trace_store(ctx).delete_assessment(trace_id, assessment_id)
    return {}


# -- labtrack's own ----------------------------------------------------------------------------------
def log_trace(ctx: ServerContext, a: Args) -> dict[str, Any]:
    """A whole finished trace in labtrack's plain span form (``lt``, the spool, scripts)."""
    spans = a.objects("spans")
    tags = a.data.get("tags") or {}
    metadata = a.data.get("trace_metadata") or {}
    if not isinstance(tags, dict) or not isinstance(metadata, dict):
        raise InvalidParameterValue("'tags' and 'trace_metadata' must be objects of strings")
    trace_id = trace_store(ctx).record_trace(
        a.req("experiment_id"), spans, trace_id=a.str("trace_id"), tags={str(k): str(v) for k, v in tags.items()},
        metadata={str(k): str(v) for k, v in metadata.items()}, client_request_id=a.str("client_request_id"))
    return {"trace_id": trace_id}


def span_list(ctx: ServerContext, a: Args) -> dict[str, Any]:
    """A trace's spans without their inputs and outputs (the web UI's tree and timeline)."""
    return {"spans": trace_store(ctx).span_summaries(a.req("trace_id"))}


class OtlpTracesHandler(BaseHandler):
    """``POST /v1/traces``: OTLP/HTTP protobuf spans, stored as they come."""

    async def post(self) -> None:
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-protobuf":
            # Also the CSRF rule: a cross-site form cannot send this content type.
            raise BadRequest("OTLP spans must be sent as Content-Type: application/x-protobuf")
        exp_id = self.request.headers.get(EXPERIMENT_HEADER)
        if not exp_id:
            raise BadRequest(f"The {EXPERIMENT_HEADER} header is required")
        auth = self.ctx.extra.get("auth")
        if auth is not None:  # a team server: writing spans needs EDIT on the experiment
            auth.check_trace_export(self.request, exp_id)
        body = self.request.body or b""
        encoding = self.request.headers.get("Content-Encoding", "").strip().lower()
        if encoding == "gzip":  # OpenTelemetry's own exporters compress; the mlflow client does not
            body = _gunzip(body)
        elif encoding not in ("", "identity"):
            raise BadRequest(f"Unsupported Content-Encoding {encoding[:40]!r}: send gzip or nothing")
        spans = decode_spans(body)
        rows = [span_row("tr-" + d["trace_hex"], d["span_id"], d["parent_span_id"], d["name"], d["span_type"],
                         d["status"], d["start_ns"], d["end_ns"], d["content"]) for d in spans]
        if rows:
            await on_pool(self.ctx, trace_store(self.ctx).log_spans, exp_id, rows)
        self.set_header("Content-Type", "application/x-protobuf")
        self.finish(b"")  # an empty ExportTraceServiceResponse


MAX_SPANS_BYTES = 256 << 20  # a decompressed export; the server's own body limit bounds the rest


def _gunzip(body: bytes) -> bytes:
    import zlib

    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflate.decompress(body, MAX_SPANS_BYTES)
    except zlib.error:
        raise BadRequest("Malformed gzip body") from None
    if inflate.unconsumed_tail:
        raise BadRequest(f"The decompressed OTLP export is larger than {MAX_SPANS_BYTES >> 20} MiB")
    return out


_ID = r"([^/]+)"

ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("traces", {"POST": start_trace}),
    ("traces/search", {"POST": search, "GET": search}),
    ("traces/get", {"GET": get_trace}),
    ("traces/batchGet", {"GET": batch_get}),
    ("traces/batchGetInfos", {"POST": batch_get_infos}),
    ("traces/delete-traces", {"POST": delete_traces}),
    ("traces/link-to-run", {"POST": link_to_run}),
    (f"traces/{_ID}/tags", {"PATCH": set_tag, "DELETE": delete_tag}),
    (f"traces/{_ID}/assessments", {"POST": create_assessment}),
    (f"traces/{_ID}/assessments/{_ID}", {"GET": get_assessment, "PATCH": update_assessment,
                                         "DELETE": delete_assessment}),
    (f"traces/{_ID}/info", {"GET": get_info}),
    (f"traces/{_ID}", {"GET": get_info}),
]

LABTRACK_ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("traces/log", {"POST": log_trace}),
    ("traces/spans", {"GET": span_list}),
]

OTLP_PATH = r"/v1/traces"
