"""The ownership record of a SQLite database: who serves it, and where.

``mlruns/.labtrack/mlruns.db.lock`` for ``mlruns.db`` (``<stem>/.labtrack/<name>.lock``
beside any database, the private folder that also holds the spool) holds a JSON record (host, pid, url, unix socket, token) and two
POSIX byte-range locks: one held by the owning server for its whole life, one
held briefly while the schema is created or upgraded.  POSIX (fcntl) locks
work on NFS and Lustre, unlike ``flock`` on some kernels, and are released by
the kernel when the process dies, so a crashed owner never blocks the next.

A leaf module: the server claims a record, the client reads one to find the
running server (the client never opens the database).  The file is 0600
because it carries the server's token.

Versions before 0.3 kept the record beside the database (``mlruns.db.lock``, a file
users saw in Jupyter's file browser).  A server of such a version may still run, so
``read_owner`` and ``claim`` look there too (``legacy_lock_path``); nothing writes it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from labtrack.errors import DatabaseInUse

# Byte offsets of the two locks, far past the JSON text so rewriting the text
# never touches them.
_OWNER_BYTE = 1 << 20
_SCHEMA_BYTE = (1 << 20) + 1

# POSIX locks belong to the process, and closing ANY descriptor of the file
# drops them all, so each process keeps exactly one descriptor per lock file.
_fds: dict[str, int] = {}


@dataclass
class OwnerRecord:
    """Where the server that owns a database listens."""

    host: str
    pid: int
    database: str
    url: str | None = None
    unix_socket: str | None = None
    token: str | None = None
    started_ms: int = 0
    version: str = ""
    # > 0: a background server that exits when idle, so it may be asked to stop
    # (JupyterLab's proxied server takes its database over).
    idle_timeout: int = 0

    def describe(self) -> str:
        where = self.url or (f"unix socket {self.unix_socket}" if self.unix_socket else "?")
        return f"pid {self.pid} on host {self.host} ({where})"


# labtrack's own files of a SQLite database (the ownership record, the spool) live in
# one hidden folder inside its artifact folder, out of the user's sight.
PRIVATE_FOLDER = ".labtrack"


def private_folder(db_path: str | os.PathLike) -> Path:
    """``mlruns.db`` -> ``mlruns/.labtrack``."""
    db = Path(db_path)
    return db.parent / db.stem / PRIVATE_FOLDER


def lock_path(db_path: str | os.PathLike) -> Path:
    """``mlruns.db`` -> ``mlruns/.labtrack/mlruns.db.lock``."""
    return private_folder(db_path) / (Path(db_path).name + ".lock")


def legacy_lock_path(db_path: str | os.PathLike) -> Path:
    """Where servers before 0.3 kept the record: ``mlruns.db.lock`` beside the database."""
    return Path(os.fspath(db_path) + ".lock")


def _fd(path: Path) -> int:
    key = str(path)
    if key not in _fds:
        if not path.parent.is_dir():
            from labtrack.file_modes import make_folder

            make_folder(path.parent)  # 0700 (0770 in a setgid group folder), like the spool's
        _fds[key] = os.open(key, os.O_RDWR | os.O_CREAT, 0o600)
    return _fds[key]


def _try_lock(fd: int, byte: int, *, exclusive: bool, blocking: bool) -> bool:
    flag = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    if not blocking:
        flag |= fcntl.LOCK_NB
    try:
        fcntl.lockf(fd, flag, 1, byte)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


def _unlock(fd: int, byte: int) -> None:
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, byte)


def read_owner(db_path: str | os.PathLike) -> OwnerRecord | None:
    """The live owner of ``db_path``, or None when no server holds it."""
    return _read_owner_at(lock_path(db_path)) or _read_owner_at(legacy_lock_path(db_path))


def _read_owner_at(path: Path) -> OwnerRecord | None:
    try:
        text = path.read_text()
    except OSError:  # missing, another user's, or a file named like the folder
        return None
    try:
        record = OwnerRecord(**json.loads(text))
    except (ValueError, TypeError):
        return None
    if not _owner_alive(path, record):
        return None
    return record


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (even another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_alive(path: Path, record: OwnerRecord) -> bool:
    if record.pid == os.getpid() and str(path) in _fds:
        return True
    if record.host == socket.gethostname() and not pid_alive(record.pid):
        return False
    # The lock is the truth: if nobody holds the owner byte, the record is stale.
    # Probe with a separate descriptor only when this process holds no locks on
    # the file (closing a descriptor would drop them).
    if str(path) in _fds:
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        free = _try_lock(fd, _OWNER_BYTE, exclusive=True, blocking=False)
        if free:
            _unlock(fd, _OWNER_BYTE)
        return not free
    finally:
        os.close(fd)


def claim(db_path: str | os.PathLike, record: OwnerRecord) -> None:
    """Become the owner of ``db_path`` or raise DatabaseInUse naming the owner."""
    path = lock_path(db_path)
    fd = _fd(path)
    if not _try_lock(fd, _OWNER_BYTE, exclusive=True, blocking=False):
        owner = _wait_for_record(fd)
        who = owner.describe() if owner else "another process"
        raise DatabaseInUse(f"{os.fspath(db_path)} is already served by {who}")
    old = _read_owner_at(legacy_lock_path(db_path))
    if old is not None:  # a server of an older version, which knows only the old place
        _unlock(fd, _OWNER_BYTE)
        raise DatabaseInUse(f"{os.fspath(db_path)} is already served by {old.describe()}")
    record.started_ms = record.started_ms or int(time.time() * 1000)
    write_record(db_path, record)


def write_record(db_path: str | os.PathLike, record: OwnerRecord) -> None:
    """Rewrite the record text (e.g. once the listening port is known)."""
    fd = _fd(lock_path(db_path))
    data = json.dumps(asdict(record)).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def release(db_path: str | os.PathLike) -> None:
    """Give up ownership: clear the record and drop the lock."""
    path = lock_path(db_path)
    fd = _fds.get(str(path))
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    with contextlib.suppress(OSError):
        _unlock(fd, _OWNER_BYTE)


@contextlib.contextmanager
def schema_lock(db_path: str | os.PathLike) -> Iterator[None]:
    """Serialise schema creation/upgrade between processes on one database."""
    fd = _fd(lock_path(db_path))
    _try_lock(fd, _SCHEMA_BYTE, exclusive=True, blocking=True)
    try:
        yield
    finally:
        _unlock(fd, _SCHEMA_BYTE)


def _wait_for_record(fd: int, timeout: float = 5.0) -> OwnerRecord | None:
    """The owner's record.  The owner writes it just after taking the lock (and
    rewrites it once it listens), so a process that lost a start race by a hair
    may find the file empty for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        owner = _read_record_fd(fd)
        if owner is not None or time.monotonic() >= deadline:
            return owner
        time.sleep(0.01)


def _read_record_fd(fd: int) -> OwnerRecord | None:
    try:
        text = os.pread(fd, 1 << 16, 0).decode()
        return OwnerRecord(**json.loads(text))
    except (ValueError, TypeError, OSError):
        return None
