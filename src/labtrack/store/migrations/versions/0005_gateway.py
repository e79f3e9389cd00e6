"""gateway: the AI gateway's secrets, model definitions and endpoints made over REST

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gateway_objects',
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('last_updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'object_id', name=op.f('pk_gateway_objects')),
    sa.UniqueConstraint('kind', 'name', name=op.f('uq_gateway_objects_kind_name'))
    )


def downgrade() -> None:
    op.drop_table('gateway_objects')
