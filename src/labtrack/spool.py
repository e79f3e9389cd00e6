"""Spool files: how a process that cannot reach the server hands it its writes.

A leaf module shared by the client (which writes spool files) and the store's
ingest (which applies them).  The rules that make this safe on NFS, Lustre and
GPFS, where many array tasks on many nodes write at once:

* one file per process, ``<spool folder>/<host>-<pid>-<random>.jsonl``, so no
  two writers ever share a file and no lock is needed (POSIX locks on network
  filesystems are slow or broken, and one lock for hundreds of tasks would
  serialise them);
* append only; each batch of records is ONE ``write()`` followed by
  ``fsync()``, so after a crash the file holds every acknowledged batch and at
  most one torn line at its end;
* each line is a self-contained JSON record ``{"v": 1, "seq": N, "op": ...}``
  carrying everything needed to apply it exactly once: the run's id is chosen
  by the client, experiments are named, not numbered, and every operation is
  idempotent at ingest.

The spool folder of a database ``<dir>/<name>.db`` is
``<dir>/<name>/.labtrack/spool``, i.e. ``mlruns/.labtrack/spool`` beside the
usual ``mlruns.db``: a client finds it from the database path alone, without a
server.  ``mlruns/`` is also the served artifact folder, and ``.labtrack`` is a
name the artifact API refuses at its root (checked on the resolved path, so no
symlink reaches it either): an artifact upload can never become a spool record.
:func:`spool_folder` is the one place that says where the spool is.  Files that
older versions wrote to ``mlruns/.spool`` (:func:`legacy_folder`) are still
ingested; that name is refused by the artifact API too.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtrack import file_modes
from labtrack.ownership import PRIVATE_FOLDER, private_folder

VERSION = 1
SUFFIX = ".jsonl"
REJECTED_SUFFIX = ".rejected"
DONE_FOLDER = "done"
CLOSE_OP = "close"
# The operations a spool file may hold, and the fields each one needs.
OPS: dict[str, tuple[str, ...]] = {
    "set_experiment": ("experiment_name",),
    "set_experiment_tag": ("key", "value"),
    "create_run": ("run_id",),
    "update_run": ("run_id",),
    "log_batch": ("run_id",),
    "log_series": ("run_id", "series"),  # runs/log-series as sent: columns packed (labtrack.columns)
    "delete_tag": ("run_id", "key"),
    "delete_run": ("run_id",),
    "restore_run": ("run_id",),
    "log_trace": ("trace",),  # one finished trace with its spans (client/traces.py)
    CLOSE_OP: (),
}
_MAX_HOST = 64  # keeps a spool id within the 128 characters spool_progress stores


# Names at the top of the artifact folder that belong to labtrack, not to artifacts:
# the artifact API refuses them (artifacts.local.RESERVED_NAMES).
LEGACY_FOLDER = ".spool"


def spool_folder(db_path: str | os.PathLike) -> Path:
    """The spool folder of a SQLite database: ``mlruns.db`` -> ``mlruns/.labtrack/spool``."""
    return private_folder(db_path) / "spool"


def legacy_folder(folder: str | os.PathLike) -> Path | None:
    """Where versions before 0.2 spooled for the same database (``mlruns/.spool``), if any."""
    path = Path(folder)
    if path.name == "spool" and path.parent.name == PRIVATE_FOLDER:
        return path.parent.parent / LEGACY_FOLDER
    return None


def host_tag() -> str:
    """This host as spool file names spell it (short name, safe characters)."""
    host = socket.gethostname().split(".")[0][:_MAX_HOST] or "host"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in host)


def new_spool_path(folder: Path) -> Path:
    """A fresh file name no other process will choose: host, pid and 48 random bits."""
    return folder / f"{host_tag()}-{os.getpid()}-{secrets.token_hex(6)}{SUFFIX}"


def writer_of(path: Path) -> tuple[str, int] | None:
    """(host, pid) of the process that wrote a spool file, from its name."""
    parts = path.name[: -len(SUFFIX)].rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


# A server's journal (store/journal.py) is a spool file it applies itself, hidden by this
# prefix while the server lives; the ingest sees it under its spool name once the server is gone.
JOURNAL_PREFIX = "."


def journal_files(folder: Path) -> list[Path]:
    """The hidden journals in ``folder`` (live, or left by a server that stopped)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(folder / n for n in names if n.startswith(JOURNAL_PREFIX) and n.endswith(SUFFIX)
                  and writer_of(Path(n[len(JOURNAL_PREFIX):])) is not None)


