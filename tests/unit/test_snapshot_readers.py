"""Reader connections on one SQLite snapshot (store/snapshot_readers.py) and the runs table's
group statistics split across them (issue 21), on a real SQLite file through TrackingStore.

A commit that lands while the connections begin their transactions (injected from SQLAlchemy's
``begin`` event of the readers' engine) must not give a split read two snapshots: the read
falls back to its first connection, whose snapshot is older than the commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, func, select

from labtrack.entities import Metric
from labtrack.store import run_table as rt
from labtrack.store import schema as s
from labtrack.store.snapshot_readers import on_one_snapshot, split_across
from labtrack.store.tracking import TrackingStore


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[TrackingStore]:
    st = TrackingStore(f"sqlite:///{tmp_path / 'mlruns.db'}")
    yield st
    st.close()


def _runs(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(s.runs)).scalar_one())


def _commit_while_others_begin(store: TrackingStore, first: Connection, write: Callable[[], None]) -> list[int]:
    """Calls ``write`` (a commit) when a reader connection other than ``first`` begins, once;
    returns a list that holds 1 once it has."""
    done: list[int] = []

    def on_begin(conn: Connection) -> None:
        if conn is not first and not done:
            done.append(1)
            write()

    event.listen(store.engines.reader, "begin", on_begin)
    return done


def test_connections_that_begin_with_no_commit_between_share_one_snapshot(sqlite_store: TrackingStore) -> None:
    exp = sqlite_store.create_experiment("snap")
    sqlite_store.create_run(exp)
    with sqlite_store.engines.reader.connect() as conn, on_one_snapshot(conn, 3) as conns:
        assert len(conns) == 3 and conns[0] is conn
        sqlite_store.create_run(exp)  # after they began: none of them sees it
        assert [_runs(c) for c in conns] == [1, 1, 1]
    with sqlite_store.engines.reader.connect() as conn:
        assert _runs(conn) == 2


def test_a_commit_while_the_connections_begin_leaves_the_first_alone(sqlite_store: TrackingStore) -> None:
    exp = sqlite_store.create_experiment("snap")
    sqlite_store.create_run(exp)
    with sqlite_store.engines.reader.connect() as conn:
        done = _commit_while_others_begin(sqlite_store, conn, lambda: sqlite_store.create_run(exp) and None)
        with on_one_snapshot(conn, 2) as conns:
            assert done and conns == [conn]  # the second connection's snapshot has the new run
            assert _runs(conn) == 1


def test_one_split_read_at_a_time_and_none_on_a_transaction_begun(sqlite_store: TrackingStore) -> None:
    reader = sqlite_store.engines.reader
    with reader.connect() as a, on_one_snapshot(a, 2) as split:
        assert len(split) == 2
        with reader.connect() as b, on_one_snapshot(b, 2) as other:
            assert other == [b]  # its extra connection could wait on this one's
    with reader.connect() as c:
        _runs(c)  # a transaction whose snapshot predates any other connection's
        with on_one_snapshot(c, 2) as alone:
            assert alone == [c]
    with reader.connect() as d, on_one_snapshot(d, 2) as again:
        assert len(again) == 2  # the first split read let go


def test_an_engine_that_reads_outside_transactions_is_not_split(sqlite_store: TrackingStore, tmp_path: Path) -> None:
    """pysqlite's own transaction handling runs a SELECT outside any transaction: each read its
    own snapshot, nothing to share (labtrack's engines BEGIN themselves)."""
    plain = create_engine(f"sqlite:///{tmp_path / 'mlruns.db'}")
    try:
        with plain.connect() as conn, on_one_snapshot(conn, 2) as conns:
            assert conns == [conn]
    finally:
        plain.dispose()


def test_split_parts_run_on_threads_of_their_own_and_all_end_before_an_error() -> None:
    seen: dict[int, int] = {}
    ended = threading.Event()

    def part(i: int, conn: Any) -> int:
        seen[i] = threading.get_ident()
        if i == 0:
            raise ValueError("part 0 failed")
        ended.wait(0.2)
        return i

    with pytest.raises(ValueError):
        split_across([None, None, None], part)  # type: ignore[list-item]
    assert len(seen) == 3 and len(set(seen.values())) == 3 and seen[0] == threading.get_ident()
    assert split_across(["a", "b"], lambda i, c: (i, c)) == [(0, "a"), (1, "b")]  # type: ignore[arg-type]


def _log(store: TrackingStore, exp: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        run_id = store.create_run(exp).info.run_id
        store.log_batch(run_id, metrics=[Metric("loss", float(i % 7) + 0.25, 0, 0), Metric("acc", i / n, 0, 0)],
                        params=[("opt", ("adam", "sgd", "rms")[i % 3])] if i % 5 else [])
        ids.append(run_id)
    return ids


def _groups(store: TrackingStore, exp: str, *, split: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(rt, "SPLIT_MIN_RUNS", 1 if split else 2**62)
    q = rt.TableQuery([int(exp)], group="params.opt")
    return store.read(lambda conn: rt.groups(conn, q, ["loss", "acc", "none"]))


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Equal groups, counts, n, min and max; mean and std to the last few bits (sums add up in
    another order)."""
    assert [(g["value"], g["count"], list(g["metrics"])) for g in a["groups"]] == \
        [(g["value"], g["count"], list(g["metrics"])) for g in b["groups"]]
    for ga, gb in zip(a["groups"], b["groups"]):
        for k, ma in ga["metrics"].items():
            mb = gb["metrics"][k]
            assert (ma["n"], ma["min"], ma["max"]) == (mb["n"], mb["min"], mb["max"])
            assert ma["mean"] == pytest.approx(mb["mean"], rel=1e-12)
            assert ma["std"] == pytest.approx(mb["std"], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("parts", [2, 3, 4])
def test_a_split_group_by_gives_the_single_connection_answer(sqlite_store: TrackingStore, parts: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    exp = sqlite_store.create_experiment("split")
    ids = _log(sqlite_store, exp, 60)
    assert min(ids) < "4" and max(ids) >= "c"  # every part has runs (random ids: 60 runs)
    monkeypatch.setattr(rt, "cores", lambda: parts)
    single = _groups(sqlite_store, exp, split=False, monkeypatch=monkeypatch)
    split = _groups(sqlite_store, exp, split=True, monkeypatch=monkeypatch)
    _same(split, single)
    assert sum(g["count"] for g in split["groups"]) == 60


def test_a_write_landing_while_the_parts_begin_cannot_mix_snapshots(sqlite_store: TrackingStore,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Both halves of the runs (by id) change in one commit that lands after the first part's
    snapshot and before the second's: the answer is the one from before it, not half of each."""
    exp = sqlite_store.create_experiment("race")
    ids = _log(sqlite_store, exp, 30)
    low, high = min(ids), max(ids)
    assert low < "8" <= high
    monkeypatch.setattr(rt, "cores", lambda: 2)
    before = _groups(sqlite_store, exp, split=False, monkeypatch=monkeypatch)

    def write() -> None:
        def op(conn: Connection) -> None:
            for run_id in (low, high):
                sqlite_store.log_batch_op(run_id, metrics=[Metric("loss", 1e6, 1, 1)])(conn)
        sqlite_store.write(op)

    first: list[Connection] = []
    real = rt.on_one_snapshot

    def spy(conn: Connection, n: int) -> Any:
        first.append(conn)
        _commit_while_others_begin(sqlite_store, conn, write)
        return real(conn, n)

    monkeypatch.setattr(rt, "on_one_snapshot", spy)
    during = _groups(sqlite_store, exp, split=True, monkeypatch=monkeypatch)
    assert first
    _same(during, before)
    after = _groups(sqlite_store, exp, split=False, monkeypatch=monkeypatch)
    assert max(g["metrics"]["loss"]["max"] for g in after["groups"]) == 1e6
