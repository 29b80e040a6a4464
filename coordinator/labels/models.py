"""Labels: append-only answers, and the stored responses that make submissions idempotent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, JsonDocument, UTCDateTime, utcnow


class Label(Base):
    """One answer by one worker for one task; never updated, a correction supersedes it."""

    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_project_id_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"))
    #: one of the project's label classes
    value: Mapped[str] = mapped_column(String(200))
    #: the guideline version and locale the worker saw
    guideline_version_id: Mapped[int] = mapped_column(ForeignKey("guideline_versions.id"))
    guideline_locale: Mapped[str] = mapped_column(String(35))
    #: false for labels kept aside (a late submission) and for superseded ones
    counted: Mapped[bool] = mapped_column(default=True)
    #: why a label is not counted: ``late`` or ``superseded``
    set_aside: Mapped[str | None] = mapped_column(String(32))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("labels.id"))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotentRequest(Base):
    """A vendor's submission, kept with its response so a retry returns the same answer."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (UniqueConstraint("workforce_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    #: the Idempotency-Key header
    key: Mapped[str] = mapped_column(String(200))
    #: SHA-256 of the body, to refuse a key reused for different labels
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
