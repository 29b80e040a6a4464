"""Accounts and the API tokens they authenticate with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, UTCDateTime, utcnow

ROLES = ("admin", "manager", "vendor", "auditor")


class Account(Base):
    """A person or system that calls the API with one role."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'manager', 'vendor', 'auditor')", name="role_known"),
        CheckConstraint(
            "(role = 'vendor') = (workforce_id IS NOT NULL)", name="vendor_has_workforce"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    #: the one workforce a vendor account may see and act for; empty for other roles
    workforce_id: Mapped[int | None] = mapped_column(ForeignKey("workforces.id"))
    #: preferred locale for messages, used when the request states none
    locale: Mapped[str | None] = mapped_column(String(35))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, the secret is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(200))
    #: hex SHA-256 of the secret; tokens carry 256 bits of entropy, so no slow hash is needed
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: the first characters of the secret, so people can tell their tokens apart
    display_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
