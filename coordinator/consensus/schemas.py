"""The HTTP contract of consensus runs, their results and agreement metrics."""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from webargs.fields import DelimitedList

from aggregation import DEFAULT_METHOD, METHODS
from aggregation.dawid_skene import STOP_RULES
from coordinator.consensus.services import AGREEMENT_GROUPS


class ConsensusIn(Schema):
    """What to run."""

    method = fields.String(
        load_default=DEFAULT_METHOD, validate=validate.OneOf(list(METHODS)),
        metadata={"description": "aggregation method; dawid_skene (default) is our engine, "
                  "the others are crowd-kit's"})
    stop = fields.String(
        validate=validate.OneOf(STOP_RULES),
        metadata={"description": "dawid_skene only: stop on the marginal likelihood "
                  "(default) or on crowd-kit's own quantity"})
    gold_holdout = fields.Float(
        validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "share of gold tasks held out to measure the run "
                  "(default 0.2); the rest is given to the method"})


class ConsensusRunOut(Schema):
    """A stored run: what it read, how it aggregated, what came out overall."""

    id = fields.Integer()
    project_id = fields.Integer()
    method = fields.String()
    options = fields.Dict(metadata={"description": "every option it ran with"})
    classes = fields.List(fields.String(), metadata={
        "description": "the project's classes at the time, the order of posteriors"})
    input_fingerprint = fields.String(metadata={
        "description": "SHA-256 of the sorted (task, worker, value) counted labels and the "
                       "gold answers of their tasks"})
    labels = fields.Integer()
    tasks = fields.Integer()
    workers = fields.Integer()
    ties = fields.Integer(metadata={"description": "tasks whose two best classes tie"})
    iterations = fields.Integer()
    converged = fields.Boolean(allow_none=True)
    gold_used = fields.Integer()
    gold_held_out = fields.Integer()
    gold_accuracy = fields.Float(allow_none=True, metadata={
        "description": "accuracy on the held-out gold tasks; null without any"})
    created_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class ConsensusRunCreatedOut(ConsensusRunOut):
    """A run, and whether it was stored before with the same inputs."""

    reused = fields.Boolean(metadata={
        "description": "true when a run with the same method, options, classes and inputs "
                       "was already stored and is returned instead of a new one"})


class TaskConsensusOut(Schema):
    """The consensus of one task in a run."""

    task_id = fields.Integer()
    external_id = fields.String()
    label = fields.String()
    confidence = fields.Float(metadata={"description": "posterior of the label"})
    posteriors = fields.Dict(keys=fields.String(), values=fields.Float())
    labels = fields.Integer(metadata={"description": "counted labels the task had"})


class WorkerSkillOut(Schema):
    """What a run learnt about one worker."""

    worker_id = fields.Integer()
    external_id = fields.String()
    workforce_id = fields.Integer()
    skill = fields.Float(allow_none=True)
    confusion = fields.Dict(
        keys=fields.String(), values=fields.Dict(keys=fields.String(), values=fields.Float()),
        allow_none=True, metadata={
            "description": "dawid_skene only: confusion[true][answered], the probability "
                           "that the worker answers `answered` when the class is `true`"})
    labels = fields.Integer()
    gold_answers = fields.Integer()
    gold_correct = fields.Integer()
    gold_accuracy = fields.Float(allow_none=True)


class AgreementQuery(Schema):
    """Which agreement to compute."""

    by = DelimitedList(
        fields.String(validate=validate.OneOf(AGREEMENT_GROUPS)), load_default=list,
        metadata={"description": "group by any of worker, workforce, region, locale "
                  "(comma-separated); none: the whole project"})
    run_id = fields.Integer(metadata={
        "description": "the run whose labels are the consensus (default: the newest)"})


class AgreementGroupOut(Schema):
    """The metrics of one group."""

    group = fields.Dict(metadata={"description": "the group's value of each `by` column"})
    labels = fields.Integer()
    tasks = fields.Integer()
    workers = fields.Integer()
    krippendorff_alpha = fields.Float(allow_none=True)
    fleiss_kappa = fields.Float(allow_none=True)
    cohen_kappa = fields.Float(allow_none=True, metadata={
        "description": "mean pairwise Cohen's kappa, weighted by common tasks"})
    accuracy_consensus = fields.Float(allow_none=True)
    accuracy_gold = fields.Float(allow_none=True)


class AgreementOut(Schema):
    """Agreement among a project's counted labels."""

    project_id = fields.Integer()
    run_id = fields.Integer(allow_none=True)
    by = fields.List(fields.String())
    groups = fields.List(fields.Nested(AgreementGroupOut))
