"""The HTTP contract of vendor webhooks."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coordinator.webhooks.services import DELIVERY_STATES


class WebhookIn(Schema):
    """The callback to register; checked by the service (https, a host, no credentials)."""

    url = fields.String(required=True, metadata={
        "description": "https:// URL that receives signed POSTs",
        "example": "https://vendor.example/coordinator/hook"})


class WebhookOut(Schema):
    """A workforce's webhook; ``url`` is null when none is registered."""

    workforce_id = fields.Integer(attribute="id")
    url = fields.String(attribute="webhook_url", allow_none=True)


class WebhookRegisteredOut(WebhookOut):
    """The webhook just registered, with its signing secret: shown this once, never again."""

    secret = fields.String(metadata={
        "description": "HMAC-SHA256 key of the X-Coordinator-Signature header; store it now"})


class DeliveryQuery(Schema):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATES))


class DeliveryOut(Schema):
    """One event for a vendor's callback and how its attempts went."""

    id = fields.Integer()
    event = fields.String()
    payload = fields.Dict()
    url = fields.String()
    status = fields.String(metadata={"description": "pending, delivered or failed"})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(metadata={
        "description": "when it is tried next, while pending"})
    last_attempt_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)

