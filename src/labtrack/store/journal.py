"""The server's journal: writes it answered before storing them.

An idle server answers a plain metric write (``log_metric``, a ``log_batch`` of
metrics only) as soon as the write is known to succeed and is safe on disk, and
stores it right after, while the client is already busy with its next call
(server/early_answer.py).  Safe on disk means appended here first: one
``write()`` of one line, the same durability as the SQLite commit it stands in
for (WAL with ``synchronous=NORMAL`` does not fsync a commit either; the server
answers early only in that mode).

The journal is a spool file (spool.py) of the server's own, hidden by a
leading dot while the server lives, so no ingest reads it meanwhile.  Every
``SAVE_EVERY`` records, a write is stored with the journal's progress
(``spool_progress``, under the spool name, in the same transaction).  What is
not applied is applied by the spool ingest from that progress: after a crash,
by the next server as it starts (``SpoolIngest.recover_journals``), and at once if a
store after an answer fails (``hand_over``).  The few records after the last
save are applied again, which changes nothing (see ``progress``).  A fully applied journal is removed when it grows past
``max_bytes`` (a new one starts) and when the server stops.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete

from labtrack import file_modes, spool
from labtrack.store import schema as s
from labtrack.store.ingest import progress_op

log = logging.getLogger("labtrack.store")

MAX_BYTES = 64 << 20
STAT_AFTER_S = 60.0
SAVE_EVERY = 256  # records between saves of a journal's progress


class Entry(NamedTuple):
    """One appended record: its journal's spool id, where it ends, and its seq."""

    sid: str
    end: int
    seq: int


class Journal:
    """The server's write-ahead file for answered writes.  Used from the event loop's thread only."""

    def __init__(self, folder: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.path: Path | None = None  # the hidden file being written
        self._fd: int | None = None
        self._ino = 0
        self._written_at = 0.0  # monotonic time of the last append
        self._size = 0
        self._seq = 0
        self._applied = 0  # the end of the last record stored
        self._forget: list[str] = []  # spool ids of removed journals whose progress rows go next
        self.closed = False

    @property
    def sid(self) -> str:
        """The spool name the progress is saved under (the file's name once revealed)."""
        assert self.path is not None
        return self.path.name[len(spool.JOURNAL_PREFIX):]

    def append(self, op: str, fields: bytes) -> Entry:
        """Append one ``op`` record of ``fields``, a JSON object's text on one line (a request's
        body as it came, say; ``spool.record_line``).  Raises OSError, and the write is then not
        answered early."""
        if op not in spool.OPS:
            raise ValueError(f"not a spool operation: {op!r}")
        if self.closed:
            raise OSError("the journal is closed")
        fd = self._open()
        self._seq += 1
        line = spool.record_line(op, self._seq, fields)
        view = memoryview(line)
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except OSError:
            self.hand_over()  # a torn line ends it: the next record starts a new journal
            raise
        self._size += len(line)
        return Entry(self.sid, self._size, self._seq)

    def progress(self, entry: Entry) -> Callable[[Connection], None] | None:
        """The write that saves ``entry`` as applied, for the transaction that stores it, every
        ``SAVE_EVERY`` records (and the progress of removed journals forgotten); None between.

        Saving less often costs nothing but a few records applied twice after a crash or a
        hand-over: a journal holds only metric points, and storing a point again changes
        nothing (the same point is one point; latest values and chart summaries are maxima
        and minima).  Saving every record was a statement a write, a tenth of its server CPU."""
        if entry.seq % SAVE_EVERY and not self._forget:
            return None
        save, forget = progress_op(entry.sid, entry.end, entry.seq), self._forgetting()
        if forget is None:
            return save

        def op(conn: Connection) -> None:
            save(conn)
            forget(conn)
        return op

    def stored(self, entry: Entry) -> None:
        """``entry`` committed: a journal grown past ``max_bytes`` with nothing left to apply is removed."""
        if entry.sid != (self.sid if self.path is not None else None):
            return
        self._applied = entry.end
        if self._size >= self.max_bytes and self._applied == self._size:
            self._remove()

    def hand_over(self) -> Path | None:
        """The store after an answer failed: the journal goes to the spool ingest, which applies
        what is not applied from the saved progress (retried as the ingest retries, or set aside
        in its ``.rejected`` file); the next append starts a new journal.  Returns its spool path."""
        if self._fd is None or self.path is None:
            return None
        visible = self.path.with_name(self.sid)
        self._seq += 1
        try:
            os.write(self._fd, spool.record_line(spool.CLOSE_OP, self._seq))
        except OSError:
            pass  # unclosed, it is retired once this server is gone
        self._close_fd()
        try:
            os.replace(self.path, visible)
        except OSError as e:  # still hidden: revealed once this server is gone
            log.error("journal %s: could not hand it to the spool ingest: %s", self.path.name, e)
        self.path = None
        return visible

    def close(self) -> Callable[[Connection], Any] | None:
        """At the server's stop: a fully applied journal is removed; the returned write forgets its
        progress (and that of earlier ones).  One with records not applied is handed over."""
        self.closed = True
        if self.path is not None and self._applied < self._size:
            self.hand_over()
        elif self.path is not None:
            self._remove()
        return self._forgetting()

    def _forgetting(self) -> Callable[[Connection], Any] | None:
        """The write that deletes the progress of the journals removed since the last one."""
        forget, self._forget = self._forget, []
        if not forget:
            return None
        return lambda conn: conn.execute(delete(s.spool_progress).where(s.spool_progress.c.spool_id.in_(forget)))

    def _open(self) -> int:
        now = time.monotonic()
        last, self._written_at = self._written_at, now
        # Only a journal silent for long can have been revealed and retired (IDLE_RETIRE_S):
        # a stat then, not on every append.
        if self._fd is not None and (now - last < STAT_AFTER_S or spool.still_there(self.path, self._ino)):
            return self._fd
        if self._fd is not None:
            self._close_fd()  # revealed and retired while idle: its records are all applied
        file_modes.make_folder(self.folder)
        visible = spool.new_spool_path(self.folder)
        self.path = visible.with_name(spool.JOURNAL_PREFIX + visible.name)
        self._fd, self._ino = spool.create_append_only(self.path)
        self._size = self._applied = self._seq = 0
        return self._fd

    def _remove(self) -> None:
        assert self.path is not None
        sid = self.sid
        self._close_fd()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._forget.append(sid)
        self.path = None

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None


__all__ = ["Entry", "Journal", "MAX_BYTES", "SAVE_EVERY"]
