"""Spool ingest under a backlog: a task's newest value shows within a pass, whatever waits before it.

A job array's history can take the ingest minutes to store; the runs table must not
wait for it.  Each pass first folds the newest ``log_series`` record of every file that
grew into its run's latest values (one short transaction), then stores a bounded amount
of history.  These tests count in commits and passes, never in seconds, and check that
the early fold changes nothing in the end: every point once, and the latest values what
the history implies (MLflow's rule: the largest (step, timestamp, value)), also after a
crash between the two steps and when a record already shown is then rejected.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from labtrack.columns import STEP, VALUE, pack
from labtrack.spool import host_tag, spool_folder
from labtrack.store.ingest import SpoolIngest
from labtrack.store.tracking import TrackingStore

from .conftest import DEAD_PID


def series_record(run_id: str, steps: range, value: float = 0.0) -> dict:
    """A log_series record as the client's sender spools it (packed columns); point s = value + s."""
    return {"op": "log_series", "run_id": run_id, "series": [{
        "key": "loss", "steps": pack(STEP, steps), "timestamps": pack(STEP, [1000 + s for s in steps]),
        "values": pack(VALUE, [value + s for s in steps])}]}


def spool_file(db: Path, tag: str, run_id: str, name: str, records: list[dict], close: bool = True) -> Path:
    """A task's spool file; ``tag`` orders the files by name (the ingest goes through them in order)."""
    folder = spool_folder(db)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [{"op": "set_experiment", "experiment_name": "array"},
             {"op": "create_run", "run_id": run_id, "experiment_name": "array", "run_name": name},
             *records, {"op": "update_run", "run_id": run_id, "status": "FINISHED", "end_time": 99}]
    if close:
        lines.append({"op": "close"})
    path = folder / f"{host_tag()}{tag}-{DEAD_PID}-{uuid.uuid4().hex[:12]}.jsonl"
    path.write_text("".join(json.dumps({"v": 1, "seq": n, **r}) + "\n" for n, r in enumerate(lines, 1)))
    return path


