"""Garbage collection: permanently remove deleted runs, experiments and logged models.

As ``mlflow gc`` does: runs in the ``deleted`` lifecycle stage, deleted
experiments with every run in them, and deleted logged models, optionally
only those deleted more than ``older_than_ms`` ago.  The rows go in ONE write
through the single writer, so a run being restored meanwhile either stays
whole or goes whole.  The caller then removes the artifact folders this
returns (``labtrack.artifacts.gc``) and reclaims the file's space with
``vacuum`` (SQLite keeps freed pages inside the file until then).

Rows of every table that names a removed run (``run_uuid``) or experiment
(``experiment_id``) go too, including tables other capabilities add later,
and rows that reference those through foreign keys (trace spans...).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, or_, select

from labtrack.errors import InvalidParameterValue, ResourceDoesNotExist
from labtrack.store import schema as s

_CHUNK = 500  # ids per IN list: under SQLite's bound-parameter limit


@dataclass
class Removed:
    """What one collection removed from the database, and the artifact URIs left to delete."""

    runs: list[str] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)
    logged_models: list[str] = field(default_factory=list)
    artifact_uris: list[str] = field(default_factory=list)


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i:i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _ints(ids: Sequence[Any], what: str) -> list[int]:
    try:
        return [int(i) for i in ids]
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"{what} must be experiment ids (integers), got {list(ids)!r}") from None


def _delete_where(conn: Connection, table: Table, column: str, values: Sequence[Any]) -> None:
    """Delete rows of ``table`` whose ``column`` is in ``values``, and first the rows of
    other tables that reference them by a foreign key."""
    if not values:
        return
    for child in s.metadata.sorted_tables:
        for fk in child.foreign_keys:
            if fk.column.table is not table or child is table:
                continue
            for chunk in _chunks(list(values)):
                keys = [r[0] for r in conn.execute(
                    select(fk.column).where(table.c[column].in_(chunk)))]
                _delete_where(conn, child, fk.parent.name, keys)
    for chunk in _chunks(list(values)):
        conn.execute(delete(table).where(table.c[column].in_(chunk)))


def _run_rows(conn: Connection, run_ids: list[str], cutoff: int | None) -> list[Any]:
    rows = []
    for chunk in _chunks(run_ids):
        rows += conn.execute(select(s.runs.c.run_uuid, s.runs.c.lifecycle_stage, s.runs.c.deleted_time,
                                    s.runs.c.artifact_uri).where(s.runs.c.run_uuid.in_(chunk))).all()
    found = {r.run_uuid: r for r in rows}
    missing = [r for r in run_ids if r not in found]
    if missing:
        raise ResourceDoesNotExist(f"Runs {missing} do not exist")
    active = [r for r in run_ids if found[r].lifecycle_stage != "deleted"]
    if active:
        raise InvalidParameterValue(f"Runs {active} are not in the deleted lifecycle stage. Only runs "
                                    "in the deleted lifecycle stage can be removed permanently.")
    if cutoff is not None:
        young = [r for r in run_ids if (found[r].deleted_time or 0) > cutoff]
        if young:
            raise InvalidParameterValue(f"Runs {young} were deleted too recently for --older-than")
    return rows


def _experiment_rows(conn: Connection, exp_ids: list[int], cutoff: int | None) -> list[Any]:
    e = s.experiments
    rows = conn.execute(select(e.c.experiment_id, e.c.lifecycle_stage, e.c.last_update_time,
                               e.c.artifact_location).where(e.c.experiment_id.in_(exp_ids))).all()
    found = {r.experiment_id: r for r in rows}
    missing = [i for i in exp_ids if i not in found]
    if missing:
        raise ResourceDoesNotExist(f"Experiments {[str(i) for i in missing]} do not exist")
    active = [str(i) for i in exp_ids if found[i].lifecycle_stage != "deleted"]
    if active:
        raise InvalidParameterValue(f"Experiments {active} are not in the deleted lifecycle stage. "
                                    "Only deleted experiments can be removed permanently.")
    if cutoff is not None:
        young = [str(i) for i in exp_ids if (found[i].last_update_time or 0) > cutoff]
        if young:
            raise InvalidParameterValue(f"Experiments {young} were deleted too recently for --older-than")
    return rows


def collect(conn: Connection, older_than_ms: int = 0, experiment_ids: Sequence[Any] | None = None,
            run_ids: Sequence[str] | None = None, now_ms: int | None = None) -> Removed:
    """Remove deleted runs/experiments/logged models (a write: give it to the writer).

    Named ``run_ids`` / ``experiment_ids`` must be deleted (and old enough with
    ``older_than_ms``), else nothing is removed and the error says which.
    With neither, every deleted run, experiment and logged model that is old
    enough goes.  A removed experiment takes all its runs and logged models.
    """
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    cutoff = now - older_than_ms if older_than_ms else None
    everything = not run_ids and not experiment_ids
    out = Removed()
    r, e, m = s.runs, s.experiments, s.logged_models
    if run_ids:
        runs = _run_rows(conn, list(dict.fromkeys(run_ids)), cutoff)
    elif everything:
        cond = r.c.lifecycle_stage == "deleted"
        if cutoff is not None:
            cond = and_(cond, r.c.deleted_time.is_not(None), r.c.deleted_time <= cutoff)
        runs = conn.execute(select(r.c.run_uuid, r.c.artifact_uri).where(cond)).all()
    else:
        runs = []
    if experiment_ids:
        exps = _experiment_rows(conn, list(dict.fromkeys(_ints(experiment_ids, "experiment_ids"))), cutoff)
    elif everything:
        cond = e.c.lifecycle_stage == "deleted"
        if cutoff is not None:
            cond = and_(cond, e.c.last_update_time <= cutoff)
        exps = conn.execute(select(e.c.experiment_id, e.c.artifact_location).where(cond)).all()
    else:
        exps = []
    exp_ids = [x.experiment_id for x in exps]
    # Every run of a removed experiment goes with it, whatever its stage.
    for chunk in _chunks(exp_ids):
        runs += conn.execute(select(r.c.run_uuid, r.c.artifact_uri).where(r.c.experiment_id.in_(chunk))).all()
    run_map = {x.run_uuid: x.artifact_uri for x in runs}
    model_cond: Any = None
    if everything:
        model_cond = m.c.lifecycle_stage == "deleted"
        if cutoff is not None:
            model_cond = and_(model_cond, m.c.last_updated_timestamp_ms <= cutoff)
    if exp_ids:
        in_exps = or_(*[m.c.experiment_id.in_(c) for c in _chunks(exp_ids)])
        model_cond = in_exps if model_cond is None else or_(model_cond, in_exps)
    models = [] if model_cond is None else conn.execute(
        select(m.c.model_id, m.c.artifact_location).where(model_cond)).all()

    run_list = list(run_map)
    model_ids = [x.model_id for x in models]
    # Rows keyed by a run's metric series (points, chart summaries), then rows that name a
    # run without a foreign key (inputs' tags, trace links...), before the runs themselves.
    ser = s.metric_series
    for table in s.metadata.sorted_tables:
        if table is not ser and "series_id" in table.c:
            for chunk in _chunks(run_list):
                conn.execute(delete(table).where(table.c.series_id.in_(
                    select(ser.c.series_id).where(ser.c.run_uuid.in_(chunk)))))
    for table in s.metadata.sorted_tables:
        if table is not r and "run_uuid" in table.c:
            for chunk in _chunks(run_list):
                conn.execute(delete(table).where(table.c.run_uuid.in_(chunk)))
    _delete_where(conn, r, "run_uuid", run_list)
    for table in (s.logged_model_metrics, s.run_model_inputs, s.run_model_outputs):
        for chunk in _chunks(model_ids):
            conn.execute(delete(table).where(table.c.model_id.in_(chunk)))
    _delete_where(conn, m, "model_id", model_ids)
    for table in s.metadata.sorted_tables:
        if table is not e and "experiment_id" in table.c and not any(
                fk.column.table is e for fk in table.foreign_keys):
            for chunk in _chunks(exp_ids):
                conn.execute(delete(table).where(table.c.experiment_id.in_(chunk)))
    _delete_where(conn, e, "experiment_id", exp_ids)

    out.runs = run_list
    out.experiments = [str(i) for i in exp_ids]
    out.logged_models = model_ids
    out.artifact_uris = ([x.artifact_location for x in exps] + list(run_map.values())
                         + [x.artifact_location for x in models])
    return out


def database_bytes(store: Any) -> int | None:
    """The SQLite file's size with its WAL and journal (None for other databases)."""
    path = store.engines.sqlite_path
    if path is None:
        return None
    total = 0
    for suffix in ("", "-wal", "-journal"):
        try:
            total += os.path.getsize(f"{path}{suffix}")
        except OSError:
            pass
    return total


def vacuum(store: Any) -> bool:
    """Give the space of removed rows back to the filesystem (SQLite); False elsewhere.

    VACUUM cannot run inside a transaction, and the writer's one connection
    always opens one, so it runs on a connection of its own: it changes no
    data, and the writer's next group waits for it (busy timeout) as for any
    lock.  A checkpoint then truncates the WAL, which VACUUM fills.
    """
    import sqlite3

    path = store.engines.sqlite_path
    if path is None:
        return False
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
    try:
        conn.execute("VACUUM")
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return True
