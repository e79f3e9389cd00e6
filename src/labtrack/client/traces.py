"""Tracing in ``lt``: spans of nested calls, sent when their trace ends, read back and assessed.

``@lt.trace`` (or ``with lt.trace("name") as span``) and ``lt.start_span`` open
spans; the current one is found with ``lt.get_current_active_span``.  Nothing
is sent while a trace runs: when its root span ends, the whole trace (its spans
with their inputs, outputs, attributes, events and errors) is queued on the
client's non-blocking sender, in order with metrics, and posted to the server's
``traces/log`` in one request; a process that cannot reach its server spools
it like any other write.  ``lt.flush()`` waits for it.

Traces read back (``lt.search_traces``) and assessments (``lt.log_feedback``)
use MLflow's own trace endpoints.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from labtrack.client.transport import LABTRACK_API, iter_pages
from labtrack.errors import LabtrackError

SPAN_TYPES = ("UNKNOWN", "LLM", "CHAT_MODEL", "CHAIN", "AGENT", "TOOL", "RETRIEVER", "EMBEDDING", "RERANKER",
              "PARSER", "MEMORY", "WORKFLOW", "TASK", "GUARDRAIL", "EVALUATOR")
_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("labtrack_span", default=None)
_last_trace_id: list[str | None] = [None]
V3_API = "/api/3.0/mlflow/"  # MLflow serves its trace endpoints under 3.0 only (labtrack under both)


def _jsonable(value: Any) -> Any:
    """A value as JSON would carry it (objects it cannot encode become their text)."""
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


class _Trace:
    """The spans of one trace while it runs."""

    def __init__(self, experiment_id: str, run_id: str | None) -> None:
        self.trace_id = "tr-" + os.urandom(16).hex()
        self.experiment_id = experiment_id
        self.spans: list[Span] = []
        self.tags: dict[str, str] = {}
        self.metadata: dict[str, str] = {"mlflow.sourceRun": run_id} if run_id else {}


class Span:
    """One span: a named, timed step with inputs, outputs, attributes and events."""

    def __init__(self, trace: _Trace, parent: Span | None, name: str, span_type: str = "UNKNOWN",
                 inputs: Any = None, attributes: dict[str, Any] | None = None) -> None:
        self._trace = trace
        self.parent_id = parent.span_id if parent is not None else None
        self.span_id = os.urandom(8).hex()
        self.name = str(name)
        self.span_type = str(span_type or "UNKNOWN")
        self.inputs = _jsonable(inputs) if inputs is not None else None
        self.outputs: Any = None
        self.attributes: dict[str, Any] = {k: _jsonable(v) for k, v in (attributes or {}).items()}
        self.events: list[dict[str, Any]] = []
        self.status = "OK"
        self.status_message = ""
        self.start_time_ns = time.time_ns()
        self.end_time_ns: int | None = None
        trace.spans.append(self)

    @property
    def trace_id(self) -> str:
        return self._trace.trace_id

    def set_inputs(self, inputs: Any) -> None:
        self.inputs = _jsonable(inputs)

    def set_outputs(self, outputs: Any) -> None:
        self.outputs = _jsonable(outputs)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[str(key)] = _jsonable(value)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        for k, v in attributes.items():
            self.set_attribute(k, v)

    def set_status(self, status: str, message: str = "") -> None:
        """``"OK"`` or ``"ERROR"`` (with a message)."""
        status = str(status).upper()
        if status not in ("OK", "ERROR", "UNSET"):
            raise LabtrackError(f"Invalid span status {status!r}: expected OK or ERROR", "INVALID_PARAMETER_VALUE")
        self.status, self.status_message = status, message

    def add_event(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        self.events.append({"name": str(name), "time_ns": time.time_ns(),
                            "attributes": {k: _jsonable(v) for k, v in (attributes or {}).items()}})

    def set_token_usage(self, input_tokens: int, output_tokens: int) -> None:
        """Token counts of an LLM call; the trace shows their sum."""
        self.set_attribute("mlflow.chat.tokenUsage", {"input_tokens": int(input_tokens),
                                                      "output_tokens": int(output_tokens),
                                                      "total_tokens": int(input_tokens) + int(output_tokens)})

    def record_exception(self, exc: BaseException) -> None:
        import traceback

        self.set_status("ERROR", f"{type(exc).__name__}: {exc}")
        self.add_event("exception", {"exception.type": type(exc).__name__, "exception.message": str(exc),
                                     "exception.stacktrace": "".join(traceback.format_exception(exc))[-8000:]})

    def end(self) -> None:
        if self.end_time_ns is None:
            self.end_time_ns = time.time_ns()

    def to_dict(self) -> dict[str, Any]:
        """The plain span form the server's ``traces/log`` takes."""
        return _span_dict(self)

    def __repr__(self) -> str:
        return f"Span(name={self.name!r}, span_id={self.span_id!r}, trace_id={self.trace_id!r})"


