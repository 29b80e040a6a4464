"""Audit guard: the database refuses edits and deletions of audit events; indexes for the
trail's filters; the newest label id each consensus run read.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 21:20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from coordinator.audit import guard

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_actor', ['actor_id', 'seq'], unique=False)
        batch_op.create_index('ix_audit_events_action', ['action', 'seq'], unique=False)
    with op.batch_alter_table('consensus_runs', schema=None) as batch_op:
        # Runs made before this revision did not note it; their lineage says so (in_run null).
        batch_op.add_column(sa.Column('max_label_id', sa.BigInteger(), nullable=True))
    # After the batch operations: SQLite's batch mode copies the table, and a trigger on the
    # copy would be dropped with it.
    for statement in guard.create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in guard.drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    with op.batch_alter_table('consensus_runs', schema=None) as batch_op:
        batch_op.drop_column('max_label_id')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_action')
        batch_op.drop_index('ix_audit_events_actor')
