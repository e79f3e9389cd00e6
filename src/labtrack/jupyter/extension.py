"""labtrack's Jupyter server extension (enabled by ``jupyter_config/``).

Two jobs:

- Put ``LABTRACK_DATABASE=<root_dir>/mlruns.db`` into the Jupyter server's
  environment at load time, before any kernel starts.  Kernels inherit it, so
  a notebook in any subfolder logs to the database the launcher tile serves,
  with no tracking URI (DESIGN decision 4), and the proxy's command reads it
  too, so both name one absolute path.
- Keep the database's companions out of the file browser: SQLite's ``-wal``,
  ``-shm`` and ``-journal`` files must sit beside ``mlruns.db``, and servers
  before 0.3 left ``mlruns.db.lock`` there (now in ``mlruns/.labtrack/``, a
  hidden folder).  Their names are appended to the contents manager's
  ``hide_globs`` at load, which keeps Jupyter's defaults and whatever the user
  configured (a list in ``jupyter_config/`` would replace them).
- Serve ``GET <base_url>labtrack-status[?since=<ms>]`` -> ``{"running",
  "active_runs", "now", "finished"}`` for the lab extension's status bar,
  authenticated like every Jupyter API.  ``finished`` lists the runs that
  ended after ``since`` (the ``now`` of the bar's previous poll, minus a few
  seconds for a run whose end reached the database late; the bar counts each
  run id once), so a run shorter than the poll interval, never seen RUNNING,
  still shows up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from labtrack.jupyter.paths import DATABASE_ENV, database_path

STATUS_TIMEOUT_S = 5.0


FINISHED_OVERLAP_MS = 5000  # a run's end_time is stamped before its update reaches the database
FINISHED_LIMIT = 20  # the newest runs listed as finished in one answer


def server_status(db: os.PathLike | str, since: int | None = None) -> dict[str, Any]:
    """Whether a server owns ``db``, how many runs are active there, and (with ``since``, ms)
    the runs that ended since then, newest first.  Never starts a server."""
    import time

    from labtrack import ownership
    from labtrack.client.discovery import server_for_database
    from labtrack.client.transport import Transport
    from labtrack.errors import LabtrackError

    now = int(time.time() * 1000)
    off: dict[str, Any] = {"running": False, "active_runs": 0, "now": now, "finished": []}
    if ownership.read_owner(db) is None:
        return off
    try:
        endpoint, auth = server_for_database(Path(db), start=False)
        transport = Transport(endpoint, auth, timeout=STATUS_TIMEOUT_S)
        try:
            reply = transport.call("GET", "status", retries=False, api="/api/2.0/labtrack/")
            finished = _finished_since(transport, since) if since is not None else []
        finally:
            transport.close()
    except (LabtrackError, OSError):
        # Owned, but not answering (still starting, or on another host): it runs, count unknown.
        return dict(off, running=True)
    return {"running": True, "active_runs": int(reply.get("active_runs") or 0), "now": now,
            "finished": finished}


def _finished_since(transport: Any, since: int) -> list[dict[str, Any]]:
    """Runs that ended after ``since - FINISHED_OVERLAP_MS``: id, name, status, end time."""
    after = since - FINISHED_OVERLAP_MS
    activity = transport.call("GET", "experiments/activity", retries=False, api="/api/2.0/labtrack/")
    ids = [e["experiment_id"] for e in activity.get("experiments", [])
           if (e.get("last_activity") or 0) > after]
    if not ids:
        return []
    found = transport.call("POST", "runs/search", {
        "experiment_ids": ids, "filter": f"attributes.end_time > {after}",
        "order_by": ["attributes.end_time DESC"], "max_results": FINISHED_LIMIT}, retries=False)
    out = []
    for run in found.get("runs", []):
        info = run.get("info", {})
        out.append({"run_id": info.get("run_id"), "name": info.get("run_name") or info.get("run_id"),
                    "status": info.get("status"), "end_time": info.get("end_time")})
    return out


def hidden_names(db: Path) -> list[str]:
    """The files beside ``db`` that users need not see: SQLite's and the old lock record."""
    from labtrack import file_modes, ownership

    return [p.name for p in file_modes.data_paths(db)[1:]] + [ownership.legacy_lock_path(db).name]


def hide_companions(contents_manager: Any, db: Path) -> None:
    """Append ``hidden_names(db)`` to ``hide_globs`` (glob characters in the name escaped)."""
    import glob

    globs = list(getattr(contents_manager, "hide_globs", None) or [])
    extra = [glob.escape(name) for name in hidden_names(db) if glob.escape(name) not in globs]
    if extra:
        contents_manager.hide_globs = globs + extra


def load(serverapp: Any) -> None:
    """Called by Jupyter Server when the extension is enabled."""
    from jupyter_server.base.handlers import APIHandler
    from jupyter_server.utils import url_path_join
    from tornado import web
    from tornado.ioloop import IOLoop

    db = database_path(serverapp.root_dir)
    os.environ[DATABASE_ENV] = str(db)
    hide_companions(serverapp.contents_manager, db)

    class StatusHandler(APIHandler):
        """``GET <base_url>labtrack-status``: is the tracking server up, and how busy."""

        @web.authenticated
        async def get(self) -> None:
            since = self.get_query_argument("since", None)
            try:
                after = int(since) if since else None
            except ValueError:
                raise web.HTTPError(400, "since: milliseconds since the epoch") from None
            status = await IOLoop.current().run_in_executor(None, server_status, db, after)
            self.set_header("Content-Type", "application/json")
            self.set_header("Cache-Control", "no-store")
            self.finish(json.dumps(status))

    base_url = serverapp.web_app.settings.get("base_url", "/")
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base_url, "labtrack-status"), StatusHandler)])
    serverapp.log.info("labtrack: kernels log to %s (LABTRACK_DATABASE)", db)
