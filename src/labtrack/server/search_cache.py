"""Answers to a repeated, identical run search, served while the database is unchanged.

The web UI polls the same search, and a page of 1,000 runs costs the server some
30 ms of CPU to read and write out.  An answer is kept with the database's
``DataVersion`` read before the search began; it is served to a request with the
same arguments only while the version has not moved, i.e. while no connection,
of this process or any other, has committed anything since.  So it is exactly
what the request would have read itself.

- An answer is kept only if the version is the same after the search as before
  it: the search read the state that version names.
- Only SQLite files (PostgreSQL has no cheap equivalent): elsewhere every
  search reads the database, as before.
- The answer is a function of the arguments and the database alone.  Permission
  checks run per request before the endpoint (``auth.wrap``), so a cached answer
  only goes to a request that was allowed to read those experiments, and the
  answer itself does not depend on who asks.
- Kept only for a search asked before (any of the last ``ASKED`` keys): a poll
  asks again, paging through 100,000 runs asks each page once, and keeping those
  pages held 23 MB of text nobody would read (bench_scale.py: RSS settled at 99
  against 76 MB).
- Bounded: at most ``KEEP`` answers and ``MAX_BYTES`` of text in all (least
  recently used first out); an answer larger than ``MAX_BYTES`` is not kept.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from labtrack.store.data_version import DataVersion

KEEP = 8
MAX_BYTES = 16 << 20  # characters of JSON text (ASCII: bytes) over all kept answers
ASKED = 256  # searches remembered as asked (their keys only)


class SearchCache:
    """Answers by key (a search's arguments), each with the data version it was read at."""

    def __init__(self, version: DataVersion | None) -> None:
        self.version = version  # None: nothing is kept
        self._lock = threading.Lock()
        self._answers: OrderedDict[Hashable, tuple[int, str]] = OrderedDict()
        self._asked: OrderedDict[Hashable, None] = OrderedDict()
        self._chars = 0
        self.hits = 0

    def answer(self, key: Hashable, make: Callable[[], str]) -> str:
        """``make()``, or what it returned for ``key`` when nothing has been committed since."""
        if self.version is None:
            return make()
        try:
            before = self.version.current()
        except sqlite3.Error:
            return make()
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None and kept[0] == before:
                self._answers.move_to_end(key)
                self.hits += 1
                return kept[1]
        text = make()
        try:
            unchanged = self.version.current() == before
        except sqlite3.Error:
            unchanged = False
        if unchanged and len(text) <= MAX_BYTES and self._asked_before(key):
            self._keep(key, before, text)
        return text

    def _asked_before(self, key: Hashable) -> bool:
        """Whether ``key`` was asked before (and remember that it now was)."""
        with self._lock:
            if key in self._asked:
                self._asked.move_to_end(key)
                return True
            self._asked[key] = None
            if len(self._asked) > ASKED:
                self._asked.popitem(last=False)
            return False

    def _keep(self, key: Hashable, version: int, text: str) -> None:
        with self._lock:
            old = self._answers.pop(key, None)
            if old is not None:
                self._chars -= len(old[1])
            self._answers[key] = (version, text)
            self._chars += len(text)
            while len(self._answers) > KEEP or self._chars > MAX_BYTES:
                self._chars -= len(self._answers.popitem(last=False)[1][1])

    def close(self) -> None:
        if self.version is not None:
            self.version.close()


def search_cache(ctx: Any) -> SearchCache:
    """The server's one SearchCache (made on first use): on for a SQLite file, unless the setting is off."""
    def make() -> SearchCache:
        path = ctx.store.engines.sqlite_path
        on = path is not None and getattr(ctx.settings, "search_cache", True)
        return SearchCache(DataVersion(path) if on else None)
    return ctx.one("search_cache", make)
