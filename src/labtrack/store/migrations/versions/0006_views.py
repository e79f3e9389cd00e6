"""views: named saved views of an experiment's runs page (filter, columns, sort, grouping, chart panels)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('saved_views',
    sa.Column('view_id', sa.String(length=32), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=True),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('last_update_time', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_saved_views_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('view_id', name=op.f('pk_saved_views')),
    sa.UniqueConstraint('experiment_id', 'name', name=op.f('uq_saved_views_experiment_id_name'))
    )


def downgrade() -> None:
    op.drop_table('saved_views')
