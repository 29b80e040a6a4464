"""Checks shared by the API tests: row counts, audit events and problem responses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from coordinator import db
from coordinator.audit.models import AuditEvent
from coordinator.errors import PROBLEM_JSON


def count_rows(app: Any, model: Any) -> int:
    """Return how many rows the table of ``model`` holds."""
    with db.database(app).engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model))


def audit_events(app: Any, action: str) -> list[AuditEvent]:
    """Return the audit events with ``action``, oldest first."""
    with app.app_context():
        return list(db.session().scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def assert_invalid(response: Any, field: str, status: int = 422, context: Any = None) -> list[str]:
    """Check a problem response whose ``errors`` names ``field``; return its messages."""
    assert response.status_code == status, (context, response.get_data(as_text=True))
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json()
    assert body["status"] == status
    assert field in body["errors"], (context, body)
    return body["errors"][field]
