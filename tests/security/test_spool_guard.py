"""Item 5 of issue #19: the spool can be neither fed through the artifact API nor stopped by one line.

Bad lines of each kind go to ``<file>.rejected`` with their reason, every
other record and file is ingested, and ``labtrack sync`` exits 0 reporting the
rejected count.  The artifact API cannot write (or list) the spool folder, by
name or through a symlink.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labtrack.spool import spool_folder
from tests.servers import ServerProcess, start_server

RUN_A = "a" * 32
RUN_B = "b" * 32
DEPTH = 100_000


def _line(seq: int, op: str, **fields: object) -> str:
    return json.dumps({"v": 1, "seq": seq, "op": op, **fields}) + "\n"


def _good_file(run_id: str, name: str) -> str:
    return (_line(1, "set_experiment", experiment_name=name)
            + _line(2, "create_run", run_id=run_id, experiment_name=name, start_time=1700000000000)
            + _line(3, "log_batch", run_id=run_id, metrics=[{"key": "loss", "value": 0.5,
                                                              "timestamp": 1700000000001, "step": 1}])
            + _line(4, "update_run", run_id=run_id, status="FINISHED", end_time=1700000000002))


BAD_LINES = {
    "deep": '{"v": 1, "seq": 10, "op": "log_batch", "run_id": "%s", "metrics": %s}\n'
            % (RUN_A, "[" * DEPTH + "]" * DEPTH),
    "infinite start_time": '{"v": 1, "seq": 11, "op": "create_run", "run_id": "%s", '
                           '"experiment_name": "spooled", "start_time": Infinity}\n' % ("c" * 32),
    "infinite timestamp": '{"v": 1, "seq": 12, "op": "log_batch", "run_id": "%s", "metrics": '
                          '[{"key": "m", "value": 1, "timestamp": Infinity}]}\n' % RUN_A,
    "lone surrogate": '{"v": 1, "seq": 13, "op": "log_batch", "run_id": "%s", "params": '
                      '[{"key": "k\\ud800", "value": "v"}]}\n' % RUN_A,
    "not an object": "[1, 2, 3]\n",
}


def _write_spool(db: Path) -> tuple[Path, Path]:
    folder = spool_folder(db)
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "node1-111-aaaaaaaaaaaa.jsonl"
    good_then_bad = _good_file(RUN_A, "spooled")
    for text in BAD_LINES.values():
        good_then_bad += text
    good_then_bad += _line(20, "log_batch", run_id=RUN_A, params=[{"key": "after", "value": "bad lines"}])
    good_then_bad += _line(21, "close")
    bad.write_text(good_then_bad)
    later = folder / "node1-222-bbbbbbbbbbbb.jsonl"  # a file after the bad one: must still be ingested
    later.write_text(_good_file(RUN_B, "spooled") + _line(5, "close"))
    return bad, later


def _runs(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT run_uuid, status FROM runs").fetchall())


def _params(db: Path, run_id: str) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)).fetchall())


def _rejected(bad: Path) -> list[dict]:
    for side in (bad.with_name(bad.name + ".rejected"), bad.parent / "done" / (bad.name + ".rejected")):
        if side.exists():
            return [json.loads(line) for line in side.read_text().splitlines()]
    return []


def test_labtrack_sync_rejects_each_bad_line_and_ingests_the_rest(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    sqlite3.connect(db).close()  # an empty file: sync creates the schema
    bad, _ = _write_spool(db)
    out = subprocess.run([sys.executable, "-m", "labtrack", "sync", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{len(BAD_LINES)} rejected" in out.stdout, out.stdout
    assert "Traceback" not in out.stderr
    runs = _runs(db)
    assert runs.get(RUN_A) == "FINISHED" and runs.get(RUN_B) == "FINISHED"
    assert _params(db, RUN_A) == {"after": "bad lines"}
    rejected = _rejected(bad)
    assert len(rejected) == len(BAD_LINES)
    assert all(r["error"] for r in rejected)


def test_server_keeps_ingesting_past_bad_lines(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    srv = start_server(f"sqlite:///{db}", tmp_path)
    try:
        bad, _ = _write_spool(db)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (_runs(db).get(RUN_B) == "FINISHED"
                                                    and len(_rejected(bad)) == len(BAD_LINES)):
            time.sleep(0.5)
        assert _runs(db).get(RUN_A) == "FINISHED" and _runs(db).get(RUN_B) == "FINISHED"
        assert len(_rejected(bad)) == len(BAD_LINES)
        time.sleep(2)  # two more ingest passes: nothing is retried or logged again
        assert srv.log().count("Traceback") == 0
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("spoolguard")
    srv = start_server(f"sqlite:///{workdir / 'mlruns.db'}", workdir)
    try:
        yield srv
    finally:
        srv.stop()


def _put(srv: ServerProcess, rel: str, data: bytes):
    return srv.session.put(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{rel}", data=data, timeout=30)


@pytest.mark.parametrize("rel", [".spool/x.jsonl", ".labtrack/spool/x.jsonl", "./.labtrack/spool/y.jsonl",
                                 ".labtrack/x", "%2Elabtrack/spool/z.jsonl"])
def test_artifact_api_cannot_write_the_spool(served: ServerProcess, rel: str) -> None:
    record = _line(1, "set_experiment", experiment_name="fed-through-artifacts").encode()
    reply = _put(served, rel, record)
    assert reply.status_code == 400, (reply.status_code, reply.text)
    assert reply.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    db = served.artifacts.parent / "mlruns.db"
    for folder in (spool_folder(db), served.artifacts / ".spool"):
        assert not list(folder.glob("*.jsonl")) if folder.exists() else True


def test_artifact_api_cannot_reach_the_spool_through_a_symlink(served: ServerProcess) -> None:
    spool = spool_folder(served.artifacts.parent / "mlruns.db")
    spool.mkdir(parents=True, exist_ok=True)
    link = served.artifacts / "innocent"
    if not link.exists():
        os.symlink(spool, link)
    reply = _put(served, "innocent/x.jsonl", b"{}\n")
    assert reply.status_code == 400, reply.text
    assert not (spool / "x.jsonl").exists()
    listing = served.session.get(f"{served.url}/api/2.0/mlflow-artifacts/artifacts", timeout=30).json()
    names = {f["path"] for f in listing.get("files", [])}
    assert not names & {".labtrack", ".spool", "innocent"}


def test_old_spool_folder_is_still_ingested(tmp_path: Path) -> None:
    """Jobs started before the move wrote to mlruns/.spool: their records still arrive."""
    db = tmp_path / "mlruns.db"
    legacy = tmp_path / "mlruns" / ".spool"
    legacy.mkdir(parents=True)
    (legacy / "node1-333-cccccccccccc.jsonl").write_text(_good_file(RUN_A, "old-layout") + _line(5, "close"))
    sqlite3.connect(db).close()
    out = subprocess.run([sys.executable, "-m", "labtrack", "sync", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert _runs(db).get(RUN_A) == "FINISHED"
