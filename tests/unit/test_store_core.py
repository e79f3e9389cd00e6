"""The store's foundations on a real SQLite file: migrations, the single writer, journal modes."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select, text

from labtrack.errors import InvalidParameterValue
from labtrack.store import migrate, schema
from labtrack.store.engine import filesystem_type, open_engines
from labtrack.store.writer import Writer


def test_head_constant_is_alembic_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(migrate.MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == migrate.HEAD


@pytest.mark.parametrize("how", ["alembic-migrations", "fresh-create"])
def test_both_paths_build_exactly_the_schema(tmp_path: Path, how: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.connect() as conn:
        if how == "alembic-migrations":
            migrate.upgrade(conn)
        else:
            migrate.create_fresh(conn)
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.HEAD
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
        # alembic does not compare WITHOUT ROWID: a run's children are clustered by (run, key)
        clustered = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table' "
                                      "AND sql LIKE '%WITHOUT ROWID%'")).scalars().all()
    engine.dispose()
    assert diff == []
    assert sorted(clustered) == ["latest_metrics", "metric_summaries", "metrics", "params", "tags"]


def test_existing_database_is_not_migrated_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    open_engines(url).dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(schema.experiments).values(
            experiment_id=7, name="kept", artifact_location="x", lifecycle_stage="active",
            creation_time=1, last_update_time=1))
    engine.dispose()
    engines = open_engines(url)
    with engines.reader.connect() as conn:
        assert conn.execute(select(schema.experiments.c.name).where(
            schema.experiments.c.experiment_id == 7)).scalar() == "kept"
        assert migrate.current_revision(conn) == migrate.HEAD
    engines.dispose()


def test_wal_on_local_disk_and_rollback_journal_on_network_fs(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    local = open_engines(f"sqlite:///{tmp_path / 'local.db'}")
    assert local.journal_mode == "wal"
    local.dispose()
    monkeypatch.setenv("LABTRACK_ASSUME_NETWORK_FS", "1")
    nfs = open_engines(f"sqlite:///{tmp_path / 'nfs.db'}")
    assert nfs.journal_mode == "delete"
    nfs.dispose()


def test_filesystem_type_of_root_is_known() -> None:
    assert filesystem_type(Path("/")) != ""


def _writer(tmp_path: Path) -> tuple[Writer, object]:
    engines = open_engines(f"sqlite:///{tmp_path / 'w.db'}")
    return Writer(engines.writer), engines


def _add_experiment(name: str):  # type: ignore[no-untyped-def]
    def op(conn):  # type: ignore[no-untyped-def]
        conn.execute(insert(schema.experiments).values(
            name=name, artifact_location="", lifecycle_stage="active", creation_time=1, last_update_time=1))
        return name
    return op


def _names(engines) -> set[str]:  # type: ignore[no-untyped-def]
    with engines.reader.connect() as conn:
        return {r[0] for r in conn.execute(select(schema.experiments.c.name))}


def test_failed_write_rolls_back_alone_and_neighbours_commit(tmp_path: Path) -> None:
    writer, engines = _writer(tmp_path)

    def half_then_fail(conn):  # type: ignore[no-untyped-def]
        _add_experiment("half")(conn)
        raise InvalidParameterValue("bad input after a write")

    # Block the writer so all three land in one group.
    gate = threading.Event()
    writer.submit(lambda conn: gate.wait(5))
    futs = [writer.submit(_add_experiment("a")), writer.submit(half_then_fail), writer.submit(_add_experiment("b"))]
    gate.set()
    assert futs[0].result(10) == "a" and futs[2].result(10) == "b"
    with pytest.raises(InvalidParameterValue):
        futs[1].result(10)
    assert _names(engines) == {"a", "b"}
    writer.close()
    engines.dispose()  # type: ignore[attr-defined]


def test_concurrent_writes_are_grouped_into_few_commits(tmp_path: Path) -> None:
    writer, engines = _writer(tmp_path)
    gate = threading.Event()
    writer.submit(lambda conn: gate.wait(5))
    futs = [writer.submit(_add_experiment(f"e{i}")) for i in range(200)]
    gate.set()
    for f in futs:
        f.result(10)
    assert writer.commits <= 3
    assert len(_names(engines)) == 200
    writer.close()
    engines.dispose()  # type: ignore[attr-defined]


def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    writer, engines = _writer(tmp_path)
    futs = [writer.submit(_add_experiment(f"q{i}")) for i in range(50)]
    writer.close()
    assert all(f.done() and f.exception() is None for f in futs)
    assert len(_names(engines)) == 50
    with engines.writer.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    engines.dispose()  # type: ignore[attr-defined]


def _on_a_loop(coro_fn):  # type: ignore[no-untyped-def]
    """``asyncio.run(coro_fn())`` in a thread of its own: the browser tests' Playwright
    keeps an event loop running in the main thread for the whole session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result(30)


def test_idle_writer_lets_the_loop_apply_a_small_write_at_once(tmp_path: Path) -> None:
    writer, engines = _writer(tmp_path)
    threads = []

    def op(conn):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        # A store call inside the write runs inline, not queued behind itself.
        return writer.run(_add_experiment("inline"))

    async def main():  # type: ignore[no-untyped-def]
        fut = writer.apply_now_from_loop(op)
        assert fut is not None and fut.done()
        return await fut, threading.get_ident()

    commits = writer.commits
    result, loop_thread = _on_a_loop(main)
    assert result == "inline"
    assert threads == [loop_thread]
    assert writer.commits == commits + 1
    assert _names(engines) == {"inline"}
    writer.close()
    engines.dispose()  # type: ignore[attr-defined]


def test_busy_writer_makes_the_loop_queue_its_write(tmp_path: Path) -> None:
    writer, engines = _writer(tmp_path)
    gate, started = threading.Event(), threading.Event()
    writer.submit(lambda conn: (started.set(), gate.wait(5)))
    started.wait(5)

    async def while_applying():  # type: ignore[no-untyped-def]
        assert writer.apply_now_from_loop(_add_experiment("never")) is None
        queued = writer.submit_from_loop(_add_experiment("queued"))
        gate.set()
        return await queued

    assert _on_a_loop(while_applying) == "queued"

    async def while_stopped():  # type: ignore[no-untyped-def]
        return writer.apply_now_from_loop(_add_experiment("late"))

    writer.close()
    assert _on_a_loop(while_stopped) is None
    assert _names(engines) == {"queued"}
    engines.dispose()  # type: ignore[attr-defined]


def test_failed_write_on_the_loop_leaves_nothing_and_the_next_one_commits(tmp_path: Path) -> None:
    writer, engines = _writer(tmp_path)

    def half_then_fail(conn):  # type: ignore[no-untyped-def]
        _add_experiment("half")(conn)
        raise InvalidParameterValue("bad input after a write")

    async def main():  # type: ignore[no-untyped-def]
        failed = writer.apply_now_from_loop(half_then_fail)
        assert failed is not None
        with pytest.raises(InvalidParameterValue):
            await failed
        ok = writer.apply_now_from_loop(_add_experiment("after"))
        assert ok is not None
        return await ok

    assert _on_a_loop(main) == "after"
    assert _names(engines) == {"after"}
    # The writer thread goes on with the same connection.
    assert writer.submit(_add_experiment("threaded")).result(10) == "threaded"
    assert _names(engines) == {"after", "threaded"}
    writer.close()
    engines.dispose()  # type: ignore[attr-defined]
