"""HTTP endpoints for a vendor's webhook: register it, test it, read its delivery log."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from coordinator import db
from coordinator.api import PAGINATE, page_window
from coordinator.auth import EVERYONE, MANAGERS, current_actor, current_principal, requires
from coordinator.jobs import enqueue
from coordinator.webhooks import services
from coordinator.webhooks.schemas import (
    DeliveryOut,
    DeliveryQuery,
    WebhookIn,
    WebhookOut,
    WebhookRegisteredOut,
)
from coordinator.workforces.services import get_workforce

blp = Blueprint("webhooks", __name__, url_prefix="/workforces",
                description="A vendor's HTTPS callback for new work and expired leases.")

WEBHOOK = "/<int:workforce_id>/webhook"
#: Who may change a webhook: managers, and the vendor of that workforce.
CHANGERS = (*MANAGERS, "vendor")


def _scope() -> int | None:
    principal = current_principal()
    return principal.workforce_id if principal.is_vendor else None


@blp.route(WEBHOOK)
class Webhook(MethodView):
    @requires(*EVERYONE)
    @blp.response(200, WebhookOut)
    def get(self, workforce_id: int) -> Any:
        """Show the registered callback URL (never its secret)."""
        return get_workforce(db.session(), workforce_id, scope=_scope())

    @requires(*CHANGERS)
    @blp.arguments(WebhookIn)
    @blp.response(200, WebhookRegisteredOut)
    def put(self, values: dict[str, Any], workforce_id: int) -> Any:
        """Register the callback URL and get a new signing secret, shown only in this answer."""
        workforce, secret = services.register(db.session(), current_actor(), workforce_id,
                                              values["url"], scope=_scope(),
                                              allow_private=current_app.config[
                                                  "WEBHOOK_ALLOW_PRIVATE_HOSTS"])
        db.session().commit()
        return ({"id": workforce.id, "webhook_url": workforce.webhook_url, "secret": secret},
                200, {"Cache-Control": "no-store"})

    @requires(*CHANGERS)
    @blp.response(204)
    def delete(self, workforce_id: int) -> None:
        """Remove the callback; events still queued for it fail without being sent."""
        services.unregister(db.session(), current_actor(), workforce_id, scope=_scope())
        db.session().commit()


@blp.route(WEBHOOK + "/test", methods=["POST"])
@requires(*CHANGERS)
@blp.response(202, DeliveryOut)
def send_test(workforce_id: int) -> Any:
    """Queue a signed ``ping`` event to the callback; follow it in the delivery log."""
    delivery = services.ping(db.session(), current_actor(), workforce_id, scope=_scope())
    db.session().commit()
    enqueue("deliver_webhooks")
    return delivery


@blp.route(WEBHOOK + "/deliveries", methods=["GET"])
@requires(*EVERYONE)
@blp.arguments(DeliveryQuery, location="query")
@blp.response(200, DeliveryOut(many=True))
@blp.paginate(**PAGINATE)
def deliveries(query: dict[str, Any], workforce_id: int, pagination_parameters: Any) -> Any:
    """List the callback's deliveries, newest first, optionally in one state."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.list_deliveries(
        db.session(), workforce_id, offset=offset, limit=limit, status=query.get("status"),
        scope=_scope())
    return items
