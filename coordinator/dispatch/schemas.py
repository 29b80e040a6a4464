"""The HTTP contract of dispatch: manager requests, progress, routing explanations, leases."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coordinator.fields import LocaleCode, unique_list


class DispatchIn(Schema):
    """Which of a project's tasks to dispatch; all of them when nothing is given."""

    external_ids = unique_list(fields.String(validate=validate.Length(min=1, max=200)),
                               minimum=1, maximum=100_000)
    languages = unique_list(LocaleCode(), minimum=1, maximum=100,
                            metadata={"description": "only tasks needing one of these"})
    limit = fields.Integer(validate=validate.Range(min=1, max=1_000_000))


class UnroutableOut(Schema):
    task_id = fields.Integer()
    external_id = fields.String()
    short = fields.Integer(metadata={"description": "assignments that could not be placed"})
    reasons = fields.Dict(metadata={"description": "per workforce id, why it may not take it"})


class DispatchOut(Schema):
    """What a dispatch did."""

    run_id = fields.Integer()
    tasks_considered = fields.Integer()
    assignments_created = fields.Integer()
    by_workforce = fields.Dict(keys=fields.String(), values=fields.Integer())
    unroutable = fields.Integer()
    unroutable_tasks = fields.List(fields.Nested(UnroutableOut))
    guideline_version_id = fields.Integer()


class ProgressOut(Schema):
    """One workforce's progress on a project."""

    workforce_id = fields.Integer()
    name = fields.String()
    offered = fields.Integer()
    leased = fields.Integer()
    submitted = fields.Integer()
    accepted = fields.Integer()
    rejected = fields.Integer()
    expired = fields.Integer()
    overdue = fields.Integer(metadata={"description": "leased, past the lease's end"})
    cost = fields.Decimal(places=4, as_string=True,
                          metadata={"description": "submitted and accepted work"})
    currency = fields.String()
    cost_display = fields.String()


class ProjectProgressOut(Schema):
    paused = fields.Boolean()
    workforces = fields.List(fields.Nested(ProgressOut))
    cost_by_currency = fields.Dict(keys=fields.String(), values=fields.String())


class CandidateOut(Schema):
    workforce_id = fields.Integer()
    name = fields.String()
    eligible = fields.Boolean()
    chosen = fields.Boolean()
    score = fields.Float(allow_none=True, metadata={"description": "lower wins"})
    reasons = fields.List(fields.String())
    price = fields.String()
    currency = fields.String()
    capacity_left_at_start = fields.Integer()


class DecisionOut(Schema):
    run_id = fields.Integer()
    decided_at = fields.DateTime()
    needed = fields.Integer()
    chosen = fields.List(fields.Integer())
    candidates = fields.List(fields.Nested(CandidateOut))


class ReviewIn(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(["accept", "reject"]))
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class VendorAssignmentOut(Schema):
    """An assignment as its vendor sees it: no internal task id (ids would set gold apart)."""

    id = fields.Integer()
    project_id = fields.Integer()
    workforce_id = fields.Integer()
    status = fields.String()
    price = fields.Decimal(as_string=True)
    currency = fields.String()
    guideline_version_id = fields.Integer()
    guideline_locale = fields.String(allow_none=True)
    leased_at = fields.DateTime(allow_none=True)
    lease_expires_at = fields.DateTime(allow_none=True)
    submitted_at = fields.DateTime(allow_none=True)
    review_reason = fields.String(allow_none=True)


class AssignmentOut(VendorAssignmentOut):
    task_id = fields.Integer()


class LeaseIn(Schema):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=500),
                           metadata={"description": "how many assignments to lease, 1 to 500"})


class LeasedTaskOut(Schema):
    external_id = fields.String()
    payload = fields.Dict()
    languages = fields.List(fields.String())


class LeaseOut(Schema):
    assignment_id = fields.Integer()
    project_id = fields.Integer()
    task = fields.Nested(LeasedTaskOut)
    lease_expires_at = fields.DateTime()
    lease_expires_local = fields.String(
        metadata={"description": "the deadline in the workforce's timezone and your locale"})
    label_classes = fields.List(fields.String())
    guideline = fields.String(metadata={"description": "key into `guidelines`"})


class GuidelineForVendorOut(Schema):
    project_id = fields.Integer()
    version = fields.Integer()
    title = fields.String()
    served_locale = fields.String()
    fallback = fields.Boolean()
    direction = fields.String()
    html = fields.String()


class LeasesOut(Schema):
    leases = fields.List(fields.Nested(LeaseOut))
    guidelines = fields.Dict(keys=fields.String(), values=fields.Nested(GuidelineForVendorOut))
