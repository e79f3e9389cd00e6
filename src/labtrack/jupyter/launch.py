"""``python -m labtrack.jupyter.launch``: the process jupyter-server-proxy runs.

It is ``labtrack server`` on a unix socket, plus three rules that the proxy's
process model needs (reference §1, "Process lifecycle"):

- **Never exit 0.**  The proxy never restarts a process that exited 0, so the
  tile would answer 500 until Jupyter restarts.  When the proxy stops us (at
  Jupyter shutdown) it marks us killed and ignores the status, so a status
  of 1 costs nothing there, and after any other stop it makes the proxy
  start us again.
- **The database may already be served.**  A notebook opened before the
  tile was clicked starts a background server for it (one that exits when
  idle).  We ask that one to stop and take over: its clients re-discover the
  server through the ownership record and continue on our socket.  A server
  that someone started on purpose (no idle timeout, or another user's) is
  left alone: we answer every request with a page that names it, and take
  over once it has gone.  Exiting non-zero instead would make the proxy
  restart us in a tight loop.
- **No orphans.**  ``--parent-pid`` stops us when Jupyter dies without
  telling us (``POST /api/shutdown``, SIGKILL); our own session keeps a
  terminal's Ctrl-C, meant for Jupyter, from reaching us first.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from labtrack import ownership
from labtrack.errors import DatabaseInUse
from labtrack.settings import Settings

log = logging.getLogger("labtrack.jupyter")

TAKEOVER_WAIT_S = 15.0
POLL_S = 1.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m labtrack.jupyter.launch",
                                description="labtrack server as started by jupyter-server-proxy")
    p.add_argument("--database", required=True, help="absolute path of the SQLite database")
    p.add_argument("--artifacts-destination", required=True)
    p.add_argument("--unix-socket", required=True)
    p.add_argument("--parent-pid", type=int, required=True)
    return p.parse_args(argv)


def _settings(ns: argparse.Namespace) -> Settings:
    # Explicit values for everything that matters, so no LABTRACK_* variable in
    # the user's environment can add a TCP port, an idle timeout or a token.
    return Settings(
        backend_store_uri=f"sqlite:///{ns.database}",
        artifacts_destination=ns.artifacts_destination,
        unix_socket=ns.unix_socket,
        parent_pid=ns.parent_pid,
        idle_timeout=0,
        token=None,
        no_token=True,
        access_log=False,
    )


def take_over(db: Path, owner: ownership.OwnerRecord, wait_s: float = TAKEOVER_WAIT_S) -> bool:
    """Ask a background server on this host to stop; True once it released ``db``."""
    if owner.host != socket.gethostname() or owner.idle_timeout <= 0:
        return False
    try:
        os.kill(owner.pid, signal.SIGTERM)  # it commits what it holds, then releases the record
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # another user's server
    print(f"labtrack: asked the background server {owner.describe()} to stop; taking over {db}",
          file=sys.stderr, flush=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if ownership.read_owner(db) is None:
            return True
        time.sleep(0.05)
    return False


def _busy_page(db: Path, owner: ownership.OwnerRecord) -> bytes:
    where = html.escape(owner.describe())
    return (
        "<!doctype html><meta charset=utf-8><title>labtrack: database in use</title>"
        "<body style='font-family:sans-serif;max-width:44em;margin:3em auto'>"
        f"<h1>labtrack: {html.escape(str(db))} is already served</h1>"
        f"<p>Another labtrack server owns this database: {where}. It was not started from this "
        "JupyterLab, so it is left running.</p>"
        "<p>Stop it (or open the address it printed), then reload this page: labtrack starts here "
        "as soon as the database is free.</p></body>"
    ).encode()


async def _wait_out(db: Path, owner: ownership.OwnerRecord, settings: Settings) -> bool:
    """Serve an explanation on our socket until ``db`` is free (True) or Jupyter is gone (False)."""
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_unix_socket
    from tornado.web import Application, RequestHandler

    page = _busy_page(db, owner)

    class Busy(RequestHandler):
        def prepare(self) -> None:
            self.set_status(503)
            self.set_header("Retry-After", "5")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(page)

    app = Application([(r".*", Busy)], log_function=lambda handler: None)
    server = HTTPServer(app)
    assert settings.unix_socket is not None
    Path(settings.unix_socket).parent.mkdir(parents=True, exist_ok=True)
    server.add_socket(bind_unix_socket(settings.unix_socket, mode=0o600))
    print(f"labtrack: {db} is served by {owner.describe()}; waiting for it to stop",
          file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            if not ownership.pid_alive(settings.parent_pid) or os.getppid() != settings.parent_pid:
                return False
            if ownership.read_owner(db) is None:
                return True
            try:
                await asyncio.wait_for(stop.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass
        return False
    finally:
        server.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run(ns: argparse.Namespace) -> int:
    """Serve until stopped; the exit status is never 0 (see the module docstring)."""
    from labtrack.server.main import Server

    from labtrack.jupyter.import_page import already_imported, offer_import, to_import

    db = Path(ns.database)
    settings = _settings(ns)
    db.parent.mkdir(parents=True, exist_ok=True)
    mlflow = to_import(db)
    if mlflow is not None and db != mlflow[1]:
        # The database named is MLflow's own: labtrack serves the labtrack.db beside it.
        db = mlflow[1]
        settings.backend_store_uri = f"sqlite:///{db}"
        settings.artifacts_destination = str(db.parent / db.stem)
    while True:
        owner = ownership.read_owner(db)
        if owner is not None and not take_over(db, owner):
            if not asyncio.run(_wait_out(db, owner, settings)):
                return 1
            continue
        if mlflow is not None and not already_imported(*mlflow):
            assert settings.unix_socket is not None
            if not asyncio.run(offer_import(mlflow[0], mlflow[1], settings.unix_socket, settings.parent_pid)):
                return 1
            continue
        try:
            Server(settings).run()
        except DatabaseInUse:
            continue  # another server claimed it between our look and our claim: look again
        return 1


def main(argv: list[str] | None = None) -> int:
    ns = _parse(argv)
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return run(ns)


if __name__ == "__main__":
    sys.exit(main())
