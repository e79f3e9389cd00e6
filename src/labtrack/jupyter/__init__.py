"""labtrack in JupyterLab.

- ``setup_labtrack`` is the jupyter-server-proxy entry (group
  ``jupyter_serverproxy_servers``): it starts ``labtrack server`` on
  ``<root_dir>/mlruns.db`` behind ``<base_url>labtrack/``, on a unix socket in
  a private folder.
- The server extension (enabled by ``jupyter_config/``) gives kernels the
  database's location (``LABTRACK_DATABASE``) and serves
  ``<base_url>labtrack-status`` for the lab extension's status bar.
"""

from __future__ import annotations

from typing import Any

from labtrack.jupyter.proxy import setup_labtrack

__all__ = ["setup_labtrack"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "labtrack.jupyter"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from labtrack.jupyter.extension import load

    load(serverapp)
