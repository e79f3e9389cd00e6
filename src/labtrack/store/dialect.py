"""What differs between the backends we support (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection


def upsert(conn: Connection, table: Any) -> Any:
    """A dialect INSERT with ON CONFLICT DO NOTHING / DO UPDATE."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


_CACHE: dict[tuple[str, str], Any] = {}


def cached(conn: Connection, name: str, build: Callable[[Connection], Any]) -> Any:
    """A statement built once per dialect and reused.

    Building an upsert (its ``excluded`` alias above all) costs more than
    executing it; the statement is the same for every call, only the bound
    parameters differ.
    """
    key = (conn.dialect.name, name)
    stmt = _CACHE.get(key)
    if stmt is None:
        stmt = _CACHE[key] = build(conn)
    return stmt


def raw_executemany(conn: Connection, compiled: Any, rows: list[dict[str, Any]]) -> None:
    """Run a compiled INSERT for many rows on ``conn``'s DBAPI cursor.

    SQLAlchemy's executemany builds and type-processes a parameter set per row,
    which costs as much as the database's insert of 1,000 points.  Only for
    columns whose values the driver takes as they are (str, int, float, bool, None).
    """
    if compiled.positional:
        names = compiled.positiontup
        if len(names) > 1:
            params: Any = list(map(itemgetter(*names), rows))
        else:
            params = [(r[names[0]],) for r in rows]
    else:
        params = rows
    _executemany(conn, compiled.string, params)


def raw_executemany_columns(conn: Connection, compiled: Any, columns: dict[str, Iterable[Any]]) -> None:
    """``raw_executemany`` for rows given column by column (``itertools.repeat`` for a constant).

    The rows are zipped in C: no Python object per row but the parameter tuple.
    """
    if compiled.positional:
        params: Any = list(zip(*(columns[n] for n in compiled.positiontup)))
    else:
        names = list(columns)
        params = [dict(zip(names, row)) for row in zip(*columns.values())]
    _executemany(conn, compiled.string, params)


def raw_executemany_positional(conn: Connection, compiled: Any, params: list[tuple[Any, ...]]) -> None:
    """``raw_executemany`` for parameter tuples already in ``compiled.positiontup`` order."""
    assert compiled.positional, "positional parameters need a qmark/format dialect"
    _executemany(conn, compiled.string, params)


def _executemany(conn: Connection, sql: str, params: Any) -> None:
    if not conn.in_transaction():
        conn.begin()
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()


def raw_rows(conn: Connection, compiled: Any, values: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run a compiled statement on ``conn``'s DBAPI cursor; rows as plain tuples.

    For reads of many rows, where SQLAlchemy's Row per row (and, for an IN
    list, rendering its placeholders on every call) costs as much as the
    database's own work.  The SQL is still SQLAlchemy's (compiled once, see
    ``cached``) and runs inside ``conn``'s transaction.  Only for columns that
    need no result processing (a Boolean comes back as 0/1 on SQLite).
    """
    return _execute(conn, compiled, values, lambda cursor: cursor.fetchall())


def raw_rows_positional(conn: Connection, compiled: Any, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """``raw_rows`` with the parameters already in ``compiled.positiontup`` order."""
    assert compiled.positional, "positional parameters need a qmark/format dialect"
    return _run(conn, compiled.string, params, lambda cursor: cursor.fetchall())


def _execute(conn: Connection, compiled: Any, values: dict[str, Any], result: Callable[[Any], Any]) -> Any:
    bound = tuple(values[n] for n in compiled.positiontup) if compiled.positional else values
    return _run(conn, compiled.string, bound, result)


def _run(conn: Connection, sql: str, bound: Any, result: Callable[[Any], Any]) -> Any:
    if not conn.in_transaction():
        conn.begin()
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, bound)
        return result(cursor)
    finally:
        cursor.close()