def get_current_active_span() -> Span | None:
    """The span open in this context (thread or task), or None."""
    return _current.get()


def get_last_active_trace_id() -> str | None:
    """The id of the last trace this process finished."""
    return _last_trace_id[0]


def update_current_trace(tags: dict[str, Any] | None = None) -> None:
    """Set tags on the trace that is running in this context."""
    span = _current.get()
    if span is None:
        raise LabtrackError("No active trace: call this inside @lt.trace or lt.start_span",
                            "INVALID_PARAMETER_VALUE")
    span._trace.tags.update({str(k): str(v) for k, v in (tags or {}).items()})


class _SpanContext:
    """``with``: open a span (a new trace if none is running), end it, send the trace at its root."""

    def __init__(self, name: str, span_type: str, inputs: Any, attributes: dict[str, Any] | None) -> None:
        self.args = (name, span_type, inputs, attributes)
        self.span: Span | None = None
        self.token: contextvars.Token | None = None

    def __enter__(self) -> Span:
        parent = _current.get()
        if parent is None:
            from labtrack.client import fluent

            active = fluent.active_run()
            trace = _Trace(fluent._experiment_id(), active.info.run_id if active is not None else None)
        else:
            trace = parent._trace
        name, span_type, inputs, attributes = self.args
        self.span = Span(trace, parent, name, span_type, inputs, attributes)
        self.token = _current.set(self.span)
        return self.span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        span = self.span
        assert span is not None and self.token is not None
        if exc is not None:
            span.record_exception(exc)
        span.end()
        _current.reset(self.token)
        if span.parent_id is None:
            _send(span._trace)
        return False


def start_span(name: str = "span", span_type: str = "UNKNOWN", inputs: Any = None,
               attributes: dict[str, Any] | None = None) -> _SpanContext:
    """A context manager that opens a span under the current one (or starts a trace)."""
    return _SpanContext(name, span_type, inputs, attributes)


class _Tracer:
    """What ``lt.trace(...)`` returns: a decorator, or a context manager like ``start_span``."""

    def __init__(self, name: str | None, span_type: str, attributes: dict[str, Any] | None) -> None:
        self.name, self.span_type, self.attributes = name, span_type, attributes
        self._ctx: list[_SpanContext] = []

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        name = self.name or getattr(fn, "__name__", "span")
        span_type, attributes = self.span_type, self.attributes
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None

        def inputs_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if signature is None:
                return {"args": list(args), "kwargs": kwargs}
            try:
                bound = signature.bind_partial(*args, **kwargs)
            except TypeError:
                return {"args": list(args), "kwargs": kwargs}
            return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _SpanContext(name, span_type, inputs_of(args, kwargs), attributes) as span:
                    span.set_attribute("mlflow.spanFunctionName", fn.__name__)
                    result = await fn(*args, **kwargs)
                    span.set_outputs(result)
                    return result
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _SpanContext(name, span_type, inputs_of(args, kwargs), attributes) as span:
                span.set_attribute("mlflow.spanFunctionName", getattr(fn, "__name__", name))
                result = fn(*args, **kwargs)
                span.set_outputs(result)
                return result
        return wrapper

    def __enter__(self) -> Span:
        ctx = _SpanContext(self.name or "span", self.span_type, None, self.attributes)
        self._ctx.append(ctx)
        return ctx.__enter__()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        return self._ctx.pop().__exit__(exc_type, exc, tb)


