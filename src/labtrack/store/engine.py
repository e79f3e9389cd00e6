"""Engines for one database: a single writer connection and pooled readers.

SQLite gets WAL only on a local disk (WAL needs shared memory on one host and
breaks on NFS, Lustre and GPFS, where HPC home folders live); there it keeps
the rollback journal with full sync.  The schema is created or upgraded under
a lock so that many processes starting at once on a new folder never race.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from labtrack import ownership

NETWORK_FILESYSTEMS = {
    "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb", "smb2", "smb3", "smbfs", "ceph",
    "beegfs", "glusterfs", "fuse.glusterfs", "fuse.sshfs", "9p", "afs", "panfs", "wekafs",
    "fuse.gcsfuse", "fuse.s3fs", "fuse.beegfs",
}


@dataclass
class Engines:
    """The writer engine (one connection, used by one thread) and the readers' engine."""

    url: str
    writer: Engine
    reader: Engine
    sqlite_path: Path | None
    journal_mode: str | None

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    def dispose(self) -> None:
        self.writer.dispose()
        self.reader.dispose()


def filesystem_type(path: Path) -> str:
    """The filesystem type of the mount that holds ``path`` (Linux /proc/mounts)."""
    try:
        target = os.path.realpath(path)
        best, fstype = "", ""
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, fstype = mount, parts[2]
        return fstype
    except OSError:
        return ""


def is_network_filesystem(path: Path) -> bool:
    if os.environ.get("LABTRACK_ASSUME_NETWORK_FS") == "1":
        return True
    fstype = filesystem_type(path)
    return fstype in NETWORK_FILESYSTEMS or fstype.startswith("nfs")


def sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite URL (None for other backends or in-memory)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    if not u.database or u.database == ":memory:":
        return None
    return Path(u.database).expanduser().resolve()


def normalize_url(url: str) -> str:
    """Make a sqlite URL absolute so the record, the server and clients agree."""
    path = sqlite_file(url)
    if path is None:
        if url.startswith("postgresql://"):
            # psycopg 3 is the driver we ship with; SQLAlchemy defaults to psycopg2.
            return "postgresql+psycopg://" + url[len("postgresql://"):]
        return url
    return f"sqlite:///{path}"


def _sqlite_pragmas(engine: Engine, *, wal: bool, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # Take transaction control from the sqlite3 module so BEGIN IMMEDIATE
        # and SAVEPOINTs mean what they say.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 60000")
        cur.execute("PRAGMA foreign_keys = ON")
        if wal:
            cur.execute("PRAGMA synchronous = NORMAL")
        else:
            cur.execute("PRAGMA synchronous = FULL")
        # A small page cache (SQLite's default, 2 MB): the file sits in the OS's
        # cache anyway, and a 32 MB one measured no faster (100k-point history
        # reads, 1,000-point batches) while it stayed in the idle server's RSS,
        # once per pooled connection.
        cur.execute("PRAGMA cache_size = -2000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        # On the DBAPI connection: every request begins a transaction, and
        # exec_driver_sql's execution machinery costs more than SQLite's BEGIN.
        conn.connection.driver_connection.execute(begin)


# Database drivers that an extra of labtrack brings: driver module -> extra.
_DRIVER_EXTRAS = {"psycopg": "postgres", "psycopg2": "postgres"}


def _require_driver(url: str) -> None:
    """A missing driver is one line naming the extra, not SQLAlchemy's traceback."""
    from sqlalchemy.engine import make_url

    from labtrack.errors import require_extra

    u = make_url(url)
    driver = u.get_driver_name()
    if driver in _DRIVER_EXTRAS:
        require_extra(driver, _DRIVER_EXTRAS[driver], f"a {u.get_backend_name()}:// database")


def open_engines(url: str, *, readers: int = 8) -> Engines:
    """Open the writer and reader engines and make sure the schema is current."""
    url = normalize_url(url)
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        wal = not is_network_filesystem(path.parent)
        writer = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0)
        _sqlite_pragmas(writer, wal=wal, begin="BEGIN IMMEDIATE")
        reader = create_engine(url, poolclass=QueuePool, pool_size=readers, max_overflow=4)
        _sqlite_pragmas(reader, wal=wal, begin="BEGIN")
        with ownership.schema_lock(path):
            journal = _set_journal_mode(writer, "wal" if wal else "delete")
            from labtrack.store.migrate import ensure_schema

            ensure_schema(writer)
        return Engines(url, writer, reader, path, journal)
    _require_driver(url)
    writer = create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)
    reader = create_engine(url, pool_size=readers, max_overflow=4, pool_pre_ping=True)
    from labtrack.store.migrate import ensure_schema

    ensure_schema(writer)
    return Engines(url, writer, reader, None, None)


def _set_journal_mode(engine: Engine, mode: str) -> str:
    # journal_mode cannot change inside a transaction: use a raw connection.
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"PRAGMA journal_mode = {mode}")
        row = cur.fetchone()
        cur.close()
        return str(row[0]) if row else mode
    finally:
        raw.close()


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


__all__ = ["Engines", "filesystem_type", "is_network_filesystem", "normalize_url",
           "open_engines", "ping", "sqlite_file"]
