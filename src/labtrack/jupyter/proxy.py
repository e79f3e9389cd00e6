"""The jupyter-server-proxy entry: how JupyterLab starts labtrack behind ``<base_url>labtrack/``."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
from typing import Any

from labtrack.jupyter.paths import ARTIFACTS_NAME, database_path, private_socket_path

NAME = "labtrack"
# Ready = any HTTP answer on the socket.  Slow shared filesystems can make
# Python's imports and the first schema migration take tens of seconds.
START_TIMEOUT_S = 60


def server_command(unix_socket: str) -> list[str]:
    """The command the proxy runs: labtrack's launcher on the Jupyter root's database.

    Called by the proxy at the first request (not at Jupyter start), so the
    server extension has already settled which database kernels use.
    """
    db = database_path()
    return [
        sys.executable, "-m", "labtrack.jupyter.launch",
        "--database", str(db),
        # labtrack.db (beside MLflow's data) keeps its artifacts in labtrack/, not MLflow's mlruns/.
        "--artifacts-destination", str(db.parent / (db.stem if db.name == "labtrack.db" else ARTIFACTS_NAME)),
        "--unix-socket", unix_socket,
        # This function runs in the Jupyter server, which is the child's parent.
        "--parent-pid", str(os.getpid()),
    ]


def setup_labtrack() -> dict[str, Any]:
    """jupyter-server-proxy spec for labtrack (entry point group ``jupyter_serverproxy_servers``)."""
    sock = private_socket_path()
    # The proxy never removes its socket folders; we remove ours when Jupyter exits.
    atexit.register(shutil.rmtree, str(sock.parent), ignore_errors=True)
    return {
        "command": server_command,
        "unix_socket": str(sock),
        "timeout": START_TIMEOUT_S,
        # The proxy strips <base_url>labtrack and sends X-Forwarded-Prefix; the UI uses relative URLs.
        "absolute_url": False,
        # labtrack's lab extension draws the tile (with its icon, in any category).
        "launcher_entry": {"enabled": False, "title": "labtrack"},
        # Only used by the proxy's own (disabled) tile; the lab extension's `openIn` setting decides.
        "new_browser_tab": True,
    }