def trace(func: Callable[..., Any] | str | None = None, *, name: str | None = None, span_type: str = "UNKNOWN",
          attributes: dict[str, Any] | None = None) -> Any:
    """Trace a function (``@lt.trace``, ``@lt.trace(name=..., span_type=...)``) or a block.

    As a decorator the span's inputs are the call's arguments and its outputs
    the return value; an exception marks the span ERROR and is re-raised.  As
    ``with lt.trace("step") as span:`` it opens a span like ``lt.start_span``.
    """
    if callable(func):
        return _Tracer(name, span_type, attributes)(func)
    return _Tracer(func if isinstance(func, str) else name, span_type, attributes)


def _send(trace: _Trace) -> None:
    from labtrack.client import fluent

    _last_trace_id[0] = trace.trace_id
    message = {"experiment_id": trace.experiment_id, "trace_id": trace.trace_id,
               "spans": [s.to_dict() for s in trace.spans], "tags": trace.tags,
               "trace_metadata": trace.metadata}
    client = fluent._client()
    if client._async(None):
        client.sender.put_task(lambda transport: deliver(transport, message), f"trace {trace.trace_id}")
    else:
        deliver(client.transport, message)


# Servers (by URI) without labtrack's traces/log: MLflow's, reached through its own protocol.
_MLFLOW_SERVERS: set[str] = set()


def deliver(transport: Any, message: dict[str, Any]) -> None:
    """Send one finished trace: labtrack's ``traces/log`` (or its spool), else MLflow's protocol."""
    uri = str(getattr(transport, "uri", ""))
    if uri not in _MLFLOW_SERVERS:
        try:
            transport.call("POST", "traces/log", message, api=LABTRACK_API)
            return
        except LabtrackError as e:
            if e.error_code != "ENDPOINT_NOT_FOUND":
                raise
            _MLFLOW_SERVERS.add(uri)
    _deliver_to_mlflow(transport, message)


def _deliver_to_mlflow(transport: Any, message: dict[str, Any]) -> None:
    """As the mlflow client exports a trace: its spans by OTLP, then its info (StartTraceV3)."""
    from labtrack import otlp
    from labtrack.errors import error_from_response

    trace_id, spans = message["trace_id"], message["spans"]
    body = otlp.encode_spans([otlp.span_json(trace_id, d) for d in spans])
    status, data = transport.request_raw("POST", "/v1/traces", body, {
        "Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": str(message["experiment_id"])})
    if status != 200:
        try:
            parsed: object = json.loads(data)
        except ValueError:
            parsed = data
        raise error_from_response(status, parsed)
    info = otlp.trace_info(str(message["experiment_id"]), trace_id, spans, tags=message.get("tags"),
                           metadata=message.get("trace_metadata"))
    transport.call("POST", "traces", {"trace": {"trace_info": info}}, api=V3_API)


