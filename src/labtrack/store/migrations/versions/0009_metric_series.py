"""metric series: points and chart summaries keyed by an integer series id

``metric_series`` holds one row per (run, metric key) with an integer id;
``metrics`` and ``metric_summaries`` are keyed by that id instead of repeating the
run id (32 characters) and the key in every point: about 46 bytes less a point.

The data moves set-based: the old tables are renamed, every (run, key) that has
points or summaries gets its id (in (run, key) order, so the old tables' primary
key order is the new ones' and SQLite appends to its B-trees), then one
``INSERT ... SELECT`` a table joins the old rows to their ids.  Series of runs that
no longer exist (possible only in an SQLite file written with foreign keys off) have
no row to hang on and are dropped with the old tables, as a run's deletion would have.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_POINT_COLUMNS = "step, timestamp, value, is_nan, model_id, dataset_name, dataset_digest"
_SUMMARY_COLUMNS = "level, bucket, min_value, min_step, min_timestamp, max_value, max_step, max_timestamp"


def _rename_away(table: str) -> str:
    """Rename ``table`` (and, on PostgreSQL, its primary key's index) out of the new table's way."""
    old = f"{table}_0008"
    op.rename_table(table, old)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
    return old


def _points_table(name: str, key_columns: list[sa.Column], pk: list[str], fk: sa.ForeignKeyConstraint,
                  value_columns: list[sa.Column], constraints: bool = True) -> None:
    """A points or summaries table; without its keys when ``constraints`` is False (see _add_keys)."""
    keys = [fk, sa.PrimaryKeyConstraint(*pk, name=op.f(f'pk_{name}'))] if constraints else []
    op.create_table(name, *key_columns, *value_columns, *keys, sqlite_with_rowid=False)


def _add_keys(name: str, pk: list[str]) -> None:
    """PostgreSQL builds a primary key from the sorted rows and checks a foreign key with one
    join, several times faster than index inserts and a trigger's lookup for every row copied."""
    op.create_primary_key(op.f(f'pk_{name}'), name, pk)
    op.create_foreign_key(op.f(f'fk_{name}_series_id_metric_series'), name, 'metric_series', ['series_id'],
                          ['series_id'], ondelete='CASCADE')


def _point_values() -> list[sa.Column]:
    return [
        sa.Column('step', sa.BigInteger(), nullable=False),
        sa.Column('timestamp', sa.BigInteger(), nullable=False),
        sa.Column('value', sa.Float(precision=53), nullable=False),
        sa.Column('is_nan', sa.Boolean(), nullable=False),
        sa.Column('model_id', sa.String(length=64), nullable=True),
        sa.Column('dataset_name', sa.String(length=500), nullable=True),
        sa.Column('dataset_digest', sa.String(length=36), nullable=True),
    ]


def _summary_values() -> list[sa.Column]:
    return [
        sa.Column('level', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('bucket', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('min_value', sa.Float(precision=53), nullable=False),
        sa.Column('min_step', sa.BigInteger(), nullable=False),
        sa.Column('min_timestamp', sa.BigInteger(), nullable=False),
        sa.Column('max_value', sa.Float(precision=53), nullable=False),
        sa.Column('max_step', sa.BigInteger(), nullable=False),
        sa.Column('max_timestamp', sa.BigInteger(), nullable=False),
    ]


def _series_key() -> sa.Column:
    return sa.Column('series_id', sa.Integer(), autoincrement=False, nullable=False)


def _series_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['series_id'], ['metric_series.series_id'],
                                   name=op.f(f'fk_{table}_series_id_metric_series'), ondelete='CASCADE')


def _run_key() -> list[sa.Column]:
    return [sa.Column('run_uuid', sa.String(length=32), nullable=False),
            sa.Column('key', sa.String(length=250), nullable=False)]


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f(f'fk_{table}_run_uuid_runs'),
                                   ondelete='CASCADE')


def upgrade() -> None:
    old_metrics = _rename_away('metrics')
    old_summaries = _rename_away('metric_summaries')
    op.create_table('metric_series',
                    sa.Column('series_id', sa.Integer(), autoincrement=True, nullable=False),
                    sa.Column('run_uuid', sa.String(length=32), nullable=False),
                    sa.Column('key', sa.String(length=250), nullable=False),
                    _run_fk('metric_series'),
                    sa.PrimaryKeyConstraint('series_id', name=op.f('pk_metric_series')),
                    sa.UniqueConstraint('run_uuid', 'key', name=op.f('uq_metric_series_run_uuid_key')))
    # Ids in (run, key) order: each old table's primary key order is then the new one's.
    op.execute(f"INSERT INTO metric_series (run_uuid, key) SELECT k.run_uuid, k.key FROM ("
               f"SELECT run_uuid, key FROM {old_metrics} GROUP BY run_uuid, key UNION "
               f"SELECT run_uuid, key FROM {old_summaries} GROUP BY run_uuid, key) AS k "
               "WHERE k.run_uuid IN (SELECT run_uuid FROM runs) ORDER BY k.run_uuid, k.key")
    # SQLite cannot add keys to a table (only rebuild it): there they come with the table,
    # and rows in primary key order make its inserts appends.
    later = op.get_bind().dialect.name == "postgresql"
    point_pk, summary_pk = ['series_id', 'step', 'timestamp', 'value', 'is_nan'], ['series_id', 'level', 'bucket']
    _points_table('metrics', [_series_key()], point_pk, _series_fk('metrics'), _point_values(), not later)
    _points_table('metric_summaries', [_series_key()], summary_pk, _series_fk('metric_summaries'),
                  _summary_values(), not later)
    _copy_in(old_metrics, 'metrics', _POINT_COLUMNS, None if later else "o.step, o.timestamp, o.value, o.is_nan")
    _copy_in(old_summaries, 'metric_summaries', _SUMMARY_COLUMNS, None if later else "o.level, o.bucket")
    op.drop_table(old_metrics)
    op.drop_table(old_summaries)
    if later:
        _add_keys('metrics', point_pk)
        _add_keys('metric_summaries', summary_pk)


def _copy_in(old: str, new: str, columns: str, order: str | None) -> None:
    """One INSERT ... SELECT: the old rows with their series' id, read in the old primary key's
    order (``order``: its columns after run and key) or in any order (None)."""
    selected = ", ".join(f"o.{c.strip()}" for c in columns.split(","))
    op.execute(f"INSERT INTO {new} (series_id, {columns}) SELECT s.series_id, {selected} "
               f"FROM {old} o JOIN metric_series s ON s.run_uuid = o.run_uuid AND s.key = o.key"
               + (f" ORDER BY o.run_uuid, o.key, {order}" if order else ""))


def downgrade() -> None:
    new_metrics = _rename_away('metrics')
    new_summaries = _rename_away('metric_summaries')
    _points_table('metrics', _run_key(), ['run_uuid', 'key', 'step', 'timestamp', 'value', 'is_nan'],
                  _run_fk('metrics'), _point_values())
    op.create_table('metric_summaries', *_run_key(), *_summary_values(),
                    _run_fk('metric_summaries'),
                    sa.PrimaryKeyConstraint('run_uuid', 'key', 'level', 'bucket', name=op.f('pk_metric_summaries')))
    for old, new, columns in ((new_metrics, 'metrics', _POINT_COLUMNS),
                              (new_summaries, 'metric_summaries', _SUMMARY_COLUMNS)):
        selected = ", ".join(f"o.{c.strip()}" for c in columns.split(","))
        op.execute(f"INSERT INTO {new} (run_uuid, key, {columns}) SELECT s.run_uuid, s.key, {selected} "
                   f"FROM {old} o JOIN metric_series s ON s.series_id = o.series_id")
        op.drop_table(old)
    op.drop_table('metric_series')
