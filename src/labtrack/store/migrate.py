"""Schema creation and upgrades with alembic, run once per process start.

The common case (schema current) costs one query and never imports alembic.
Callers hold a cross-process lock (``ownership.schema_lock`` for SQLite, an
advisory lock for PostgreSQL) so concurrent starts never race.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

# The newest migration; tests/unit/test_migrations.py checks it is alembic's head.
HEAD = "0001"
MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x6C61627472616B  # "labtrak"


def current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return row[0] if row else None


def ensure_schema(engine: Engine) -> None:
    """Create or upgrade the schema to HEAD."""
    with engine.connect() as conn:
        if current_revision(conn) == HEAD:
            conn.rollback()
            return
        conn.rollback()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
        try:
            if current_revision(conn) != HEAD:
                conn.rollback()
                upgrade(conn)
            else:
                conn.rollback()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()


def upgrade(conn: Connection, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)
    conn.commit()
