"""traces: trace infos, tags, metadata, spans, assessments and links to runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('traces',
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('request_time', sa.BigInteger(), nullable=False),
    sa.Column('execution_duration', sa.BigInteger(), nullable=True),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('client_request_id', sa.String(length=250), nullable=True),
    sa.Column('request_preview', sa.Text(), nullable=True),
    sa.Column('response_preview', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_traces_experiment_id_experiments')),
    sa.PrimaryKeyConstraint('trace_id', name=op.f('pk_traces'))
    )
    with op.batch_alter_table('traces', schema=None) as batch_op:
        batch_op.create_index('ix_traces_experiment_time', ['experiment_id', 'request_time'], unique=False)

    op.create_table('trace_tags',
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['trace_id'], ['traces.trace_id'], name=op.f('fk_trace_tags_trace_id_traces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trace_id', 'key', name=op.f('pk_trace_tags'))
    )
    op.create_table('trace_metadata',
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['trace_id'], ['traces.trace_id'], name=op.f('fk_trace_metadata_trace_id_traces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trace_id', 'key', name=op.f('pk_trace_metadata'))
    )
    op.create_table('spans',
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('span_id', sa.String(length=16), nullable=False),
    sa.Column('parent_span_id', sa.String(length=16), nullable=True),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('span_type', sa.String(length=500), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('start_time_ns', sa.BigInteger(), nullable=False),
    sa.Column('end_time_ns', sa.BigInteger(), nullable=True),
    sa.Column('content', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['trace_id'], ['traces.trace_id'], name=op.f('fk_spans_trace_id_traces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trace_id', 'span_id', name=op.f('pk_spans'))
    )
    op.create_table('assessments',
    sa.Column('assessment_id', sa.String(length=64), nullable=False),
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('create_time', sa.BigInteger(), nullable=False),
    sa.Column('last_update_time', sa.BigInteger(), nullable=False),
    sa.Column('valid', sa.Boolean(), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('content', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['trace_id'], ['traces.trace_id'], name=op.f('fk_assessments_trace_id_traces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('assessment_id', name=op.f('pk_assessments'))
    )
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.create_index('ix_assessments_trace', ['trace_id'], unique=False)

    op.create_table('trace_runs',
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['trace_id'], ['traces.trace_id'], name=op.f('fk_trace_runs_trace_id_traces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trace_id', 'run_uuid', name=op.f('pk_trace_runs'))
    )


def downgrade() -> None:
    for name in ('trace_runs', 'assessments', 'spans', 'trace_metadata', 'trace_tags'):
        op.drop_table(name)
    with op.batch_alter_table('traces', schema=None) as batch_op:
        batch_op.drop_index('ix_traces_experiment_time')
    op.drop_table('traces')
