"""Metric points: idempotent inserts, the latest-value table, history reads.

History is clustered by (series, step) (see schema.metrics; a series is a run's
metric, store/metric_series.py), so a million-point history is one range scan.
Every insert also folds the points into the min/max pyramid that charts read
(store/downsample.py).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import chain, islice, repeat
from operator import le
from typing import Any

from sqlalchemy import (BigInteger, Connection, Float, Integer, bindparam, case, column, false, select, true,
                        tuple_, values)

from labtrack.entities import Metric, MetricSeries
from labtrack.store import schema as s
from labtrack.store.dialect import (
    cached,
    raw_executemany,
    raw_executemany_columns,
    raw_executemany_positional,
    raw_rows,
    upsert,
)
from labtrack.store.downsample import update_summaries
from labtrack.store.loading import metric_value
from labtrack.store.metric_series import SERIES_OF, find_series, series_ids

# Statements built once: constructing a Core statement costs more than running it.
_m, _lm = s.metrics, s.latest_metrics
_HISTORY_COLUMNS = (_m.c.step, _m.c.timestamp, _m.c.value, _m.c.is_nan, _m.c.model_id, _m.c.dataset_name,
                    _m.c.dataset_digest)
_OF_METRIC = (_m.c.series_id == SERIES_OF,)
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


_POINT_FIELDS = ("series_id", "step", "timestamp", "value", "is_nan", "model_id", "dataset_name",
                 "dataset_digest")
_SERIES_FIELDS = ("series_id", "step", "timestamp", "value")


def _insert_points(conn: Connection) -> Any:
    return upsert(conn, _m).on_conflict_do_nothing().compile(dialect=conn.dialect, column_keys=list(_POINT_FIELDS))


def _insert_finite_rows(conn: Connection) -> Any:
    # Five bound columns: binding a parameter costs as much as SQLite's insert of it.
    return (upsert(conn, _m).inline().values(is_nan=false()).on_conflict_do_nothing()
            .compile(dialect=conn.dialect, column_keys=list(_SERIES_FIELDS)))


# Points per statement of the block insert: SQLite binds a multi-row VALUES list
# of (step, timestamp, value) with the series id once, in half the time of
# executemany's four parameters a row.  601 parameters, well under SQLite's limit.
BLOCK = 200


def _insert_block(conn: Connection) -> Any:
    points = values(column("step", BigInteger), column("timestamp", BigInteger), column("value", Float),
                    name="points").data([(bindparam(f"s{i}", type_=BigInteger), bindparam(f"t{i}", type_=BigInteger),
                                          bindparam(f"v{i}", type_=Float)) for i in range(BLOCK)]).cte("points")
    rows = select(bindparam("series_id", type_=Integer),
                  points.c.step, points.c.timestamp, points.c.value, false()).where(true())
    compiled = (upsert(conn, _m).from_select(["series_id", "step", "timestamp", "value", "is_nan"], rows)
                .on_conflict_do_nothing().compile(dialect=conn.dialect))
    expected = [*chain.from_iterable((f"s{i}", f"t{i}", f"v{i}") for i in range(BLOCK)), "series_id"]
    if list(compiled.positiontup or ()) != expected:
        raise AssertionError("block insert: unexpected parameter order")
    return compiled


def _insert_finite(conn: Connection, sid: int, s_: MetricSeries) -> None:
    """Points without NaN: whole blocks of BLOCK points, then the rest a row at a time."""
    n = len(s_.values)
    full = n - n % BLOCK if conn.dialect.paramstyle == "qmark" else 0
    if full:
        # (step, timestamp, value) of every point, interleaved by slice assignment in C
        # (a third of the time chain(zip(...)) takes).
        flat: list[Any] = [None] * (3 * full)
        for i, col in enumerate((s_.steps, s_.timestamps, s_.values)):
            flat[i::3] = col if full == n else col[:full]
        width = 3 * BLOCK
        raw_executemany_positional(conn, cached(conn, "insert_metric_block_sql", _insert_block),
                                   [(*flat[i:i + width], sid) for i in range(0, len(flat), width)])
    if full < n:
        raw_executemany_columns(conn, cached(conn, "insert_finite_metrics_sql", _insert_finite_rows), {
            "series_id": repeat(sid), "step": s_.steps[full:],
            "timestamp": s_.timestamps[full:], "value": s_.values[full:]})


def _upsert_latest(conn: Connection) -> Any:
    """One statement per key: the new points' latest, min and max, merged with the stored row in SQL.

    MLflow's "latest" is the largest (step, timestamp, value), NaN counting as
    the smallest value; min and max ignore NaN (NULL until a finite point
    comes).  ``min_step``/``max_step`` are the smallest step holding the min /
    max (the "best step").  A row the new points change nothing of is not rewritten.
    """
    stmt = upsert(conn, _lm)
    new, old = stmt.excluded, _lm.c
    newer = (tuple_(new.step, new.timestamp, ~new.is_nan, new.value)
             > tuple_(old.step, old.timestamp, ~old.is_nan, old.value))
    # The new extreme wins when it is beyond the stored one, or equal and at an earlier step,
    # or when no finite point was stored yet.
    lower = (new.min_value < old.min_value) | ((new.min_value == old.min_value) & (new.min_step < old.min_step))
    higher = (new.max_value > old.max_value) | ((new.max_value == old.max_value) & (new.max_step < old.max_step))
    first = old.min_value.is_(None) & new.min_value.is_not(None)
    take_min, take_max = lower | first, higher | first
    return stmt.on_conflict_do_update(
        index_elements=[old.run_uuid, old.key],
        set_={
            **{c: case((newer, new[c]), else_=old[c]) for c in ("value", "is_nan", "timestamp", "step")},
            **{c: case((take_min, new[c]), else_=old[c]) for c in ("min_value", "min_step")},
            **{c: case((take_max, new[c]), else_=old[c]) for c in ("max_value", "max_step")},
        },
        where=newer | take_min | take_max,
    ).compile(dialect=conn.dialect, column_keys=[c.name for c in _lm.c])


def _row(sid: int, m: Metric) -> dict[str, Any]:
    nan = math.isnan(m.value)
    return {"series_id": sid, "step": m.step, "timestamp": m.timestamp,
            "value": 0.0 if nan else m.value, "is_nan": nan, "model_id": m.model_id,
            "dataset_name": m.dataset_name, "dataset_digest": m.dataset_digest}


def to_series(points: Iterable[Metric]) -> list[MetricSeries]:
    """Points grouped by key, in the order they came."""
    by_key: dict[str, MetricSeries] = {}
    for m in points:
        cur = by_key.get(m.key)
        if cur is None:
            cur = by_key[m.key] = MetricSeries(m.key, [], [], [])
        cur.steps.append(m.step)
        cur.timestamps.append(m.timestamp)
        cur.values.append(m.value)
    return list(by_key.values())


def merge_series(series: Sequence[MetricSeries]) -> list[MetricSeries]:
    """One series per key (a request may name a key twice)."""
    if len({s_.key for s_ in series}) == len(series):
        return list(series)
    by_key: dict[str, MetricSeries] = {}
    for s_ in series:
        cur = by_key.get(s_.key)
        if cur is None:
            by_key[s_.key] = MetricSeries(s_.key, list(s_.steps), list(s_.timestamps), list(s_.values))
        else:
            cur.steps += s_.steps
            cur.timestamps += s_.timestamps
            cur.values += s_.values
    return list(by_key.values())


def insert_metrics(conn: Connection, run_id: str, points: Sequence[Metric]) -> None:
    """Store points (identical ones are one point) and update the latest values."""
    ids = series_ids(conn, run_id, (m.key for m in points))
    plain = [m for m in points if m.model_id is None and m.dataset_name is None and m.dataset_digest is None]
    if plain:
        _insert_series(conn, run_id, to_series(plain), ids)
    if len(plain) < len(points):
        linked = [m for m in points if m.model_id is not None or m.dataset_name is not None
                  or m.dataset_digest is not None]
        rows = [_row(ids[m.key], m) for m in linked]
        raw_executemany(conn, cached(conn, "insert_metrics_sql", _insert_points), rows)
        _fold(conn, run_id, to_series(linked), ids)
        model_rows = [(m, r) for m, r in zip(linked, rows) if r["model_id"]]
        if model_rows:
            _insert_model_metrics(conn, run_id, model_rows)


def insert_series(conn: Connection, run_id: str, series: Sequence[MetricSeries]) -> None:
    """Store whole series of points (the bulk path) and update the latest values and summaries."""
    series = merge_series(series)
    _insert_series(conn, run_id, series, series_ids(conn, run_id, (s_.key for s_ in series if s_.values)))


def _insert_series(conn: Connection, run_id: str, series: Sequence[MetricSeries], ids: dict[str, int]) -> None:
    """``insert_series`` with one series per key and their ids looked up."""
    series = _in_id_order(series, ids)
    for s_ in series:
        if not s_.values:
            continue
        sid = ids[s_.key]
        if s_.has_nan():
            nan = [v != v for v in s_.values]
            rows = [{"series_id": sid, "step": step, "timestamp": ts,
                     "value": 0.0 if n else v, "is_nan": n, "model_id": None, "dataset_name": None,
                     "dataset_digest": None}
                    for step, ts, v, n in zip(s_.steps, s_.timestamps, s_.values, nan)]
            raw_executemany(conn, cached(conn, "insert_metrics_sql", _insert_points), rows)
        else:
            _insert_finite(conn, sid, s_)
    _fold(conn, run_id, series, ids)


def _fold(conn: Connection, run_id: str, series: Sequence[MetricSeries], ids: dict[str, int]) -> None:
    """Fold new points (one series per key) into the latest values and the chart summaries."""
    series = _in_id_order([s_ for s_ in series if s_.values], ids)
    if series:
        _update_latest(conn, run_id, series)
        update_summaries(conn, ids, series)


def _in_id_order(series: Sequence[MetricSeries], ids: dict[str, int]) -> Sequence[MetricSeries]:
    """The series by id: every writer then takes its row locks (points, latest values, summaries)
    in one order, so two transactions logging the same keys in opposite orders on PostgreSQL
    wait for each other instead of deadlocking."""
    if len(series) < 2:
        return series
    return sorted(series, key=lambda s_: ids.get(s_.key, -1))


def _best(s_: MetricSeries) -> tuple[tuple[int, int, int, float], tuple[float, int] | None,
                                     tuple[float, int] | None]:
    """(order key of the latest point, (min, its smallest step), (max, its smallest step)) of a series.

    NaN is ignored by min and max (None when every value is NaN).
    """
    values, steps = s_.values, s_.steps
    if not s_.has_nan():
        lo, hi = min(values), max(values)
        if all(map(le, steps, islice(steps, 1, None))):
            # In step order (what a training loop logs): the latest point is at the end, and the
            # first index of a value holds its smallest step; a few passes in C instead of nine.
            i = bisect_left(steps, steps[-1])
            step, ts, value = (steps[-1], s_.timestamps[-1], values[-1]) if i == len(steps) - 1 else \
                max(zip(steps[i:], s_.timestamps[i:], values[i:]))
            return (step, ts, 1, value), (lo, steps[values.index(lo)]), (hi, steps[values.index(hi)])
        step, ts, value = _latest(steps, s_.timestamps, values)
        return (step, ts, 1, value), (lo, _first_step(steps, values, lo)), (hi, _first_step(steps, values, hi))
    flags = [0 if v != v else 1 for v in values]
    cleaned = [v if f else 0.0 for v, f in zip(values, flags)]
    best = max(zip(steps, s_.timestamps, flags, cleaned))
    finite = [(v, st) for v, st, f in zip(values, steps, flags) if f]
    if not finite:
        return best, None, None
    return best, min(finite), min(finite, key=lambda p: (-p[0], p[1]))


def _latest(steps: Sequence[int], timestamps: Sequence[int], values: Sequence[float]) -> tuple[int, int, float]:
    """The largest (step, timestamp, value) of points without NaN: the largest step found in C,
    and tuples compared only among the points at that step (usually one)."""
    top = max(steps)
    i = steps.index(top)
    if steps.count(top) == 1:
        return top, timestamps[i], values[i]
    return max((top, timestamps[j], values[j]) for j in range(i, len(steps)) if steps[j] == top)


def _first_step(steps: Sequence[int], values: Sequence[float], v: float) -> int:
    """The smallest step holding value ``v`` (list.index and count run in C: bulk series are long)."""
    i = values.index(v)
    if values.count(v) == 1:
        return steps[i]
    return min(st for st, x in zip(steps, values) if x == v)


def _update_latest(conn: Connection, run_id: str, series: Sequence[MetricSeries]) -> None:
    rows = []
    for s_ in series:
        (step, ts, is_num, value), lo, hi = _best(s_)
        rows.append({"run_uuid": run_id, "key": s_.key, "value": value, "is_nan": not is_num,
                     "timestamp": ts, "step": step, "min_value": lo and lo[0], "min_step": lo and lo[1],
                     "max_value": hi and hi[0], "max_step": hi and hi[1]})
    raw_executemany(conn, cached(conn, "upsert_latest_metrics_sql", _upsert_latest), rows)


def _insert_model_metrics(conn: Connection, run_id: str, rows: list[tuple[Metric, dict[str, Any]]]) -> None:
    lmm = s.logged_model_metrics
    conn.execute(upsert(conn, lmm).on_conflict_do_nothing(), [
        {"model_id": r["model_id"], "key": m.key, "step": r["step"], "timestamp": r["timestamp"],
         "run_uuid": run_id, "value": r["value"], "is_nan": r["is_nan"],
         "dataset_name": r["dataset_name"], "dataset_digest": r["dataset_digest"]} for m, r in rows])


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
        sid = find_series(conn, run_id, key)
        if sid is None:
            continue
        cond = [m.c.series_id == sid]
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
