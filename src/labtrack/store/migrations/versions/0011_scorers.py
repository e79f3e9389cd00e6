"""registered scorers: scorers and their versions (mlflow.genai.scorers)

Two new tables, by MLflow's names: ``scorers`` (a name within an experiment, its id) and
``scorer_versions`` (each register's serialized scorer).  Nothing existing changes, so the
upgrade is the same on SQLite and PostgreSQL.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scorers',
    sa.Column('scorer_id', sa.String(length=36), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('scorer_name', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_scorers_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('scorer_id', name=op.f('pk_scorers')),
    sa.UniqueConstraint('experiment_id', 'scorer_name', name=op.f('uq_scorers_experiment_id_scorer_name'))
    )
    op.create_table('scorer_versions',
    sa.Column('scorer_id', sa.String(length=36), nullable=False),
    sa.Column('scorer_version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('serialized_scorer', sa.Text(), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['scorer_id'], ['scorers.scorer_id'], name=op.f('fk_scorer_versions_scorer_id_scorers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('scorer_id', 'scorer_version', name=op.f('pk_scorer_versions'))
    )


def downgrade() -> None:
    op.drop_table('scorer_versions')
    op.drop_table('scorers')
