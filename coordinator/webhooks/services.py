"""Vendor webhooks: register a callback, queue events for it, deliver them signed, with retries."""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask_babel import gettext
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, record
from coordinator.db import utcnow
from coordinator.errors import Conflict, InvalidInput
from coordinator.webhooks.models import WebhookDelivery
from coordinator.workforces.models import Workforce
from coordinator.workforces.services import get_workforce
from integrations.vendors.webhooks import (
    SIGNATURE_HEADER,
    HttpSender,
    SendResult,
    WebhookSender,
    is_public_address,
    sign,
)

log = logging.getLogger(__name__)

#: Longest callback URL we store (the column's size).
MAX_URL_LENGTH = 2000
#: Retry delays grow from this many seconds, doubling per failed attempt ...
BACKOFF_BASE_SECONDS = 30
#: ... up to this ceiling; each delay is drawn uniformly below it ("full jitter").
BACKOFF_CAP_SECONDS = 3600
#: The shortest retry delay, so a retry never lands in the same sweep.
MIN_RETRY_SECONDS = 1.0
#: Attempts per delivery when the caller does not pass ``max_attempts``.
DEFAULT_MAX_ATTEMPTS = 10
#: How long a sweep owns the deliveries it claimed; after that another sweep may retry them.
CLAIM_SECONDS = 900
#: Stored in ``last_error`` when an event's workforce no longer has a webhook.
NO_WEBHOOK = "no webhook is registered for this workforce"

