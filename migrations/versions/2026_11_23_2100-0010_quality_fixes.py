"""Quality fixes: the evidence behind a block, and tasks dynamic overlap stopped.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 21:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table('worker_blocks', schema=None) as batch_op:
        # Blocks made before this revision kept no label ids: an empty document says so.
        batch_op.add_column(sa.Column('evidence', JSON_DOC, nullable=False,
                                      server_default=sa.text("'{}'")))
    with op.batch_alter_table('worker_blocks', schema=None) as batch_op:
        batch_op.alter_column('evidence', server_default=None)

    op.create_table('overlap_stops',
    sa.Column('task_id', ID, nullable=False),
    sa.Column('project_id', ID, nullable=False),
    sa.Column('run_id', ID, nullable=False),
    sa.Column('stopped_at', TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_overlap_stops_project_id_projects')),
    sa.ForeignKeyConstraint(['run_id'], ['consensus_runs.id'], name=op.f('fk_overlap_stops_run_id_consensus_runs')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_overlap_stops_task_id_tasks')),
    sa.PrimaryKeyConstraint('task_id', name=op.f('pk_overlap_stops'))
    )
    with op.batch_alter_table('overlap_stops', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_overlap_stops_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('overlap_stops', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_overlap_stops_project_id'))
    op.drop_table('overlap_stops')
    with op.batch_alter_table('worker_blocks', schema=None) as batch_op:
        batch_op.drop_column('evidence')
