"""Write audit events; every service that changes state calls ``record``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from coordinator.audit.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who is acting: an account (or none for the system) and the request it came through."""

    account_id: int | None
    request_id: str | None = None

    @classmethod
    def system(cls) -> "Actor":
        return cls(account_id=None)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """Return the JSON-safe values of ``fields`` on ``obj``."""
    return {name: _plain(getattr(obj, name)) for name in fields}


def record(
    session: Session,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: Any,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event for a change the caller is about to commit."""
    event = AuditEvent(
        actor_id=actor.account_id,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        before=_plain(before) if before is not None else None,
        after=_plain(after) if after is not None else None,
        request_id=actor.request_id,
    )
    session.add(event)
    return event


def apply_changes(
    session: Session,
    actor: Actor,
    obj: Any,
    changes: dict[str, Any],
    *,
    action: str,
    subject_type: str,
    fields: tuple[str, ...],
) -> None:
    """Set ``changes`` on ``obj`` and record an event when an audited field really changed."""
    before = snapshot(obj, fields)
    for field, value in changes.items():
        setattr(obj, field, value)
    session.flush()
    after = snapshot(obj, fields)
    if after != before:
        record(session, actor, action, subject_type, obj.id, before=before, after=after)
