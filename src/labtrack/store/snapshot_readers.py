"""Several SQLite reader connections on one snapshot, so that one long read can be split
across threads (Python's sqlite3 lets go of the GIL while SQLite steps a statement).

Each connection fixes its snapshot at the first read of its transaction (WAL), or holds its
shared lock from then on (rollback journal), so connections that begin one after another see
the same data only if nothing was committed in between.  ``PRAGMA data_version`` tells: on one
connection it changes between two of its transactions exactly when another connection (of any
process) committed in between.  The last connection reads it once before any of them begins,
and again as the first read of its own transaction, after all the others began: equal, and
every snapshot is the one the database had at the first reading.

At most one split read runs at a time in a process (the others read on their one connection):
a split read takes its extra connections from the readers' pool while it holds one, and two
doing so at once could each wait for the other's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from typing import TypeVar

from sqlalchemy import Connection, text

from labtrack.thread_names import name_os_thread

T = TypeVar("T")
MAX_SPLIT = 4  # connections (and threads) of one split read
_SPLITTING = threading.Lock()


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _data_version(conn: Connection) -> int:
    return int(conn.execute(text("PRAGMA data_version")).scalar_one())


@contextmanager
def on_one_snapshot(conn: Connection, n: int) -> Iterator[list[Connection]]:
    """``conn`` and up to ``n - 1`` (at most ``MAX_SPLIT - 1``) more connections of its engine,
    all in read transactions on one snapshot of a SQLite database; ``[conn]`` alone when that cannot be had (another
    dialect, ``conn`` already in a transaction whose snapshot may be older, another split read
    under way, or a commit landed while the transactions began).  ``conn`` stays in its
    transaction; the others are closed on leaving.
    """
    if n < 2 or conn.dialect.name != "sqlite" or conn.in_transaction() or not _SPLITTING.acquire(blocking=False):
        yield [conn]
        return
    try:
        with ExitStack() as opened:
            extra = [opened.enter_context(conn.engine.connect()) for _ in range(min(n, MAX_SPLIT) - 1)]
            # Outside a transaction (the readers' sqlite3 connections leave transactions to
            # SQLAlchemy's BEGIN): this read ends at once, and the next one sees any commit since.
            raw = extra[-1].connection.driver_connection
            before = int(raw.execute("PRAGMA data_version").fetchone()[0])
            for c in (conn, *extra):  # each: BEGIN, then a read that fixes its snapshot
                now = _data_version(c)  # the last one's: read after every other snapshot was fixed
            # (an engine that leaves reads outside transactions, unlike open_engines's, has no
            # snapshot to share)
            begun = all(c.connection.driver_connection.in_transaction for c in (conn, *extra))
            if now != before or not begun:
                opened.close()  # back to the pool at once
                extra = []
            yield [conn, *extra]
    finally:
        _SPLITTING.release()


def split_across(conns: Sequence[Connection], part: Callable[[int, Connection], T]) -> list[T]:
    """``[part(i, conns[i]) ...]``, the first on this thread and each other on a thread of its
    own; all have ended when this returns or raises."""
    if len(conns) == 1:
        return [part(0, conns[0])]
    pool = _threads()
    futures = [pool.submit(part, i, c) for i, c in enumerate(conns) if i]
    try:
        first = part(0, conns[0])
    finally:
        wait(futures)
    return [first, *(f.result() for f in futures)]


_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    """The threads of split reads (one split read at a time: ``on_one_snapshot``)."""
    global _pool
    with _made:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_SPLIT - 1, "labtrack-split-read", name_os_thread)
        return _pool


_made = threading.Lock()

__all__ = ["MAX_SPLIT", "cores", "on_one_snapshot", "split_across"]
