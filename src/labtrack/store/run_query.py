"""The query behind ``search_runs``: compiled once per filter, order and view.

Parsing the filter, building SQLAlchemy's expressions and finding them in its
compiled cache cost more than SQLite's own work for a filter over 1,000 runs.
The web UI, widgets and notebooks repeat the same few searches, so the
compiled SQL is kept (the 256 most recent) and runs on the DBAPI cursor; only
the experiment ids, the offset and the limit change between calls.  The query
selects the runs' own columns with their ids, so loading the page needs no
second look-up of the runs table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.engine import Dialect

from labtrack.store import schema as s
from labtrack.store import search
from labtrack.store.dialect import raw_rows
from labtrack.store.loading import RUN_COLUMNS


def page_rows(conn: Connection, experiment_ids: Sequence[int], filter_string: str | None,
              order_by: Sequence[Any], view_type: str | None, offset: int, limit: int) -> list[tuple[Any, ...]]:
    """Rows of ``loading.RUN_COLUMNS`` for one page of a run search, in its order.

    Raises ``InvalidParameterValue`` for a bad filter, order or view type.
    """
    order = tuple(order_by)
    if isinstance(filter_string, (str, type(None))) and all(isinstance(o, str) for o in order):
        prepared = _compiled(conn.dialect, filter_string or "", order, view_type or "ACTIVE_ONLY",
                             len(experiment_ids))
    else:  # not what the HTTP API sends (a logged-model style order): not worth a cache entry
        prepared = _compile(conn.dialect, filter_string, list(order), view_type, len(experiment_ids))
    values = dict(prepared.params)
    values.update(zip(_experiment_names(len(experiment_ids)), experiment_ids))
    values["page_offset"] = offset
    values["page_limit"] = limit
    return raw_rows(conn, prepared, values)


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
    compiled = stmt.params(page_offset=0, page_limit=1).compile(dialect=dialect)
    # The filter's own IN lists ("run_id IN (...)") are fixed by its text: expanded once, here.
    state = compiled.construct_expanded_state(compiled.construct_params())
    return _Prepared(state.statement, compiled.positional,
                     tuple(state.positiontup) if compiled.positional else None, dict(state.parameters))


@lru_cache(maxsize=64)
def _experiment_names(n: int) -> tuple[str, ...]:
    return tuple(f"page_experiment_{i}" for i in range(1, n + 1))
