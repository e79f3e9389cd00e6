"""What the terminal commands share: the server they talk to, and how they fail.

The server is found as ``lt`` finds it (DESIGN decision 4): ``--tracking-uri``,
``LABTRACK_TRACKING_URI``, ``MLFLOW_TRACKING_URI``, ``LABTRACK_DATABASE``, then
``mlruns.db`` in this folder or a parent (its server, started in the
background if none runs).  Unlike ``lt`` in a batch job these commands never
spool: they read, so they need the server, and they never create a database
where none exists.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from labtrack.errors import LabtrackError

NO_SERVER = ("no tracking server found: pass --tracking-uri, set LABTRACK_TRACKING_URI or "
             "MLFLOW_TRACKING_URI, or run this in a folder that holds mlruns.db")


def tracking_uri_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--tracking-uri`` (default: found as ``lt`` finds it)."""
    return click.option("--tracking-uri", default=None, metavar="URI",
                        help="Server URL (http://host:port), http+unix://socket, or a .db file "
                             "[default: LABTRACK_TRACKING_URI, MLFLOW_TRACKING_URI, "
                             "./mlruns.db].")(fn)


def tracking_client(uri: str | None = None) -> Any:
    """An ``lt.Client`` on the server that ``uri`` (or the environment, or the folder) names."""
    from labtrack.client.client import Client
    from labtrack.client.discovery import database_from_uri, env_tracking_uri, find_database

    uri = uri or env_tracking_uri()
    db = database_from_uri(uri) if uri else find_database()
    if uri and db is None:
        return Client(uri)
    if db is None or not db.is_file():
        raise LabtrackError(NO_SERVER if db is None else f"{db} does not exist",
                            "RESOURCE_DOES_NOT_EXIST")
    from labtrack.client.discovery import server_for_database
    from labtrack.client.spool_transport import may_start_server
    from labtrack.client.transport import Transport

    endpoint, auth = server_for_database(db, start=may_start_server())
    client = Client(endpoint.uri)
    client._transport = Transport(endpoint, auth,
                                  resolver=lambda: server_for_database(db, start=False))
    return client


def fails_in_one_line(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A command whose labtrack errors end in one line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LabtrackError as e:
            click.echo(f"labtrack: {e.message}", err=True)
            sys.exit(1)
        except OSError as e:
            click.echo(f"labtrack: {e.strerror or e}"
                       + (f" ({e.filename})" if getattr(e, "filename", None) else ""), err=True)
            sys.exit(1)

    return wrapper
