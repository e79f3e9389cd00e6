"""File modes: what labtrack writes is never world-readable or world-writable.

A login node is shared by hundreds of users.  The database, its WAL, the
artifact root and the spool hold everything a user logged, so whatever the
umask (even 000), a labtrack process creates them with no access for
"other" (issue #19).  Group access follows the folder: in a project folder
with the setgid bit (``chmod g+s``: new files take the folder's group, the
usual way to share with a team) the group keeps what the user's umask gives it;
anywhere else the group gets nothing either.

SQLite creates ``-wal``, ``-shm`` and journals with the database file's own
mode, so setting the umask before the database is opened covers them.
A leaf module: the standard library only.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

_NO_OTHER = 0o007
_NO_GROUP_OR_OTHER = 0o077


def shares_with_group(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is a setgid (group-shared) folder."""
    try:
        return bool(os.stat(folder).st_mode & stat.S_ISGID)
    except OSError:
        return False


def private_umask(folder: str | os.PathLike[str], umask: int) -> int:
    """The umask for files created in ``folder``: ``umask`` without any access for others."""
    return umask | (_NO_OTHER if shares_with_group(folder) else _NO_GROUP_OR_OTHER)


_applied: list[int] = []  # the umask apply() set, once it has


def apply(folder: str | os.PathLike[str]) -> int:
    """Set this process's umask for data kept in ``folder``; returns the new umask.

    Call before any thread starts (the umask is process-wide, and reading it
    means setting it).
    """
    old = os.umask(0o077)
    new = private_umask(folder, old)
    os.umask(new)
    _applied[:] = [new]
    return new


def file_mode(umask: int) -> int:
    """The mode of an ordinary new file (``umask``, or the one apply() set), never open to others."""
    return 0o666 & ~(_applied[0] if _applied else umask) & ~_NO_OTHER


def tighten(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Remove access for others from existing ``paths`` we own (a database made by an older
    version, or under a loose umask); others' files and missing paths are left alone."""
    uid = os.getuid()
    for p in paths:
        try:
            st = os.lstat(p)
            if st.st_uid == uid and not stat.S_ISLNK(st.st_mode) and st.st_mode & _NO_OTHER:
                os.chmod(p, stat.S_IMODE(st.st_mode) & ~_NO_OTHER)
        except OSError:
            continue


def create_file(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty if missing, with the mode the umask gives (``apply`` first).

    SQLite creates a database 0644 whatever the folder: made here first, a
    database in a setgid folder is writable by the group it is shared with,
    and its WAL and shared-memory files follow its mode.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_NO_OTHER))
    except FileExistsError:
        pass


def make_folder(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and its missing parents with no access for others (the group too,
    unless the parent is a setgid shared folder); an existing folder is left as it is."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        mode = 0o770 if shares_with_group(folder.parent) else 0o700
        try:
            folder.mkdir(mode=mode)
        except FileExistsError:
            pass
    return path


def data_paths(db: Path) -> list[Path]:
    """A SQLite database's own files: the database, its WAL, shared memory and journal."""
    return [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


__all__ = ["apply", "create_file", "data_paths", "file_mode", "make_folder", "private_umask", "shares_with_group", "tighten"]
