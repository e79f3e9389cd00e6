"""Where the web UI is, as the notebook's browser sees it: the address behind **Open**.

In JupyterLab the UI is ``<base_url>labtrack/`` (jupyter-server-proxy), and a
link relative to the origin (``/user/alice/labtrack/#/runs/<id>``) works on a
Hub too.  The kernel does not know Jupyter's ``base_url`` by itself, so it
reads the runtime file of the Jupyter server that started it
(``jpserver-<pid>.json``, pid = ``JPY_PARENT_PID``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

UI_URL_ENV = "LABTRACK_UI_URL"  # an explicit address wins (e.g. a team server's UI)
PROXY_NAME = "labtrack"  # the jupyter-server-proxy entry (labtrack.jupyter.proxy.NAME)


def jupyter_base_url() -> str | None:
    """``base_url`` of the Jupyter server this kernel runs under, or None outside Jupyter."""
    pids = [p for p in (os.environ.get("JPY_PARENT_PID"), str(os.getppid())) if p]
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime = Path(jupyter_runtime_dir())
    except ImportError:
        runtime = None
    if runtime is not None:
        for pid in pids:
            info = _read_json(runtime / f"jpserver-{pid}.json")
            if info and info.get("base_url"):
                return _slashed(str(info["base_url"]))
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        return _slashed(prefix)
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _slashed(path: str) -> str:
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def _logs_to_jupyter_database(client: Any) -> bool:
    """True when the client logs to the database JupyterLab's tile serves (LABTRACK_DATABASE)."""
    database = os.environ.get("LABTRACK_DATABASE")
    if not database:
        return False
    from labtrack.client.discovery import database_from_uri, env_tracking_uri

    uri = getattr(client, "_uri", None) or env_tracking_uri()
    if not uri:
        return True  # zero setup: discovery picks LABTRACK_DATABASE
    named = database_from_uri(uri)
    return named is not None and named == Path(database).expanduser().resolve()


def ui_base(client: Any) -> str | None:
    """The web UI's address ending in ``/``, to which ``#/runs/<id>`` is appended; None if unknown."""
    explicit = os.environ.get(UI_URL_ENV)
    if explicit:
        return explicit.rstrip("/") + "/"
    if _logs_to_jupyter_database(client):
        base = jupyter_base_url()
        if base is not None:
            return f"{base}{PROXY_NAME}/"
    try:
        uri = client.tracking_uri
    except Exception:  # an unreachable server: no link, the table still works
        return None
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/") + "/"
    return None
