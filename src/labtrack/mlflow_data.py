"""MLflow data met by accident: recognise it without changing a byte, and name the layout.

A leaf module shared by the server, ``labtrack sync``, the client's discovery
and the JupyterLab launcher: each of them may find a folder that holds MLflow
data (an MLflow-made ``mlruns.db``, MLflow 3.7+'s ``mlflow.db``, or a
``./mlruns`` file store) and must say so in one line, with the command that
imports it, instead of migrating the file (an alembic traceback), switching
its journal to WAL or leaving a lock beside it.

Reading an SQLite file without touching it: ``open_readonly`` uses a
read-only URI, which never creates a journal.  A database in WAL mode is the
exception: opening it read-only still creates ``-wal`` and ``-shm`` files when
they are missing, so a WAL file without a ``-wal`` beside it (closed cleanly,
nobody writing) is opened ``immutable``, and only a live one (its ``-wal`` and
``-shm`` exist, kept by the writer) is read through them.

The layout (documented in the README): a folder whose data is MLflow's gets
labtrack's own database as ``labtrack.db`` beside it, with labtrack's
artifacts in ``labtrack/``; ``labtrack import`` writes there, and every part
of labtrack that looks for a folder's database takes ``labtrack.db`` in such
a folder.  The MLflow files are never written.

MLflow's schema revisions, in migration order, with the first MLflow release
that shipped each one (from the migration's creation date and the release
dates on PyPI; ``tests/unit/test_mlflow_data.py`` checks the list against
the installed mlflow's migration scripts).
"""

from __future__ import annotations

import os
import re
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from labtrack.errors import MlflowDataFound

LABTRACK_DB = "labtrack.db"
DEFAULT_DB = "mlruns.db"
MLFLOW_DB = "mlflow.db"
FILE_STORE = "mlruns"

REVISIONS: tuple[tuple[str, str], ...] = (
    ("451aebb31d03", "1.0"), ("90e64c465722", "1.0"), ("181f10493468", "1.1"),
    ("df50e92ffc5e", "1.1"), ("7ac759974ad8", "1.2"), ("89d4b8295536", "1.3"),
    ("2b4d017a5e9b", "1.4"), ("cfd24bdc0731", "1.4"), ("0a8213491aaa", "1.6"),
    ("728d730b5ebd", "1.10"), ("27a6a02d2cf1", "1.10"), ("84291f40a231", "1.10"),
    ("a8c4a736bde6", "1.14"), ("39d1c3be5f05", "1.15"), ("c48cb773bb87", "1.16"),
    ("bd07f7e963c5", "1.25"), ("0c779009ac13", "1.28"), ("cc1f77228345", "1.28"),
    ("97727af70f4d", "1.29"), ("3500859a5d39", "2.3"), ("7f2a7d5fae7d", "2.3"),
    ("2d6e25af4d3e", "2.8"), ("acf3f17fdcc7", "2.8"), ("867495a8f9d4", "2.13"),
    ("5b0e9adcef9c", "2.14"), ("4465047574b1", "2.15"), ("f5a4f2784254", "2.17"),
    ("0584bdc529eb", "2.18"), ("400f98739977", "2.21"), ("6953534de441", "2.21"),
    ("bda7b8c39065", "3.2"), ("cbc13b556ace", "3.2"), ("770bee3ae1dd", "3.2"),
    ("a1b2c3d4e5f6", "3.2"), ("de4033877273", "3.2"), ("1a0cddfcaa16", "3.2"),
    ("534353b11cbc", "3.2"), ("71994744cf8e", "3.3"), ("3da73c924c2f", "3.3"),
    ("bf29a5ff90ea", "3.4"), ("1bd49d398cd23", "3.7"), ("b7c8d9e0f1a2", "3.7"),
    ("5d2d30f0abce", "3.8"), ("c9d4e5f6a7b8", "3.8"), ("2c33131f4dae", "3.8"),
    ("d3e4f5a6b7c8", "3.9"), ("d0e1f2a3b4c5", "3.9"), ("c8d9e0f1a2b3", "3.9"),
    ("1b5f0d9ad7c1", "3.9"), ("e1f2a3b4c5d6", "3.11"), ("76601a5f987d", "3.11"),
    ("c3d6457b6d8a", "3.11"), ("a5b4c3d2e1f0", "3.11"), ("ae8bbe7743c9", "3.11"),
    ("7d34483879f0", "3.12"), ("da6fb0208061", "3.12"), ("89d3d66ed43f", "3.13"),
    ("b7e4c1a90f23", "3.14"), ("a8b9c0d1e2f3", "3.14"), ("c1d2e3f4a5b6", "3.15"),
    ("c3d9e7f1a2b4", "3.15"), ("6f8d9c3b2a1e", "3.15"), ("1971f2d9a75b", "3.16"),
    ("17e22815139b", "3.16"), ("b7e2c1a4d9f3", "3.16"), ("75868b020152", "3.16"),
    ("dc11669786a5", "3.16"),
)
# Revision of MLflow's tables before its first migration (MLflow 0.9/1.0 created them
# without one); a database without ``alembic_version`` but with MLflow's runs table.
BASE = ""
_POSITION = {rev: i for i, (rev, _) in enumerate(REVISIONS)}
_LABTRACK_REVISION = re.compile(r"^\d{4}$")