DELIVERY_STATES = ("pending", "delivered", "failed")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(errors={"url": [message]})


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.rstrip(".").split(".")
    return len(ascii_host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def validate_url(url: str, *, allow_private: bool = False) -> str:
    """Return ``url`` trimmed if it may be a webhook, or raise InvalidInput naming ``url``.

    It must be ``https://`` with a host, carry no user name or password, and fit the column;
    a literal private address is refused unless ``allow_private`` (names are checked again
    when each delivery resolves them).
    """
    url = (url or "").strip()
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(gettext("Longer than maximum length %(max)s.", max=MAX_URL_LENGTH))
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise _invalid(gettext("Not a valid URL."))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _invalid(gettext("The host name or port is not valid.")) from None
    if parts.scheme.lower() != "https":
        raise _invalid(gettext("Use an https:// URL."))
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _invalid(gettext("Leave user names and passwords out of the URL."))
    if not parts.hostname:
        raise _invalid(gettext("Give the host name to call."))
    if not _valid_host(parts.hostname) or port == 0:
        raise _invalid(gettext("The host name or port is not valid."))
    if not allow_private and _is_literal_private(parts.hostname):
        raise _invalid(gettext("Webhooks cannot call private or local addresses."))
    return url


def _is_literal_private(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.lower() in {"localhost", "localhost.localdomain"}
    return not is_public_address(host)


def _vendor_workforce(session: Session, workforce_id: int, scope: int | None) -> Workforce:
    workforce = get_workforce(session, workforce_id, scope=scope)
    if workforce.kind != "vendor":
        raise Conflict(gettext("Only vendor workforces can register a webhook."))
    return workforce


def new_secret() -> str:
    """Return a fresh signing secret with 256 bits of entropy."""
    return "whsec_" + secrets.token_urlsafe(32)


def register(session: Session, actor: Actor, workforce_id: int, url: str, *,
             scope: int | None = None, allow_private: bool = False) -> tuple[Workforce, str]:
    """Set the workforce's callback to ``url`` with a new secret; return both (shown once).

    Registering again, even with the same URL, replaces the secret. Pending deliveries go
    to the new URL, signed with the new secret.
    """
    workforce = _vendor_workforce(session, workforce_id, scope)
    url = validate_url(url, allow_private=allow_private)
    secret = new_secret()
    before = {"webhook_url": workforce.webhook_url}
    workforce.webhook_url = url
    workforce.webhook_secret = secret
    session.flush()
    record(session, actor, "webhook.register", "workforce", workforce.id, before=before,
           after={"webhook_url": url, "secret_replaced": True})
    return workforce, secret


def unregister(session: Session, actor: Actor, workforce_id: int, *,
               scope: int | None = None) -> Workforce:
    """Remove the workforce's callback; its pending deliveries then fail without a call."""
    workforce = get_workforce(session, workforce_id, scope=scope)
    if workforce.webhook_url is None and workforce.webhook_secret is None:
        return workforce
    before = {"webhook_url": workforce.webhook_url}
    workforce.webhook_url = None
    workforce.webhook_secret = None
    session.flush()
    record(session, actor, "webhook.unregister", "workforce", workforce.id, before=before,
           after={"webhook_url": None})
    return workforce


def announce(session: Session, workforce_id: int, event: str, payload: dict[str, Any]
             ) -> WebhookDelivery | None:
    """Queue ``event`` for the workforce's callback, if it has one; delivery happens in a job."""
    workforce = session.get(Workforce, workforce_id)
    if workforce is None or not workforce.webhook_url:
        return None
    delivery = WebhookDelivery(workforce_id=workforce_id, event=event, url=workforce.webhook_url,
                               payload={"event": event, **payload})
    session.add(delivery)
    return delivery


def ping(session: Session, actor: Actor, workforce_id: int, *,
         scope: int | None = None) -> WebhookDelivery:
    """Queue a ``ping`` event so a vendor can check its endpoint and signature code."""
    workforce = get_workforce(session, workforce_id, scope=scope)
    delivery = announce(session, workforce.id, "ping", {"workforce_id": workforce.id})
    if delivery is None:
        raise Conflict(gettext("Register a webhook first."))
    session.flush()
    record(session, actor, "webhook.ping", "workforce", workforce.id,
           after={"delivery_id": delivery.id})
    return delivery


def list_deliveries(session: Session, workforce_id: int, *, offset: int, limit: int,
                    status: str | None = None, scope: int | None = None
                    ) -> tuple[list[WebhookDelivery], int]:
    """Return one page of a workforce's deliveries, newest first, and the total."""
    get_workforce(session, workforce_id, scope=scope)
    query = select(WebhookDelivery).where(WebhookDelivery.workforce_id == workforce_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(WebhookDelivery.id.desc()).offset(offset).limit(limit))
    return list(page), total


# --- delivery --------------------------------------------------------------------------------


def retry_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Return seconds to wait after ``attempts`` failed attempts: full jitter, capped."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(max(attempts - 1, 0), 32))
    return max(MIN_RETRY_SECONDS, (rng or random).uniform(0, ceiling))


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """Return the JSON body sent for ``delivery``: its id, when it was raised, and the event."""
    document = {"delivery_id": delivery.id, "created_at": delivery.created_at.isoformat(),
                **delivery.payload}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def delivery_headers(delivery: WebhookDelivery, secret: str, body: bytes, timestamp: int
                     ) -> dict[str, str]:
    """Return the headers of one attempt, the signature included."""
    return {
        "Content-Type": "application/json",
        "X-Coordinator-Event": delivery.event,
        "X-Coordinator-Delivery": str(delivery.id),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def sender_from_settings(settings: Mapping[str, Any]) -> HttpSender:
    """Return the real sender configured by WEBHOOK_TIMEOUT_SECONDS and WEBHOOK_CA_BUNDLE."""
    return HttpSender(float(settings["WEBHOOK_TIMEOUT_SECONDS"]),
                      ca_bundle=settings.get("WEBHOOK_CA_BUNDLE") or None,
                      allow_private=bool(settings.get("WEBHOOK_ALLOW_PRIVATE_HOSTS")))


def _claim(session: Session, now: datetime, limit: int, claim_s: float) -> list[int]:
    """Take up to ``limit`` due deliveries for this sweep, in a short transaction of its own.

    Claiming moves their ``next_attempt_at`` past the claim, like a queue's visibility
    timeout: other sweeps skip them while this one calls the vendors, no row or database
    lock is held during those calls, and a sweep that dies leaves them due again.
    """
    table = WebhookDelivery.__table__
    due = (select(table.c.id)
           .where(table.c.status == "pending", table.c.next_attempt_at <= now)
           .order_by(table.c.next_attempt_at, table.c.id).limit(limit)
           .with_for_update(skip_locked=True))
    with session.get_bind().begin() as connection:
        # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP
        # LOCKED): PostgreSQL may run such a subquery more than once and update more than n
        # rows. The UPDATE checks again, so on SQLite, where FOR UPDATE means nothing and
        # writers take turns, a sweep that lost the race gets none of them.
        candidates = list(connection.scalars(due))
        if not candidates:
            return []
        claim = (update(table)
                 .where(table.c.id.in_(candidates), table.c.status == "pending",
                        table.c.next_attempt_at <= now)
                 .values(next_attempt_at=now + timedelta(seconds=claim_s))
                 .returning(table.c.id))
        return sorted(connection.scalars(claim))


def _send(sender: WebhookSender, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
    try:
        return sender.send(url, body, headers)
    except Exception as error:  # a sender must not lose the sweep's other results
        log.exception("webhook sender failed", extra={"url": url})
        return SendResult(error=f"{type(error).__name__}: {error}"[:500])


def deliver_due(session: Session, sender: WebhookSender, *, now: datetime | None = None,
                limit: int = 100, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                rng: random.Random | None = None, claim_s: float = CLAIM_SECONDS) -> int:
    """Send the deliveries that are due; return how many were attempted.

    Due deliveries are claimed in their own short transaction (see ``_claim``), so call
    this at the start of a fresh transaction; the outcomes are flushed on ``session`` for
    the caller to commit. Each is signed with its workforce's current secret and sent to
    its current URL. A 2xx marks it delivered; anything else schedules a retry with capped
    exponential backoff and full jitter, until ``max_attempts`` marks it failed. After a
    network failure, the workforce's other claimed deliveries wait for the next sweep,
    so one dead endpoint does not hold up everyone else's. Several workers may run this
    at once: each delivery is attempted by one of them.
    """
    fixed = now
    clock = (lambda: fixed) if fixed is not None else utcnow
    started = clock()
    ids = _claim(session, started, limit, claim_s)
    if not ids:
        return 0
    deliveries = list(session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).order_by(WebhookDelivery.id)
        .execution_options(populate_existing=True)))
    workforces = {w.id: w for w in session.scalars(select(Workforce).where(
        Workforce.id.in_({d.workforce_id for d in deliveries})))}
    deadline = time.monotonic() + claim_s / 2
    unreachable: set[int] = set()
    outcomes: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    attempted = 0
    for delivery in deliveries:
        workforce = workforces.get(delivery.workforce_id)
        if delivery.workforce_id in unreachable or time.monotonic() > deadline:
            delivery.next_attempt_at = started  # due again at once, no attempt counted
            continue
        if workforce is None or not workforce.webhook_url or not workforce.webhook_secret:
            delivery.status, delivery.last_error = "failed", NO_WEBHOOK
            delivery.next_attempt_at = started
            outcomes[delivery.workforce_id]["failed"].append(delivery.id)
            continue
        at = clock()
        delivery.url = workforce.webhook_url
        body = delivery_body(delivery)
        headers = delivery_headers(delivery, workforce.webhook_secret, body, int(at.timestamp()))
        result = _send(sender, delivery.url, body, headers)
        attempted += 1
        delivery.attempts += 1
        delivery.last_attempt_at = at
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error
        if result.ok:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", at, at
            outcomes[delivery.workforce_id]["delivered"].append(delivery.id)
        elif delivery.attempts >= max_attempts:
            delivery.status, delivery.next_attempt_at = "failed", at
            outcomes[delivery.workforce_id]["failed"].append(delivery.id)
        else:
            delivery.next_attempt_at = at + timedelta(seconds=retry_delay(delivery.attempts, rng))
            outcomes[delivery.workforce_id]["retrying"].append(delivery.id)
            if result.status_code is None:
                unreachable.add(delivery.workforce_id)
    session.flush()
    for workforce_id, outcome in sorted(outcomes.items()):
        record(session, Actor.system(), "webhook.deliver", "workforce", workforce_id,
               after=dict(outcome))
    return attempted
