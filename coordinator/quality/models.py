"""Quality: worker blocks from gold accuracy, and review items with their verdicts.

Verdicts live in their own table, beside the crowd's labels, never among them: consensus
keeps aggregating the crowd, and whoever reports an item's final label puts the verdict
first (see ``coordinator.quality.services.final_labels``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, JsonDocument, UTCDateTime, utcnow

REVIEW_REASONS = ("uncertain_at_max_overlap", "gold_conflict")
REVIEW_STATES = ("open", "leased", "decided")


class WorkerBlock(Base):
    """A worker kept from a project's new work because their gold accuracy fell below the floor."""

    __tablename__ = "worker_blocks"
    __table_args__ = (Index("ix_worker_blocks_workforce_id_lifted_at", "workforce_id", "lifted_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"))
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    #: the consensus run after which the worker was judged
    run_id: Mapped[int | None] = mapped_column(ForeignKey("consensus_runs.id"))
    #: the evidence: answers on tasks with a known answer (gold or a verdict), right ones,
    #: their ratio and the project's floor at the time
    gold_answers: Mapped[int]
    gold_correct: Mapped[int]
    accuracy: Mapped[float] = mapped_column(Float(precision=53))
    floor: Mapped[float] = mapped_column(Float(precision=53))
    #: the scored labels, so the block can be rebuilt: ``{"gold": [label ids], "verdict": [...]}``
    #: by where their known answer came from (empty for blocks made before it was kept)
    evidence: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    #: from this moment on a vendor's labels from the worker are refused; on Mechanical Turk,
    #: labels for assignments accepted from then on
    blocked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: set when a manager lifts the block; the row stays as evidence
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    lift_reason: Mapped[str | None] = mapped_column(String(500))


class ReviewItem(Base):
    """A task the crowd could not settle, waiting for the project's review workforce."""

    __tablename__ = "review_items"
    __table_args__ = (
        CheckConstraint("reason IN ('uncertain_at_max_overlap', 'gold_conflict')",
                        name="reason_known"),
        CheckConstraint("status IN ('open', 'leased', 'decided')", name="status_known"),
        Index("ix_review_items_project_id_status", "project_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    #: one review per task: its verdict is final
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    #: the consensus run that sent the task here
    run_id: Mapped[int] = mapped_column(ForeignKey("consensus_runs.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: the workforce holding the lease, and until when
    leased_by_id: Mapped[int | None] = mapped_column(ForeignKey("workforces.id"))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReviewVerdict(Base):
    """An expert's final label for a review item; counts as gold when measuring workers."""

    __tablename__ = "review_verdicts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    review_item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), unique=True)
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    #: the reviewer, as a worker of the review workforce
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("workers.id"))
    label: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OverlapStop(Base):
    """A task dynamic overlap found confident enough: dispatch gives it no more assignments."""

    __tablename__ = "overlap_stops"

    #: one stop per task; a later round that finds the task uncertain again removes it
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    #: the consensus run whose confidence stopped the task
    run_id: Mapped[int] = mapped_column(ForeignKey("consensus_runs.id"))
    stopped_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
