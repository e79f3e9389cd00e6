"""Whole-state snapshots: every row of every table, and every file under a folder.

A rejected request must leave both exactly as they were; comparing a snapshot
taken before with one taken after catches half-written batches, stray files and
writes that escaped the artifact root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, select

# Files of the server itself that change while it runs (journal, lock record, log).
_SERVER_FILES = ("mlruns.db", "mlruns.db-wal", "mlruns.db-shm", "mlruns.db-journal", "mlruns.db.lock",
                 "mlruns/.labtrack/mlruns.db.lock")


def _journal(rel: str) -> bool:
    """The server's journal of answered writes (store/journal.py), and the spool folder that its
    first one makes: the server's own, like the database's WAL."""
    folder, _, name = rel.rpartition("/")
    return rel == _SPOOL or (folder == _SPOOL and name.startswith(".") and name.endswith(".jsonl"))


_SPOOL = "mlruns/.labtrack/spool"


class DatabaseSnapshotter:
    """Reads every table of a database (as the test process, never through the server)."""

    def __init__(self, url: str) -> None:
        # Each snapshot is its own transaction (ended when the connection goes back
        # to the pool), so it sees the latest commit.
        self.engine: Engine = create_engine(url, pool_size=1)
        self.metadata = MetaData()
        self.metadata.reflect(self.engine)
        if "runs" not in self.metadata.tables or "alembic_version" not in self.metadata.tables:
            raise AssertionError(f"unexpected schema: {sorted(self.metadata.tables)}")

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for name, table in sorted(self.metadata.tables.items()):
                rows = [tuple(r) for r in conn.execute(select(table))]
                out[name] = sorted(rows, key=repr)
        return out

    def count(self, table: str) -> int:
        return len(self.snapshot()[table])

    def close(self) -> None:
        self.engine.dispose()


def file_snapshot(folder: Path) -> dict[str, tuple[str, Any]]:
    """Every entry under ``folder``: files with their bytes, links with their targets, folders."""
    out: dict[str, tuple[str, Any]] = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if rel in _SERVER_FILES or (Path(dirpath) == folder and name.startswith("server-")) or _journal(rel):
                continue
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir", None)
            else:
                out[rel] = ("file", path.read_bytes())
    return out


@dataclass
class StateSnapshot:
    db: dict[str, list[tuple[Any, ...]]]
    files: dict[str, tuple[str, Any]]


def diff_summary(before: StateSnapshot, after: StateSnapshot) -> str:
    """A short human description of what changed, for assertion messages."""
    lines = []
    for table in sorted(set(before.db) | set(after.db)):
        b, a = before.db.get(table, []), after.db.get(table, [])
        if b != a:
            added = [r for r in a if r not in b][:3]
            removed = [r for r in b if r not in a][:3]
            lines.append(f"table {table}: {len(b)} -> {len(a)} rows; added {added!r:.300} removed {removed!r:.300}")
    for path in sorted(set(before.files) | set(after.files)):
        if before.files.get(path) != after.files.get(path):
            lines.append(f"file {path}: {str(before.files.get(path))[:80]} -> {str(after.files.get(path))[:80]}")
    return "\n".join(lines)
