"""The query behind ``search_runs``: compiled once per filter, order and view.

Parsing the filter, building SQLAlchemy's expressions and finding them in its
compiled cache cost more than SQLite's own work for a filter over 1,000 runs.
The web UI, widgets and notebooks repeat the same few searches, so the
compiled SQL is kept (the 256 most recent) and runs on the DBAPI cursor; only
the experiment ids, the offset and the limit change between calls.  The query
selects the runs' own columns with their ids, so loading the page needs no
second look-up of the runs table.

Sorting by a metric's latest value (``metrics.loss DESC``, the UI's commonest
sort) in an experiment of many runs is read in the metric's own order: the
runs holding a number for it walk the ``(key, is_nan, value)`` index and stop
once the page is full, instead of evaluating every run of the experiment and
sorting them all (100,000 runs: ~10 ms instead of ~10 s).  MLflow's order puts
the runs whose value is NaN after the numbers and the runs without the metric
last, so those are two more segments, read only by the pages that reach them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, false, func, literal, select, true
from sqlalchemy.engine import Dialect

from labtrack.store import schema as s
from labtrack.store import search
from labtrack.store.dialect import raw_rows
from labtrack.store.loading import RUN_COLUMNS
from labtrack.store.search_syntax import OrderKey, parse_order

# Below this many runs in the searched experiments, evaluating each run is as cheap as
# walking a metric's index (which also passes the runs of other experiments).
METRIC_WALK_MIN_RUNS = 2000


def page_rows(conn: Connection, experiment_ids: Sequence[int], filter_string: str | None,
              order_by: Sequence[Any], view_type: str | None, offset: int, limit: int) -> list[tuple[Any, ...]]:
    """Rows of ``loading.RUN_COLUMNS`` for one page of a run search, in its order.

    Raises ``InvalidParameterValue`` for a bad filter, order or view type.
    """
    order = tuple(order_by)
    plain = isinstance(filter_string, (str, type(None))) and all(isinstance(o, str) for o in order)
    if plain and _metric_first(order) is not None and _many_runs(conn, experiment_ids, view_type):
        return _metric_walk(conn, experiment_ids, filter_string or "", order, view_type or "ACTIVE_ONLY",
                            offset, limit)
    if plain:
        prepared = _compiled(conn.dialect, filter_string or "", order, view_type or "ACTIVE_ONLY",
                             len(experiment_ids))
    else:  # not what the HTTP API sends (a logged-model style order): not worth a cache entry
        prepared = _compile(conn.dialect, filter_string, list(order), view_type, len(experiment_ids))
    return _run(conn, prepared, experiment_ids, offset, limit)


def _run(conn: Connection, prepared: _Prepared, experiment_ids: Sequence[int], offset: int,
         limit: int) -> list[tuple[Any, ...]]:
    values = dict(prepared.params)
    values.update(zip(_experiment_names(len(experiment_ids)), experiment_ids))
    values["page_offset"] = offset
    values["page_limit"] = limit
    return raw_rows(conn, prepared, values)


@lru_cache(maxsize=256)
def _metric_first(order: tuple[str, ...]) -> OrderKey | None:
    """The first order key when it is a metric's latest value, else None."""
    if not order:
        return None
    key = parse_order(order[0])
    return key if key.entity == "metric" and getattr(key, "stat", None) in (None, "last") else None


def _many_runs(conn: Connection, experiment_ids: Sequence[int], view_type: str | None) -> bool:
    """Whether the experiments hold at least METRIC_WALK_MIN_RUNS runs (counted no further)."""
    prepared = _count_capped(conn.dialect, view_type or "ACTIVE_ONLY", len(experiment_ids))
    values = dict(prepared.params)
    values.update(zip(_experiment_names(len(experiment_ids)), experiment_ids))
    values["count_cap"] = METRIC_WALK_MIN_RUNS
    return int(raw_rows(conn, prepared, values)[0][0]) >= METRIC_WALK_MIN_RUNS


def _metric_walk(conn: Connection, experiment_ids: Sequence[int], filter_string: str, order: tuple[str, ...],
                 view_type: str, offset: int, limit: int) -> list[tuple[Any, ...]]:
    """The page from three segments in MLflow's order: numbers, then NaN, then no value."""
    rows: list[tuple[Any, ...]] = []
    for segment in ("number", "nan", "missing"):
        prepared = _segment(conn.dialect, filter_string, order, view_type, len(experiment_ids), segment, False)
        got = _run(conn, prepared, experiment_ids, offset, limit - len(rows))
        rows += got
        if len(rows) >= limit or segment == "missing":
            return rows
        if got:  # the page starts in this segment and runs past its end
            offset = 0
            continue
        # The page starts beyond this segment: skip as many rows as it holds.
        counter = _segment(conn.dialect, filter_string, order, view_type, len(experiment_ids), segment, True)
        offset = max(0, offset - int(_run(conn, counter, experiment_ids, 0, 1)[0][0]))
    return rows


