"""Downsampled metric histories from a min/max pyramid kept as points arrive.

Charts never need a million points, only the shape: for every bucket of
steps, the lowest and the highest point.  ``metric_summaries`` keeps, for a
few bucket widths (16, 128, ... steps), each bucket's min and max point (keyed by the
metric's series id, store/metric_series.py) and is
updated in the same transaction as the points themselves.  Reading a window
then costs one index range over at most ``max_points / 2`` summary rows plus
the raw points of the two partial buckets at its edges, however long the
history: a 1,000,000-point metric draws as fast as a 1,000-point one.

Summaries merge with min/max, so writing the same point twice (a retried
request, a re-ingested spool file) changes nothing.  NaN points are left out
of summaries: they have no place on a chart's value axis.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from itertools import islice
from operator import le
from typing import Any

from sqlalchemy import Connection, case, func, select

from labtrack.entities import MetricSeries
from labtrack.store import schema as s
from labtrack.store.dialect import cached, raw_executemany_columns, raw_executemany_positional, upsert
from labtrack.store.loading import metric_value
from labtrack.store.metric_series import find_series

# Windows are counted up to this many points (see downsample).
COUNT_CAP = 100_000

# Bucket widths, finest first; each level is 8x coarser than the one before.
LEVELS: tuple[int, ...] = (16, 128, 1024, 8192, 65536, 524288, 4194304)

_ms = s.metric_summaries
_SIDES = ("value", "step", "timestamp")
_SUMMARY_FIELDS = ("series_id", "level", "bucket", "min_value", "min_step", "min_timestamp",
                   "max_value", "max_step", "max_timestamp")


def _upsert_summaries(conn: Connection) -> Any:
    stmt = upsert(conn, _ms)
    new, old = stmt.excluded, _ms.c
    lower = new.min_value < old.min_value
    higher = new.max_value > old.max_value
    return stmt.on_conflict_do_update(
        index_elements=[old.series_id, old.level, old.bucket],
        set_={
            **{f"min_{f}": case((lower, new[f"min_{f}"]), else_=old[f"min_{f}"]) for f in _SIDES},
            **{f"max_{f}": case((higher, new[f"max_{f}"]), else_=old[f"max_{f}"]) for f in _SIDES},
        },
        # A point inside its buckets' range changes nothing: the row is not rewritten
        # (most points of a long history, at every coarse level).
        where=lower | higher,
    ).compile(dialect=conn.dialect, column_keys=list(_SUMMARY_FIELDS))


def update_summaries(conn: Connection, ids: dict[str, int], series: Iterable[MetricSeries]) -> None:
    """Fold new points into every level's buckets (``ids``: each series' id by key)."""
    # Fold each point into its finest bucket only, then each level into the
    # next (widths are multiples): per-point work does not grow with levels.
    level_acc: dict[tuple[int, int], list[Any]] = {}
    for s_ in series:
        sid = ids[s_.key]
        steps, timestamps, values = s_.steps, s_.timestamps, s_.values
        if s_.has_nan():
            kept = [i for i, v in enumerate(values) if v == v]
            steps = [steps[i] for i in kept]
            timestamps = [timestamps[i] for i in kept]
            values = [values[i] for i in kept]
        if all(map(le, steps, islice(steps, 1, None))):
            _fold_sorted(level_acc, sid, steps, timestamps, values)
        else:
            _fold_points(level_acc, sid, steps, timestamps, values)
    if not level_acc:
        return
    rows: list[tuple[Any, ...]] = []
    for level in range(len(LEVELS)):
        if level:
            factor = LEVELS[level] // LEVELS[level - 1]
            coarser: dict[tuple[int, int], list[Any]] = {}
            for (sid, bucket), c in level_acc.items():
                k = (sid, bucket // factor)
                cur = coarser.get(k)
                if cur is None:
                    coarser[k] = list(c)
                    continue
                if c[0] < cur[0]:
                    cur[0:3] = c[0:3]
                if c[3] > cur[3]:
                    cur[3:6] = c[3:6]
            level_acc = coarser
        rows.extend((sid, level, bucket, *c) for (sid, bucket), c in level_acc.items())
    compiled = cached(conn, "upsert_metric_summaries_sql", _upsert_summaries)
    if compiled.positional and tuple(compiled.positiontup) == _SUMMARY_FIELDS:
        # The rows are already in the statement's parameter order: no transposing them
        # into columns and back (zip(*rows) of ~70,000 rows a million points).
        raw_executemany_positional(conn, compiled, rows)
    else:
        raw_executemany_columns(conn, compiled, dict(zip(_SUMMARY_FIELDS, zip(*rows))))


def _fold_sorted(acc: dict[tuple[int, int], list[Any]], sid: int, steps: list[int], timestamps: list[int],
                 values: list[float]) -> None:
    """Points in step order: each bucket is a slice, found by bisection, folded in C."""
    width = LEVELS[0]
    i, n = 0, len(steps)
    while i < n:
        bucket = steps[i] // width
        j = bisect_left(steps, (bucket + 1) * width, i)
        chunk = values[i:j]
        # min/max of a list of floats, then index(): all in C, and index() finds the
        # first of equal values, as a running fold keeps.
        lo = i + chunk.index(min(chunk))
        hi = i + chunk.index(max(chunk))
        _merge(acc, (sid, bucket), [values[lo], steps[lo], timestamps[lo], values[hi], steps[hi], timestamps[hi]])
        i = j


def _fold_points(acc: dict[tuple[int, int], list[Any]], sid: int, steps: list[int], timestamps: list[int],
                 values: list[float]) -> None:
    width = LEVELS[0]
    for v, step, ts in zip(values, steps, timestamps):
        _merge(acc, (sid, step // width), [v, step, ts, v, step, ts])


def _merge(acc: dict[tuple[int, int], list[Any]], k: tuple[int, int], new: list[Any]) -> None:
    cur = acc.get(k)
    if cur is None:
        acc[k] = new
        return
    if new[0] < cur[0]:
        cur[0:3] = new[0:3]
    if new[3] > cur[3]:
        cur[3:6] = new[3:6]


def downsample(conn: Connection, run_id: str, key: str, max_points: int,
               min_step: int | None = None, max_step: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """At most about ``max_points`` points of a window, keeping each bucket's min and max.

    Returns (points sorted by step, number of points in the window); a window of more than
    ``COUNT_CAP`` points is not counted further: its number reads ``COUNT_CAP + 1``.
    """
    m = s.metrics
    sid = find_series(conn, run_id, key)
    if sid is None:
        return [], 0
    cond = [m.c.series_id == sid]
    if min_step is not None:
        cond.append(m.c.step >= min_step)
    if max_step is not None:
        cond.append(m.c.step <= max_step)
    # min and max are one index probe each; counting is bounded (COUNT_CAP): an index range of
    # 10,000,000 points took 1.7 s of CPU to count, more than drawing the chart itself.
    lo = conn.execute(select(func.min(m.c.step)).where(*cond)).scalar()
    if lo is None:
        return [], 0
    hi = conn.execute(select(func.max(m.c.step)).where(*cond)).scalar()
    total = conn.execute(select(func.count()).select_from(
        select(m.c.step).where(*cond).limit(COUNT_CAP + 1).subquery())).scalar_one()
    if total <= max_points:
        return _raw(conn, cond), total
    span = hi - lo + 1
    if span <= max_points // 2:
        # Many points per step (e.g. logged without steps, all at step 0):
        # steps cannot spread them, so buckets follow the logged order.
        return _by_position(_raw(conn, cond), max(1, max_points // 2)), total
    width = next((w for w in LEVELS if -(-span // w) <= max(1, max_points // 2)), LEVELS[-1])
    level = LEVELS.index(width)
    first = -(-lo // width)          # first bucket wholly inside the window
    last = (hi + 1) // width - 1     # last bucket wholly inside it
    points = {(p["step"], p["timestamp"]): p for p in _buckets(conn, sid, level, first, last)}
    # The partial buckets at both edges: their min and max, from finer levels' buckets and the
    # raw points of at most 15 steps at each end (a coarse bucket's edge held up to 65,535 raw
    # points, which cost more than all the rest of a 10,000,000-point chart).
    if lo < first * width:
        _extremes(_span(conn, sid, lo, first * width - 1, level - 1), points)
    if hi >= (last + 1) * width:
        _extremes(_span(conn, sid, (last + 1) * width, hi, level - 1), points)
    return _sorted(points), total


def _buckets(conn: Connection, sid: int, level: int, first: int, last: int) -> list[dict[str, Any]]:
    """The min and max points of the series' buckets first..last of ``level``."""
    out = []
    for r in conn.execute(select(_ms).where(_ms.c.series_id == sid, _ms.c.level == level,
                                            _ms.c.bucket >= first, _ms.c.bucket <= last)):
        for side in ("min", "max"):
            out.append({"step": r._mapping[f"{side}_step"], "timestamp": r._mapping[f"{side}_timestamp"],
                        "value": r._mapping[f"{side}_value"]})
    return out


