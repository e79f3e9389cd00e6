"""search indexes: a run search's default order and a metric's order read from an index

``ix_runs_experiment_order`` (experiment, lifecycle, start_time DESC, run id, status,
end_time) replaces ``ix_runs_experiment_start``: a page of the default order at any
offset walks the index alone, and per-experiment counts scan it without the table.
``ix_latest_metrics_key_nan_value`` replaces ``ix_latest_metrics_key_value``: a search
sorted by a metric walks the runs holding a number for it in value order.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_experiment_start')
        batch_op.create_index('ix_runs_experiment_order', ['experiment_id', 'lifecycle_stage', sa.text('start_time DESC'),
                                                           'run_uuid', 'status', 'end_time'], unique=False)
    with op.batch_alter_table('latest_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_latest_metrics_key_value')
        batch_op.create_index('ix_latest_metrics_key_nan_value', ['key', 'is_nan', 'value', 'run_uuid'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('latest_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_latest_metrics_key_nan_value')
        batch_op.create_index('ix_latest_metrics_key_value', ['key', 'value'], unique=False)
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_experiment_order')
        batch_op.create_index('ix_runs_experiment_start', ['experiment_id', 'start_time'], unique=False)
