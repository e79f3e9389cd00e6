"""Where JupyterLab's labtrack lives: the database under the Jupyter root, and a short private socket."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DATABASE_ENV = "LABTRACK_DATABASE"
DB_NAME = "mlruns.db"
ARTIFACTS_NAME = "mlruns"

# sun_path holds 108 bytes on Linux and 104 on macOS, including the final NUL.
MAX_SOCKET_PATH = 103
_SOCKET_TAIL = "/labtrack-XXXXXXXX/socket"  # what mkdtemp and the name add to a base folder


def jupyter_root_dir() -> Path:
    """``ServerApp.root_dir`` (the folder the file browser opens) of the running Jupyter, else the cwd.

    The proxy starts its processes in the Jupyter server's cwd, which under a
    Hub is usually $HOME, not the root dir, so we ask the app itself.
    """
    try:
        from jupyter_server.serverapp import ServerApp
    except ImportError:
        return Path.cwd().resolve()
    if ServerApp.initialized():
        root = getattr(ServerApp.instance(), "root_dir", None)
        if root:
            return Path(root).expanduser().resolve()
    return Path.cwd().resolve()


def database_path(root_dir: str | os.PathLike | None = None) -> Path:
    """The database the tile serves and kernels log to: ``$LABTRACK_DATABASE`` if the user
    set it before starting Jupyter, else ``<root_dir>/mlruns.db`` (always absolute)."""
    named = os.environ.get(DATABASE_ENV)
    if named:
        return Path(named).expanduser().resolve()
    root = Path(root_dir).expanduser().resolve() if root_dir else jupyter_root_dir()
    from labtrack.mlflow_data import folder_database

    return folder_database(root)  # labtrack.db where the folder's mlruns.db (or mlflow.db) is MLflow's


def socket_bases() -> list[str]:
    """Candidate parents for the socket folder, in order of preference."""
    bases = [tempfile.gettempdir(), os.environ.get("XDG_RUNTIME_DIR") or "", "/tmp"]
    seen: list[str] = []
    for base in bases:
        if base and base not in seen:
            seen.append(base)
    return seen


def private_socket_path() -> Path:
    """``<private 0700 folder>/socket``, short enough for AF_UNIX.

    HPC sites often set a long TMPDIR (per-job scratch paths), which would
    break the ~107-byte limit, so we fall back to $XDG_RUNTIME_DIR or /tmp.
    """
    for base in socket_bases():
        if len(os.fsencode(os.path.abspath(base))) + len(_SOCKET_TAIL) > MAX_SOCKET_PATH:
            continue
        try:
            remove_stale_socket_folders(base)
            # The Jupyter server's pid in the name: a folder whose Jupyter died (SIGKILL,
            # no atexit) is recognised and removed by the next one.
            folder = tempfile.mkdtemp(prefix=f"labtrack-{os.getpid()}-", dir=base)  # mode 0700
        except OSError:
            continue
        return Path(folder) / "socket"
    raise OSError("no folder short enough for a unix socket: set TMPDIR to a short path such as /tmp")


def remove_stale_socket_folders(base: str) -> list[str]:
    """Remove this user's ``labtrack-<pid>-*`` socket folders in ``base`` whose Jupyter is gone."""
    import re
    import shutil

    removed = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        m = re.fullmatch(r"labtrack-(\d+)-\w+", entry.name)
        if not m or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            os.kill(int(m.group(1)), 0)
            continue  # its Jupyter still runs (or the pid was reused): leave it
        except ProcessLookupError:
            pass
        except (PermissionError, OSError):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    return removed
