"""The spool file format: durable appends, one file per process, torn lines at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

from labtrack.spool import SpoolWriter, host_tag, new_spool_path, read_records, spool_files, spool_folder, writer_of


def test_spool_folder_sits_in_the_artifact_folder_beside_the_database(tmp_path: Path) -> None:
    # Under a name the artifact API refuses (issue #19): see tests/security/test_spool_guard.py.
    assert spool_folder(tmp_path / "mlruns.db") == tmp_path / "mlruns" / ".labtrack" / "spool"


def test_file_name_names_host_and_pid(tmp_path: Path) -> None:
    path = new_spool_path(tmp_path)
    host, pid = writer_of(path)  # type: ignore[misc]
    assert pid == os.getpid()
    assert host == host_tag()
    assert path != new_spool_path(tmp_path)


def test_records_are_numbered_and_read_back_with_offsets(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path)
    w.append([{"op": "delete_run", "run_id": "a"}, {"op": "restore_run", "run_id": "a"}])
    w.append([{"op": "delete_run", "run_id": "b"}])
    assert w.path is not None
    chunk = read_records(w.path)
    assert [r.seq for r in chunk.records] == [1, 2, 3]
    assert chunk.end_offset == w.path.stat().st_size and chunk.torn_bytes == 0
    # Reading from a record's offset starts at that record.
    again = read_records(w.path, chunk.records[2].offset)
    assert [r.data["run_id"] for r in again.records] == ["b"]


def test_torn_last_line_is_left_unread_until_it_is_complete(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path)
    w.append([{"op": "delete_run", "run_id": "a"}])
    assert w.path is not None
    complete = w.path.stat().st_size
    with open(w.path, "ab") as f:
        f.write(b'{"v":1,"seq":2,"op":"delete_run","run_')  # a job killed mid-write
    chunk = read_records(w.path)
    assert [r.seq for r in chunk.records] == [1]
    assert chunk.end_offset == complete and chunk.torn_bytes > 0 and not chunk.bad
    # A torn line that happens to end in a newline (bad JSON at EOF) is torn too.
    with open(w.path, "ab") as f:
        f.write(b"\n")
    chunk = read_records(w.path)
    assert chunk.end_offset == complete and not chunk.bad


def test_bad_line_before_good_ones_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "h-1-x.jsonl"
    good = json.dumps({"v": 1, "seq": 2, "op": "delete_run", "run_id": "a"})
    path.write_text('{"v":1,"seq":1,"op":"no_such_op"}\nnot json\n' + good + "\n")
    chunk = read_records(path)
    assert [b.error.split(":")[0] for b in chunk.bad] == ["unknown operation 'no_such_op'", "not JSON"]
    assert [r.seq for r in chunk.records] == [2]
    assert chunk.end_offset == path.stat().st_size


def test_close_record_marks_a_finished_file_and_a_later_append_starts_a_new_one(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path)
    w.append([{"op": "delete_run", "run_id": "a"}])
    first = w.path
    w.close()
    assert first is not None and read_records(first).closed
    w.append([{"op": "delete_run", "run_id": "b"}])
    assert w.path != first
    assert [p.name for p in spool_files(tmp_path)] == sorted([first.name, w.path.name])  # type: ignore[union-attr]


def test_a_retired_file_is_never_written_again(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path)
    w.append([{"op": "delete_run", "run_id": "a"}])
    first = w.path
    assert first is not None
    (tmp_path / "done").mkdir()
    os.replace(first, tmp_path / "done" / first.name)  # what ingest does after a long silence
    w.append([{"op": "delete_run", "run_id": "b"}])
    assert w.path != first and w.path is not None
    assert [r.data["run_id"] for r in read_records(w.path).records] == ["b"]
    assert len(read_records(tmp_path / "done" / first.name).records) == 1


def test_a_forked_child_writes_its_own_file(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path)
    w.append([{"op": "delete_run", "run_id": "parent"}])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            w.append([{"op": "delete_run", "run_id": "child"}])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    w.append([{"op": "delete_run", "run_id": "parent"}])
    by_file = {p.name: [r.data["run_id"] for r in read_records(p).records] for p in spool_files(tmp_path)}
    assert sorted(by_file.values()) == [["child"], ["parent", "parent"]]
