"""Workforces: regional vendors and the Mechanical Turk crowd."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, JsonDocument, UTCDateTime, utcnow

WORKFORCE_KINDS = ("vendor", "mturk")


class Workforce(Base):
    """A group of workers we pay per label: a vendor company or the MTurk marketplace."""

    __tablename__ = "workforces"
    __table_args__ = (
        CheckConstraint("kind IN ('vendor', 'mturk')", name="kind_known"),
        CheckConstraint("daily_capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("price_per_label >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    #: region its workers and systems are in, matched against a project's residency rule
    region: Mapped[str] = mapped_column(String(32))
    #: ISO 3166-1 alpha-2 codes of the countries its workers live in
    countries: Mapped[list[str]] = mapped_column(JsonDocument)
    #: CLDR language codes its workers can label in
    languages: Mapped[list[str]] = mapped_column(JsonDocument)
    #: labels it can deliver per day in its own timezone
    daily_capacity: Mapped[int]
    price_per_label: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    #: ISO 4217 code of ``price_per_label``
    currency: Mapped[str] = mapped_column(String(3))
    #: IANA zone its working day and deadlines are expressed in
    timezone: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    #: HTTPS callback announcing new work and expired leases; empty when none is registered
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    #: shared secret signing webhook bodies (HMAC-SHA256); shown to the vendor once
    webhook_secret: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