def _span(conn: Connection, sid: int, a: int, b: int, level: int) -> list[dict[str, Any]]:
    """Candidate extremes of steps a..b: the min and max of each bucket of ``level`` wholly
    inside, finer levels for what is left at both ends, raw points below the finest level."""
    if a > b:
        return []
    if level < 0:
        # The series with these steps only: beside the window's own bounds SQLite would
        # range over the whole window (1,000,000 steps: 0.2 s) to find a few edge points.
        m = s.metrics
        return _raw(conn, [m.c.series_id == sid, m.c.step >= a, m.c.step <= b])
    width = LEVELS[level]
    first, last = -(-a // width), (b + 1) // width - 1
    if first > last:
        return _span(conn, sid, a, b, level - 1)
    return (_buckets(conn, sid, level, first, last) + _span(conn, sid, a, first * width - 1, level - 1)
            + _span(conn, sid, (last + 1) * width, b, level - 1))


def _raw(conn: Connection, cond: list[Any]) -> list[dict[str, Any]]:
    m = s.metrics
    rows = conn.execute(select(m.c.step, m.c.timestamp, m.c.value, m.c.is_nan).where(*cond)
                        .order_by(m.c.step, m.c.timestamp))
    return [{"step": r.step, "timestamp": r.timestamp, "value": metric_value(r.value, r.is_nan)} for r in rows]


def _by_position(rows: list[dict[str, Any]], buckets: int) -> list[dict[str, Any]]:
    points: dict[tuple[int, int], dict[str, Any]] = {}
    size = -(-len(rows) // buckets)
    for i in range(0, len(rows), size):
        _extremes(rows[i:i + size], points)
    return _sorted(points)


def _extremes(points: list[dict[str, Any]], into: dict[tuple[int, int], dict[str, Any]]) -> None:
    finite = [p for p in points if p["value"] == p["value"]]
    for p in (min(finite, key=lambda p: p["value"]), max(finite, key=lambda p: p["value"])) if finite else ():
        into[(p["step"], p["timestamp"])] = p


def _sorted(points: dict[tuple[int, int], dict[str, Any]]) -> list[dict[str, Any]]:
    return [points[k] for k in sorted(points)]
