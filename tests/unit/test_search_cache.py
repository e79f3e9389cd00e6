"""server/search_cache.py on a real SQLite file: an answer is served again only while
nothing has been committed since, by any connection; it is bounded in count and size."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labtrack.server import search_cache
from labtrack.server.search_cache import SearchCache
from labtrack.store.data_version import DataVersion


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    path = tmp_path / "c.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    yield path, conn
    conn.close()


def _reader(conn: sqlite3.Connection) -> tuple[list[int], Callable[[], str]]:
    """``make`` for the cache: reads the table, counting its calls."""
    calls: list[int] = []

    def make() -> str:
        calls.append(1)
        return repr(conn.execute("SELECT x FROM t ORDER BY x").fetchall())
    return calls, make


def test_a_repeated_search_is_kept_from_its_second_asking(db: tuple[Path, sqlite3.Connection]) -> None:
    path, conn = db
    cache = SearchCache(DataVersion(path))
    calls, make = _reader(sqlite3.connect(path))
    assert cache.answer("k", make) == "[]" and "k" not in cache._answers  # asked once: a page, maybe
    assert cache.answer("k", make) == cache.answer("k", make) == cache.answer("k", make) == "[]"
    assert len(calls) == 2 and cache.hits == 2
    assert cache.answer("other", make) == "[]" and len(calls) == 3
    cache.close()


def test_pages_asked_once_are_not_kept(db: tuple[Path, sqlite3.Connection]) -> None:
    path, _ = db
    cache = SearchCache(DataVersion(path))
    for page in range(search_cache.ASKED + 5):
        cache.answer(("runs", page), lambda: "x" * 100)
    assert not cache._answers and cache._chars == 0 and len(cache._asked) == search_cache.ASKED
    cache.close()


def _ask_twice(cache: SearchCache, key: object, make: Callable[[], str]) -> str:
    cache.answer(key, make)
    return cache.answer(key, make)


@pytest.mark.parametrize("writer", ["connection", "process"])
def test_any_commit_is_seen(db: tuple[Path, sqlite3.Connection], writer: str) -> None:
    path, conn = db
    cache = SearchCache(DataVersion(path))
    calls, make = _reader(sqlite3.connect(path))
    assert _ask_twice(cache, "k", make) == "[]" and "k" in cache._answers
    if writer == "connection":
        conn.execute("INSERT INTO t VALUES (1)")
    else:  # another process on the file: the store writer's own commit count would not move
        code = f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute('INSERT INTO t VALUES (1)'); c.commit()"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert cache.answer("k", make) == "[(1,)]"
    assert cache.answer("k", make) == "[(1,)]" and len(calls) == 3 and cache.hits == 1
    cache.close()


def test_an_answer_read_across_a_commit_is_not_kept(db: tuple[Path, sqlite3.Connection]) -> None:
    path, conn = db
    cache = SearchCache(DataVersion(path))
    calls, read = _reader(sqlite3.connect(path))

    def make() -> str:
        text = read()
        conn.execute("INSERT INTO t VALUES (2)")  # committed while the search ran
        return text
    assert cache.answer("k", read) == "[]"  # asked before: the next answer would be kept
    assert cache.answer("k", make) == "[]"
    assert cache.answer("k", read) == "[(2,)]" and cache.hits == 0
    cache.close()


def test_answers_are_bounded_in_count_and_size(db: tuple[Path, sqlite3.Connection],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = db
    monkeypatch.setattr(search_cache, "MAX_BYTES", 100)
    cache = SearchCache(DataVersion(path))
    for i in range(search_cache.KEEP + 3):
        _ask_twice(cache, i, lambda: "x" * 10)
    assert list(cache._answers) == list(range(3, search_cache.KEEP + 3)) and cache._chars == 10 * search_cache.KEEP
    _ask_twice(cache, "big", lambda: "y" * 60)  # 80 + 60 > 100: the least recently used go
    assert cache._chars <= 100 and "big" in cache._answers and 3 not in cache._answers
    _ask_twice(cache, "huge", lambda: "z" * 101)  # over the whole budget: served, never kept
    assert "huge" not in cache._answers and cache._chars <= 100
    cache.close()


def test_off_makes_every_answer(db: tuple[Path, sqlite3.Connection]) -> None:
    path, _ = db
    cache = SearchCache(None)
    calls, make = _reader(sqlite3.connect(path))
    cache.answer("k", make)
    cache.answer("k", make)
    assert len(calls) == 2 and cache.hits == 0
