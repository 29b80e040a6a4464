"""Hash-chained audit events: seq, prev_hash and hash, existing events chained in id order.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 20:30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from coordinator.audit import chain
from coordinator.db import JsonDocument, UTCDateTime

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

#: Events are read and updated this many at a time.
BATCH = 5000


def _events() -> sa.Table:
    """The columns of audit_events this migration reads and writes, with the app's types."""
    return sa.Table(
        "audit_events", sa.MetaData(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("occurred_at", UTCDateTime),
        sa.Column("actor_id", sa.BigInteger),
        sa.Column("action", sa.String(64)),
        sa.Column("subject_type", sa.String(32)),
        sa.Column("subject_id", sa.String(64)),
        sa.Column("before", JsonDocument),
        sa.Column("after", JsonDocument),
        sa.Column("request_id", sa.String(64)),
        sa.Column("seq", sa.BigInteger),
        sa.Column("prev_hash", sa.String(64)),
        sa.Column("hash", sa.String(64)),
    )


def _chain_existing() -> None:
    """Give every existing event its place in the chain, in id order."""
    bind = op.get_bind()
    events = _events()
    update = (events.update().where(events.c.id == sa.bindparam("event_id"))
              .values(seq=sa.bindparam("new_seq"), prev_hash=sa.bindparam("new_prev"),
                      hash=sa.bindparam("new_hash")))
    seq, prev, last_id = 0, chain.GENESIS, None
    while True:
        query = sa.select(events).order_by(events.c.id).limit(BATCH)
        if last_id is not None:
            query = query.where(events.c.id > last_id)
        rows = [dict(row._mapping) for row in bind.execute(query)]
        if not rows:
            return
        changes = []
        for row in rows:
            seq += 1
            digest = chain.event_hash(row, prev)
            changes.append({"event_id": row["id"], "new_seq": seq, "new_prev": prev,
                            "new_hash": digest})
            prev = digest
        bind.execute(update, changes)
        last_id = rows[-1]["id"]


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    _chain_existing()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_events_seq'), ['seq'])


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_audit_events_seq'), type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
