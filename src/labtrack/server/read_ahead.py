"""The next page of a paged read, made while the client parses this one.

The mlflow client reads a long metric history in pages of 25,000 points and
parses each (protobuf, ~0.4 s) before it asks for the next: the server's work
on that next page (~0.06 s) need not wait for the request.  When a page ends
with a next_page_token, the page that token asks for is made on a thread of
its own, and the request for it takes the text.

A page made ahead is served only if no write has been committed since it was
read (the store writer's commit count has not moved), so it is what the
request would have read itself.  That holds where this process is the
database's only writer (SQLite); on PostgreSQL, where several servers may
write, nothing is read ahead.  At most ``KEEP`` pages are held (a few MB: a
page a client never asks for stays until another takes its place), and one
made more than ``TTL_S`` seconds ago is not served.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from labtrack.thread_names import name_os_thread

KEEP = 2
TTL_S = 60.0


class ReadAhead:
    """Pages made ahead, by key (what identifies the request that will ask for one)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.enabled = store.engines.writer.dialect.name == "sqlite"
        self.pool = ThreadPoolExecutor(1, "labtrack-read-ahead", name_os_thread)
        self.lock = threading.Lock()
        self.pages: dict[Hashable, tuple[float, int, Future[Any]]] = {}

    def start(self, key: Hashable, make: Callable[[], Any]) -> None:
        """Make ``make()`` for the request ``key`` on the read-ahead thread."""
        if not self.enabled:
            return
        commits = self.store.writer.commits  # before the read: a commit after it invalidates the page
        with self.lock:
            if key in self.pages:
                return
            while len(self.pages) >= KEEP:
                self.pages.pop(next(iter(self.pages)))[2].cancel()
            self.pages[key] = (time.monotonic(), commits, self.pool.submit(make))

    def take(self, key: Hashable) -> Any | None:
        """The page made ahead for ``key``, or None: then the request reads it itself.

        A page that failed to be made is not an answer either: the request
        reads it again, and fails (or not) on its own.
        """
        with self.lock:
            entry = self.pages.pop(key, None)
        if entry is None:
            return None
        made_at, commits, future = entry
        if future.cancel() or time.monotonic() - made_at > TTL_S:
            return None  # not begun (the request reads it as soon), or too old
        try:
            page = future.result()
        except Exception:  # noqa: BLE001 - read again by the request
            return None
        return page if self.store.writer.commits == commits else None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def read_ahead(ctx: Any) -> ReadAhead:
    """The server's one ReadAhead (made on first use)."""
    return ctx.one("read_ahead", lambda: ReadAhead(ctx.store))