@lru_cache(maxsize=256)
def _segment(dialect: Dialect, filter_string: str, order_by: tuple[str, ...], view_type: str,
             n_experiments: int, segment: str, count: bool) -> _Prepared:
    runs = s.runs.c
    key = _metric_first(order_by)
    assert key is not None
    search.run_order_by(order_by)  # the whole order's checks (a key sorted twice...)
    rest = search.run_order_by(order_by[1:])  # then newest first and the run id, unless given
    where = [runs.experiment_id.in_([bindparam(name, 0) for name in _experiment_names(n_experiments)]),
             *search.lifecycle(runs.lifecycle_stage, view_type), *search.run_conditions(filter_string)]
    lm = s.latest_metrics
    if segment == "missing":
        where.append(~select(literal(1)).where(lm.c.run_uuid == runs.run_uuid, lm.c.key == key.key)
                     .correlate(s.runs).exists())
        source: Any = s.runs
        order: list[Any] = rest
    else:
        m = lm.alias("order_metric")
        source = m.join(s.runs, m.c.run_uuid == runs.run_uuid)
        where += [m.c.key == key.key, m.c.is_nan == (true() if segment == "nan" else false())]
        order = rest if segment == "nan" else [m.c.value.asc() if key.ascending else m.c.value.desc(), *rest]
    if count:
        stmt = select(func.count()).select_from(source).where(*where)
    else:
        stmt = (select(*RUN_COLUMNS).select_from(source).where(*where).order_by(*order)
                .offset(bindparam("page_offset")).limit(bindparam("page_limit")))
    prepared = _prepare(stmt, dialect)
    if segment != "missing" and dialect.name == "sqlite":
        # CROSS JOIN keeps SQLite's join order: the metric's index first, in the page's order.
        joined = "FROM latest_metrics AS order_metric JOIN runs ON"
        assert prepared.string.count(joined) == 1, prepared.string
        prepared = _Prepared(prepared.string.replace(joined, "FROM latest_metrics AS order_metric CROSS JOIN "
                                                     "runs ON"), prepared.positional, prepared.positiontup,
                             prepared.params)
    return prepared


@lru_cache(maxsize=64)
def _count_capped(dialect: Dialect, view_type: str, n_experiments: int) -> _Prepared:
    runs = s.runs.c
    inner = (select(literal(1)).where(
        runs.experiment_id.in_([bindparam(name, 0) for name in _experiment_names(n_experiments)]),
        *search.lifecycle(runs.lifecycle_stage, view_type)).limit(bindparam("count_cap", 1)).subquery())
    return _prepare(select(func.count()).select_from(inner), dialect)


@dataclass(frozen=True)
class _Prepared:
    """A compiled search with its IN lists expanded: what ``dialect.raw_rows`` runs."""

    string: str
    positional: bool
    positiontup: tuple[str, ...] | None
    params: dict[str, Any]


@lru_cache(maxsize=256)
def _compiled(dialect: Dialect, filter_string: str, order_by: tuple[str, ...], view_type: str,
              n_experiments: int) -> _Prepared:
    return _compile(dialect, filter_string, list(order_by), view_type, n_experiments)


def _compile(dialect: Dialect, filter_string: str | None, order_by: list[Any], view_type: str | None,
             n_experiments: int) -> _Prepared:
    runs = s.runs.c
    stmt = (select(*RUN_COLUMNS)
            .where(runs.experiment_id.in_([bindparam(name, 0) for name in _experiment_names(n_experiments)]),
                   *search.lifecycle(runs.lifecycle_stage, view_type), *search.run_conditions(filter_string))
            .order_by(*search.run_order_by(order_by))
            .offset(bindparam("page_offset")).limit(bindparam("page_limit")))
    return _prepare(stmt, dialect)


def _prepare(stmt: Any, dialect: Dialect) -> _Prepared:
    compiled = stmt.params(page_offset=0, page_limit=1).compile(dialect=dialect)  # no-op when unpaged
    # The filter's own IN lists ("run_id IN (...)") are fixed by its text: expanded once, here.
    state = compiled.construct_expanded_state(compiled.construct_params())
    return _Prepared(state.statement, compiled.positional,
                     tuple(state.positiontup) if compiled.positional else None, dict(state.parameters))


@lru_cache(maxsize=64)
def _experiment_names(n: int) -> tuple[str, ...]:
    return tuple(f"page_experiment_{i}" for i in range(1, n + 1))
