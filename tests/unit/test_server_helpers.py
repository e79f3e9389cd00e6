"""The server's one instance of each helper (ServerContext.one), and their closing at its stop."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from labtrack.server.base import ServerContext
from labtrack.server.search_cache import search_cache
from labtrack.store.tracking import TrackingStore


def context(**kw: Any) -> ServerContext:
    return ServerContext(store=kw.pop("store", None), logged_models=None, artifacts=None,
                         settings=kw.pop("settings", None), **kw)


def test_one_makes_a_helper_once_however_many_threads_ask_at_once() -> None:
    ctx = context()
    made: list[object] = []
    gate = threading.Barrier(8)

    def make() -> object:
        made.append(object())
        return made[-1]

    got: list[object] = []

    def ask() -> None:
        gate.wait()
        got.append(ctx.one("thing", make))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and got == made * 8


def test_close_helpers_closes_what_one_made_last_first_and_goes_on_after_a_failure() -> None:
    ctx = context()
    closed: list[str] = []

    class Helper:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name, self.fail = name, fail

        def close(self) -> None:
            closed.append(self.name)
            if self.fail:
                raise OSError("disk gone")

    ctx.one("a", lambda: Helper("a"))
    ctx.one("b", lambda: Helper("b", fail=True))
    ctx.one("hosts", lambda: ["localhost"])  # nothing to close
    ctx.extra["auth"] = Helper("auth")  # not made by one(): its owner closes it
    ctx.close_helpers()
    assert closed == ["b", "a"]
    ctx.close_helpers()  # once only
    assert closed == ["b", "a"]


def test_the_search_caches_own_sqlite_connection_is_closed_at_the_stop(tmp_path: Path) -> None:
    store = TrackingStore(f"sqlite:///{tmp_path / 'mlruns.db'}")
    try:
        ctx = context(store=store)
        cache = search_cache(ctx)
        assert cache.version is not None
        cache.version.current()
        ctx.close_helpers()
        conn = cache.version._conn
        try:
            conn.execute("SELECT 1")
        except Exception as e:  # noqa: BLE001 - sqlite3.ProgrammingError: closed
            assert "closed" in str(e)
        else:
            raise AssertionError("the cache's connection is still open")
    finally:
        store.close()
