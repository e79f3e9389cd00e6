"""``lt.mlflow_env()``: point the unmodified ``mlflow`` client at labtrack's server.

The mlflow client speaks only ``http(s)://``, while the server JupyterLab
starts listens only on a private unix socket.  So we ask that server to open
a loopback TCP listener guarded by a token (``POST
/api/2.0/labtrack/tcp-listener``, over the socket) and hand back the two
variables mlflow reads.  A server that already listens on TCP (a background
or hand-started one) just gives its address and token.
"""

from __future__ import annotations

import os
from pathlib import Path

from labtrack.client.discovery import (
    DB_NAME,
    database_from_uri,
    env_tracking_uri,
    find_database,
    server_for_database,
)
from labtrack.client.transport import LABTRACK_API, Transport
from labtrack.errors import LabtrackError


def _database() -> Path:
    uri = env_tracking_uri()
    if uri:
        db = database_from_uri(uri)
        if db is None:
            raise LabtrackError(f"the tracking URI {uri!r} names no labtrack database; "
                                "mlflow can use it as it is", "INVALID_PARAMETER_VALUE")
        return db
    return find_database() or Path(os.getcwd()).resolve() / DB_NAME


def mlflow_env(database: str | os.PathLike | None = None, *, apply: bool = False) -> dict[str, str]:
    """``{"MLFLOW_TRACKING_URI": ..., "MLFLOW_TRACKING_TOKEN": ...}`` for the server of this database.

    The database is found as ``lt.start_run`` finds it (in JupyterLab: the one
    the launcher tile serves); a server is started if none runs.  With
    ``apply=True`` the variables are also set in ``os.environ``, e.g.
    ``lt.mlflow_env(apply=True); import mlflow`` in a notebook.
    """
    db = Path(database).expanduser().resolve() if database else _database()
    endpoint, auth = server_for_database(db)
    if endpoint.scheme == "unix":
        transport = Transport(endpoint, auth)
        try:
            reply = transport.call("POST", "tcp-listener", {}, api=LABTRACK_API)
        finally:
            transport.close()
        url, token = reply["url"], reply.get("token") or ""
    else:
        url = endpoint.uri
        token = auth[len("Bearer "):] if auth and auth.startswith("Bearer ") else ""
    env = {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_TOKEN": token}
    if apply:
        os.environ.update(env)
    return env
