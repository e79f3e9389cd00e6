"""Migration 0009 (metric points keyed by a series id): a database at 0008 with points,
NaN, linked points, a deleted run and several summary levels upgrades and reads back
exactly as the same data written by today's store (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from labtrack.entities import Metric, MetricSeries
from labtrack.store import migrate
from labtrack.store import schema as s
from labtrack.store.metric_summaries import summaries
from labtrack.store.tracking import TrackingStore

# The two tables as revision 0008 has them: keyed by (run_uuid, key).
_OLD_POINTS = sa.table("metrics", *(sa.column(c) for c in (
    "run_uuid", "key", "step", "timestamp", "value", "is_nan", "model_id", "dataset_name", "dataset_digest")))
_OLD_SUMMARIES = sa.table("metric_summaries", *(sa.column(c) for c in (
    "run_uuid", "key", "level", "bucket", "min_value", "min_step", "min_timestamp", "max_value", "max_step",
    "max_timestamp")))
_RENAMED = {s.metrics.name, s.metric_summaries.name, s.metric_series.name}


def _write(store: TrackingStore) -> list[str]:
    """Runs with long, NaN-holding, unsorted and model-linked histories; one deleted."""
    runs = [store.create_run("0").info.run_id for _ in range(4)]
    long_n = 20_000  # five summary levels
    store.log_batch(runs[0], series=[
        MetricSeries("loss", list(range(long_n)), [1_000 + i for i in range(long_n)],
                     [math.sin(i / 50) + (math.nan if i % 997 == 0 else 0.0) for i in range(long_n)]),
        MetricSeries("acc", [i * 3 for i in range(500)], [7] * 500, [i / 500 for i in range(500)])])
    store.log_batch(runs[1], metrics=[Metric("loss", v, 5 + i, i % 7) for i, v in
                                      enumerate([3.0, math.inf, -math.inf, math.nan, 1.5, 1.5, 0.25, 9.0])])
    store.log_batch(runs[1], metrics=[Metric("eval/f1", 0.5, 11, 2, model_id="m-1", dataset_name="val",
                                             dataset_digest="abc")])
    store.log_batch(runs[2], series=[MetricSeries("x", [5, 1, 3, 1], [1, 2, 3, 4], [1.0, 2.0, -3.0, 2.0])])
    store.log_batch(runs[3], series=[MetricSeries("gone", list(range(300)), [1] * 300, [float(i) for i in range(300)])])
    store.delete_run(runs[3])
    return runs


def _observed(store: TrackingStore, runs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for run_id in runs:
        run = store.get_run(run_id)
        keys = sorted(run.data.metrics)
        out[run_id] = {
            "latest": {k: repr(v) for k, v in run.data.metrics.items()},
            "history": {k: [(m.step, m.timestamp, repr(m.value), m.model_id, m.dataset_name, m.dataset_digest)
                            for m in store.get_metric_history(run_id, k, max_results=25_000)[0]] for k in keys},
            "charts": {k: [store.downsampled_history(run_id, k, 64),
                           store.downsampled_history(run_id, k, 40, 77, 15_011)] for k in keys},
        }
    out["summaries"] = store.read(lambda conn: summaries(conn, runs))
    return _comparable(out)


def _schema_diff(conn: sa.Connection) -> list[Any]:
    """What differs between the migrated database and schema.metadata (keys, indexes, types)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    return compare_metadata(MigrationContext.configure(conn), s.metadata)


def _comparable(x: Any) -> Any:
    """Floats as their repr: NaN equals NaN."""
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, dict):
        return {k: _comparable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_comparable(v) for v in x]
    return x


def _old_shape_rows(store: TrackingStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The store's points and summaries as rows of 0008's tables."""
    ser = s.metric_series

    def rows(table: sa.Table) -> list[dict[str, Any]]:
        cols = [ser.c.run_uuid, ser.c.key] + [c for c in table.c if c.name != "series_id"]
        query = sa.select(*cols).select_from(table.join(ser, ser.c.series_id == table.c.series_id))
        return store.read(lambda conn: [dict(r._mapping) for r in conn.execute(query)])

    return rows(s.metrics), rows(s.metric_summaries)


def _at_0008(url: str, source: TrackingStore) -> None:
    """A database migrated to 0008 holding ``source``'s rows, metric tables in 0008's shape."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            migrate.upgrade(conn, "0008")
        points, sums = _old_shape_rows(source)
        with engine.begin() as conn:
            for table in s.metadata.sorted_tables:
                if table.name not in _RENAMED:
                    rows = source.read(lambda c, t=table: [dict(r._mapping) for r in c.execute(sa.select(t))])
                    if rows:
                        conn.execute(sa.insert(table), rows)
            conn.execute(sa.insert(_OLD_POINTS), points)
            conn.execute(sa.insert(_OLD_SUMMARIES), sums)
            assert migrate.current_revision(conn) == "0008"
    finally:
        engine.dispose()


def test_0008_points_and_summaries_read_back_identically_after_0009(backend_uri: str, tmp_path: Path) -> None:
    reference = TrackingStore(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        runs = _write(reference)
        expected = _observed(reference, runs)
        expected_rows = _old_shape_rows(reference)
        _at_0008(backend_uri, reference)
    finally:
        reference.close()
    assert len(expected_rows[0]) > 20_000 and {r["level"] for r in expected_rows[1]} >= {0, 1, 2, 3, 4}

    migrated = TrackingStore(backend_uri)  # opening it upgrades it to HEAD
    try:
        assert migrated.read(migrate.current_revision) == migrate.HEAD
        assert migrated.read(_schema_diff) == []
        assert _observed(migrated, runs) == expected

        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            return tuple(str(v) for v in r.values())

        got = _old_shape_rows(migrated)
        assert sorted(got[0], key=key) == sorted(expected_rows[0], key=key)
        assert sorted(got[1], key=key) == sorted(expected_rows[1], key=key)
        # The migrated series take new points and keep their ids unique.
        migrated.log_batch(runs[2], series=[MetricSeries("x", [9], [9], [4.0]), MetricSeries("y", [0], [0], [1.0])])
        assert [m.value for m in migrated.get_metric_history(runs[2], "x")[0]][-1] == 4.0
        assert migrated.get_run(runs[2]).data.metrics["y"] == 1.0
    finally:
        migrated.close()


def test_0009_downgrades_to_0008_and_upgrades_back_unchanged(backend_uri: str) -> None:
    from alembic import command
    from alembic.config import Config

    store = TrackingStore(backend_uri)
    try:
        runs = _write(store)
        expected = _observed(store, runs)
    finally:
        store.close()
    engine = sa.create_engine(backend_uri)
    try:
        with engine.connect() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(migrate.MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0008")
            conn.commit()
            assert migrate.current_revision(conn) == "0008"
            assert not sa.inspect(conn).has_table("metric_series")
    finally:
        engine.dispose()
    store = TrackingStore(backend_uri)
    try:
        assert _observed(store, runs) == expected
    finally:
        store.close()
