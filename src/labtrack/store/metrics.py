"""Metric points: idempotent inserts, the latest-value table, history reads.

History is clustered by (run, key, step) (see schema.metrics), so a
million-point history is one range scan.  ``downsample`` answers charts with
at most ``max_points`` points, keeping each bucket's minimum and maximum, so
spikes survive and no client ever pulls a whole history to draw it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, select

from labtrack.entities import Metric
from labtrack.store import schema as s
from labtrack.store.dialect import upsert
from labtrack.store.loading import metric_value


def _row(run_id: str, m: Metric) -> dict[str, Any]:
    nan = math.isnan(m.value)
    return {"run_uuid": run_id, "key": m.key, "step": m.step, "timestamp": m.timestamp,
            "value": 0.0 if nan else m.value, "is_nan": nan, "model_id": m.model_id,
            "dataset_name": m.dataset_name, "dataset_digest": m.dataset_digest}


def _order_key(step: int, timestamp: int, value: float, is_nan: bool) -> tuple[int, int, int, float]:
    # MLflow's "latest": the largest (step, timestamp, value); NaN counts as smallest value.
    return (step, timestamp, 0 if is_nan else 1, value)


def insert_metrics(conn: Connection, run_id: str, points: Sequence[Metric], experiment_id: int) -> None:
    """Store points (identical ones are one point) and update the latest values."""
    if not points:
        return
    rows = [_row(run_id, m) for m in points]
    conn.execute(upsert(conn, s.metrics).on_conflict_do_nothing(), rows)
    _update_latest(conn, run_id, rows)
    model_rows = [r for r in rows if r["model_id"]]
    if model_rows:
        _insert_model_metrics(conn, run_id, model_rows)


def _update_latest(conn: Connection, run_id: str, rows: list[dict[str, Any]]) -> None:
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = r["key"]
        v = r["value"]
        cur = best.get(key)
        if cur is None:
            cur = best[key] = dict(r, min_value=None, max_value=None)
        elif _order_key(r["step"], r["timestamp"], v, r["is_nan"]) > _order_key(
                cur["step"], cur["timestamp"], cur["value"], cur["is_nan"]):
            cur.update(step=r["step"], timestamp=r["timestamp"], value=v, is_nan=r["is_nan"])
        if not r["is_nan"]:
            cur["min_value"] = v if cur["min_value"] is None else min(cur["min_value"], v)
            cur["max_value"] = v if cur["max_value"] is None else max(cur["max_value"], v)
    lm = s.latest_metrics
    existing = {
        row.key: row for row in conn.execute(
            select(lm).where(lm.c.run_uuid == run_id, lm.c.key.in_(list(best))))
    }
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
    stmt = upsert(conn, lm)
    stmt = stmt.on_conflict_do_update(
        index_elements=[lm.c.run_uuid, lm.c.key],
        set_={c: stmt.excluded[c] for c in ("value", "is_nan", "timestamp", "step", "min_value", "max_value")},
    )
    conn.execute(stmt, out)


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


def history(conn: Connection, run_id: str, key: str, offset: int, limit: int) -> list[Metric]:
    m = s.metrics
    rows = conn.execute(
        select(m.c.step, m.c.timestamp, m.c.value, m.c.is_nan, m.c.model_id, m.c.dataset_name,
               m.c.dataset_digest)
        .where(m.c.run_uuid == run_id, m.c.key == key)
        .order_by(m.c.step, m.c.timestamp, m.c.is_nan, m.c.value)
        .offset(offset).limit(limit))
    return [Metric(key=key, value=metric_value(r.value, r.is_nan), timestamp=r.timestamp, step=r.step,
                   model_id=r.model_id, dataset_name=r.dataset_name, dataset_digest=r.dataset_digest)
            for r in rows]


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


def downsample(conn: Connection, run_id: str, key: str, max_points: int,
               min_step: int | None = None, max_step: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """At most ~max_points points of a window, keeping each bucket's min and max.

    Returns (points, total points in the window).  Buckets split the step
    range evenly; the SQL groups by bucket so the server never holds the whole
    history in memory.
    """
    m = s.metrics
    cond = [m.c.run_uuid == run_id, m.c.key == key]
    if min_step is not None:
        cond.append(m.c.step >= min_step)
    if max_step is not None:
        cond.append(m.c.step <= max_step)
    lo, hi, total = conn.execute(
        select(func.min(m.c.step), func.max(m.c.step), func.count()).where(*cond)).one()
    if not total:
        return [], 0
    cols = (m.c.step, m.c.timestamp, m.c.value, m.c.is_nan)
    if total <= max_points:
        rows = conn.execute(select(*cols).where(*cond).order_by(m.c.step, m.c.timestamp))
        return [_point(r) for r in rows], total
    buckets = max(1, max_points // 2)
    width = max(1, math.ceil((hi - lo + 1) / buckets))
    bucket = ((m.c.step - lo) // width).label("b")
    finite = m.c.is_nan.is_(False)
    agg = (select(bucket, func.min(m.c.value).label("vmin"), func.max(m.c.value).label("vmax"))
           .where(*cond, finite).group_by(bucket).subquery())
    # Join back to find the step and timestamp of each bucket's extremes.
    rows = conn.execute(
        select(*cols)
        .join_from(m, agg, and_((m.c.step - lo) // width == agg.c.b,
                                (m.c.value == agg.c.vmin) | (m.c.value == agg.c.vmax)))
        .where(*cond, finite)
        .order_by(m.c.step, m.c.timestamp))
    points: list[dict[str, Any]] = []
    seen: set[tuple[int, float]] = set()
    for r in rows:
        # one point per bucket extreme, even when the value repeats inside the bucket
        ident = ((r.step - lo) // width, r.value)
        if ident not in seen:
            seen.add(ident)
            points.append(_point(r))
    return points, total


def _point(r: Any) -> dict[str, Any]:
    return {"step": r.step, "timestamp": r.timestamp, "value": metric_value(r.value, r.is_nan)}


def has_run(conn: Connection, run_id: str) -> bool:
    return conn.execute(select(s.runs.c.run_uuid).where(s.runs.c.run_uuid == run_id)).first() is not None
