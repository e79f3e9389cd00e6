"""labtrack's Jupyter server extension (enabled by ``jupyter_config/``).

Two jobs:

- Put ``LABTRACK_DATABASE=<root_dir>/mlruns.db`` into the Jupyter server's
  environment at load time, before any kernel starts.  Kernels inherit it, so
  a notebook in any subfolder logs to the database the launcher tile serves,
  with no tracking URI (DESIGN decision 4), and the proxy's command reads it
  too, so both name one absolute path.
- Serve ``GET <base_url>labtrack-status`` -> ``{"running", "active_runs"}``
  for the lab extension's status bar, authenticated like every Jupyter API.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from labtrack.jupyter.paths import DATABASE_ENV, database_path

STATUS_TIMEOUT_S = 5.0


def server_status(db: os.PathLike | str) -> dict[str, Any]:
    """Whether a server owns ``db`` and how many runs are active there (never starts one)."""
    from labtrack import ownership
    from labtrack.client.discovery import server_for_database
    from labtrack.client.transport import Transport
    from labtrack.errors import LabtrackError

    if ownership.read_owner(db) is None:
        return {"running": False, "active_runs": 0}
    try:
        endpoint, auth = server_for_database(Path(db), start=False)
        transport = Transport(endpoint, auth, timeout=STATUS_TIMEOUT_S)
        try:
            reply = transport.call("GET", "status", retries=False, api="/api/2.0/labtrack/")
        finally:
            transport.close()
    except (LabtrackError, OSError):
        # Owned, but not answering (still starting, or on another host): it runs, count unknown.
        return {"running": True, "active_runs": 0}
    return {"running": True, "active_runs": int(reply.get("active_runs") or 0)}


def load(serverapp: Any) -> None:
    """Called by Jupyter Server when the extension is enabled."""
    from jupyter_server.base.handlers import APIHandler
    from jupyter_server.utils import url_path_join
    from tornado import web
    from tornado.ioloop import IOLoop

    db = database_path(serverapp.root_dir)
    os.environ[DATABASE_ENV] = str(db)

    class StatusHandler(APIHandler):
        """``GET <base_url>labtrack-status``: is the tracking server up, and how busy."""

        @web.authenticated
        async def get(self) -> None:
            status = await IOLoop.current().run_in_executor(None, server_status, db)
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps(status))

    base_url = serverapp.web_app.settings.get("base_url", "/")
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base_url, "labtrack-status"), StatusHandler)])
    serverapp.log.info("labtrack: kernels log to %s (LABTRACK_DATABASE)", db)
