"""Early answers (server/early_answer.py, store/journal.py): an idle server answers a plain metric
write once its run is known active and the write is in its journal, and stores it right after;
what it answered is never lost, and never stored twice."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

from labtrack import spool
from labtrack.entities import Metric
from labtrack.server import early_answer
from labtrack.server.early_answer import EarlyWrite
from labtrack.store import schema as s
from labtrack.store.ingest import SpoolIngest
from labtrack.store import journal as journal_module
from labtrack.store.journal import Journal
from labtrack.store.tracking import TrackingStore
from tests.servers import ServerProcess, start_server


def _spool(srv: ServerProcess) -> Path:
    return srv.artifacts / ".labtrack" / "spool"


def _journals(folder: Path) -> list[Path]:
    return spool.journal_files(folder)


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _progress(db: Path) -> dict[str, tuple[int, int]]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return {r.spool_id: (r.applied_offset, r.applied_seq) for r in conn.execute(select(s.spool_progress))}
    finally:
        engine.dispose()


def _new_run(srv: ServerProcess, name: str = "early") -> str:
    exp = srv.api("POST", "experiments/create", {"name": name}).json()["experiment_id"]
    return srv.api("POST", "runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]


def _history(srv: ServerProcess, run_id: str, key: str) -> list[tuple[int, float]]:
    reply = srv.api("GET", "metrics/get-history", {"run_id": run_id, "metric_key": key})
    assert reply.status_code == 200, reply.text
    return [(int(m["step"]), m["value"]) for m in reply.json().get("metrics", [])]


def test_the_mlflow_clients_sync_writes_are_journaled_and_read_back_at_once(
        sqlite_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    srv = sqlite_server
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", srv.token or "")
    client = MlflowClient(srv.url)
    run_id = _new_run(srv)
    for i in range(20):
        client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i, synchronous=True)
        # Every request after an answer sees the answered write.
        assert _history(srv, run_id, "loss")[-1] == (i, 1.0 / (i + 1))
    client.log_batch(run_id, metrics=[Metric("acc", i / 10, 1_700_000_000_000 + i, i) for i in range(10)])
    assert [v for _, v in _history(srv, run_id, "acc")] == [i / 10 for i in range(10)]

    (journal,) = _journals(_spool(srv))
    records = _records(journal)
    assert [r["op"] for r in records] == ["log_batch"] * 21
    assert [r["seq"] for r in records] == list(range(1, 22)) and {r["v"] for r in records} == {1}
    assert records[0]["metrics"] == [{"key": "loss", "value": 1.0, "timestamp": records[0]["metrics"][0]["timestamp"],
                                      "step": 0}]
    assert [m["value"] for m in records[-1]["metrics"]] == [i / 10 for i in range(10)]
    # Its progress is saved every SAVE_EVERY records: never beyond what is in it.
    sid = journal.name[1:]
    offset, seq = _progress(tmp_path / "mlruns.db").get(sid, (0, 0))
    assert offset <= journal.stat().st_size and seq <= 21
    assert oct(journal.stat().st_mode & 0o777) == oct(0o600)

    srv.stop()  # a clean stop removes the applied journal and forgets its progress
    assert _journals(_spool(srv)) == [] and not (_spool(srv) / sid).exists()
    assert sid not in _progress(tmp_path / "mlruns.db")


def test_refused_writes_are_answered_as_without_early_answers(tmp_path: Path) -> None:
    """A deleted run, a run that does not exist, a bad key: the same status and error as a
    server that answers after the commit, and nothing journaled."""
    answers = {}
    for mode in ("1", "0"):
        (tmp_path / mode).mkdir()
        os.environ["LABTRACK_EARLY_ANSWER"] = mode
        try:
            srv = start_server(f"sqlite:///{tmp_path / mode / 'mlruns.db'}", tmp_path / mode)
        finally:
            del os.environ["LABTRACK_EARLY_ANSWER"]
        try:
            run_id = _new_run(srv)
            deleted = _new_run(srv, "other")
            assert srv.api("POST", "runs/delete", {"run_id": deleted}).ok
            point = {"value": 1.5, "timestamp": 1, "step": 1}
            got = []
            for body, path in (({"run_id": deleted, "key": "m", **point}, "runs/log-metric"),
                               ({"run_id": "f" * 32, "key": "m", **point}, "runs/log-metric"),
                               ({"run_id": run_id, "key": "../bad", **point}, "runs/log-metric"),
                               ({"run_id": run_id, "key": "m", "value": "x", "timestamp": 1}, "runs/log-metric"),
                               ({"run_id": deleted, "metrics": [{"key": "m", **point}]}, "runs/log-batch"),
                               ({"run_id": run_id, "metrics": [{"key": "m", **point}] * 1001}, "runs/log-batch")):
                reply = srv.api("POST", path, body)
                got.append((reply.status_code, reply.text.replace(run_id, "RUN").replace(deleted, "DELETED")))
            answers[mode] = got
            assert _journals(_spool(srv)) == [] or all(_records(j) == [] for j in _journals(_spool(srv)))
        finally:
            srv.stop()
    assert answers["1"] == answers["0"]
    assert all(400 <= status < 500 for status, _ in answers["1"])


def test_a_journal_is_only_for_what_the_server_answered(sqlite_server: ServerProcess) -> None:
    """Params (a changed value fails in the database), a body's own "op", "v" or "seq": a log_batch
    with params is answered after its commit, and a record's operation is always the server's."""
    srv = sqlite_server
    run_id = _new_run(srv)
    assert srv.api("POST", "runs/log-batch", {"run_id": run_id, "params": [{"key": "p", "value": "1"}],
                                               "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}]}).ok
    assert _journals(_spool(srv)) == []
    assert srv.api("POST", "runs/log-batch", {"run_id": run_id, "op": "delete_run", "v": 7, "seq": 99,
                                               "metrics": [{"key": "m", "value": 2.0, "timestamp": 2, "step": 1}]}).ok
    (journal,) = _journals(_spool(srv))
    (record,) = _records(journal)
    assert (record["op"], record["v"], record["seq"]) == ("log_batch", 1, 1)
    assert srv.api("GET", "runs/get", {"run_id": run_id}).json()["run"]["info"]["lifecycle_stage"] == "active"


def test_a_crashed_servers_journal_is_stored_once_by_the_next_server(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between an answer and its commit: the next server's spool ingest stores what the
    journal holds beyond its progress, once, and retires the journal."""
    from mlflow import MlflowClient

    srv = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", srv.token or "")
    client = MlflowClient(srv.url)
    run_id = _new_run(srv)
    for i in range(5):
        client.log_metric(run_id, "m", float(i), step=i, synchronous=True)
    (journal,) = _journals(_spool(srv))
    srv.stop("kill")
    # What a kill after the append and before the commit leaves: a record past the progress.
    with open(journal, "ab") as f:
        f.write(b'{"run_id":"%s","metrics":[{"key":"m","value":5.0,"timestamp":5,"step":5}],'
                b'"op":"log_batch","v":1,"seq":6}\n' % run_id.encode())
    again = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path)
    try:
        # Stored before the new server answers anything.
        log = again.log()
        assert "journals of a stopped server: 6 writes stored" in log, log
        assert log.index("journals of a stopped server") < log.index("serving")
        assert _history(again, run_id, "m") == [(i, float(i)) for i in range(6)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (_spool(again) / spool.DONE_FOLDER / journal.name[1:]).exists():
            time.sleep(0.2)
        assert (_spool(again) / spool.DONE_FOLDER / journal.name[1:]).exists()  # retired: its server is gone
        assert not journal.exists()
        assert _history(again, run_id, "m") == [(i, float(i)) for i in range(6)]  # stored once
    finally:
        again.stop()


def _store(tmp_path: Path) -> tuple[TrackingStore, str]:
    store = TrackingStore(f"sqlite:///{tmp_path / 'mlruns.db'}")
    run = store.create_run(store.create_experiment("j"), user_id="", start_time=None, run_name="r", tags={})
    return store, run.info.run_id


class _Ctx:
    def __init__(self, store: TrackingStore, handed: list[int]) -> None:
        self.store = store
        self.extra: dict[str, Any] = {early_answer.HAND_OVER_KEY: lambda: handed.append(1)}


def _plan(store: TrackingStore, run_id: str, step: int, fail: bool = False) -> EarlyWrite:
    m = Metric("m", float(step), 1_700_000_000_000 + step, step)
    write = store.log_batch_op(run_id, metrics=[m])

    def op(conn: Any) -> None:
        write(conn)
        if fail:  # the database failing after the answer (a full disk, an I/O error)
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
    fields = json.dumps({"run_id": run_id, "metrics": [{"key": "m", "value": m.value, "timestamp": m.timestamp,
                                                       "step": step}]}).encode()
    return EarlyWrite(run_id, op, lambda: fields)


@pytest.mark.parametrize("save_every", [1, journal_module.SAVE_EVERY])
def test_an_answered_write_that_fails_is_stored_by_the_spool_ingest(tmp_path: Path, save_every: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With its progress saved at every record, the ingest applies only the write that failed;
    saved less often, it applies again those before, which stores nothing twice."""
    monkeypatch.setattr(journal_module, "SAVE_EVERY", save_every)
    store, run_id = _store(tmp_path)
    folder = tmp_path / "spool"
    journal, handed, replies = Journal(folder), [], []
    ctx = _Ctx(store, handed)

    async def go() -> list[Any]:
        return [early_answer.answer(ctx, journal, _plan(store, run_id, i, fail=i == 2), lambda: replies.append(1))
                for i in range(4)]
    try:
        outcomes = asyncio.run(go())
        assert outcomes == [True] * 4 and replies == [1] * 4 and handed == [1]
        history = [m.step for m in store.get_metric_history(run_id, "m")[0]]
        assert history == [0, 1, 3]  # the failed one rolled back; the next went to a new journal
        (handed_over,) = spool.spool_files(folder)
        assert [r["seq"] for r in _records(handed_over)] == [1, 2, 3, 4]  # its three records, then close
        ingest = SpoolIngest(store, folder)
        ingest.reload()
        report = ingest.run_all()
        assert (report.records, report.rejected) == (1 if save_every == 1 else 3, 0)
        assert [m.step for m in store.get_metric_history(run_id, "m")[0]] == [0, 1, 2, 3]
        assert store.get_run(run_id).data.metrics == {"m": 3.0}
        assert ingest.run_all().records == 0  # once
    finally:
        store.close()


def test_a_run_deleted_by_another_process_after_the_check_ends_in_the_rejected_file(tmp_path: Path) -> None:
    """The one refusal that can come after an early answer: the run deleted between the check
    and the write by another process.  The write is kept, with its error, beside the journal."""
    store, run_id = _store(tmp_path)
    folder = tmp_path / "spool"
    journal, handed = Journal(folder), []
    ctx = _Ctx(store, handed)
    plan = _plan(store, run_id, 0)

    def deleted_meanwhile(conn: Any) -> None:
        store.delete_run(run_id)  # joins this transaction, as another process's commit would precede it
        plan.op(conn)

    async def go() -> Any:
        return early_answer.answer(ctx, journal, EarlyWrite(run_id, deleted_meanwhile, plan.fields), lambda: None)
    try:
        assert asyncio.run(go()) is True and handed == [1]
        store.delete_run(run_id)
        report = SpoolIngest(store, folder, defer_s=0).run_all()
        assert report.rejected == 1
        (rejected,) = folder.rglob("*" + spool.REJECTED_SUFFIX)  # beside the journal, retired to done/
        assert "deleted" in rejected.read_text() or "active" in rejected.read_text()
    finally:
        store.close()


def test_a_journaled_write_is_stored_even_if_its_reply_fails(tmp_path: Path) -> None:
    store, run_id = _store(tmp_path)
    journal = Journal(tmp_path / "spool")

    def reply() -> None:
        raise ConnectionResetError("the client went away")

    async def go() -> Any:
        return early_answer.answer(_Ctx(store, []), journal, _plan(store, run_id, 7), reply)
    try:
        assert asyncio.run(go()) is True
        assert [m.step for m in store.get_metric_history(run_id, "m")[0]] == [7]
    finally:
        store.close()


def test_a_full_journal_makes_way_for_a_new_one(tmp_path: Path) -> None:
    store, run_id = _store(tmp_path)
    folder = tmp_path / "spool"
    journal = Journal(folder, max_bytes=300)
    ctx = _Ctx(store, [])

    async def go() -> None:
        for i in range(6):
            assert early_answer.answer(ctx, journal, _plan(store, run_id, i), lambda: None) is True
    try:
        asyncio.run(go())
        assert len(_journals(folder)) <= 1  # the full ones were removed once applied
        # Three journals of two records each: the progress of a removed one is forgotten by the next write.
        assert len(_progress(tmp_path / "mlruns.db")) <= 2
        assert [m.step for m in store.get_metric_history(run_id, "m")[0]] == list(range(6))
        forget = journal.close()
        if forget is not None:
            store.write(forget)
        assert _journals(folder) == [] and _progress(tmp_path / "mlruns.db") == {}
    finally:
        store.close()


def test_only_journals_of_servers_that_are_gone_are_revealed(tmp_path: Path) -> None:
    mine = tmp_path / f".{spool.host_tag()}-{os.getpid()}-aaaaaaaaaaaa.jsonl"
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
    gone = tmp_path / f".{spool.host_tag()}-{dead_pid}-bbbbbbbbbbbb.jsonl"
    silent = tmp_path / ".otherhost-1-cccccccccccc.jsonl"
    for p in (mine, gone, silent):
        p.write_bytes(b"")
    old = time.time() - 7200
    os.utime(silent, (old, old))
    revealed = spool.reveal_orphaned_journals(tmp_path, idle_s=3600)
    assert sorted(p.name for p in revealed) == sorted([gone.name[1:], silent.name[1:]])
    assert mine.exists() and not gone.exists() and (tmp_path / gone.name[1:]).exists()
    assert spool.spool_files(tmp_path) == sorted(revealed)


def test_no_journal_when_early_answers_are_off(tmp_path: Path) -> None:
    os.environ["LABTRACK_EARLY_ANSWER"] = "0"
    try:
        srv = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path)
    finally:
        del os.environ["LABTRACK_EARLY_ANSWER"]
    try:
        run_id = _new_run(srv)
        assert srv.api("POST", "runs/log-metric", {"run_id": run_id, "key": "m", "value": 1.0,
                                                   "timestamp": 1, "step": 0}).ok
        assert _journals(_spool(srv)) == [] and _history(srv, run_id, "m") == [(0, 1.0)]
    finally:
        srv.stop()
