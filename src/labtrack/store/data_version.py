"""Whether a SQLite database has changed: a number that moves with every commit, by anyone.

SQLite's ``PRAGMA data_version`` on a connection changes whenever another
connection, in this process or any other, has committed to the file (and on a
checkpoint, which is harmless: a change seen where there was none).  One
connection of our own that never writes asks it, in a few microseconds.
Unlike the store writer's commit count, it also sees what another process
(a second server, ``labtrack gc``, a script on the file) commits.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class DataVersion:
    """``current()``: equal on two calls only if nothing was committed to ``path`` in between."""

    def __init__(self, path: Path) -> None:
        # Autocommit: each PRAGMA takes a fresh look at the file.
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()

    def current(self) -> int:
        with self._lock:
            # fetchall: the statement runs to its end, so no read transaction stays open
            # (one would hold back the WAL's checkpoints).
            return int(self._conn.execute("PRAGMA data_version").fetchall()[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
