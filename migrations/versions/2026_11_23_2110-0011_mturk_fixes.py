"""MTurk fixes: when MTurk confirmed an assignment our page served.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 21:10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('mturk_assignments', schema=None) as batch_op:
        # Rows made before this revision were counted on our page's word; they stay unconfirmed
        # until the next poll sees them on MTurk, which changes nothing for labels already counted.
        batch_op.add_column(sa.Column('confirmed_at', TIMESTAMP, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mturk_assignments', schema=None) as batch_op:
        batch_op.drop_column('confirmed_at')