# -- reading back -----------------------------------------------------------------------------
@dataclass
class SpanRecord:
    """A stored span as read back."""

    span_id: str
    parent_id: str | None
    name: str
    span_type: str
    status: str
    start_time_ns: int
    end_time_ns: int | None
    inputs: Any = None
    outputs: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    status_message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The plain span form ``deliver`` sends (``Span.to_dict``'s), to log the span again elsewhere."""
        return _span_dict(self)


@dataclass
class TraceRecord:
    """A stored trace: its info (MLflow's TraceInfo fields), assessments and spans."""

    trace_id: str
    experiment_id: str
    state: str
    request_time: str
    execution_duration: str | None
    request_preview: str | None
    response_preview: str | None
    tags: dict[str, str]
    trace_metadata: dict[str, str]
    assessments: list[dict[str, Any]]
    spans: list[SpanRecord] = field(default_factory=list)


def _span_dict(span: Span | SpanRecord) -> dict[str, Any]:
    return {"span_id": span.span_id, "parent_span_id": span.parent_id, "name": span.name,
            "span_type": span.span_type, "start_time_ns": span.start_time_ns, "end_time_ns": span.end_time_ns,
            "status": span.status, "status_message": span.status_message, "inputs": span.inputs,
            "outputs": span.outputs, "attributes": span.attributes, "events": span.events}


def _value(v: dict[str, Any]) -> Any:
    if "string_value" in v:
        return v["string_value"]
    if "int_value" in v:
        return int(v["int_value"])
    for k in ("bool_value", "double_value"):
        if k in v:
            return v[k]
    if "array_value" in v:
        return [_value(x) for x in v["array_value"].get("values", [])]
    if "kvlist_value" in v:
        return {kv["key"]: _value(kv.get("value", {})) for kv in v["kvlist_value"].get("values", [])}
    return None


def _b64hex(text: str | None) -> str | None:
    import base64

    return base64.b64decode(text).hex() if text else None


def _span_record(d: dict[str, Any]) -> SpanRecord:
    attrs = {a["key"]: _value(a.get("value", {})) for a in d.get("attributes", [])}
    status = (d.get("status") or {}).get("code", "STATUS_CODE_UNSET")
    message = (d.get("status") or {}).get("message") or ""
    end = d.get("end_time_unix_nano")
    return SpanRecord(
        span_id=_b64hex(d.get("span_id")) or "", parent_id=_b64hex(d.get("parent_span_id")), name=d.get("name", ""),
        span_type=str(attrs.pop("mlflow.spanType", "UNKNOWN")), status=str(status).replace("STATUS_CODE_", ""),
        start_time_ns=int(d.get("start_time_unix_nano", 0)), end_time_ns=int(end) if end is not None else None,
        inputs=attrs.pop("mlflow.spanInputs", None), outputs=attrs.pop("mlflow.spanOutputs", None),
        attributes=attrs, events=[{"name": e.get("name"), "time_ns": int(e.get("time_unix_nano", 0)),
                                   "attributes": {a["key"]: _value(a.get("value", {})) for a in e.get("attributes", [])}}
                                  for e in d.get("events", [])], status_message=str(message))


def _trace_record(info: dict[str, Any], spans: list[dict[str, Any]] | None) -> TraceRecord:
    return TraceRecord(
        trace_id=info["trace_id"], experiment_id=info["trace_location"]["mlflow_experiment"]["experiment_id"],
        state=info.get("state", ""), request_time=info.get("request_time", ""),
        execution_duration=info.get("execution_duration"), request_preview=info.get("request_preview"),
        response_preview=info.get("response_preview"), tags=info.get("tags", {}),
        trace_metadata=info.get("trace_metadata", {}), assessments=info.get("assessments", []),
        spans=[_span_record(s) for s in spans or []])


def trace_infos(experiment_ids: list[str], filter_string: str | None = None, max_results: int | None = None,
                order_by: list[str] | None = None, *, client: Any = None) -> Iterator[dict[str, Any]]:
    """The trace infos (MLflow's TraceInfoV3 JSON) of the experiments, page by page (every one
    when ``max_results`` is None), from ``client`` (an ``lt.Client``; the active one by default)."""
    from labtrack.client import fluent

    client = client or fluent._client()
    message: dict[str, Any] = {
        "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": e}}
                      for e in experiment_ids],
        "max_results": min(500, max_results or 500), "order_by": order_by or []}
    if filter_string:
        message["filter"] = filter_string

    def page(token: str | None) -> tuple[list[Any], str | None]:
        reply = client._read("POST", "traces/search", {**message, **({"page_token": token} if token else {})},
                             api=V3_API)
        return reply.get("traces", []), reply.get("next_page_token")

    return iter_pages(page, max_results)


