"""Mechanical Turk: per-project HIT settings, HIT types, HITs and MTurk's assignments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, JsonDocument, UTCDateTime, utcnow

REVIEW_POLICIES = ("consensus", "gold", "manual")
HIT_STATES = ("live", "expired", "disposed")
MTURK_ASSIGNMENT_STATES = ("working", "submitted", "approved", "rejected", "invalid")


class MTurkSettings(Base):
    """How one project's work is offered on one MTurk workforce: reward, texts, who may work."""

    __tablename__ = "mturk_settings"
    __table_args__ = (
        UniqueConstraint("project_id", "workforce_id"),
        CheckConstraint("review_policy IN ('consensus', 'gold', 'manual')", name="policy_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    #: US dollars per assignment, two decimals
    reward: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    title: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(2000))
    keywords: Mapped[str] = mapped_column(String(1000), default="")
    #: seconds a worker has for one assignment once accepted; also our lease on it
    assignment_duration_seconds: Mapped[int] = mapped_column(default=1800)
    #: seconds a HIT stays on the marketplace
    lifetime_seconds: Mapped[int] = mapped_column(default=3 * 86400)
    #: seconds after which MTurk approves a submission we have not reviewed
    auto_approval_delay_seconds: Mapped[int] = mapped_column(default=3 * 86400)
    #: ISO countries and subdivisions (``US``, ``US-CA``) of Worker_Locale; empty: the workforce's countries
    places: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    #: least Worker_PercentAssignmentsApproved; none: no requirement
    min_approval_rate: Mapped[int | None]
    #: least Worker_NumberHITsApproved; none: no requirement
    min_approved_hits: Mapped[int | None]
    #: our custom qualification marking workers blocked on gold-question performance; HITs
    #: require that a worker does not hold it, so workers we have never seen can take them
    block_qualification_type_id: Mapped[str | None] = mapped_column(String(64))
    #: when submissions are approved: after consensus, after the gold check, or by hand
    review_policy: Mapped[str] = mapped_column(String(16), default="consensus")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class MTurkHitType(Base):
    """A HIT type made for one project, guideline version and reward (and requirements)."""

    __tablename__ = "mturk_hit_types"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    guideline_version_id: Mapped[int] = mapped_column(ForeignKey("guideline_versions.id"))
    reward: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    #: SHA-256 of every CreateHITType parameter; one row per distinct set
    params_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: what MTurk calls it
    hit_type_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MTurkHit(Base):
    """One HIT: a task's offered assignments on MTurk, at most nine of them, in one round."""

    __tablename__ = "mturk_hits"
    __table_args__ = (
        UniqueConstraint("task_id", "workforce_id", "round"),
        CheckConstraint("max_assignments BETWEEN 1 AND 9", name="below_fee_step"),
        CheckConstraint("status IN ('live', 'expired', 'disposed')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    #: 1 for a task's first HIT on this workforce, then 2, ...: part of the request token
    round: Mapped[int]
    hit_type_pk: Mapped[int] = mapped_column(ForeignKey("mturk_hit_types.id"))
    #: MTurk's HITId
    hit_id: Mapped[str] = mapped_column(String(64), unique=True)
    #: the UniqueRequestToken it was created with, from task and round
    request_token: Mapped[str] = mapped_column(String(64), unique=True)
    #: never above 9: from 10 on MTurk's commission doubles
    max_assignments: Mapped[int]
    reward: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    #: ``live`` until expired by us or by time, ``disposed`` once deleted on MTurk
    status: Mapped[str] = mapped_column(String(16), default="live")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MTurkHitSlot(Base):
    """Which of our assignments a HIT offers: one row per assignment, so none is offered twice."""

    __tablename__ = "mturk_hit_slots"

    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), primary_key=True)
    hit_pk: Mapped[int] = mapped_column(ForeignKey("mturk_hits.id"), index=True)


class MTurkAssignment(Base):
    """One MTurk assignment: a worker's acceptance of a HIT, bound to one of our assignments."""

    __tablename__ = "mturk_assignments"
    __table_args__ = (
        CheckConstraint(
            "status IN ('working', 'submitted', 'approved', 'rejected', 'invalid')",
            name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: MTurk's AssignmentId
    mturk_assignment_id: Mapped[str] = mapped_column(String(64), unique=True)
    hit_pk: Mapped[int] = mapped_column(ForeignKey("mturk_hits.id"), index=True)
    #: our assignment it fills; none when MTurk reports one we never bound (kept, not counted)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"), unique=True)
    #: MTurk's WorkerId
    worker_external_id: Mapped[str] = mapped_column(String(64))
    #: the locale the worker read the guideline in; rejections are written in it
    locale: Mapped[str | None] = mapped_column(String(35))
    status: Mapped[str] = mapped_column(String(16), default="working")
    label_id: Mapped[int | None] = mapped_column(ForeignKey("labels.id"))
    #: the answer XML as MTurk returned it, kept when it could not be used
    answer: Mapped[str | None] = mapped_column(Text)
    #: why the answer was not counted, or how MTurk's copy of it differs from ours
    problem: Mapped[str | None] = mapped_column(String(500))
    #: the label in MTurk's answer XML when it differs from the one our page stored; ours counts
    answer_label: Mapped[str | None] = mapped_column(String(200))
    review_reason: Mapped[str | None] = mapped_column(String(1024))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: when a poll saw MTurk list this assignment with the same WorkerId and HITId; until
    #: then the page's label is kept aside (``unconfirmed``), since anyone can call the page
    #: with invented ids
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MTurkBonus(Base):
    """A bonus for one assignment, paid at most once thanks to its request token."""

    __tablename__ = "mturk_bonuses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mturk_assignment_pk: Mapped[int] = mapped_column(ForeignKey("mturk_assignments.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    reason: Mapped[str] = mapped_column(String(1024))
    #: the UniqueRequestToken, from the assignment and the caller's key
    request_token: Mapped[str] = mapped_column(String(64), unique=True)
    paid: Mapped[bool] = mapped_column(default=False)
    #: times payment was attempted, each committed before SendBonus; from the second on,
    #: MTurk's ListBonusPayments is asked first (it forgets request tokens after 24 hours)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MTurkQualificationSync(Base):
    """The last block-qualification sync of one qualification type: the poll job skips unchanged ones."""

    __tablename__ = "mturk_qualification_syncs"

    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"), primary_key=True)
    qualification_type_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: SHA-256 of the workforce's known workers and the blocked ones at that sync
    fingerprint: Mapped[str] = mapped_column(String(64))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
