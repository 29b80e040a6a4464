"""Partial indexes for offered and leased assignments, so submitting touches neither.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 20:50
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_assignments_pull')
        batch_op.drop_index('ix_assignments_lease')
        batch_op.create_index('ix_assignments_offered', ['workforce_id', 'id'], unique=False,
                              postgresql_where=sa.text("status = 'offered'"),
                              sqlite_where=sa.text("status = 'offered'"))
        batch_op.create_index('ix_assignments_leased', ['lease_expires_at'], unique=False,
                              postgresql_where=sa.text("status = 'leased'"),
                              sqlite_where=sa.text("status = 'leased'"))


def downgrade() -> None:
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_assignments_leased')
        batch_op.drop_index('ix_assignments_offered')
        batch_op.create_index('ix_assignments_lease', ['status', 'lease_expires_at'], unique=False)
        batch_op.create_index('ix_assignments_pull', ['workforce_id', 'status', 'id'], unique=False)
