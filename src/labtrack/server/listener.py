"""A loopback TCP listener opened on request, for clients that cannot speak unix sockets.

Behind JupyterLab the server listens only on a unix socket in a private
folder (DESIGN decision 5), but the unmodified ``mlflow`` client speaks only
``http://``.  ``POST /api/2.0/labtrack/tcp-listener`` (JSON body, so no
cross-site form can trigger it) opens a listener on 127.0.0.1 with a random
port and a token, publishes both in the ownership record, and answers them;
``lt.mlflow_env()`` turns the answer into ``MLFLOW_TRACKING_URI`` and
``MLFLOW_TRACKING_TOKEN``.  The token guards TCP only: every user on a login
node can reach loopback ports, but only this user can reach the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labtrack import ownership
from labtrack.errors import BadRequest
from labtrack.server.args import Args
from labtrack.server.base import ServerContext
from labtrack.server.tokens import new_token

OPENER_KEY = "open_tcp"


def tcp_opener(server: Any, record: ownership.OwnerRecord, db_path: Path | None, ctx: ServerContext,
               loop: asyncio.AbstractEventLoop) -> Callable[[], tuple[str, str]]:
    """A function (called on a worker thread) that opens the listener once and returns (url, token)."""

    async def _open() -> tuple[str, str]:
        from tornado.netutil import bind_sockets

        if not record.url:
            sockets = bind_sockets(0, address="127.0.0.1")
            await server.add_sockets(sockets)
            record.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        # Set the token before anyone learns the URL: TCP requests are checked from now on.
        ctx.token = ctx.token or new_token()
        record.token = ctx.token
        if db_path is not None:
            ownership.write_record(db_path, record)
        return record.url, ctx.token

    def open_listener() -> tuple[str, str]:
        # Sockets belong to the IOLoop's thread; handlers run on the request pool.
        return asyncio.run_coroutine_threadsafe(_open(), loop).result(timeout=10)

    return open_listener


def open_tcp_listener(ctx: ServerContext, a: Args) -> dict[str, Any]:
    opener = ctx.extra.get(OPENER_KEY)
    if opener is None:
        raise BadRequest("This server cannot open a TCP listener.")
    url, token = opener()
    return {"url": url, "token": token}


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("tcp-listener", {"POST": open_tcp_listener}),
]
