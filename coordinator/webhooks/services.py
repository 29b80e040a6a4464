"""Queue webhook events for vendors that registered a callback."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from coordinator.webhooks.models import WebhookDelivery
from coordinator.workforces.models import Workforce


def announce(session: Session, workforce_id: int, event: str, payload: dict[str, Any]) -> WebhookDelivery | None:
    """Queue ``event`` for the workforce's callback, if it has one; delivery happens in a job."""
    workforce = session.get(Workforce, workforce_id)
    if workforce is None or not workforce.webhook_url:
        return None
    delivery = WebhookDelivery(workforce_id=workforce_id, event=event, url=workforce.webhook_url,
                               payload={"event": event, **payload})
    session.add(delivery)
    return delivery
