"""MLflow 3 traces: trace infos, spans, tags, assessments and links, beside runs.

Spans arrive in two shapes and are stored in one: the OTLP span (as the mlflow
client exports it, decoded by ``server/otlp.py``) and labtrack's plain span dict
(``record_trace``: the ``lt`` client, the spool and the AI gateway).  Each is
kept as the OTLP JSON that ``traces/get`` returns, written once and sent back
as text; searches read only the columns beside it, so long inputs and outputs
cost nothing after they are stored.

Every write goes through the tracking store's one writer and is idempotent
(a span is its trace id and span id; tags overwrite), so the client's retries
and re-ingested spool records change nothing.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, exists, insert, or_, select, update

from labtrack.errors import InvalidParameterValue, ResourceDoesNotExist
from labtrack.otlp import duration_json, rfc3339, span_json, span_type_of, trace_hex, trace_info
from labtrack.store import schema as s
from labtrack.store import search
from labtrack.store.dialect import cached, upsert
from labtrack.store.search_syntax import Clause, parse_filter, parse_order
from labtrack.store.tracking import TrackingStore, join_uri, now_ms
from labtrack.store.validation import check_experiment_id, check_max_results

# Tag and metadata keys MLflow's client and UI read (mlflow.tracing.constant).
TRACE_NAME = "mlflow.traceName"
ARTIFACT_LOCATION = "mlflow.artifactLocation"
SPANS_LOCATION = "mlflow.trace.spansLocation"
TRACKING_STORE = "TRACKING_STORE"
SOURCE_RUN = "mlflow.sourceRun"
MODEL_ID = "mlflow.modelId"
TOKEN_USAGE = "mlflow.trace.tokenUsage"
INFO_FINALIZED = "mlflow.trace.infoFinalized"
STATES = ("OK", "ERROR", "IN_PROGRESS", "STATE_UNSPECIFIED")


# -- wire formats -------------------------------------------------------------------------
def parse_time_ms(value: Any, field: str) -> int:
    """A Timestamp JSON string (any fraction, ``Z`` or offset) or epoch ms, as epoch ms."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str) or not value:
        raise InvalidParameterValue(f"Invalid value {value!r} for '{field}': expected an RFC 3339 time")
    if value.isdigit():
        return int(value)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", value)
    if m is None:
        raise InvalidParameterValue(f"Invalid value {value!r} for '{field}': expected an RFC 3339 time")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    dt = datetime.fromisoformat(m.group(1) + zone)
    frac = (m.group(2) or "").ljust(3, "0")[:3]
    return int(dt.timestamp()) * 1000 + int(frac)