def latest(db: Path, run_id: str) -> tuple[int, int, float, float, float]:
    """The run's latest value of ``loss`` as the runs table reads it: (step, timestamp, value, min, max)."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT step, timestamp, value, min_value, max_value FROM latest_metrics "
                            "WHERE run_uuid = ? AND key = 'loss'", (run_id,)).fetchone()
    finally:
        conn.close()


def implied_by_history(store: TrackingStore, run_id: str) -> tuple[tuple[int, int, float], float, float, int]:
    """(latest (step, timestamp, value), min, max, points) from the stored history alone."""
    points, token = [], None
    while True:
        page, token = store.get_metric_history(run_id, "loss", page_token=token)
        points += page
        if not token:
            break
    keys = [(p.step, p.timestamp, p.value) for p in points]
    return max(keys), min(k[2] for k in keys), max(k[2] for k in keys), len(keys)


def assert_consistent(db: Path, store: TrackingStore, run_id: str, points: int) -> None:
    want, lo, hi, n = implied_by_history(store, run_id)
    assert n == points
    assert latest(db, run_id) == (*want, lo, hi)
    assert store.get_run(run_id).data.metrics["loss"] == want[2]


def test_a_tasks_newest_value_shows_before_another_tasks_backlog_is_stored(db: Path, store: TrackingStore) -> None:
    # Task A's file, first in name order, holds 320,000 points of history (10 MB); task B,
    # after it, wrote 2,000 points, the newest last.
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    a_points, per_record = 320_000, 8_000
    spool_file(db, "-a", a, "a", [series_record(a, range(i, i + per_record))
                                  for i in range(0, a_points, per_record)])
    spool_file(db, "-b", b, "b", [series_record(b, range(0, 1000), 5e6), series_record(b, range(1000, 2000), 5e6)])
    newest_b = (1999, 2999, 5e6 + 1999)

    # After each commit of the writer: how much of A was stored when B's newest value first showed.
    seen: list[int] = []

    def on_commit(_size: int) -> None:
        if seen:
            return
        conn = sqlite3.connect(db)
        try:
            row = conn.execute("SELECT step, timestamp, value FROM latest_metrics WHERE run_uuid = ? AND key = 'loss'",
                               (b,)).fetchone()
            if row == newest_b:
                seen.append(conn.execute("SELECT COUNT(*) FROM metrics JOIN metric_series USING (series_id) "
                                         "WHERE run_uuid = ?", (a,)).fetchone()[0])
        finally:
            conn.close()

    store.writer.on_group = on_commit
    ingest = SpoolIngest(store, spool_folder(db))
    passes = 0
    while ingest.run_once().records:
        passes += 1
        if passes == 1:
            assert seen, "B's newest value did not show within the first pass"
    store.writer.on_group = None
    # B showed while less than a third of A's history was stored (before: after all of it).
    assert seen and seen[0] < a_points // 3, seen
    assert passes >= 2  # the backlog took more than one pass: each pass is bounded
    assert_consistent(db, store, a, a_points)
    assert_consistent(db, store, b, 2000)
    assert latest(db, b)[:3] == newest_b
    assert store.get_run(b).info.status == "FINISHED"
    # Every file applied to its end and retired.
    done = spool_folder(db) / "done"
    applied = dict(sqlite3.connect(db).execute("SELECT spool_id, applied_offset FROM spool_progress").fetchall())
    assert {f.name: f.stat().st_size for f in done.glob("*.jsonl")} == applied


def test_a_crash_between_the_newest_values_and_the_history_loses_and_doubles_nothing(
        db: Path, store: TrackingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    run = uuid.uuid4().hex
    spool_file(db, "", run, "t", [series_record(run, range(i, i + 1000)) for i in range(0, 5000, 1000)])

    def broken(*args: object, **kw: object) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    # The pass shows the newest value, then the database fails before any history is stored.
    monkeypatch.setattr(store, "log_batch_op", broken)
    with pytest.raises(OperationalError):
        SpoolIngest(store, spool_folder(db)).run_once()
    assert latest(db, run)[:3] == (4999, 5999, 4999.0)
    assert store.get_metric_history(run, "loss")[0] == []
    monkeypatch.undo()
    # A new server process (nothing kept in memory) applies the file from the saved progress.
    ingest = SpoolIngest(store, spool_folder(db))
    while ingest.run_once().records:
        pass
    assert_consistent(db, store, run, 5000)
    # Applying it all again changes nothing.
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM spool_progress")
    done = spool_folder(db) / "done"
    for f in done.glob("*.jsonl"):
        f.rename(spool_folder(db) / f.name)
    SpoolIngest(store, spool_folder(db)).run_all()
    assert_consistent(db, store, run, 5000)


def test_a_record_shown_early_and_then_rejected_leaves_the_latest_value_of_the_history(
        db: Path, store: TrackingStore) -> None:
    # The file deletes its run before its last record: that record is rejected when applied
    # in order (with the update_run after it), but it is the one the pass shows first.
    run = uuid.uuid4().hex
    spool_file(db, "", run, "t", [series_record(run, range(0, 100)), {"op": "delete_run", "run_id": run},
                                  series_record(run, range(100, 200), 1e6)])
    ingest = SpoolIngest(store, spool_folder(db))
    report = ingest.run_once()
    assert report.rejected == 2  # it, and the update_run after it
    while ingest.run_once().records:
        pass
    assert_consistent(db, store, run, 100)
    assert latest(db, run)[:3] == (99, 1099, 99.0)
    assert len(list(spool_folder(db).rglob("*.rejected"))) == 1


def runs_named(db: Path, prefix: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM runs WHERE name LIKE ?", (prefix + "%",)).fetchone()[0]
    finally:
        conn.close()


def test_a_growing_tasks_newest_value_does_not_wait_for_the_runs_of_new_files(
        db: Path, store: TrackingStore) -> None:
    # Task K (alive: its file is this process's) is stored up to step 999; then it logs its
    # newest points while 30 new tasks' files appear, each needing its run created first.
    k = uuid.uuid4().hex
    folder = spool_folder(db)
    folder.mkdir(parents=True, exist_ok=True)
    k_file = folder / f"{host_tag()}-z-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"

    def append(*records: dict) -> None:
        with k_file.open("a") as f:
            for r in records:
                f.write(json.dumps({"v": 1, "seq": 0, **r}) + "\n")

    append({"op": "set_experiment", "experiment_name": "array"},
           {"op": "create_run", "run_id": k, "experiment_name": "array", "run_name": "k"},
           series_record(k, range(0, 1000)))
    ingest = SpoolIngest(store, spool_folder(db))
    while ingest.run_once().records:
        pass
    assert latest(db, k)[:3] == (999, 1999, 999.0)
    append(series_record(k, range(1000, 2000)))
    for i in range(30):
        run = uuid.uuid4().hex
        spool_file(db, f"-n{i:02d}", run, f"new-{i}", [series_record(run, range(0, 100))])

    # At each commit of the writer: how many new runs existed when K's newest value first showed.
    seen: list[int] = []

    def on_commit(_size: int) -> None:
        if not seen and latest(db, k)[:3] == (1999, 2999, 1999.0):
            seen.append(runs_named(db, "new-"))

    store.writer.on_group = on_commit
    ingest.run_once()
    store.writer.on_group = None
    assert seen == [0], seen  # before: after all 30 runs were created
    while ingest.run_once().records:
        pass
    append({"op": "close"})
    ingest.run_once()
    assert_consistent(db, store, k, 2000)


def test_new_files_runs_are_created_within_the_pass_budget_and_every_point_lands_once(
        db: Path, store: TrackingStore) -> None:
    runs = [uuid.uuid4().hex for _ in range(20)]
    for i, run in enumerate(runs):
        spool_file(db, f"-{i:02d}", run, f"t-{i}", [series_record(run, range(0, 500), 1e6 * i)])
    # No budget: each pass creates the run of one new file (and stores one file's history).
    ingest = SpoolIngest(store, spool_folder(db), pass_s=0.0)
    ingest.run_once()
    assert runs_named(db, "t-") <= 2  # before: all 20 in the first pass, whatever its budget
    while ingest.run_once().records:
        pass
    for i, run in enumerate(runs):
        assert_consistent(db, store, run, 500)
        assert latest(db, run)[:3] == (499, 1499, 1e6 * i + 499)


def test_a_pass_stops_creating_new_files_runs_soon_after_its_budget_is_spent(
        db: Path, store: TrackingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import time as real_time

    import labtrack.store.ingest as ingest_module

    class Clock:
        """The pass's budget is spent the moment the writer first commits."""
        spent = False

        def monotonic(self) -> float:
            return real_time.monotonic() + (1e6 if self.spent else 0.0)

        def __getattr__(self, name: str) -> object:
            return getattr(real_time, name)

    clock = Clock()
    monkeypatch.setattr(ingest_module, "time", clock)
    runs = [uuid.uuid4().hex for _ in range(64)]
    for i, run in enumerate(runs):
        spool_file(db, f"-{i:02d}", run, f"t-{i}", [series_record(run, range(0, 50), 1e6 * i)])
    store.create_experiment("array")  # so that the first commit of the pass is a batch of runs
    store.writer.on_group = lambda _size: setattr(clock, "spent", True)
    ingest = SpoolIngest(store, spool_folder(db), pass_s=600.0)
    ingest.run_once()
    store.writer.on_group = None
    # New runs go to the writer a few at a time, so the budget is seen within two handovers
    # (before: all 64 were queued as one batch before any was created).
    assert runs_named(db, "t-") < 40
    clock.spent = False
    while ingest.run_once().records:
        pass
    for run in runs:
        assert_consistent(db, store, run, 50)


