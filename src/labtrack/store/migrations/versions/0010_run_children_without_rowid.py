"""run children without rowid: params, tags and latest_metrics clustered by (run id, key)

The runs table's group-by (store/run_table.py ``groups``) looks up, for each of an
experiment's runs in run id order, its group value and its latest value of each shown metric.
In rowid tables each look-up went through the primary key's index and then to the row
elsewhere in the file (2.4 s for 100,000 runs and 10 metrics); stored WITHOUT ROWID the row
sits in the primary key's B-tree, so the look-ups walk it front to back (also one B-tree less
to write per param, tag and metric).  ``ix_runs_experiment_run`` hands the group-by an
experiment's runs already in run id order instead of sorting them.

SQLite only: PostgreSQL tables have no rowid (the index is added on both).
It depends on nothing but the schema before it (0008, or 0009 which leaves these tables alone).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_TABLES = ('params', 'tags', 'latest_metrics')


def _recreate(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in _TABLES:
        # Batch mode copies the table into a new one (indexes and constraints reflected).
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_with_rowid': with_rowid}):
            pass


def upgrade() -> None:
    _recreate(with_rowid=False)
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_experiment_run', ['experiment_id', 'lifecycle_stage', 'run_uuid'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_experiment_run')
    _recreate(with_rowid=True)
