"""Ingest: exactly once, torn records, rejected records, growing files, retirement, `labtrack sync`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

from labtrack.spool import SpoolWriter, host_tag, spool_files, spool_folder
from labtrack.store.ingest import SpoolIngest
from labtrack.store.tracking import TrackingStore
from tests.servers import start_server

from .conftest import DEAD_PID, child_env, integrity, metric_counts, query, wait_until


def job_file(db: Path, name: str, points: range, *, torn: bool = False, close: bool = True,
             pid: int = DEAD_PID) -> Path:
    """A spool file as a finished (or killed) batch job leaves it."""
    folder = spool_folder(db)
    folder.mkdir(parents=True, exist_ok=True)
    host = host_tag()  # this host: ingest can tell that the writer is gone
    path = folder / f"{host}-{pid}-{uuid.uuid4().hex[:12]}.jsonl"
    run_id = uuid.uuid4().hex
    lines = [{"op": "set_experiment", "experiment_name": "array"},
             {"op": "create_run", "run_id": run_id, "experiment_name": "array", "run_name": name,
              "tags": [{"key": "task", "value": name}]},
             {"op": "log_batch", "run_id": run_id, "params": [{"key": "lr", "value": "0.1"}]}]
    steps = list(points)
    for i in range(0, len(steps), 500):
        lines.append({"op": "log_batch", "run_id": run_id, "metrics": [
            {"key": "loss", "value": s / 10, "timestamp": 1000 + s, "step": s} for s in steps[i:i + 500]]})
    lines.append({"op": "update_run", "run_id": run_id, "status": "FINISHED", "end_time": 99})
    if close:
        lines.append({"op": "close"})
    text = "".join(json.dumps({"v": 1, "seq": n, **r}) + "\n" for n, r in enumerate(lines, 1))
    if torn:
        text += json.dumps({"v": 1, "seq": len(lines) + 1, "op": "log_batch", "run_id": run_id,
                            "metrics": [{"key": "loss", "value": 1, "timestamp": 1, "step": 10**6}]})[:40]
    path.write_text(text)
    return path


def test_torn_file_and_a_file_ingested_twice_hold_each_point_once(db: Path, store: TrackingStore) -> None:
    torn = job_file(db, "killed", range(1500), torn=True, close=False)
    whole = job_file(db, "whole", range(2000))
    report = SpoolIngest(store, spool_folder(db)).run_all()
    assert (report.records, report.rejected) == (7 + 8, 0)  # the torn line is not a record
    assert metric_counts(db) == {"killed": (1500, 1500), "whole": (2000, 2000)}
    # Both writers are gone (dead pid, close record): their files are retired, not deleted.
    done = spool_folder(db) / "done"
    assert sorted(p.name for p in done.iterdir()) == sorted([torn.name, whole.name])
    assert spool_files(spool_folder(db)) == []

    # The same files again, with no memory of having applied them: nothing changes.
    for p in done.iterdir():
        os.replace(p, spool_folder(db) / p.name)
    store.write(lambda conn: conn.exec_driver_sql("DELETE FROM spool_progress"))
    before = query(db, "SELECT run_uuid, key, value, timestamp, step FROM metrics JOIN metric_series USING (series_id) ORDER BY 1, 2, 5")
    tags_before = query(db, "SELECT * FROM tags ORDER BY 1, 2")
    report = SpoolIngest(store, spool_folder(db)).run_all()
    assert report.rejected == 0
    assert query(db, "SELECT run_uuid, key, value, timestamp, step FROM metrics JOIN metric_series USING (series_id) ORDER BY 1, 2, 5") == before
    assert query(db, "SELECT * FROM tags ORDER BY 1, 2") == tags_before
    assert query(db, "SELECT COUNT(*) FROM runs") == [(2,)]
    assert query(db, "SELECT COUNT(*) FROM experiments WHERE name = 'array'") == [(1,)]
    assert query(db, "SELECT status, end_time FROM runs") == [("FINISHED", 99)] * 2


def test_a_growing_file_continues_where_it_stopped(db: Path, store: TrackingStore) -> None:
    w = SpoolWriter(spool_folder(db))
    run_id = uuid.uuid4().hex
    w.append([{"op": "create_run", "run_id": run_id, "experiment_id": "0", "run_name": "live"}])
    ingest = SpoolIngest(store, spool_folder(db))
    seen: list[int] = []
    for part in range(3):
        w.append([{"op": "log_batch", "run_id": run_id, "metrics": [
            {"key": "loss", "value": 1.0, "timestamp": 1, "step": part * 10 + i} for i in range(10)]}])
        report = ingest.run_once()
        seen.append(report.records)
        assert metric_counts(db)["live"] == (10 * (part + 1),) * 2
    assert seen == [2, 1, 1]  # each pass applies only what is new
    assert w.path is not None
    assert query(db, "SELECT applied_offset, applied_seq FROM spool_progress") == [(w.path.stat().st_size, 4)]
    assert w.path.exists()  # its writer (this process) is alive and did not close it: not retired


def test_a_rejected_record_goes_to_the_sidecar_and_the_rest_lands(db: Path, store: TrackingStore) -> None:
    w = SpoolWriter(spool_folder(db))
    run_id = uuid.uuid4().hex
    w.append([{"op": "create_run", "run_id": run_id, "experiment_id": "0", "run_name": "r"},
              {"op": "log_batch", "run_id": run_id, "params": [{"key": "lr", "value": "0.1"}]},
              {"op": "log_batch", "run_id": run_id, "params": [{"key": "lr", "value": "0.2"}]},  # refused
              {"op": "log_batch", "run_id": run_id, "metrics": [{"key": "bad key!", "value": 1,
                                                                 "timestamp": 1, "step": 0}]},  # refused
              {"op": "log_batch", "run_id": run_id, "metrics": [{"key": "loss", "value": 2,
                                                                 "timestamp": 1, "step": 0}]}])
    with open(w.path, "ab") as f:  # type: ignore[arg-type]
        f.write(b"garbage in the middle\n")
    w.append([{"op": "update_run", "run_id": run_id, "status": "FINISHED"}])
    report = SpoolIngest(store, spool_folder(db)).run_all()
    assert (report.records, report.rejected) == (4, 3)
    assert query(db, "SELECT key, value FROM params") == [("lr", "0.1")]
    assert query(db, "SELECT key, value FROM metrics JOIN metric_series USING (series_id)") == [("loss", 2.0)]
    assert query(db, "SELECT status FROM runs") == [("FINISHED",)]
    rejected = [json.loads(x) for x in Path(str(w.path) + ".rejected").read_text().splitlines()]
    assert ["Changing param values" in r["error"] for r in rejected] == [True, False, False]
    assert "bad key!" in rejected[1]["error"] and "not JSON" in rejected[2]["error"]


def test_log_series_records_apply_as_bulk_writes_and_a_bad_column_is_rejected_alone(
        db: Path, store: TrackingStore) -> None:
    from labtrack.columns import STEP, VALUE, pack

    w = SpoolWriter(spool_folder(db))
    run_id = uuid.uuid4().hex
    steps = list(range(3000))
    values = [float(s) for s in steps]
    values[7] = float("nan")
    series = {"key": "loss", "steps": pack(STEP, steps), "timestamps": pack(STEP, [5] * 3000),
              "values": pack(VALUE, values)}
    w.append([{"op": "create_run", "run_id": run_id, "experiment_id": "0", "run_name": "r"},
              {"op": "log_series", "run_id": run_id, "series": [series], "params": [{"key": "lr", "value": "0.1"}]},
              {"op": "log_series", "run_id": run_id, "series": [{**series, "key": "acc", "values": "not base64!"}]},
              # Consecutive metric records of a run are applied as one write; when one of them
              # is refused (steps not a list), the others still land and it alone is rejected.
              {"op": "log_series", "run_id": run_id,  # plain lists are taken too, and a point twice is one
               "series": [{"key": "acc", "steps": [0, 1, 1], "timestamps": [5, 5, 5], "values": [0.5, 0.25, 0.25]}]},
              {"op": "log_series", "run_id": run_id,
               "series": [{"key": "acc", "steps": [2, 3], "timestamps": [5, 5], "values": [0.125, 0.0625]}]},
              {"op": "log_series", "run_id": run_id,
               "series": [{"key": "acc", "steps": 7, "timestamps": [5], "values": [9.0]}]},
              {"op": "log_series", "run_id": run_id,
               "series": [{"key": "acc", "steps": [4], "timestamps": [5], "values": [0.03125]}]}])
    ingest = SpoolIngest(store, spool_folder(db))
    report = ingest.run_all()
    assert (report.records, report.rejected) == (5, 2)
    assert query(db, "SELECT COUNT(*), SUM(is_nan), MAX(step) FROM metrics JOIN metric_series USING (series_id) WHERE key = 'loss'") == [(3000, 1, 2999)]
    assert query(db, "SELECT step, value FROM metrics JOIN metric_series USING (series_id) WHERE key = 'acc' ORDER BY step") == [
        (0, 0.5), (1, 0.25), (2, 0.125), (3, 0.0625), (4, 0.03125)]
    assert query(db, "SELECT key, value, step FROM latest_metrics ORDER BY key") == [("acc", 0.03125, 4),
                                                                                      ("loss", 2999.0, 2999)]
    assert query(db, "SELECT value FROM params") == [("0.1",)]
    rejected = [json.loads(x) for x in Path(str(w.path) + ".rejected").read_text().splitlines()]
    assert len(rejected) == 2 and "malformed record" in rejected[0]["error"]
    assert "'steps' must be a list" in rejected[1]["error"]
    # Applying the file again changes nothing: every record is idempotent.
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM spool_progress")
    SpoolIngest(store, spool_folder(db)).run_all()
    assert query(db, "SELECT COUNT(*) FROM metrics") == [(3005,)]


def test_a_run_created_in_another_file_is_waited_for(db: Path, store: TrackingStore) -> None:
    folder = spool_folder(db)
    folder.mkdir(parents=True)
    run_id = uuid.uuid4().hex
    # The file read first logs to a run that the file read second creates (a forked worker).
    write_records(folder / f"h-{os.getpid()}-000000.jsonl", [{"op": "log_batch", "run_id": run_id, "metrics": [
        {"key": "loss", "value": 1, "timestamp": 1, "step": 1}]}])
    ingest = SpoolIngest(store, folder, defer_s=600)
    assert ingest.run_once().deferred == 1
    # (Written after that pass: a pass applies a new file's leading records, its run, first.)
    write_records(folder / f"h-{os.getpid()}-ffffff.jsonl",
                  [{"op": "create_run", "run_id": run_id, "experiment_id": "0", "run_name": "p"}])
    assert ingest.run_once().deferred == 0
    assert metric_counts(db) == {"p": (1, 1)}
    assert not list(folder.glob("*.rejected"))
    # A run that never appears is rejected once no file can create it any more.
    write_records(folder / f"h-{os.getpid()}-aaaaaa.jsonl", [{"op": "log_batch", "run_id": uuid.uuid4().hex}])
    report = SpoolIngest(store, folder).run_all()
    assert (report.records, report.rejected) == (0, 1)


def write_records(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps({"v": 1, "seq": n, **r}) + "\n" for n, r in enumerate(records, 1)))


def test_server_ingests_within_seconds_and_sync_refuses_while_it_runs(db: Path) -> None:
    srv = start_server(f"sqlite:///{db}", db.parent)
    try:
        job_file(db, "late", range(300), pid=os.getpid())
        counts = wait_until(lambda: metric_counts(db).get("late") == (300, 300), timeout=10, interval=0.1)
        assert counts, "the server did not ingest the spool file within 10 s"
        out = subprocess.run([sys.executable, "-m", "labtrack", "sync", str(db.parent)],
                             capture_output=True, text=True, env=child_env(), timeout=60)
        assert out.returncode == 1
        assert out.stderr.count("\n") == 1 and "ingests its spool files itself" in out.stderr
    finally:
        srv.stop()


def test_labtrack_sync_ingests_without_a_server(db: Path) -> None:
    job_file(db, "a", range(2000), torn=True, close=False)
    job_file(db, "b", range(2000))
    cmd = [sys.executable, "-m", "labtrack", "sync", str(db.parent)]
    # As on NFS or Lustre: the rollback journal, not WAL.
    env = child_env(LABTRACK_ASSUME_NETWORK_FS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "from 2 spool files" in out.stdout and "2 files retired" in out.stdout
    assert "ingesting spool" in out.stderr  # the progress bar
    assert metric_counts(db) == {"a": (2000, 2000), "b": (2000, 2000)}
    assert integrity(db) == "ok"
    assert query(db, "PRAGMA journal_mode") == [("delete",)]
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "no spool files waiting" in again.stdout
    assert not (db.parent / "mlruns" / ".labtrack" / "mlruns.db.lock").read_text()  # ownership released
