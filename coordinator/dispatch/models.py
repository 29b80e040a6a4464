"""Dispatch: runs of the routing policy, their per-task decisions, workers and assignments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, JsonDocument, UTCDateTime, utcnow

ASSIGNMENT_STATES = ("offered", "leased", "submitted", "accepted", "rejected", "expired", "cancelled")
#: States in which an assignment still counts towards a task's redundancy.
LIVE_STATES = ("offered", "leased", "submitted", "accepted")


class DispatchRun(Base):
    """One application of the routing policy to a set of a project's tasks."""

    __tablename__ = "dispatch_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: the manager's filter: external ids, languages, or all tasks
    task_filter: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    #: the policy as applied: every workforce, its eligibility per language set and why,
    #: capacity left, price and the exchange rate used; decisions point into it
    policy: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    guideline_version_id: Mapped[int] = mapped_column(ForeignKey("guideline_versions.id"))
    tasks_considered: Mapped[int]
    assignments_created: Mapped[int]
    unroutable: Mapped[int]


class RoutingDecision(Base):
    """Why a task's new assignments went where they went, in one run."""

    __tablename__ = "routing_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("dispatch_runs.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    #: key of the task's language set in the run's policy
    group: Mapped[str] = mapped_column(String(200))
    #: workforce ids given a new assignment, in the order chosen
    chosen: Mapped[list[int]] = mapped_column(JsonDocument)
    #: score of every eligible workforce for this task (lower wins)
    scores: Mapped[dict[str, float]] = mapped_column(JsonDocument)
    #: assignments the task still needed when the run began
    needed: Mapped[int]


class Worker(Base):
    """A person labelling for a workforce, known by the workforce's own id for them."""

    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("workforce_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    #: a hash the vendor gives for the person (e.g. of an e-mail), linking them across vendors
    identity_hash: Mapped[str | None] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Assignment(Base):
    """One label wanted from one workforce for one task, with its lease."""

    __tablename__ = "assignments"
    __table_args__ = (
        CheckConstraint(
            "status IN ('offered', 'leased', 'submitted', 'accepted', 'rejected', 'expired', "
            "'cancelled')", name="status_known"),
        # Partial, so that submitting a label (leased -> submitted) adds no entry to either:
        # the submit path updates thousands of rows a request, none of them HOT.
        Index("ix_assignments_offered", "workforce_id", "id",
              postgresql_where=text("status = 'offered'"), sqlite_where=text("status = 'offered'")),
        Index("ix_assignments_leased", "lease_expires_at",
              postgresql_where=text("status = 'leased'"), sqlite_where=text("status = 'leased'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_runs.id"))
    #: the guideline version pinned when the work was dispatched
    guideline_version_id: Mapped[int] = mapped_column(ForeignKey("guideline_versions.id"))
    status: Mapped[str] = mapped_column(String(16), default="offered")
    #: what one label costs, fixed at dispatch
    price: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    currency: Mapped[str] = mapped_column(String(3))
    leased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the guideline locale served to the vendor with the lease
    guideline_locale: Mapped[str | None] = mapped_column(String(35))
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id"))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_reason: Mapped[str | None] = mapped_column(String(500))
    #: the assignment this one replaces after its lease expired
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TaskWorker(Base):
    """The claim that makes one person label one task at most once, across vendors too."""

    __tablename__ = "task_workers"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    #: ``<workforce id>:<worker external id>``; a second row holds the identity hash when
    #: the vendor gives one, so the person is recognised by either
    person_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"))
