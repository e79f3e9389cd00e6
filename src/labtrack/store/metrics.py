"""Metric points: idempotent inserts, the latest-value table, history reads.

History is clustered by (run, key, step) (see schema.metrics), so a
million-point history is one range scan.  Every insert also folds the points
into the min/max pyramid that charts read (store/downsample.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select

from labtrack.entities import Metric
from labtrack.store import schema as s
from labtrack.store.dialect import cached, raw_executemany, raw_rows, upsert
from labtrack.store.downsample import update_summaries
from labtrack.store.loading import metric_value

# Statements built once: constructing a Core statement costs more than running it.
_m, _lm = s.metrics, s.latest_metrics
_LATEST = select(_lm).where(_lm.c.run_uuid == bindparam("run_id"),
                            _lm.c.key.in_(bindparam("keys", expanding=True)))
_HISTORY_COLUMNS = (_m.c.step, _m.c.timestamp, _m.c.value, _m.c.is_nan, _m.c.model_id, _m.c.dataset_name,
                    _m.c.dataset_digest)
_OF_METRIC = (_m.c.run_uuid == bindparam("run_id"), _m.c.key == bindparam("key"))
_HISTORY = (select(*_HISTORY_COLUMNS).where(*_OF_METRIC)
            .order_by(_m.c.step, _m.c.timestamp, _m.c.is_nan, _m.c.value)
            .offset(bindparam("offset")).limit(bindparam("limit")))
# The primary key's own order, (..., value, is_nan): no sort step in the
# database, and an OFFSET walks the index instead of sorting every row it skips.
_HISTORY_KEY_ORDER = (select(*_HISTORY_COLUMNS).where(*_OF_METRIC)
                      .order_by(_m.c.step, _m.c.timestamp, _m.c.value, _m.c.is_nan)
                      .offset(bindparam("offset")).limit(bindparam("limit")))
_NAN_AT = select(_m.c.step).where(*_OF_METRIC, _m.c.step == bindparam("step"),
                                  _m.c.timestamp == bindparam("timestamp"), _m.c.is_nan == True).limit(1)  # noqa: E712
_LATEST_FIELDS = ("value", "is_nan", "timestamp", "step", "min_value", "max_value")


_POINT_FIELDS = ("run_uuid", "key", "step", "timestamp", "value", "is_nan", "model_id", "dataset_name",
                 "dataset_digest")


def _insert_points(conn: Connection) -> Any:
    return upsert(conn, _m).on_conflict_do_nothing().compile(dialect=conn.dialect, column_keys=list(_POINT_FIELDS))


def _upsert_latest(conn: Connection) -> Any:
    stmt = upsert(conn, _lm)
    return stmt.on_conflict_do_update(index_elements=[_lm.c.run_uuid, _lm.c.key],
                                      set_={c: stmt.excluded[c] for c in _LATEST_FIELDS})


def _row(run_id: str, m: Metric) -> dict[str, Any]:
    nan = math.isnan(m.value)
    return {"run_uuid": run_id, "key": m.key, "step": m.step, "timestamp": m.timestamp,
            "value": 0.0 if nan else m.value, "is_nan": nan, "model_id": m.model_id,
            "dataset_name": m.dataset_name, "dataset_digest": m.dataset_digest}


def _order_key(step: int, timestamp: int, value: float, is_nan: bool) -> tuple[int, int, int, float]:
    # MLflow's "latest": the largest (step, timestamp, value); NaN counts as smallest value.
    return (step, timestamp, 0 if is_nan else 1, value)


def _row_order(r: dict[str, Any]) -> tuple[int, int, int, float]:
    return (r["step"], r["timestamp"], 0 if r["is_nan"] else 1, r["value"])


def insert_metrics(conn: Connection, run_id: str, points: Sequence[Metric], experiment_id: int) -> None:
    """Store points (identical ones are one point) and update the latest values."""
    if not points:
        return
    rows = [_row(run_id, m) for m in points]
    raw_executemany(conn, cached(conn, "insert_metrics_sql", _insert_points), rows)
    _update_latest(conn, run_id, rows)
    update_summaries(conn, run_id, rows)
    model_rows = [r for r in rows if r["model_id"]]
    if model_rows:
        _insert_model_metrics(conn, run_id, model_rows)


def _update_latest(conn: Connection, run_id: str, rows: list[dict[str, Any]]) -> None:
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault(r["key"], []).append(r)
    best: dict[str, dict[str, Any]] = {}
    for key, group in by_key.items():
        # max() keeps the first of equal rows, as a running comparison would.
        cur = best[key] = dict(max(group, key=_row_order))
        finite = [r["value"] for r in group if not r["is_nan"]]
        cur["min_value"] = min(finite) if finite else None
        cur["max_value"] = max(finite) if finite else None
    existing = {row.key: row for row in conn.execute(_LATEST, {"run_id": run_id, "keys": list(best)})}
    out = []
    for key, b in best.items():
        old = existing.get(key)
        if old is not None:
            if _order_key(old.step, old.timestamp, old.value, old.is_nan) >= _order_key(
                    b["step"], b["timestamp"], b["value"], b["is_nan"]):
                b.update(step=old.step, timestamp=old.timestamp, value=old.value, is_nan=old.is_nan)
            b["min_value"] = _combine(min, old.min_value, b["min_value"])
            b["max_value"] = _combine(max, old.max_value, b["max_value"])
        out.append({"run_uuid": run_id, "key": key, "value": b["value"], "is_nan": b["is_nan"],
                    "timestamp": b["timestamp"], "step": b["step"],
                    "min_value": b["min_value"], "max_value": b["max_value"]})
    conn.execute(cached(conn, "upsert_latest_metrics", _upsert_latest), out)


def _combine(fn: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return fn(a, b)


def _insert_model_metrics(conn: Connection, run_id: str, rows: list[dict[str, Any]]) -> None:
    lmm = s.logged_model_metrics
    conn.execute(upsert(conn, lmm).on_conflict_do_nothing(), [
        {"model_id": r["model_id"], "key": r["key"], "step": r["step"], "timestamp": r["timestamp"],
         "run_uuid": run_id, "value": r["value"], "is_nan": r["is_nan"],
         "dataset_name": r["dataset_name"], "dataset_digest": r["dataset_digest"]} for r in rows])


def history_rows(conn: Connection, run_id: str, key: str, offset: int, limit: int) -> list[Any]:
    """One page of a history as rows of HISTORY_FIELDS, in MLflow's order.

    Rows, not Metric objects: a 100,000-point history is read on every chart
    and every ``get_metric_history``; the server renders the rows straight to JSON.
    """
    params = {"run_id": run_id, "key": key, "offset": offset, "limit": limit}
    # The history's order puts NaN after every number of the same (step, timestamp);
    # the primary key puts it where 0.0 goes.  The two orders give the same page
    # unless a NaN is on it, or sits in the page's first (step, timestamp) before
    # the page starts (the only place where a page's rows can differ).  Almost
    # every history has no NaN there, so it is read in key order.
    rows = _fetch(conn, "history_key_order", _HISTORY_KEY_ORDER, params)
    if rows and (any(r[3] for r in rows) or (offset and conn.execute(
            _NAN_AT, {**params, "step": rows[0][0], "timestamp": rows[0][1]}).first() is not None)):
        rows = _fetch(conn, "history", _HISTORY, params)
    return rows


def _fetch(conn: Connection, name: str, stmt: Any, params: dict[str, Any]) -> list[Any]:
    """Rows as plain tuples: a Row object per point would cost as much as SQLite's work."""
    return raw_rows(conn, cached(conn, name + "_sql", lambda c: stmt.compile(dialect=c.dialect)), params)


