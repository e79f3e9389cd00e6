"""metric best steps: latest_metrics.min_step and max_step, the step where a metric's min and max were reached

Existing rows are filled from the history: the smallest step whose (non-NaN)
value equals the stored min or max.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('latest_metrics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('min_step', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('max_step', sa.BigInteger(), nullable=True))
    for column, extreme in (('min_step', 'min_value'), ('max_step', 'max_value')):
        op.execute(
            f"UPDATE latest_metrics SET {column} = (SELECT min(metrics.step) FROM metrics "
            "WHERE metrics.run_uuid = latest_metrics.run_uuid AND metrics.key = latest_metrics.key "
            f"AND metrics.is_nan = false AND metrics.value = latest_metrics.{extreme}) "
            f"WHERE {extreme} IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('latest_metrics', schema=None) as batch_op:
        batch_op.drop_column('max_step')
        batch_op.drop_column('min_step')