def position(revision: str) -> int:
    """Where ``revision`` lies in MLflow's chain: -1 before the first migration; a
    revision newer than the list (a later MLflow) counts as the newest known."""
    if revision == BASE:
        return -1
    return _POSITION.get(revision, len(REVISIONS) - 1)


def at_least(revision: str, needed: str) -> bool:
    """Whether a database at ``revision`` has what migration ``needed`` added."""
    return position(revision) >= _POSITION[needed]


def mlflow_versions(revision: str) -> str:
    """The MLflow releases whose schema is ``revision``, e.g. ``"2.8-2.12"``."""
    if revision == BASE:
        return "0.9-1.0"
    if revision not in _POSITION:
        return f"newer than {REVISIONS[-1][1]}"
    i = _POSITION[revision]
    first = REVISIONS[i][1]
    later = [v for _, v in REVISIONS[i + 1:] if v != first]
    if not later:
        return f"{first} or later"
    major, minor = later[0].split(".")
    last = f"{major}.{int(minor) - 1}" if int(minor) > 0 else None
    if last is None or _version_key(last) <= _version_key(first):
        return first
    return f"{first}-{last}"


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@dataclass(frozen=True)
class MlflowFound:
    """MLflow data at ``path``: an SQLite database (with its schema revision) or a file store."""

    path: Path
    kind: str  # "sqlite" or "file_store"
    revision: str | None = None

    @property
    def versions(self) -> str:
        return mlflow_versions(self.revision or BASE) if self.kind == "sqlite" else ""

    def what(self) -> str:
        if self.kind == "file_store":
            return f"{self.path} is an MLflow file store (meta.yaml files)"
        rev = self.revision or "none"
        return f"{self.path} is an MLflow database (MLflow {self.versions}, schema {rev})"

    def import_command(self) -> str:
        return f"labtrack import {_shell_quote(str(self.path))}"

    def line(self) -> str:
        """The one line every part of labtrack says when it meets this data."""
        target = self.path.parent / LABTRACK_DB
        return (f"{self.what()}; labtrack leaves it unchanged. `{self.import_command()}` copies it "
                f"into {target}, which labtrack then serves")

    def error(self) -> MlflowDataFound:
        return MlflowDataFound(self.line(), path=str(self.path), revision=self.revision)


