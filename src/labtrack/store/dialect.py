"""What differs between the backends we support (SQLite, PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection


def upsert(conn: Connection, table: Any) -> Any:
    """A dialect INSERT with ON CONFLICT DO NOTHING / DO UPDATE."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