def parse_duration_ms(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.endswith("s"):
        try:
            return int(round(float(value[:-1]) * 1000))
        except ValueError:
            pass
    raise InvalidParameterValue(f"Invalid value {value!r} for 'execution_duration': expected e.g. '1.5s'")


# -- spans --------------------------------------------------------------------------------
class SpanRow(dict):
    """One span ready to store: the columns of ``spans`` and its OTLP JSON ``content``."""


def span_row(trace_id: str, span_id: str, parent_span_id: str | None, name: str, span_type: str | None,
             status: str, start_ns: int, end_ns: int | None, content: str) -> SpanRow:
    return SpanRow(trace_id=trace_id, span_id=span_id, parent_span_id=parent_span_id, name=name,
                   span_type=span_type, status=status, start_time_ns=int(start_ns),
                   end_time_ns=None if end_ns is None else int(end_ns), content=content)


def plain_span(trace_id: str, d: dict[str, Any]) -> SpanRow:
    """labtrack's plain span dict (see ``labtrack.otlp.span_json``) as a stored span."""
    content = span_json(trace_id, d)
    parent = d.get("parent_span_id") or None
    status = content["status"]["code"].replace("STATUS_CODE_", "")
    return span_row(trace_id, d["span_id"], parent, content["name"], str(d.get("span_type") or "UNKNOWN"), status,
                    content["start_time_unix_nano"], content.get("end_time_unix_nano"),
                    json.dumps(content, separators=(",", ":"), ensure_ascii=False))


def otlp_span_row(trace_id: str, content: dict[str, Any]) -> SpanRow:
    """A span in OTLP JSON (base64 ids, attributes as a key/value list: what ``traces/get``
    returns and ``traces/batchGet`` of an MLflow server gives) as a stored span."""
    import base64

    def hex_of(value: Any) -> str | None:
        return base64.b64decode(value).hex() if value else None

    span_id = hex_of(content.get("span_id"))
    if not span_id:
        raise InvalidParameterValue("Every span needs a span_id")
    span_type = span_type_of(content.get("attributes") or [])
    code = str((content.get("status") or {}).get("code") or "STATUS_CODE_UNSET")
    end = content.get("end_time_unix_nano")
    return span_row(trace_id, span_id, hex_of(content.get("parent_span_id")), str(content.get("name") or ""),
                    span_type, code.replace("STATUS_CODE_", ""), int(content.get("start_time_unix_nano") or 0),
                    None if end is None else int(end),
                    json.dumps(content, separators=(",", ":"), ensure_ascii=False))


def put_imported(conn: Connection, experiment_id: int, info: dict[str, Any], spans: Sequence[SpanRow] | None,
                 assessments: Sequence[dict[str, Any]], run_ids: Sequence[str]) -> None:
    """An MLflow trace copied by ``labtrack import``, on the writer's connection.

    A new trace is stored with its id, tags, metadata and spans; its location tags are
    this store's.  A trace already here keeps what it has (nothing is overwritten) and gets
    only the assessments (matched by id, overridden ones first) and run links it lacks.
    """
    exp = conn.execute(_EXPERIMENT, {"exp_id": experiment_id}).first()
    if exp is None:
        raise ResourceDoesNotExist(f"No Experiment with id={experiment_id} exists")
    located = {**info, "trace_location": {"type": "MLFLOW_EXPERIMENT",
                                          "mlflow_experiment": {"experiment_id": str(experiment_id)}}}
    row, tags, _ = _info_row(located)
    meta = {str(k): str(v) for k, v in (info.get("trace_metadata") or {}).items()}  # as MLflow has it
    trace_id = row["trace_id"]
    if conn.execute(_TRACE_EXISTS, {"trace_id": trace_id}).first() is None:
        _put_info(conn, row, overwrite=False)
        kept = {k: v for k, v in tags.items() if k not in (ARTIFACT_LOCATION, SPANS_LOCATION)}
        _put_pairs(conn, s.trace_tags, trace_id, {**kept, **_system_tags(exp, trace_id)})
        _put_pairs(conn, s.trace_metadata, trace_id, meta)
        _put_spans(conn, list(spans or []))
    a = s.assessments
    have = {r[0] for r in conn.execute(select(a.c.assessment_id).where(a.c.trace_id == trace_id))}
    for item in sorted(assessments, key=lambda x: (bool(x.get("overrides")), str(x.get("create_time", "")))):
        if item.get("assessment_id") not in have:
            _insert_assessment(conn, trace_id, dict(item))  # its "valid" kept; an override marks what it overrode
    runs = [r[0] for r in conn.execute(select(s.runs.c.run_uuid).where(s.runs.c.run_uuid.in_(list(run_ids))))]
    if runs:
        conn.execute(upsert(conn, s.trace_runs).on_conflict_do_nothing(),
                     [{"trace_id": trace_id, "run_uuid": r} for r in runs])


# -- the store ----------------------------------------------------------------------------
class TraceStore:
    """Traces on the tracking store's database and writer (no state of its own)."""

    def __init__(self, tracking: TrackingStore) -> None:
        self.t = tracking

    # -- writes -------------------------------------------------------------------------------
    def record_trace(self, experiment_id: Any, spans: Sequence[dict[str, Any]], *, trace_id: str | None = None,
                     tags: dict[str, str] | None = None, metadata: dict[str, str] | None = None,
                     request_preview: str | None = None, response_preview: str | None = None,
                     client_request_id: str | None = None) -> str:
        """Store a finished trace and all its spans at once; returns its trace id.

        ``spans`` are plain span dicts (see ``labtrack.otlp.span_json``); the root
        is the one without a parent.  The trace's time, duration, state, name,
        previews and token usage (the sum of the spans' ``mlflow.chat.tokenUsage``)
        come from the spans unless given.  Recording the same trace again changes
        nothing.
        """
        exp_id = check_experiment_id(experiment_id)
        trace_id = trace_id or new_trace_id()
        trace_hex(trace_id)
        spans = list(spans)
        info = trace_info(str(exp_id), trace_id, spans, tags=tags, metadata=metadata,
                          request_preview=request_preview, response_preview=response_preview,
                          client_request_id=client_request_id)
        row, all_tags, meta = _info_row(info)
        rows = [plain_span(trace_id, d) for d in spans]

        def op(conn: Connection) -> str:
            exp = _check_experiment(conn, exp_id)
            _put_info(conn, row, overwrite=True)
            _put_pairs(conn, s.trace_tags, trace_id, {**all_tags, **_system_tags(exp, trace_id)})
            _put_pairs(conn, s.trace_metadata, trace_id, meta)
            _put_spans(conn, rows)
            return trace_id
        return self.t.write(op)

    def start_trace(self, info: dict[str, Any]) -> dict[str, Any]:
        """MLflow's StartTraceV3 (sent when a trace has ended): store its info; return it as stored."""
        row, tags, meta = _info_row(info)
        trace_id, exp_id = row["trace_id"], row["experiment_id"]
        assessments = list(info.get("assessments") or [])

        def op(conn: Connection) -> dict[str, Any]:
            exp = _check_experiment(conn, exp_id)
            _put_info(conn, row, overwrite=True)
            _put_pairs(conn, s.trace_tags, trace_id, {**tags, ARTIFACT_LOCATION: _system_tags(exp, trace_id)[ARTIFACT_LOCATION]})
            _put_pairs(conn, s.trace_metadata, trace_id, meta)
            for a in assessments:
                _insert_assessment(conn, trace_id, dict(a))
            return _info(conn, trace_id)
        return self.t.write(op)

    def log_spans(self, experiment_id: Any, rows: Sequence[SpanRow]) -> int:
        """Spans exported by OTLP (``/v1/traces``): stored, their traces made if new; returns the count."""
        exp_id = check_experiment_id(experiment_id)
        by_trace: dict[str, list[SpanRow]] = {}
        for r in rows:
            by_trace.setdefault(r["trace_id"], []).append(r)

        def op(conn: Connection) -> int:
            exp = _check_experiment(conn, exp_id)
            for trace_id, group in by_trace.items():
                if conn.execute(_TRACE_EXISTS, {"trace_id": trace_id}).first() is None:
                    start = min(r["start_time_ns"] for r in group) // 1_000_000
                    root = next((r for r in group if r["parent_span_id"] is None), None)
                    state, duration = "IN_PROGRESS", None
                    if root is not None and root["end_time_ns"] is not None:
                        state = "ERROR" if root["status"] == "ERROR" else "OK"
                        duration = root["end_time_ns"] // 1_000_000 - start
                    _put_info(conn, dict(trace_id=trace_id, experiment_id=exp_id, request_time=start,
                                         execution_duration=duration, state=state, client_request_id=None,
                                         request_preview=None, response_preview=None), overwrite=False)
                    if root is not None:
                        _put_pairs(conn, s.trace_tags, trace_id, {TRACE_NAME: root["name"]})
                _put_pairs(conn, s.trace_tags, trace_id, _system_tags(exp, trace_id))
                _put_spans(conn, group)
            return len(rows)
        return self.t.write(op)

    def set_tag(self, trace_id: str, key: str, value: str) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidParameterValue("Missing value for required parameter 'key'")

        def op(conn: Connection) -> None:
            _row(conn, trace_id)
            _put_pairs(conn, s.trace_tags, trace_id, {key: str(value)})
        self.t.write(op)

    def delete_tag(self, trace_id: str, key: str) -> None:
        def op(conn: Connection) -> None:
            _row(conn, trace_id)
            res = conn.execute(delete(s.trace_tags).where(s.trace_tags.c.trace_id == trace_id,
                                                          s.trace_tags.c.key == key))
            if res.rowcount == 0:
                raise ResourceDoesNotExist(f"No trace tag with key '{key}' for trace with ID '{trace_id}'")
        self.t.write(op)

    def delete_traces(self, experiment_id: Any, max_timestamp_millis: Any = None, max_traces: Any = None,
                      trace_ids: Sequence[str] | None = None) -> int:
        exp_id = check_experiment_id(experiment_id)
        if trace_ids and (max_timestamp_millis or max_traces):
            raise InvalidParameterValue("Give either request_ids or max_timestamp_millis/max_traces, not both")
        if not trace_ids and not max_timestamp_millis:
            raise InvalidParameterValue("Either max_timestamp_millis or request_ids must be specified")
        tr = s.traces

        def op(conn: Connection) -> int:
            q = select(tr.c.trace_id).where(tr.c.experiment_id == exp_id)
            if trace_ids:
                q = q.where(tr.c.trace_id.in_(list(trace_ids)))
            else:
                q = q.where(tr.c.request_time <= int(max_timestamp_millis)).order_by(tr.c.request_time)
                if max_traces:
                    q = q.limit(int(max_traces))
            ids = [r[0] for r in conn.execute(q)]
            for table in (s.spans, s.trace_tags, s.trace_metadata, s.assessments, s.trace_runs, s.traces):
                for i in range(0, len(ids), 500):
                    conn.execute(delete(table).where(table.c.trace_id.in_(ids[i:i + 500])))
            return len(ids)
        return self.t.write(op)

    def link_to_run(self, trace_ids: Sequence[str], run_id: str) -> None:
        def op(conn: Connection) -> None:
            if conn.execute(select(s.runs.c.run_uuid).where(s.runs.c.run_uuid == run_id)).first() is None:
                raise ResourceDoesNotExist(f"Run with id={run_id} not found")
            for trace_id in trace_ids:
                _row(conn, trace_id)
            stmt = upsert(conn, s.trace_runs).on_conflict_do_nothing()
            if trace_ids:
                conn.execute(stmt, [{"trace_id": t, "run_uuid": run_id} for t in trace_ids])
        self.t.write(op)

    # -- assessments --------------------------------------------------------------------------
    def create_assessment(self, trace_id: str, assessment: dict[str, Any]) -> dict[str, Any]:
        def op(conn: Connection) -> dict[str, Any]:
            _row(conn, trace_id)
            return _insert_assessment(conn, trace_id, dict(assessment))
        return self.t.write(op)

    def get_assessment(self, trace_id: str, assessment_id: str) -> dict[str, Any]:
        return self.t.read(lambda conn: _assessment(conn, trace_id, assessment_id))

    def update_assessment(self, trace_id: str, assessment_id: str, changes: dict[str, Any],
                          mask: Iterable[str]) -> dict[str, Any]:
        fields = {_snake(p) for p in mask}
        allowed = {"assessment_name", "expectation", "feedback", "rationale", "metadata"}
        if fields - allowed:
            raise InvalidParameterValue(f"Cannot update assessment fields: {sorted(fields - allowed)}")

        def op(conn: Connection) -> dict[str, Any]:
            current = _assessment(conn, trace_id, assessment_id)
            for f in fields:
                if f in ("feedback", "expectation"):
                    current.pop("feedback", None)
                    current.pop("expectation", None)
                if changes.get(f) is not None:
                    current[f] = changes[f]
                else:
                    current.pop(f, None)
            t = now_ms()
            current["last_update_time"] = rfc3339(t)
            _check_assessment(current)
            conn.execute(update(s.assessments).where(s.assessments.c.assessment_id == assessment_id).values(
                name=current["assessment_name"], kind=_kind(current), value=_value(current), last_update_time=t,
                content=json.dumps(current, ensure_ascii=False)))
            return current
        return self.t.write(op)

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        def op(conn: Connection) -> None:
            current = _assessment(conn, trace_id, assessment_id)
            conn.execute(delete(s.assessments).where(s.assessments.c.assessment_id == assessment_id))
            if current.get("overrides"):  # what it overrode counts again
                _set_valid(conn, current["overrides"], True)
        self.t.write(op)

    # -- reads --------------------------------------------------------------------------------
    def get_info(self, trace_id: str) -> dict[str, Any]:
        return self.t.read(lambda conn: _info(conn, trace_id))

    def get_trace_json(self, trace_id: str) -> str:
        """``{"trace_info": ..., "spans": [...]}`` as JSON text, the spans' stored text spliced in."""
        return self.t.read(lambda conn: _trace_json(conn, trace_id))

    def batch_get_json(self, trace_ids: Sequence[str]) -> list[str]:
        def op(conn: Connection) -> list[str]:
            out = []
            for t in trace_ids:
                try:
                    out.append(_trace_json(conn, t))
                except ResourceDoesNotExist:
                    continue
            return out
        return self.t.read(op)

    def batch_get_infos(self, trace_ids: Sequence[str]) -> list[dict[str, Any]]:
        def op(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(select(s.traces).where(s.traces.c.trace_id.in_(list(trace_ids)))).all()
            by_id = {r.trace_id: r for r in rows}
            return _infos(conn, [by_id[t] for t in dict.fromkeys(trace_ids) if t in by_id])
        return self.t.read(op)

    def search(self, experiment_ids: Sequence[Any], filter_string: str | None = None, max_results: Any = None,
               order_by: Sequence[str] | None = None, page_token: str | None = None,
               ) -> tuple[list[dict[str, Any]], str | None]:
        """Trace infos of ``experiment_ids`` that match ``filter_string``, one page of them."""
        exp_ids = [check_experiment_id(e) for e in experiment_ids]
        if not exp_ids:
            raise InvalidParameterValue("At least one experiment location is required")
        limit = check_max_results(max_results, 100, 50000)
        offset = search.decode_page_token(page_token)
        tr = s.traces
        conds = [tr.c.experiment_id.in_(exp_ids), *[_condition(c) for c in parse_filter(filter_string, _ENTITIES)]]
        order = [_order(o) for o in (order_by or [])] or [tr.c.request_time.desc()]
        order.append(tr.c.trace_id.asc())

        def op(conn: Connection) -> tuple[list[dict[str, Any]], str | None]:
            rows = conn.execute(select(tr).where(*conds).order_by(*order).offset(offset).limit(limit + 1)).all()
            token = search.encode_page_token(offset + limit) if len(rows) > limit else None
            return _infos(conn, rows[:limit]), token
        return self.t.read(op)

    def span_summaries(self, trace_id: str) -> list[dict[str, Any]]:
        """The columns of a trace's spans, without their content (for the web UI's lists)."""
        def op(conn: Connection) -> list[dict[str, Any]]:
            _row(conn, trace_id)
            sp = s.spans
            return [dict(span_id=r.span_id, parent_span_id=r.parent_span_id, name=r.name, span_type=r.span_type,
                         status=r.status, start_time_ns=r.start_time_ns, end_time_ns=r.end_time_ns)
                    for r in conn.execute(select(sp.c.span_id, sp.c.parent_span_id, sp.c.name, sp.c.span_type,
                                                 sp.c.status, sp.c.start_time_ns, sp.c.end_time_ns)
                                          .where(sp.c.trace_id == trace_id).order_by(sp.c.start_time_ns))]
        return self.t.read(op)


# -- helpers on a connection --------------------------------------------------------------
def _info_row(info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """A TraceInfo JSON as a ``traces`` row, its tags and its metadata (marked finalized)."""
    trace_id = info.get("trace_id")
    if not isinstance(trace_id, str) or not trace_id:
        raise InvalidParameterValue("Missing value for required parameter 'trace_id'")
    location = info.get("trace_location") or {}
    exp_raw = (location.get("mlflow_experiment") or {}).get("experiment_id")
    if exp_raw is None:
        raise InvalidParameterValue("Traces must be logged to an MLflow experiment location")
    state = str(info.get("state") or "STATE_UNSPECIFIED")
    if state not in STATES:
        raise InvalidParameterValue(f"Invalid trace state {state!r}")
    row = dict(trace_id=trace_id, experiment_id=check_experiment_id(exp_raw),
               request_time=parse_time_ms(info.get("request_time") or 0, "request_time"),
               execution_duration=parse_duration_ms(info.get("execution_duration")), state=state,
               client_request_id=info.get("client_request_id") or None,
               request_preview=info.get("request_preview"), response_preview=info.get("response_preview"))
    tags = {str(k): str(v) for k, v in (info.get("tags") or {}).items()}
    meta = {str(k): str(v) for k, v in (info.get("trace_metadata") or {}).items()}
    meta[INFO_FINALIZED] = "true"
    return row, tags, meta


# Built once: every span export runs these, and building a statement costs more than running it.
_EXPERIMENT = select(s.experiments.c.lifecycle_stage, s.experiments.c.artifact_location).where(
    s.experiments.c.experiment_id == bindparam("exp_id"))
_TRACE_EXISTS = select(s.traces.c.trace_id).where(s.traces.c.trace_id == bindparam("trace_id"))


def _check_experiment(conn: Connection, exp_id: int) -> Any:
    exp = conn.execute(_EXPERIMENT, {"exp_id": exp_id}).first()
    if exp is None:
        raise ResourceDoesNotExist(f"No Experiment with id={exp_id} exists")
    if exp.lifecycle_stage != "active":
        raise InvalidParameterValue(f"The experiment {exp_id} must be in the 'active' state.")
    return exp


def _system_tags(exp: Any, trace_id: str) -> dict[str, str]:
    return {ARTIFACT_LOCATION: join_uri(exp.artifact_location, "traces", trace_id, "artifacts"),
            SPANS_LOCATION: TRACKING_STORE}


def _put_info(conn: Connection, row: dict[str, Any], overwrite: bool) -> None:
    def build(c: Connection) -> Any:
        stmt = upsert(c, s.traces)
        if not overwrite:
            return stmt.on_conflict_do_nothing()
        return stmt.on_conflict_do_update(index_elements=["trace_id"], set_={
            k: stmt.excluded[k] for k in s.traces.c.keys() if k != "trace_id"})
    conn.execute(cached(conn, f"traces.put_info.{overwrite}", build), row)


def _pairs_upsert(c: Connection, table: Any) -> Any:
    stmt = upsert(c, table)
    return stmt.on_conflict_do_update(index_elements=["trace_id", "key"], set_={"value": stmt.excluded.value})


def _spans_upsert(c: Connection) -> Any:
    stmt = upsert(c, s.spans)
    # An identical span sent twice (a retried export, a re-read spool record) is one span;
    # a later export of the same span id (it ended since) replaces the earlier one.
    return stmt.on_conflict_do_update(index_elements=["trace_id", "span_id"], set_={
        c: stmt.excluded[c] for c in ("parent_span_id", "name", "span_type", "status", "start_time_ns",
                                      "end_time_ns", "content")})


def _put_pairs(conn: Connection, table: Any, trace_id: str, items: dict[str, str]) -> None:
    if not items:
        return
    for k in items:
        if not isinstance(k, str) or not k or len(k) > s.KEY:
            raise InvalidParameterValue(f"Invalid trace tag or metadata key {str(k)[:80]!r}")
    conn.execute(cached(conn, f"traces.pairs.{table.name}", lambda c: _pairs_upsert(c, table)),
                 [{"trace_id": trace_id, "key": k, "value": str(v)} for k, v in items.items()])


def _put_spans(conn: Connection, rows: Sequence[SpanRow]) -> None:
    if not rows:
        return
    conn.execute(cached(conn, "traces.spans", _spans_upsert), [dict(r) for r in rows])


def _row(conn: Connection, trace_id: str) -> Any:
    row = conn.execute(select(s.traces).where(s.traces.c.trace_id == trace_id)).first()
    if row is None:
        raise ResourceDoesNotExist(f"Trace with ID '{trace_id}' not found.")
    return row


def _info(conn: Connection, trace_id: str) -> dict[str, Any]:
    row = _row(conn, trace_id)
    return _infos(conn, [row])[0]


def _infos(conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Trace infos of ``rows`` (of ``traces``), their tags, metadata, assessments and runs in one query each."""
    ids = [r.trace_id for r in rows]
    tags: dict[str, dict[str, str]] = {i: {} for i in ids}
    meta: dict[str, dict[str, str]] = {i: {} for i in ids}
    found: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    runs: dict[str, list[str]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for table, into in ((s.trace_tags, tags), (s.trace_metadata, meta)):
            for r in conn.execute(select(table.c.trace_id, table.c.key, table.c.value).where(table.c.trace_id.in_(chunk))):
                into[r.trace_id][r.key] = r.value
        a = s.assessments
        for r in conn.execute(select(a.c.trace_id, a.c.content).where(a.c.trace_id.in_(chunk))
                              .order_by(a.c.create_time, a.c.assessment_id)):
            found[r.trace_id].append(json.loads(r.content))
        for r in conn.execute(select(s.trace_runs.c.trace_id, s.trace_runs.c.run_uuid)
                              .where(s.trace_runs.c.trace_id.in_(chunk))):
            runs[r.trace_id].append(r.run_uuid)
    out = []
    for row in rows:
        tid = row.trace_id
        info: dict[str, Any] = {
            "trace_id": tid,
            "trace_location": {"type": "MLFLOW_EXPERIMENT",
                               "mlflow_experiment": {"experiment_id": str(row.experiment_id)}},
            "request_time": rfc3339(row.request_time),
        }
        if row.execution_duration is not None:
            info["execution_duration"] = duration_json(row.execution_duration)
        info["state"] = row.state
        if row.client_request_id:
            info["client_request_id"] = row.client_request_id
        info["trace_metadata"] = meta[tid]
        if found[tid]:
            info["assessments"] = found[tid]
        info["tags"] = tags[tid]
        if row.request_preview is not None:
            info["request_preview"] = row.request_preview
        if row.response_preview is not None:
            info["response_preview"] = row.response_preview
        if runs[tid]:
            info["labtrack_linked_runs"] = runs[tid]  # unknown to MLflow's client, which ignores it
        out.append(info)
    return out


def _trace_json(conn: Connection, trace_id: str) -> str:
    info = _info(conn, trace_id)
    contents = [r[0] for r in conn.execute(select(s.spans.c.content).where(s.spans.c.trace_id == trace_id)
                                            .order_by(s.spans.c.start_time_ns, s.spans.c.span_id))]
    return '{"trace_info":' + json.dumps(info, ensure_ascii=False) + ',"spans":[' + ",".join(contents) + "]}"


# -- assessments ----------------------------------------------------------------------------
def _snake(path: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", path.strip()).lower()


def _kind(a: dict[str, Any]) -> str:
    return "expectation" if "expectation" in a else "feedback"


def _value(a: dict[str, Any]) -> str | None:
    if "feedback" in a:
        v = (a["feedback"] or {}).get("value")
    else:
        e = a.get("expectation") or {}
        if "serialized_value" in e:
            return str((e["serialized_value"] or {}).get("value"))
        v = e.get("value")
    return None if v is None else json.dumps(v, ensure_ascii=False)


def _check_assessment(a: dict[str, Any]) -> None:
    name = a.get("assessment_name")
    if not isinstance(name, str) or not name:
        raise InvalidParameterValue("Missing value for required parameter 'assessment_name'")
    if ("feedback" in a) == ("expectation" in a):
        raise InvalidParameterValue("An assessment needs exactly one of 'feedback' or 'expectation'")


def _insert_assessment(conn: Connection, trace_id: str, a: dict[str, Any]) -> dict[str, Any]:
    _check_assessment(a)
    t = now_ms()
    a["assessment_id"] = a.get("assessment_id") or "a-" + uuid.uuid4().hex
    a["trace_id"] = trace_id
    created = parse_time_ms(a["create_time"], "create_time") if a.get("create_time") else t
    a["create_time"] = rfc3339(created)
    a["last_update_time"] = rfc3339(parse_time_ms(a["last_update_time"], "last_update_time")
                                    if a.get("last_update_time") else created)
    a.setdefault("valid", True)
    if conn.execute(select(s.assessments.c.assessment_id)
                    .where(s.assessments.c.assessment_id == a["assessment_id"])).first() is not None:
        return _assessment(conn, trace_id, a["assessment_id"])  # a retried create
    if a.get("overrides"):
        _set_valid(conn, a["overrides"], False)
    conn.execute(insert(s.assessments).values(
        assessment_id=a["assessment_id"], trace_id=trace_id, name=a["assessment_name"], kind=_kind(a),
        create_time=created, last_update_time=parse_time_ms(a["last_update_time"], "last_update_time"),
        valid=bool(a.get("valid", True)), value=_value(a), content=json.dumps(a, ensure_ascii=False)))
    return a


def _assessment(conn: Connection, trace_id: str, assessment_id: str) -> dict[str, Any]:
    row = conn.execute(select(s.assessments.c.content).where(
        s.assessments.c.assessment_id == assessment_id, s.assessments.c.trace_id == trace_id)).first()
    if row is None:
        raise ResourceDoesNotExist(f"Assessment with ID '{assessment_id}' not found for trace '{trace_id}'")
    return json.loads(row[0])


def _set_valid(conn: Connection, assessment_id: str, valid: bool) -> None:
    row = conn.execute(select(s.assessments.c.content).where(s.assessments.c.assessment_id == assessment_id)).first()
    if row is None:
        return
    content = json.loads(row[0])
    content["valid"] = valid
    conn.execute(update(s.assessments).where(s.assessments.c.assessment_id == assessment_id)
                 .values(valid=valid, content=json.dumps(content, ensure_ascii=False)))


# -- search -------------------------------------------------------------------------------
_ENTITIES = {
    "attribute": "attribute", "attributes": "attribute", "trace": "attribute",
    "tag": "tag", "tags": "tag",
    "metadata": "metadata", "request_metadata": "metadata",
    "span": "span", "feedback": "feedback", "expectation": "expectation",
}
_NUMERIC = {"timestamp": "request_time", "timestamp_ms": "request_time",
            "execution_time": "execution_duration", "execution_time_ms": "execution_duration",
            "end_time": "end_time", "end_time_ms": "end_time"}
_TEXT = {"status": "state", "state": "state", "request_id": "trace_id", "trace_id": "trace_id",
         "client_request_id": "client_request_id"}


def _compare(column: Any, c: Clause, numeric: bool = False) -> Any:
    op, v = c.op, c.value
    if op in ("IS NULL", "IS NOT NULL"):
        return column.is_(None) if op == "IS NULL" else column.isnot(None)
    if op in ("IN", "NOT IN"):
        if not isinstance(v, tuple):
            raise c.fail("IN needs a ('list')")
        values = [str(x) for x in v]
        return column.in_(values) if op == "IN" else column.notin_(values)
    if numeric:
        if not isinstance(v, (int, float)):
            raise c.fail("expected a number")
    elif not isinstance(v, str):
        raise c.fail("expected a quoted string")
    if op == "LIKE":
        return column.like(v)
    if op == "ILIKE":
        return column.ilike(v)
    ops = {"=": column.__eq__, "!=": column.__ne__, ">": column.__gt__, ">=": column.__ge__,
           "<": column.__lt__, "<=": column.__le__}
    if op not in ops or (not numeric and op not in ("=", "!=")):
        raise c.fail(f"operator {op} is not supported here")
    return ops[op](v)


def _pair_exists(table: Any, key: str, c: Clause) -> Any:
    tr = s.traces
    base = and_(table.c.trace_id == tr.c.trace_id, table.c.key == key)
    if c.op == "IS NULL":
        return ~exists().where(base)
    if c.op == "IS NOT NULL":
        return exists().where(base)
    return exists().where(base, _compare(table.c.value, c))


def _condition(c: Clause) -> Any:
    tr = s.traces
    key = c.key
    if c.entity == "tag":
        return _pair_exists(s.trace_tags, key, c)
    if c.entity == "metadata":
        return _pair_exists(s.trace_metadata, key, c)
    if c.entity == "span":
        sp = s.spans
        columns = {"name": sp.c.name, "type": sp.c.span_type, "status": sp.c.status, "content": sp.c.content}
        if key not in columns:
            raise c.fail("span filters support name, type, status and content")
        return exists().where(sp.c.trace_id == tr.c.trace_id, _compare(columns[key], c))
    if c.entity in ("feedback", "expectation"):
        a = s.assessments
        base = and_(a.c.trace_id == tr.c.trace_id, a.c.name == key, a.c.kind == c.entity, a.c.valid.is_(True))
        if c.op == "IS NULL":
            return ~exists().where(base)
        if c.op == "IS NOT NULL":
            return exists().where(base)
        v = c.value
        texts = [json.dumps(v)] + ([v] if isinstance(v, str) else [])
        if isinstance(v, str) and v.lower() in ("true", "false"):
            texts.append(v.lower())
        if c.op == "=":
            return exists().where(base, a.c.value.in_(texts))
        if c.op == "!=":
            return exists().where(base, a.c.value.notin_(texts))
        return exists().where(base, _compare(a.c.value, c))
    # attributes
    if key in _NUMERIC:
        col = _NUMERIC[key]
        column = tr.c.request_time + tr.c.execution_duration if col == "end_time" else tr.c[col]
        return _compare(column, c, numeric=True)
    if key in _TEXT:
        return _compare(tr.c[_TEXT[key]], c)
    if key == "name":
        return _pair_exists(s.trace_tags, TRACE_NAME, c)
    if key == "run_id":
        linked = exists().where(s.trace_runs.c.trace_id == tr.c.trace_id, _compare(s.trace_runs.c.run_uuid, c))
        return or_(_pair_exists(s.trace_metadata, SOURCE_RUN, c), linked) if c.op in ("=", "IN", "LIKE", "ILIKE") \
            else _pair_exists(s.trace_metadata, SOURCE_RUN, c)
    if key == "text":
        sp = s.spans
        return exists().where(sp.c.trace_id == tr.c.trace_id, _compare(sp.c.content, c))
    raise c.fail(f"unknown trace attribute {key!r}")


def _order(entry: str) -> Any:
    o = parse_order(entry, _ENTITIES)
    tr = s.traces
    if o.entity != "attribute":
        raise InvalidParameterValue(f"Invalid order_by {entry!r}: only trace attributes can be ordered by")
    if o.key in _NUMERIC:
        col = _NUMERIC[o.key]
        column = tr.c.request_time + tr.c.execution_duration if col == "end_time" else tr.c[col]
    elif o.key in _TEXT:
        column = tr.c[_TEXT[o.key]]
    elif o.key == "experiment_id":
        column = tr.c.experiment_id
    elif o.key in ("name", "run_id"):
        table, k = (s.trace_tags, TRACE_NAME) if o.key == "name" else (s.trace_metadata, SOURCE_RUN)
        column = select(table.c.value).where(table.c.trace_id == tr.c.trace_id, table.c.key == k).scalar_subquery()
    else:
        raise InvalidParameterValue(f"Invalid order_by {entry!r}: unknown trace attribute {o.key!r}")
    return column.asc() if o.ascending else column.desc()


def new_trace_id() -> str:
    """A fresh MLflow trace id: ``tr-`` and 32 hex digits (its OTLP trace id)."""
    return "tr-" + uuid.uuid4().hex


__all__ = ["SpanRow", "TraceStore", "new_trace_id", "otlp_span_row", "plain_span", "put_imported", "span_row"]
