"""The audit trail: one append-only event per state change, each linked to the one before
by its hash (see ``coordinator.audit.chain``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, JsonDocument, UTCDateTime, utcnow


class AuditEvent(Base):
    """Who changed what, when, with the state before and after."""

    __tablename__ = "audit_events"
    # Indexes for the trail's filters (``list_events``), each ending in the chain order.
    # The database refuses to update or delete a row: see ``coordinator.audit.guard``.
    __table_args__ = (Index("ix_audit_events_subject", "subject_type", "subject_id"),
                      Index("ix_audit_events_actor", "actor_id", "seq"),
                      Index("ix_audit_events_action", "action", "seq"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: the account that made the change; empty for the command line and system jobs
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    #: dotted verb such as ``project.create``
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    after: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    #: the request that made the change, to join with the access logs
    request_id: Mapped[str | None] = mapped_column(String(64))
    #: position in the chain: 1, 2, 3 ... with no gaps, in the order events were appended
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    #: ``hash`` of the event at ``seq - 1`` (64 zeros for the first)
    prev_hash: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of this event's canonical form and ``prev_hash``
    hash: Mapped[str] = mapped_column(String(64))
