"""The HTTP contract of quality rounds, worker blocks and the review queue."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coordinator.quality.models import REVIEW_STATES
from coordinator.quality.services import MAX_REVIEW_BATCH


class RoundIn(Schema):
    run_id = fields.Integer(load_default=None, allow_none=True,
                            metadata={"description": "the consensus run to act on; default: "
                                      "the project's newest"})


class VendorBlockOut(Schema):
    """A block as its worker's vendor sees it: the evidence, not who at our side lifted it."""

    id = fields.Integer()
    project_id = fields.Integer()
    worker_id = fields.Integer()
    worker_external_id = fields.String(metadata={"description": "the vendor's id for the worker"})
    workforce_id = fields.Integer()
    run_id = fields.Integer(allow_none=True)
    gold_answers = fields.Integer(metadata={"description": "answers on tasks with a known "
                                            "answer (gold or a review verdict)"})
    gold_correct = fields.Integer()
    accuracy = fields.Float()
    floor = fields.Float(metadata={"description": "the project's floor when the block was made"})
    blocked_at = fields.DateTime(metadata={"description": "the worker's labels are refused from "
                                           "then on (Mechanical Turk: for work accepted since)"})
    active = fields.Boolean()
    lifted_at = fields.DateTime(allow_none=True)
    lift_reason = fields.String(allow_none=True)


class WorkerBlockOut(VendorBlockOut):
    lifted_by_id = fields.Integer(allow_none=True)
    evidence = fields.Dict(metadata={"description": "the scored label ids by the source of "
                                     "their known answer: gold or verdict"})


class RoundOut(Schema):
    project_id = fields.Integer()
    run_id = fields.Integer()
    blocked = fields.List(fields.Integer(), metadata={"description": "ids of new worker blocks"})
    review_opened = fields.Integer()
    extra_assignments = fields.Integer()
    extra_skipped = fields.String(allow_none=True, metadata={
        "description": "why no extra assignments were made for the uncertain tasks, e.g. the "
                       "project is paused; null when nothing was skipped"})
    dispatch_run_id = fields.Integer(allow_none=True)
    cancelled = fields.Integer(metadata={"description": "offers of confident tasks withdrawn"})
    stopped = fields.Integer(metadata={"description": "tasks at or above the target confidence"})
    waiting = fields.Integer(metadata={"description": "uncertain tasks whose work is still out"})
    to_review = fields.Integer(metadata={"description": "uncertain tasks at the maximum overlap"})


class BlockQuery(Schema):
    active = fields.Boolean(load_default=None, allow_none=True)


class LiftIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class ReviewQuery(Schema):
    status = fields.String(validate=validate.OneOf(REVIEW_STATES))


class VerdictOut(Schema):
    id = fields.Integer()
    label = fields.String()
    note = fields.String()
    reviewer_id = fields.Integer()
    decided_at = fields.DateTime()


class ReviewItemOut(Schema):
    id = fields.Integer()
    task_id = fields.Integer()
    external_id = fields.String()
    reason = fields.String()
    run_id = fields.Integer()
    status = fields.String()
    created_at = fields.DateTime()
    verdict = fields.Nested(VerdictOut, allow_none=True)


class FinalLabelQuery(Schema):
    run_id = fields.Integer(load_default=None, allow_none=True)


class FinalLabelOut(Schema):
    task_id = fields.Integer()
    external_id = fields.String()
    run_id = fields.Integer()
    label = fields.String(metadata={"description": "the final label"})
    source = fields.String(metadata={"description": "review (a verdict, final) or consensus"})
    consensus_label = fields.String(metadata={"description": "the crowd's label, kept beside"})
    confidence = fields.Float()
    labels = fields.Integer()
    verdict_id = fields.Integer(allow_none=True)
    verdict_label = fields.String(allow_none=True)


class ReviewLeaseIn(Schema):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=MAX_REVIEW_BATCH))


class VerdictIn(Schema):
    review_id = fields.Integer(required=True)
    reviewer_id = fields.String(required=True, validate=validate.Length(min=1, max=200),
                                metadata={"description": "your own id for the reviewer"})
    label = fields.String(required=True, validate=validate.Length(min=1, max=200))
    note = fields.String(load_default="", validate=validate.Length(max=5000))
    reviewer_identity = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=16, max=128),
        metadata={"description": "your stable hash of the person, as worker_identity on labels; "
                  "a person who labelled the task may not review it"})


class VerdictsIn(Schema):
    verdicts = fields.List(fields.Nested(VerdictIn), required=True,
                           validate=validate.Length(min=1, max=MAX_REVIEW_BATCH))


class VerdictResultOut(Schema):
    index = fields.Integer()
    status = fields.String(metadata={"description": "created, unchanged (a retry) or error"})
    verdict_id = fields.Integer()
    error = fields.Dict()


class VerdictsOut(Schema):
    created = fields.Integer()
    errors = fields.Integer()
    results = fields.List(fields.Nested(VerdictResultOut))


class ReviewLeaseOut(Schema):
    review_id = fields.Integer()
    project_id = fields.Integer()
    task = fields.Dict(metadata={"description": "external_id, payload and languages"})
    label_classes = fields.List(fields.String())
    lease_expires_at = fields.DateTime()
    guideline = fields.Dict(metadata={"description": "the project's guideline in your locale"})


class ReviewLeasesOut(Schema):
    items = fields.List(fields.Nested(ReviewLeaseOut))
