"""evaluation datasets: datasets, their experiments and records

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('eval_datasets',
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_time', sa.BigInteger(), nullable=False),
    sa.Column('last_update_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=True),
    sa.Column('last_updated_by', sa.String(length=256), nullable=True),
    sa.Column('tags', sa.Text(), nullable=True),
    sa.Column('schema', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('dataset_id', name=op.f('pk_eval_datasets'))
    )
    op.create_table('eval_dataset_experiments',
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('experiment_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['eval_datasets.dataset_id'], name=op.f('fk_eval_dataset_experiments_dataset_id_eval_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dataset_id', 'experiment_id', name=op.f('pk_eval_dataset_experiments'))
    )
    op.create_table('eval_dataset_records',
    sa.Column('dataset_record_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('input_hash', sa.String(length=64), nullable=False),
    sa.Column('inputs', sa.Text(), nullable=False),
    sa.Column('outputs', sa.Text(), nullable=True),
    sa.Column('expectations', sa.Text(), nullable=True),
    sa.Column('tags', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('source_type', sa.String(length=32), nullable=True),
    sa.Column('created_time', sa.BigInteger(), nullable=False),
    sa.Column('last_update_time', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=256), nullable=True),
    sa.Column('last_updated_by', sa.String(length=256), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['eval_datasets.dataset_id'], name=op.f('fk_eval_dataset_records_dataset_id_eval_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dataset_record_id', name=op.f('pk_eval_dataset_records')),
    sa.UniqueConstraint('dataset_id', 'input_hash', name=op.f('uq_eval_dataset_records_dataset_id_input_hash'))
    )


def downgrade() -> None:
    op.drop_table('eval_dataset_records')
    op.drop_table('eval_dataset_experiments')
    op.drop_table('eval_datasets')
