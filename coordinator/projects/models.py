"""Projects and the tasks they hold."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, JsonDocument, UTCDateTime, utcnow


class Project(Base):
    """A body of annotation work with one label schema and one residency rule."""

    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("redundancy BETWEEN 1 AND 25", name="redundancy_range"),
        CheckConstraint("lease_minutes BETWEEN 1 AND 10080", name="lease_minutes_range"),
        CheckConstraint("gold_rate >= 0 AND gold_rate < 1", name="gold_rate_range"),
        CheckConstraint("target_confidence > 0 AND target_confidence <= 1",
                        name="target_confidence_range"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: shown to managers and vendors; unique so projects can be told apart in reports
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    #: the allowed labels, in the order managers want them shown
    label_classes: Mapped[list[str]] = mapped_column(JsonDocument)
    #: CLDR locale the guidelines are written in, e.g. ``en`` or ``pt_BR``
    source_locale: Mapped[str] = mapped_column(String(35))
    #: labels wanted per task, each from a distinct worker
    redundancy: Mapped[int]
    #: region the project's data must stay in (``global`` when it may go anywhere)
    residency_region: Mapped[str] = mapped_column(String(32))
    #: workforce regions allowed to receive this project's data; empty means any region
    allowed_regions: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    #: minutes a vendor holds leased work before it returns to the pool
    lease_minutes: Mapped[int] = mapped_column(default=60)
    #: while true, nothing is dispatched and vendors pull nothing of this project
    paused: Mapped[bool] = mapped_column(default=False)
    #: share of each workforce's newly dispatched work that is gold questions (0: gold tasks
    #: are dispatched like any other task)
    gold_rate: Mapped[float] = mapped_column(Float(precision=53), default=0.0)
    #: a worker whose gold accuracy falls below this is blocked; empty: nobody is blocked
    gold_accuracy_floor: Mapped[float | None] = mapped_column(Float(precision=53))
    #: gold answers a worker must have given before their accuracy is judged
    gold_min_answers: Mapped[int] = mapped_column(default=10)
    #: posterior a task's consensus label needs to stop collecting labels
    target_confidence: Mapped[float] = mapped_column(Float(precision=53), default=0.95)
    #: most labels a task may collect under dynamic overlap; empty: the redundancy
    max_overlap: Mapped[int | None]
    #: the expert workforce that settles review items; empty: no review rounds
    review_workforce_id: Mapped[int | None] = mapped_column(ForeignKey("workforces.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Task(Base):
    """One item to label: what the worker sees, the languages it needs, maybe a gold answer."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        Index("ix_tasks_project_id_content_hash", "project_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    #: the manager's own identifier; imports are idempotent on it
    external_id: Mapped[str] = mapped_column(String(200))
    #: what the worker sees: text, a media URL, context fields
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    #: SHA-256 of the canonical JSON payload, to report exact duplicates
    content_hash: Mapped[str] = mapped_column(String(64))
    #: CLDR language codes a worker must read to label this task
    languages: Mapped[list[str]] = mapped_column(JsonDocument)
    #: the known answer, for gold questions; one of the project's label classes
    gold: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
