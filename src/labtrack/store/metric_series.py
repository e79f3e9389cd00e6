"""Metric series: the integer id that keys a (run, metric key)'s points and chart summaries.

``metrics`` and ``metric_summaries`` store this id instead of the run id and the key in
every row (schema.metric_series).  A write batch looks its keys up at once: one SELECT
for the batch's keys, one ``INSERT ... ON CONFLICT DO NOTHING`` for the new ones, one
SELECT for those.  A writer that creates the same series at the same moment (the spool
ingest, or another ``--workers`` process on PostgreSQL) turns our insert into a no-op
and the second SELECT reads its id: the unique (run_uuid, key) never holds two ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, select

from labtrack.store import schema as s
from labtrack.store.dialect import cached, raw_executemany, raw_rows, upsert

_ser = s.metric_series
# Keys per IN list: far below SQLite's 32,766 bound parameters.
_CHUNK = 500

# The id of one series, as a scalar subquery of the bound ``run_id`` and ``key``: a read
# of a metric's points stays one statement (the database evaluates it once).
SERIES_OF = (select(_ser.c.series_id)
             .where(_ser.c.run_uuid == bindparam("run_id"), _ser.c.key == bindparam("key"))
             .scalar_subquery())
_ONE = select(_ser.c.series_id).where(_ser.c.run_uuid == bindparam("run_id"), _ser.c.key == bindparam("key"))
_MANY = select(_ser.c.key, _ser.c.series_id).where(_ser.c.run_uuid == bindparam("run_id"),
                                                   _ser.c.key.in_(bindparam("keys", expanding=True)))


def _insert(conn: Connection) -> Any:
    return upsert(conn, _ser).on_conflict_do_nothing().compile(dialect=conn.dialect,
                                                               column_keys=["run_uuid", "key"])


def find_series(conn: Connection, run_id: str, key: str) -> int | None:
    """The id of a run's metric, None when it has no points."""
    rows = raw_rows(conn, cached(conn, "metric_series_one_sql", lambda c: _ONE.compile(dialect=c.dialect)),
                    {"run_id": run_id, "key": key})
    return rows[0][0] if rows else None


def _lookup(conn: Connection, run_id: str, keys: list[str]) -> dict[str, int]:
    if len(keys) == 1:
        sid = find_series(conn, run_id, keys[0])
        return {} if sid is None else {keys[0]: sid}
    out: dict[str, int] = {}
    for i in range(0, len(keys), _CHUNK):
        out.update((k, sid) for k, sid in conn.execute(_MANY, {"run_id": run_id, "keys": keys[i:i + _CHUNK]}))
    return out


def series_ids(conn: Connection, run_id: str, keys: Iterable[str]) -> dict[str, int]:
    """Key -> series id for every key of a write batch, creating the series that are new."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    found = _lookup(conn, run_id, wanted)
    # Sorted: two PostgreSQL writers creating the same series wait for each other's rows in
    # one order, never each holding one the other needs.
    missing = sorted(k for k in wanted if k not in found)
    if missing:
        raw_executemany(conn, cached(conn, "insert_metric_series_sql", _insert),
                        [{"run_uuid": run_id, "key": k} for k in missing])
        found.update(_lookup(conn, run_id, missing))
    return found
