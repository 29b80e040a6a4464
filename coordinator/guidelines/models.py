"""Versioned guidelines, their frozen segments and the translations of each segment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, UTCDateTime, utcnow


class GuidelineVersion(Base):
    """One version of a project's guideline: a draft while edited, frozen once published."""

    __tablename__ = "guideline_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "number"),
        CheckConstraint("status IN ('draft', 'published')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    #: 1, 2, 3... within the project; what dispatch pins and translators see
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="draft")
    title: Mapped[str] = mapped_column(String(200))
    #: Markdown in the project's source locale
    source_markdown: Mapped[str] = mapped_column(Text)
    source_locale: Mapped[str] = mapped_column(String(35))
    #: SHA-256 of the source when published, so a reader can prove which text it was
    content_hash: Mapped[str | None] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))


class GuidelineSegment(Base):
    """A block of a published version: a heading, paragraph, list item, or untranslated code."""

    __tablename__ = "guideline_segments"
    __table_args__ = (
        UniqueConstraint("version_id", "position"),
        UniqueConstraint("version_id", "context"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("guideline_versions.id"))
    position: Mapped[int]
    #: the PO msgctxt; kept across versions while the segment is recognisably the same
    context: Mapped[str] = mapped_column(String(64))
    #: heading, paragraph, item, quote, code or rule
    kind: Mapped[str] = mapped_column(String(16))
    #: the Markdown before the text, e.g. ``## `` or ``- ``
    prefix: Mapped[str] = mapped_column(String(32))
    section: Mapped[str] = mapped_column(String(300))
    source_text: Mapped[str] = mapped_column(Text)


class SegmentTranslation(Base):
    """A segment's text in one locale; fuzzy ones were carried over and need review."""

    __tablename__ = "segment_translations"
    __table_args__ = (
        UniqueConstraint("segment_id", "locale"),
        Index("ix_segment_translations_locale", "locale"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("guideline_segments.id"))
    locale: Mapped[str] = mapped_column(String(35))
    text: Mapped[str] = mapped_column(Text)
    #: not shown to workers until a translator confirms it
    fuzzy: Mapped[bool] = mapped_column(default=False)
    #: the source text this translation was made for, when it differs from the current one
    previous_source: Mapped[str | None] = mapped_column(Text)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