def _shell_quote(text: str) -> str:
    if re.fullmatch(r"[\w@%+=:,./-]+", text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


# -- reading an SQLite file without changing it ------------------------------------------

def sqlite_uri(path: str | os.PathLike) -> str:
    """The URI that reads ``path`` without writing a byte beside it (see the module doc)."""
    p = Path(path).resolve()
    quoted = urllib.parse.quote(str(p))
    if _wal_mode(p) and not (Path(f"{p}-wal").exists() and Path(f"{p}-shm").exists()):
        return f"file:{quoted}?immutable=1"
    return f"file:{quoted}?mode=ro"


def open_readonly(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection to an SQLite file that creates no file beside it."""
    conn = sqlite3.connect(sqlite_uri(path), uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only = 1")
    return conn


def _header(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(100)
    except OSError:
        return b""


def _wal_mode(path: Path) -> bool:
    head = _header(path)
    return len(head) >= 20 and head[18] == 2


def is_sqlite(path: str | os.PathLike) -> bool:
    return _header(Path(path)).startswith(b"SQLite format 3\0")


def inspect_sqlite(path: str | os.PathLike) -> MlflowFound | None:
    """``MlflowFound`` when ``path`` is an MLflow-made SQLite database, else None.

    A labtrack database (numbered revisions), an empty file, or any other file
    is None.  Nothing is written: see ``open_readonly``.
    """
    p = Path(path)
    if not p.is_file() or not is_sqlite(p):
        return None
    try:
        conn = open_readonly(p)
    except sqlite3.Error:
        return None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision: str | None = None
        if "alembic_version" in tables:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
        if revision is not None and _LABTRACK_REVISION.match(revision):
            return None
        if "spool_progress" in tables:  # a labtrack database, whatever its revision says
            return None
        if revision is None:
            cols = {r[1] for r in conn.execute("PRAGMA table_info(runs)")} if "runs" in tables else set()
            if not {"run_uuid", "source_type", "artifact_uri"} <= cols:
                return None
            revision = BASE
        return MlflowFound(p.resolve(), "sqlite", revision)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def is_file_store(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is an MLflow file store: experiments as ``<id>/meta.yaml``."""
    f = Path(folder)
    if not f.is_dir():
        return False
    try:
        names = os.listdir(f)
    except OSError:
        return False
    for name in names:
        if (name.isdigit() or name == ".trash") and (f / name / "meta.yaml").is_file():
            return True
    return (f / "models").is_dir() and any((f / "models").glob("*/meta.yaml"))


def find_in_folder(folder: str | os.PathLike) -> MlflowFound | None:
    """The MLflow data a folder holds: ``mlruns.db`` made by MLflow, ``mlflow.db``, or ``mlruns/``."""
    f = Path(folder)
    for name in (DEFAULT_DB, MLFLOW_DB):
        found = inspect_sqlite(f / name)
        if found is not None:
            return found
    if is_file_store(f / FILE_STORE):
        return MlflowFound((f / FILE_STORE).resolve(), "file_store")
    return None


def labtrack_database(folder: str | os.PathLike) -> Path:
    """labtrack's own database in a folder that holds MLflow data."""
    return Path(folder).resolve() / LABTRACK_DB


def artifacts_folder(db: str | os.PathLike) -> Path:
    """Artifacts beside a database, named after it: ``mlruns.db`` -> ``mlruns/``."""
    d = Path(db)
    return d.parent / d.stem


def folder_database(folder: str | os.PathLike) -> Path:
    """The database labtrack uses for a folder: ``mlruns.db``, unless the folder holds MLflow
    data and no labtrack ``mlruns.db``: then ``labtrack.db`` (made by ``labtrack import``)."""
    f = Path(folder).resolve()
    ours = f / DEFAULT_DB
    if ours.is_file() and inspect_sqlite(ours) is None:
        return ours
    return labtrack_database(f) if find_in_folder(f) is not None else ours


def resolve_database(db: str | os.PathLike) -> Path:
    """The database labtrack uses when asked for ``db`` (a folder's default ``mlruns.db``).

    ``db`` itself, unless it is MLflow's or missing in a folder of MLflow data:
    then ``labtrack.db`` beside it once it exists (``labtrack import`` made it),
    and ``MlflowDataFound`` (one line naming the import command) before that.
    """
    path = Path(db).resolve()
    found = inspect_sqlite(path)
    if found is None and path.exists():
        return path
    if found is None:
        found = find_in_folder(path.parent)
        if found is None:
            return path
    ours = labtrack_database(path.parent)
    if ours.is_file() and inspect_sqlite(ours) is None:
        return ours
    raise found.error()


__all__ = ["BASE", "DEFAULT_DB", "FILE_STORE", "LABTRACK_DB", "MLFLOW_DB", "REVISIONS", "MlflowFound",
           "artifacts_folder", "at_least", "find_in_folder", "folder_database", "inspect_sqlite", "is_file_store", "is_sqlite",
           "labtrack_database", "mlflow_versions", "open_readonly", "position", "resolve_database",
           "sqlite_uri"]
