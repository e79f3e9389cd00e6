"""Where to log: resolve the tracking target with zero setup (DESIGN decision 4).

Order: an explicit ``set_tracking_uri`` > ``LABTRACK_TRACKING_URI`` >
``MLFLOW_TRACKING_URI`` > ``LABTRACK_DATABASE`` (the database JupyterLab's
server uses; the Jupyter integration sets it in kernels) > ``mlruns.db`` in
the working directory or a parent > a new background server for ``./mlruns.db``.

A database is never opened here: its ownership record names the server that
serves it, and if none runs we start one, detached, and wait for its record.
Two clients racing to start one are both fine: the second server refuses
("already served by ...") and both clients find the winner in the record.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from labtrack.client.transport import Endpoint, Transport, auth_header_from_env
from labtrack.errors import LabtrackError

DB_NAME = "mlruns.db"
START_TIMEOUT_S = float(os.environ.get("LABTRACK_SERVER_START_TIMEOUT", "15"))
IDLE_TIMEOUT_S = 900
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def env_tracking_uri() -> str | None:
    """The tracking URI the environment names, if any."""
    return os.environ.get("LABTRACK_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI") or None


def find_database(start: str | os.PathLike | None = None) -> Path | None:
    """``LABTRACK_DATABASE``, else the nearest ``mlruns.db`` in ``start`` (cwd) or a parent.

    MLflow's data (an MLflow-made ``mlruns.db``; in the working directory also
    ``mlflow.db`` or an ``mlruns`` file store) stops the search: its
    ``labtrack.db`` once imported, else ``MlflowDataFound`` saying so (no
    labtrack server can open MLflow's database, so nothing may be sent or
    spooled toward it).  An old file store in a parent (``~/mlruns``) does not.
    """
    from labtrack.mlflow_data import LABTRACK_DB, find_in_folder, resolve_database

    named = os.environ.get("LABTRACK_DATABASE")
    if named:
        return resolve_database(Path(named).expanduser())
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DB_NAME
        if candidate.is_file():
            return resolve_database(candidate)
        if (folder == here or (folder / LABTRACK_DB).is_file()) and find_in_folder(folder) is not None:
            return resolve_database(candidate)
    return None


def database_from_uri(uri: str) -> Path | None:
    """The database a ``sqlite:///`` URI or a ``*.db`` path names, else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).expanduser().resolve()
    if "://" not in uri and uri.endswith(".db"):
        return Path(uri).expanduser().resolve()
    return None


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def transport_for(uri: str | None) -> Transport:
    """A transport for an explicit URI, or for the target found with zero setup."""
    uri = uri or env_tracking_uri()
    if uri:
        db = database_from_uri(uri)
        if db is not None:
            from labtrack.mlflow_data import resolve_database

            return _database_transport(resolve_database(db))
        if "://" not in uri and _is_socket(uri):
            return Transport(Endpoint("unix", socket_path=os.path.abspath(uri)),
                             auth_header_from_env())
        if uri.startswith(("http://", "https://", "http+unix://")):
            return Transport.from_uri(uri)
        raise LabtrackError(
            f"unsupported tracking URI {uri!r}: use http(s)://, http+unix://<socket>, "
            "sqlite:///<path to a database> or a path to a .db file",
            "INVALID_PARAMETER_VALUE")
    db = find_database() or Path(os.getcwd()).resolve() / DB_NAME
    return _database_transport(db)


def _database_transport(db: Path) -> Transport:
    # HTTP to the server that owns ``db`` (found or started; found again if it goes
    # away), or this process's spool file when no server is reachable (a batch job).
    from labtrack.client.spool_transport import database_transport

    return database_transport(db)


def server_for_database(db: Path, start: bool = True,
                        timeout: float = START_TIMEOUT_S) -> tuple[Endpoint, str | None]:
    """The (endpoint, Authorization header) of the server that owns ``db``.

    Starts a detached background server when none runs and ``start`` is true.
    """
    from labtrack.ownership import read_owner

    record = read_owner(db)
    if record is not None and (record.url or record.unix_socket):
        return _endpoint_of(record, db)
    if record is None and not start:
        raise LabtrackError(f"no server is running for {db}", "TEMPORARILY_UNAVAILABLE")
    # A live record without an address is a server still starting: wait for it.
    proc, log_path = _spawn_server(db) if record is None else (None, _log_path(db))
    deadline = time.monotonic() + timeout
    exited_at: float | None = None
    while time.monotonic() < deadline:
        record = read_owner(db)
        if record is not None and (record.url or record.unix_socket):
            return _endpoint_of(record, db)
        if exited_at is None and proc is not None and proc.poll() is not None:
            exited_at = time.monotonic()
        # Our server lost a race (or failed): give the winner a moment to publish its address.
        if exited_at is not None and time.monotonic() - exited_at > 3.0 and record is None:
            break
        time.sleep(0.05)
    raise LabtrackError(
        f"could not start a labtrack server for {db} within {timeout:.0f} s; "
        f"its log ({log_path}) ends with:\n{_tail(log_path)}", "TEMPORARILY_UNAVAILABLE")


def _endpoint_of(record: object, db: Path) -> tuple[Endpoint, str | None]:
    token = getattr(record, "token", None)
    auth = f"Bearer {token}" if token else None
    same_host = getattr(record, "host", None) == socket.gethostname()
    sock = getattr(record, "unix_socket", None)
    if sock and same_host and _is_socket(sock):
        return Endpoint("unix", socket_path=sock), auth
    url = getattr(record, "url", None)
    if not url:
        raise LabtrackError(f"{db} is served on host {record.host} "  # type: ignore[attr-defined]
                            "through a unix socket only, which this host cannot reach")
    endpoint = Endpoint.from_uri(url)
    if not same_host and endpoint.host in _LOOPBACK:
        raise LabtrackError(
            f"{db} is served by {record.describe()}, "  # type: ignore[attr-defined]
            "which listens on loopback only and cannot be reached from this host")
    return endpoint, auth


def _log_path(db: Path) -> Path:
    return db.parent / "mlruns" / ".server.log"


def _spawn_server(db: Path) -> tuple[subprocess.Popen, Path]:
    folder = db.parent
    artifacts = folder / "mlruns"
    artifacts.mkdir(parents=True, exist_ok=True)
    log_path = _log_path(db)
    cmd = [sys.executable, "-m", "labtrack", "server",
           "--backend-store-uri", f"sqlite:///{db}",
           "--artifacts-destination", str(artifacts),
           "--port", "0", "--idle-timeout", str(IDLE_TIMEOUT_S),
           "--log-file", str(log_path)]  # the server rotates it (home folders have quotas)
    # 0600: the server may print its token, and login nodes are shared.
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        # A new session: the server outlives this process and ignores its Ctrl-C.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=str(folder), close_fds=True)
    finally:
        os.close(log)
    return proc, log_path


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
