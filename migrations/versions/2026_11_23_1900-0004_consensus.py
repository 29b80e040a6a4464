"""Consensus: immutable aggregation runs, their label per task and their skill per worker.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 19:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
DOUBLE = sa.Float(precision=53)
# float8[] on PostgreSQL so a run's task rows go in by binary COPY; JSON arrays on SQLite.
FLOAT_LIST = sa.JSON().with_variant(postgresql.ARRAY(DOUBLE), "postgresql")


def upgrade() -> None:
    op.create_table('consensus_runs',
    sa.Column('id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('options', JSON_DOC, nullable=False),
    sa.Column('classes', JSON_DOC, nullable=False),
    sa.Column('input_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('reuse_key', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.Integer(), nullable=False),
    sa.Column('tasks', sa.Integer(), nullable=False),
    sa.Column('workers', sa.Integer(), nullable=False),
    sa.Column('ties', sa.Integer(), nullable=False),
    sa.Column('iterations', sa.Integer(), nullable=False),
    sa.Column('converged', sa.Boolean(), nullable=True),
    sa.Column('gold_used', sa.Integer(), nullable=False),
    sa.Column('gold_held_out', sa.Integer(), nullable=False),
    sa.Column('gold_accuracy', DOUBLE, nullable=True),
    sa.Column('created_by_id', ID, nullable=True),
    sa.Column('created_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['accounts.id'], name=op.f('fk_consensus_runs_created_by_id_accounts')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_consensus_runs_project_id_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consensus_runs')),
    sa.UniqueConstraint('project_id', 'reuse_key', name=op.f('uq_consensus_runs_project_id_reuse_key'))
    )
    with op.batch_alter_table('consensus_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consensus_runs_project_id'), ['project_id'], unique=False)

    op.create_table('task_consensus',
    sa.Column('run_id', ID, nullable=False),
    sa.Column('task_id', ID, nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('confidence', DOUBLE, nullable=False),
    sa.Column('posteriors', FLOAT_LIST, nullable=False),
    sa.Column('labels', sa.Integer(), nullable=False),
    # No foreign keys: checked per row, they made the run's COPY 5 times slower (see the model).
    sa.PrimaryKeyConstraint('run_id', 'task_id', name=op.f('pk_task_consensus'))
    )
    op.create_table('worker_skills',
    sa.Column('run_id', ID, nullable=False),
    sa.Column('worker_id', ID, nullable=False),
    sa.Column('workforce_id', ID, nullable=False),
    sa.Column('skill', DOUBLE, nullable=True),
    sa.Column('confusion', JSON_DOC, nullable=True),
    sa.Column('labels', sa.Integer(), nullable=False),
    sa.Column('gold_answers', sa.Integer(), nullable=False),
    sa.Column('gold_correct', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['consensus_runs.id'], name=op.f('fk_worker_skills_run_id_consensus_runs')),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_worker_skills_worker_id_workers')),
    sa.ForeignKeyConstraint(['workforce_id'], ['workforces.id'], name=op.f('fk_worker_skills_workforce_id_workforces')),
    sa.PrimaryKeyConstraint('run_id', 'worker_id', name=op.f('pk_worker_skills'))
    )


def downgrade() -> None:
    op.drop_table('worker_skills')
    op.drop_table('task_consensus')
    with op.batch_alter_table('consensus_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consensus_runs_project_id'))

    op.drop_table('consensus_runs')