def search_traces(experiment_ids: list[str] | None = None, filter_string: str | None = None,
                  max_results: int = 1000, order_by: list[str] | None = None, return_type: str = "pandas",
                  include_spans: bool = True) -> Any:
    """Traces of the experiments (the active one by default) that match MLflow's trace filter.

    ``return_type="list"`` gives ``TraceRecord``s; ``"pandas"`` a DataFrame with
    one row per trace (pandas is needed: ``pip install 'labtrack[models]'``).
    """
    from labtrack.client import fluent

    if return_type not in ("pandas", "list"):
        raise LabtrackError("return_type must be 'pandas' or 'list'", "INVALID_PARAMETER_VALUE")
    exp_ids = [str(e) for e in (experiment_ids or [fluent._experiment_id()])]
    infos = list(trace_infos(exp_ids, filter_string, max_results, order_by))
    spans = trace_spans([i["trace_id"] for i in infos]) if include_spans and infos else {}
    records = [_trace_record(i, spans.get(i["trace_id"])) for i in infos]
    if return_type == "list":
        return records
    try:
        import pandas as pd
    except ImportError:
        raise LabtrackError("search_traces(return_type='pandas') needs pandas: pip install 'labtrack[models]'",
                            "INVALID_PARAMETER_VALUE") from None
    return pd.DataFrame([{
        "trace_id": r.trace_id, "state": r.state, "request_time": r.request_time,
        "execution_duration": r.execution_duration, "request": r.request_preview, "response": r.response_preview,
        "tags": r.tags, "trace_metadata": r.trace_metadata, "assessments": r.assessments,
        "spans": r.spans} for r in records],
        columns=["trace_id", "state", "request_time", "execution_duration", "request", "response", "tags",
                 "trace_metadata", "assessments", "spans"])


def trace_spans(trace_ids: list[str], *, client: Any = None) -> dict[str, list[dict[str, Any]]]:
    """Each trace's spans (OTLP JSON, as ``traces/batchGet`` gives them), 100 traces a request."""
    from labtrack.client import fluent

    client = client or fluent._client()
    spans: dict[str, list[dict[str, Any]]] = {}
    for k in range(0, len(trace_ids), 100):
        reply = client._read("GET", "traces/batchGet", {"trace_ids": trace_ids[k:k + 100]}, api=V3_API)
        for t in reply.get("traces", []):
            spans[t["trace_info"]["trace_id"]] = t.get("spans", [])
    return spans


def span_records(spans: list[dict[str, Any]]) -> list[SpanRecord]:
    """``trace_spans``' OTLP JSON spans as ``SpanRecord``s."""
    return [_span_record(d) for d in spans]


def get_trace(trace_id: str) -> TraceRecord:
    """One trace with its spans."""
    from labtrack.client import fluent

    reply = fluent._client()._read("GET", "traces/get", {"trace_id": trace_id}, api=V3_API)
    return _trace_record(reply["trace"]["trace_info"], reply["trace"].get("spans"))


def log_feedback(trace_id: str, name: str, value: Any, rationale: str | None = None,
                 source_type: str = "HUMAN", source_id: str | None = None,
                 metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Record feedback on a trace (as ``mlflow.log_feedback``); returns the stored assessment."""
    from labtrack.client import fluent

    if source_type not in ("HUMAN", "LLM_JUDGE", "CODE"):
        raise LabtrackError("source_type must be HUMAN, LLM_JUDGE or CODE", "INVALID_PARAMETER_VALUE")
    assessment: dict[str, Any] = {
        "assessment_name": name, "trace_id": trace_id,
        "source": {"source_type": source_type, "source_id": source_id or os.environ.get("USER", "default")},
        "feedback": {"value": _jsonable(value)}}
    if rationale is not None:
        assessment["rationale"] = rationale
    if metadata:
        assessment["metadata"] = {str(k): str(v) for k, v in metadata.items()}
    reply = fluent._client()._read("POST", f"traces/{trace_id}/assessments", {"assessment": assessment},
                                   api=V3_API)
    return reply["assessment"]


__all__ = ["Span", "SpanRecord", "TraceRecord", "get_current_active_span", "get_last_active_trace_id",
           "get_trace", "log_feedback", "search_traces", "start_span", "trace", "update_current_trace"]