def reveal_orphaned_journals(folder: Path, idle_s: float) -> list[Path]:
    """Rename the journals whose server is gone (its process is not alive on this host, or the
    file has been silent for ``idle_s``) to their spool names, so the ingest applies what they
    hold beyond their progress, which the server saved under that name.  Returns the new names."""
    revealed = []
    for path in journal_files(folder):
        visible = path.with_name(path.name[len(JOURNAL_PREFIX):])
        try:
            if not writer_gone(visible, path.stat().st_mtime, idle_s):
                continue
            os.replace(path, visible)
        except FileNotFoundError:
            continue  # its server removed it (a clean stop) or another ingest revealed it
        revealed.append(visible)
    return revealed


def writer_gone(path: Path, mtime: float, idle_s: float) -> bool:
    """Whether the process that writes spool file ``path`` (last written at ``mtime``) is gone:
    not alive on this host, or silent for ``idle_s`` (a process on another host can't be asked)."""
    if time.time() - mtime > idle_s:
        return True
    who = writer_of(path)
    if who is None or who[0] != host_tag():
        return False
    try:
        os.kill(who[1], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def spool_files(folder: Path) -> list[Path]:
    """The spool files waiting in ``folder`` (not retired ones), oldest name first."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(folder / n for n in names if n.endswith(SUFFIX) and not n.startswith("."))


def waiting_files(folder: str | os.PathLike) -> list[Path]:
    """The spool files waiting in ``folder`` and in its legacy folder (still ingested)."""
    legacy = legacy_folder(folder)
    return spool_files(Path(folder)) + (spool_files(legacy) if legacy is not None else [])


class SpoolWriter:
    """Appends records to this process's own spool file, durably.

    Thread-safe.  After a fork the child gets a file of its own, and if the
    file was retired by an ingest (moved to ``done/`` after a long silence) the
    next append starts a new one, so no record is ever written where no
    ingest will look.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path: Path | None = None
        self._fd: int | None = None
        self._ino = 0
        self._pid = 0
        self._seq = 0
        self._closed = False
        self._lock = threading.Lock()
        ref = weakref.ref(self)
        atexit.register(lambda: (w := ref()) and w.close())

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Write ``records`` as one batch, flushed and fsynced; return the last seq."""
        with self._lock:
            fd = self._open()
            lines = []
            for rec in records:
                self._seq += 1
                lines.append(_dump({"v": VERSION, "seq": self._seq, **rec}))
            if not lines:
                return self._seq
            data = "".join(lines).encode()
            # One write per batch: a crash leaves whole batches and at most one torn line.
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
            return self._seq

    def close(self) -> None:
        """Write the ``close`` record (the file is complete: it may be retired) and close."""
        with self._lock:
            fd = self._fd
            if fd is None or self._pid != os.getpid() or self._closed:
                return
            self._closed = True
            self._fd = None
            try:
                self._seq += 1
                os.write(fd, record_line(CLOSE_OP, self._seq))
                os.fsync(fd)
            except OSError:
                pass  # the file stays unclosed; ingest retires it once the writer is gone
            finally:
                os.close(fd)

    def _open(self) -> int:
        fd = self._fd
        if fd is not None and self._pid == os.getpid() and self._still_there():
            return fd
        if fd is not None and self._pid == os.getpid():
            os.close(fd)  # retired under us: leave it to the done/ folder
        # First use, after a fork (the parent keeps its file), after close, or after retirement.
        file_modes.make_folder(self.folder)  # never readable by other users, whatever the umask
        self.path = new_spool_path(self.folder)
        self._fd, self._ino = create_append_only(self.path)
        _fsync_folder(self.folder)  # the new name itself must survive a crash, not only its data
        self._pid = os.getpid()
        self._seq = 0
        self._closed = False
        return self._fd

    def _still_there(self) -> bool:
        return still_there(self.path, self._ino)


def create_append_only(path: Path) -> tuple[int, int]:
    """A new file at ``path`` (never one that exists), 0600, open to append: (descriptor, inode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
    return fd, os.fstat(fd).st_ino


def still_there(path: Path | None, ino: int) -> bool:
    """Whether ``path`` is still the file of inode ``ino`` (not retired or revealed meanwhile)."""
    try:
        return path is not None and os.stat(path).st_ino == ino
    except FileNotFoundError:
        return False


def record_line(op: str, seq: int, fields: bytes = b"{}") -> bytes:
    """One record's line: ``fields`` (a JSON object's text on one line) with ``op``, ``v`` and
    ``seq`` written after them, so that none of its own fields can stand in for those (JSON's
    last duplicate wins)."""
    inner = fields.strip()[1:-1].strip()
    return b'{%s%s"op":"%s","v":%d,"seq":%d}\n' % (inner, b"," if inner else b"", op.encode(), VERSION, seq)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some network filesystems refuse fsync on a folder; their creates are synchronous
    finally:
        os.close(fd)


def _dump(record: dict[str, Any]) -> str:
    # allow_nan=False: the client already encodes NaN/Infinity as MLflow's strings.
    return json.dumps(record, separators=(",", ":"), allow_nan=False, ensure_ascii=False) + "\n"


@dataclass
class SpoolRecord:
    """One complete line of a spool file and where it starts."""

    offset: int
    data: dict[str, Any]

    @property
    def op(self) -> str:
        return str(self.data.get("op", ""))

    @property
    def seq(self) -> int:
        seq = self.data.get("seq")
        return seq if isinstance(seq, int) else 0


@dataclass
class BadLine:
    """A complete line that is not a valid record (it is reported, never applied)."""

    offset: int
    text: str
    error: str


@dataclass
class SpoolChunk:
    """What ``read_records`` found: records, bad lines, and where to continue."""

    records: list[SpoolRecord] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    end_offset: int = 0
    torn_bytes: int = 0  # an incomplete last line (a writer killed mid-write, or still writing)
    more: bool = False  # the read stopped at max_bytes: call again from end_offset

    @property
    def closed(self) -> bool:
        return bool(self.records) and self.records[-1].op == CLOSE_OP


def read_records(path: str | os.PathLike, start_offset: int = 0,
                 max_bytes: int = 16 << 20) -> SpoolChunk:
    """Read complete records from ``start_offset`` on (up to about ``max_bytes``).

    A last line without its newline, or a last line that is not valid JSON,
    is a torn write: it is left unread (``torn_bytes``) and ``end_offset``
    stops before it, so a writer that is still alive can finish it.  A bad
    line followed by good ones is corruption: it is reported in ``bad`` and
    skipped.
    """
    chunk = SpoolChunk(end_offset=start_offset)
    with open(path, "rb") as f:
        f.seek(start_offset)
        data = f.read(max_bytes)
        if len(data) == max_bytes:
            # Finish the line we are in, so one long line never stalls the reader.
            data += f.readline()
        more = bool(f.read(1))
    chunk.more = more
    last_nl = data.rfind(b"\n")
    complete = data[: last_nl + 1] if last_nl >= 0 else b""
    chunk.torn_bytes = len(data) - len(complete)
    pos = start_offset
    for raw, last in _lines(complete):
        offset = pos
        pos += len(raw) + 1
        text = raw.strip(b"\0 \r\t")
        if not text:
            chunk.end_offset = pos
            continue
        try:
            rec = json.loads(text)
            error = _check(rec)
        except ValueError as e:
            rec, error = None, f"not JSON: {e}"
        except RecursionError:  # one line must never stop the file, whatever it holds
            rec, error = "", "nested too deeply"  # complete JSON-like text: bad, not torn
        if error is not None:
            at_eof = last and not chunk.torn_bytes and not more
            if at_eof and rec is None:
                chunk.torn_bytes = len(raw) + 1  # a torn write that happened to end in a newline
                return chunk
            chunk.bad.append(BadLine(offset, raw.decode("utf-8", "replace")[:2000], error))
        else:
            chunk.records.append(SpoolRecord(offset, rec))
        chunk.end_offset = pos
    return chunk


def _lines(data: bytes) -> Iterator[tuple[bytes, bool]]:
    """The lines of ``data`` (which ends with a newline, or is empty), each with whether it is
    the last; found with ``find`` (memchr), several times faster than ``split`` on long lines."""
    start, end = 0, len(data)
    while start < end:
        nl = data.find(b"\n", start)
        yield data[start:nl], nl == end - 1
        start = nl + 1


def _check(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return "a record must be a JSON object"
    if rec.get("v") != VERSION:
        return f"unknown spool format version {rec.get('v')!r}"
    op = rec.get("op")
    if op not in OPS:
        return f"unknown operation {op!r}"
    missing = [f for f in OPS[op] if f not in rec]
    if missing:
        return f"{op} needs {', '.join(missing)}"
    return None


__all__ = ["BadLine", "SpoolChunk", "SpoolRecord", "SpoolWriter", "create_append_only", "host_tag", "journal_files",
           "legacy_folder", "record_line", "still_there",
           "new_spool_path", "read_records", "reveal_orphaned_journals", "spool_files", "spool_folder",
           "waiting_files", "writer_gone", "writer_of"]
