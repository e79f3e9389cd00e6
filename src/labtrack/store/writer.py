"""The single writer: every write of every request goes through one thread.

Writes queue up while the previous group commits; the thread then takes all
that are waiting (up to ``max_group``) and applies them in ONE transaction,
each inside its own SAVEPOINT.  A write that fails (bad input) rolls back to
its savepoint alone, so nothing of it is half-written and its neighbours still
commit.  One commit per group is what makes many concurrent writers cheap on
SQLite: no lock contention, one fsync for many requests.

A write called from the writer thread itself (a request handed whole to the
writer with ``submit``, whose store call then writes) runs at once on the
group's connection, inside its caller's savepoint: a request costs one hop to
this thread and one back, not a hop to a worker and another to here.

On SQLite, a small write that finds the writer idle (no group being applied,
none waiting) is applied by the event loop itself (``apply_now_from_loop``),
on the same connection, under the lock the writer thread takes for each
group: one writer still, but an idle server answers a lone ``log_metric``
without the two thread hand-offs, a fifth of its latency.  Writes that come
while the writer is busy queue up and commit in groups as before.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from labtrack.errors import LabtrackError, TransientError
from labtrack.thread_names import name_os_thread

log = logging.getLogger("labtrack.store")
T = TypeVar("T")

_STOP = object()


class Writer:
    """Runs write operations ``fn(conn)`` serially, committing them in groups."""

    def __init__(self, engine: Engine, *, max_group: int = 512) -> None:
        self._engine = engine
        self._max_group = max_group
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="labtrack-writer", daemon=True)
        self._stopped = False
        self._lock = threading.Lock()  # a write queued behind _STOP would never be answered
        # (thread id, connection) while a group is applied: a write called from
        # inside it joins it (see ``run``).
        self._applying: tuple[int, Connection] | None = None
        # Held while a group is applied, by the writer thread or the event loop;
        # ``_connection`` is the one connection both use.
        self._busy = threading.Lock()
        self._connection: Connection | None = None
        # A network database's round trips would stall the event loop.
        self._inline = engine.dialect.name == "sqlite"
        self.commits = 0
        # Called with each committed group's size (the server's Prometheus metrics); None when off.
        self.on_group: Callable[[int], None] | None = None
        self._thread.start()

    def submit(self, fn: Callable[[Connection], T]) -> Future[T]:
        """Queue ``fn``; the future resolves once its group has committed."""
        fut: Future[T] = Future()
        with self._lock:
            if self._stopped:
                fut.set_exception(TransientError("the server is shutting down"))
                return fut
            self._queue.put((fn, fut))
        return fut

    def submit_from_loop(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        """``submit`` for the event loop's thread: an asyncio future, answered on that loop.

        One ``call_soon_threadsafe`` per write, without a concurrent Future and
        its lock and chained callbacks in between (every logging request comes
        this way).
        """
        loop = asyncio.get_running_loop()
        reply = _LoopReply(loop, loop.create_future())
        with self._lock:
            if self._stopped:
                reply.future.set_exception(TransientError("the server is shutting down"))
                return reply.future
            self._queue.put((fn, reply))
        return reply.future

    def run(self, fn: Callable[[Connection], T]) -> T:
        """Queue ``fn`` and wait for its commit.

        On the writer thread (inside an operation of a group) ``fn`` runs at
        once, as part of that operation: it commits, or rolls back, with it.
        """
        applying = self._applying
        if applying is not None and applying[0] == threading.get_ident():
            return fn(applying[1])
        return self.submit(fn).result()

    def apply_now_from_loop(self, fn: Callable[[Connection], T],
                            before: Callable[[Connection], None] | None = None) -> asyncio.Future[T] | None:
        """Apply ``fn`` at once on the event loop's thread if the writer is idle, else None.

        The returned future is already answered.  Only for small writes (a
        request of a few KB): the loop serves nothing else meanwhile.  ``before``
        (which must not raise) gets the connection first, outside any transaction,
        with the writer held: a read there sees what ``fn``'s transaction will begin from,
        unless another process commits in between (server/early_answer.py).
        """
        if not self._inline or not self._busy.acquire(blocking=False):
            return None
        try:
            if self._stopped or self._connection is None or not self._queue.empty():
                return None
            if before is not None:
                before(self._connection)
            reply = _Immediate(asyncio.get_running_loop().create_future())
            self._connection = self._apply(self._connection, [(fn, reply)])
            return reply.future
        finally:
            self._busy.release()

    def queue_depth(self) -> int:
        """Writes waiting for the next group (approximate: the queue moves while we look)."""
        return self._queue.qsize()

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        name_os_thread()
        with self._busy:
            self._connection = self._engine.connect()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                group = [item]
                stop = False
                while len(group) < self._max_group:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    group.append(nxt)
                with self._busy:
                    assert self._connection is not None
                    self._connection = self._apply(self._connection, group)
                if stop:
                    return
        finally:
            with self._busy:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

    def _apply(self, conn: Connection, group: list[tuple[Callable[[Connection], Any], Future[Any]]]) -> Connection:
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        # A write alone in its group needs no savepoint: if it fails, the whole
        # transaction rolls back, which is the same.  (SAVEPOINT and RELEASE are
        # compiled afresh each time and cost as much as the write itself.)
        alone = len(group) == 1
        self._applying = (threading.get_ident(), conn)
        try:
            with conn.begin() as transaction:
                for fn, fut in group:
                    if not fut.set_running_or_notify_cancel():
                        continue
                    savepoint = None if alone else conn.begin_nested()
                    try:
                        result = fn(conn)
                    except BaseException as e:  # noqa: BLE001 - delivered to the caller
                        (transaction if savepoint is None else savepoint).rollback()
                        outcomes.append((fut, False, e))
                    else:
                        if savepoint is not None:
                            savepoint.commit()
                        outcomes.append((fut, True, result))
        except Exception as e:  # the commit itself failed: nothing of the group is stored
            log.error("group commit failed: %s", e)
            err = TransientError(f"database write failed: {e}")
            for fn, fut in group:
                if not fut.done():
                    if fut.running():
                        fut.set_exception(err)
            conn.close()
            return self._engine.connect()
        finally:
            self._applying = None
        self.commits += 1
        if self.on_group is not None:
            self.on_group(len(group))
        for fut, ok, value in outcomes:
            if ok:
                fut.set_result(value)
            else:
                if not isinstance(value, LabtrackError):
                    log.exception("write failed", exc_info=value)
                fut.set_exception(value)
        return conn


class _LoopReply:
    """The part of a concurrent Future that ``_apply`` uses, answering an asyncio future on its loop."""

    __slots__ = ("loop", "future", "_done")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.loop = loop
        self.future = future
        self._done = False

    def set_running_or_notify_cancel(self) -> bool:
        return not self.future.cancelled()  # a stale answer only costs a write that nobody awaits

    def running(self) -> bool:
        return not self._done

    def done(self) -> bool:
        return self._done

    def set_result(self, value: Any) -> None:
        self._answer(True, value)

    def set_exception(self, exc: BaseException) -> None:
        self._answer(False, exc)

    def _answer(self, ok: bool, value: Any) -> None:
        self._done = True
        try:
            self.loop.call_soon_threadsafe(_deliver, self.future, ok, value)
        except RuntimeError:  # the loop is closed: nobody waits for the answer any more
            pass


class _Immediate(_LoopReply):
    """A ``_LoopReply`` for a write applied on the loop's own thread: answered directly."""

    __slots__ = ()

    def __init__(self, future: asyncio.Future[Any]) -> None:
        super().__init__(future.get_loop(), future)

    def _answer(self, ok: bool, value: Any) -> None:
        self._done = True
        _deliver(self.future, ok, value)


def _deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if not future.done():
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
