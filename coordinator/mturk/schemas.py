"""The HTTP contract of the MTurk workforce: settings, publishing, bonuses, reconciliation."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coordinator.mturk.models import REVIEW_POLICIES

_PLACE = fields.String(validate=validate.Regexp(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"),
                       metadata={"example": "US-CA"})


class SettingsIn(Schema):
    """How a project is offered on an MTurk workforce; on creation reward, title, description."""

    reward = fields.Decimal(as_string=True, places=None, metadata={"example": "0.05"})
    title = fields.String(validate=validate.Length(min=1, max=128))
    description = fields.String(validate=validate.Length(min=1, max=2000))
    keywords = fields.String(validate=validate.Length(max=1000))
    assignment_duration_seconds = fields.Integer(validate=validate.Range(min=30, max=31_536_000))
    lifetime_seconds = fields.Integer(validate=validate.Range(min=30, max=31_536_000))
    auto_approval_delay_seconds = fields.Integer(validate=validate.Range(min=0, max=2_592_000))
    places = fields.List(_PLACE, validate=validate.Length(max=30))
    min_approval_rate = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=100))
    min_approved_hits = fields.Integer(allow_none=True, validate=validate.Range(min=0))
    block_qualification_type_id = fields.String(
        allow_none=True, validate=validate.Length(min=1, max=64),
        metadata={"description": "Custom qualification type marking workers blocked on gold "
                                 "questions; the HITs require that a worker does not hold it."})
    review_policy = fields.String(validate=validate.OneOf(REVIEW_POLICIES))


class SettingsOut(SettingsIn):
    """A project's MTurk settings, with the qualification requirements they produce."""

    project_id = fields.Integer()
    workforce_id = fields.Integer()
    qualification_requirements = fields.List(fields.Dict())
    updated_at = fields.DateTime()


class PublishIn(Schema):
    """How many HITs to create at most in this call."""

    limit = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=100_000))


class PublishOut(Schema):
    """HITs created, replacements put back into their HIT, and what stopped the batch."""

    created = fields.List(fields.String())
    adopted = fields.Integer()
    planned = fields.Integer()
    cost = fields.Decimal(as_string=True)
    failure = fields.Dict(allow_none=True)


class BonusIn(Schema):
    """A bonus; repeating the same key never pays twice."""

    amount = fields.String(required=True, metadata={"example": "0.50"})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    key = fields.String(required=True, validate=validate.Length(min=1, max=200))


class BonusOut(Schema):
    amount = fields.Decimal(as_string=True)
    reason = fields.String()
    request_token = fields.String()
    paid = fields.Boolean()
    #: payment attempts; from the second on MTurk's list of payments is checked first
    attempts = fields.Integer()
    paid_at = fields.DateTime(allow_none=True)


class ReconcileOut(Schema):
    """HITs on MTurk we do not know, and HITs we think live that MTurk does not."""

    unknown = fields.List(fields.String())
    not_live = fields.List(fields.Dict())


class CleanupOut(Schema):
    """HITs expired because their work was cancelled, HITs deleted, and those kept with why."""

    expired = fields.List(fields.String())
    deleted = fields.List(fields.String())
    kept = fields.Dict(keys=fields.String(), values=fields.String())


class QualificationSyncOut(Schema):
    """MTurk worker ids given the block qualification and those it was taken from."""

    blocked = fields.List(fields.String())
    unblocked = fields.List(fields.String())


class MTurkAssignmentOut(Schema):
    """One MTurk assignment of a HIT, with any answer not counted and why."""

    mturk_assignment_id = fields.String()
    assignment_id = fields.Integer(allow_none=True)
    worker_external_id = fields.String()
    status = fields.String()
    locale = fields.String(allow_none=True)
    label_id = fields.Integer(allow_none=True)
    #: the label in MTurk's answer XML where it differs from the stored one (ours counts)
    answer_label = fields.String(allow_none=True)
    answer = fields.String(allow_none=True)
    problem = fields.String(allow_none=True)
    review_reason = fields.String(allow_none=True)
    accepted_at = fields.DateTime()
    submitted_at = fields.DateTime(allow_none=True)
    reviewed_at = fields.DateTime(allow_none=True)


class HitOut(Schema):
    """One of our HITs and the MTurk assignments we know of."""

    hit_id = fields.String()
    project_id = fields.Integer()
    workforce_id = fields.Integer()
    task_id = fields.Integer()
    round = fields.Integer()
    max_assignments = fields.Integer()
    reward = fields.Decimal(as_string=True)
    status = fields.String()
    expires_at = fields.DateTime()
    polled_at = fields.DateTime(allow_none=True)
    #: how many of its assignments carry an answer whose MTurk copy differs from ours
    discrepancies = fields.Integer()
    assignments = fields.List(fields.Nested(MTurkAssignmentOut))
