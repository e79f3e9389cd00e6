"""Schema creation and upgrades with alembic, run once per process start.

The common case (schema current) costs one query and never imports alembic.
Callers hold a cross-process lock (``ownership.schema_lock`` for SQLite, an
advisory lock for PostgreSQL) so concurrent starts never race.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

# The newest migration; tests/unit/test_migrations.py checks it is alembic's head.
HEAD = "0011"
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
            revision = current_revision(conn)
            fresh = revision is None and not inspect(conn).get_table_names()
            conn.rollback()
            if fresh:
                create_fresh(conn)
            elif revision != HEAD:
                upgrade(conn)
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()


def create_fresh(conn: Connection) -> None:
    """An empty database gets the current schema at once and is stamped HEAD.

    Equivalent to running every migration (tests/unit/test_store_core.py
    checks that the migrations build exactly ``schema.metadata``), without
    importing alembic: a new folder's server is up in well under a second.
    """
    from labtrack.store.schema import metadata

    with conn.begin():
        metadata.create_all(conn)
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                          "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD})


def upgrade(conn: Connection, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)
    conn.commit()