HISTORY_FIELDS = ("step", "timestamp", "value", "is_nan", "model_id", "dataset_name", "dataset_digest")


def to_metric(key: str, row: Any) -> Metric:
    """A Metric from a row of HISTORY_FIELDS."""
    step, ts, value, is_nan, model_id, ds_name, ds_digest = row
    return Metric(key=key, value=metric_value(value, is_nan), timestamp=ts, step=step,
                  model_id=model_id, dataset_name=ds_name, dataset_digest=ds_digest)


def history(conn: Connection, run_id: str, key: str, offset: int, limit: int) -> list[Metric]:
    return [to_metric(key, r) for r in history_rows(conn, run_id, key, offset, limit)]


def history_interval(conn: Connection, run_ids: Sequence[str], key: str, start_step: int | None,
                     end_step: int | None, max_results: int) -> list[Metric]:
    """MLflow's bulk-interval read: up to ``max_results`` evenly spread steps per run."""
    m = s.metrics
    out: list[Metric] = []
    for run_id in run_ids:
        cond = [m.c.run_uuid == run_id, m.c.key == key]
        if start_step is not None:
            cond.append(m.c.step >= start_step)
        if end_step is not None:
            cond.append(m.c.step <= end_step)
        steps = [r[0] for r in conn.execute(select(m.c.step).where(*cond).distinct().order_by(m.c.step))]
        if len(steps) > max_results:
            stride = len(steps) / max_results
            chosen = sorted({steps[int(i * stride)] for i in range(max_results)} | {steps[-1]})
        else:
            chosen = steps
        if not chosen:
            continue
        rows = conn.execute(
            select(m.c.step, m.c.timestamp, m.c.value, m.c.is_nan).where(*cond, m.c.step.in_(chosen))
            .order_by(m.c.step, m.c.timestamp))
        out.extend(Metric(key=key, value=metric_value(r.value, r.is_nan), timestamp=r.timestamp,
                          step=r.step, run_id=run_id) for r in rows)
    return out