def test_a_new_file_that_grows_while_its_run_is_created_shows_its_newest_value_in_that_pass(
        db: Path, store: TrackingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # The pass sees the file when the task has written set_experiment only; by the time its
    # head is read, the task has created its run and logged.  The head then ends past the size
    # the pass saw (found under a 512-task array: the pass failed with "read length must be
    # non-negative", and every such pass cost the array a second and a reload of its progress).
    import labtrack.spool as spool_module

    run = uuid.uuid4().hex
    folder = spool_folder(db)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{host_tag()}-g-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"

    def append(*records: dict) -> None:
        with path.open("a") as f:
            for r in records:
                f.write(json.dumps({"v": 1, "seq": 0, **r}) + "\n")

    append({"op": "set_experiment", "experiment_name": "array"})
    read_records = spool_module.read_records
    grown: list[bool] = []

    def growing(p: Path, offset: int, limit: int):  # type: ignore[no-untyped-def]
        if p == path and not grown:
            grown.append(True)
            append({"op": "create_run", "run_id": run, "experiment_name": "array", "run_name": "g"},
                   series_record(run, range(0, 100)))
        return read_records(p, offset, limit)

    monkeypatch.setattr(spool_module, "read_records", growing)
    ingest = SpoolIngest(store, folder)
    report = ingest.run_once()  # before: ValueError, and nothing of the pass kept
    assert grown and report.records >= 2
    assert latest(db, run)[:3] == (99, 1099, 99.0)
    monkeypatch.setattr(spool_module, "read_records", read_records)
    append({"op": "close"})
    while ingest.run_once().records:
        pass
    assert_consistent(db, store, run, 100)


def test_the_ingest_thread_says_how_many_passes_failed_in_a_row_once_one_succeeds(
        caplog: pytest.LogCaptureFixture) -> None:
    # Only the first failure has a traceback (a pass retries every second); the count of the
    # others must still reach the log, or a pass failing again and again looks like one.
    import threading

    from labtrack.store.ingest import IngestReport, IngestThread

    outcomes = [ValueError("bad"), ValueError("bad"), ValueError("bad"), None]
    done = threading.Event()

    class Flaky:
        def run_once(self) -> IngestReport:
            if not outcomes:
                done.set()
                return IngestReport()
            outcome = outcomes.pop(0)
            if outcome is not None:
                raise outcome
            return IngestReport(records=1)

    caplog.set_level("DEBUG", logger="labtrack.ingest")
    thread = IngestThread(Flaky(), interval=0.01).start()  # type: ignore[arg-type]
    assert done.wait(10)
    thread.stop()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    assert any("succeeded after 3 failed in a row" in r.getMessage() for r in caplog.records)
