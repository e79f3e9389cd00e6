"""The launcher tile's page for a folder of MLflow data: what was found, and an Import button.

JupyterLab's tile serves ``labtrack.db`` in a folder whose data is MLflow's
(``mlflow_data``'s layout).  Until that data has been imported, the launcher
answers on the proxy's socket with this page instead of the UI: one line
saying what it found (MLflow, the version its schema belongs to) and an
Import button.  The click runs ``labtrack import`` in the launcher (which
then owns ``labtrack.db``, so it is the one writer), shows its progress, and
when it is done the launcher starts the real server on the same socket; the
page reloads into the UI, which shows the imported runs.

Nothing is written before the click: the MLflow files never are.  The button
posts JSON, so a cross-site form cannot start an import.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from labtrack import mlflow_data
from labtrack.mlflow_data import MlflowFound

log = logging.getLogger("labtrack.jupyter")

POLL_S = 1.0


def to_import(db: Path) -> tuple[MlflowFound, Path] | None:
    """(the MLflow data, labtrack's database beside it) when the tile's database ``db`` is
    MLflow's or sits in a folder of MLflow data; None for an ordinary labtrack folder."""
    found = mlflow_data.inspect_sqlite(db)
    if found is None and db.name == mlflow_data.LABTRACK_DB:
        found = mlflow_data.find_in_folder(db.parent)
    if found is None:
        return None
    return found, mlflow_data.labtrack_database(db.parent)


def already_imported(found: MlflowFound, target: Path) -> bool:
    from labtrack.imports.importer import imported_sources

    return target.is_file() and str(found.path) in imported_sources(target)


class _Progress:
    """What the page polls: the import's state, runs done of total, and its summary."""

    def __init__(self) -> None:
        self.state = "waiting"
        self.done = 0
        self.total = 0
        self.message = ""
        self.lock = threading.Lock()

    def json(self) -> bytes:
        with self.lock:
            return json.dumps({"state": self.state, "done": self.done, "total": self.total,
                               "message": self.message}).encode()

    # click.progressbar's shape, which import_mlflow drives
    def __call__(self, total: int) -> _Progress:
        with self.lock:
            self.total = total
        return self

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int) -> None:
        with self.lock:
            self.done += n


def _run_import(found: MlflowFound, target: Path, progress: _Progress, finished: Any) -> None:
    from labtrack.errors import LabtrackError
    from labtrack.imports.importer import import_mlflow, open_source

    try:
        source = open_source(str(found.path))
        try:
            summary = import_mlflow(source, target, progress=progress)
        finally:
            source.close()
        with progress.lock:
            progress.state, progress.message = "done", summary.lines()[0].removeprefix("labtrack: ")
        print(progress.message, file=sys.stderr, flush=True)
    except (LabtrackError, OSError) as e:
        with progress.lock:
            progress.state = "failed"
            progress.message = e.message if isinstance(e, LabtrackError) else str(e)
    except Exception as e:  # shown on the page; the launcher keeps serving it
        log.exception("import failed")
        with progress.lock:
            progress.state, progress.message = "failed", f"the import failed: {e!r}"
    finished()


def page(found: MlflowFound, target: Path) -> bytes:
    what = html.escape(found.what())
    where = html.escape(str(target))
    command = html.escape(found.import_command())
    return f"""<!doctype html><meta charset=utf-8><title>labtrack: MLflow data found</title>
<body style="font-family:sans-serif;max-width:46em;margin:3em auto;line-height:1.5">
<h1>MLflow data found</h1>
<p id="found">{what}.</p>
<p>labtrack never changes it. <b>Import</b> copies its experiments, runs, metrics, artifacts and
registered models into <code>{where}</code>, which labtrack then serves here. Run
<code>{command}</code> again later to bring in what MLflow logs after today.</p>
<p><button id="import" style="font-size:1.1em;padding:.4em 1.2em">Import</button>
<progress id="bar" max="1" value="0" hidden></progress></p>
<p id="status" role="status"></p>
<script>
const button = document.getElementById("import"), bar = document.getElementById("bar"),
      status = document.getElementById("status");
async function poll() {{
  let s;
  try {{
    const r = await fetch("import-status", {{cache: "no-store"}});
    if (!r.ok) throw new Error(String(r.status));
    s = await r.json();
  }} catch (e) {{ waitForUi(); return; }}  // this page's server is gone: the UI is starting

  bar.max = Math.max(s.total, 1); bar.value = s.done;
  status.textContent = s.state === "running" ? `Importing: ${{s.done}} of ${{s.total}} runs` : s.message;
  if (s.state === "done") {{ waitForUi(); return; }}
  if (s.state === "failed") {{ button.disabled = false; return; }}
  setTimeout(poll, 500);
}}
async function waitForUi() {{
  try {{
    const r = await fetch("health", {{cache: "no-store"}});
    if (r.ok) {{ location.reload(); return; }}
  }} catch (e) {{}}
  setTimeout(waitForUi, 500);
}}
button.addEventListener("click", async () => {{
  button.disabled = true; bar.hidden = false; status.textContent = "Importing...";
  await fetch("import", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body: "{{}}"}});
  poll();
}});
</script></body>""".encode()


async def offer_import(found: MlflowFound, target: Path, unix_socket: str, parent_pid: int) -> bool:
    """Serve the page on ``unix_socket`` until an import finished (True), or until Jupyter is
    gone or we are told to stop (False)."""
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_unix_socket
    from tornado.web import Application, RequestHandler

    from labtrack import ownership

    loop = asyncio.get_running_loop()
    stop, imported = asyncio.Event(), asyncio.Event()
    progress = _Progress()
    body = page(found, target)

    def finished() -> None:
        if progress.state == "done":
            loop.call_soon_threadsafe(imported.set)

    class Page(RequestHandler):
        def get(self, path: str) -> None:
            self.set_header("Cache-Control", "no-store")
            if path == "import-status":
                self.set_header("Content-Type", "application/json")
                self.finish(progress.json())
            elif path == "health":
                self.set_status(503)  # the UI is not served yet
                self.finish("importing")
            else:
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.finish(body)

        def post(self, path: str) -> None:
            if path != "import" or not self.request.headers.get("Content-Type", "").startswith("application/json"):
                self.set_status(400)
                self.finish({"error_code": "BAD_REQUEST", "message": "POST import with a JSON body"})
                return
            with progress.lock:
                start = progress.state in ("waiting", "failed")
                if start:
                    progress.state, progress.done, progress.message = "running", 0, ""
            if start:
                threading.Thread(target=_run_import, args=(found, target, progress, finished),
                                 name="labtrack-import", daemon=True).start()
            self.set_status(202)
            self.set_header("Content-Type", "application/json")
            self.finish(progress.json())

    app = Application([(r"/(.*)", Page)], log_function=lambda handler: None)
    server = HTTPServer(app)
    Path(unix_socket).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(unix_socket):
        os.unlink(unix_socket)
    server.add_socket(bind_unix_socket(unix_socket, mode=0o600))
    print(f"labtrack: {found.line()}", file=sys.stderr, flush=True)
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not (stop.is_set() or imported.is_set()):
            if not ownership.pid_alive(parent_pid) or os.getppid() != parent_pid:
                return False
            try:
                await asyncio.wait_for(asyncio.shield(_first(stop, imported)), POLL_S)
            except asyncio.TimeoutError:
                pass
        return imported.is_set()
    finally:
        server.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        try:
            os.unlink(unix_socket)
        except OSError:
            pass


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
