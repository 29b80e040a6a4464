"""The HTTP contract of training runs, predictions imports, flags and model agreement."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from coordinator.feedback.services import DEFAULT_EXTRA_LABELS, DEVICES


class TrainingRunIn(Schema):
    """Which consensus run to train on, and how."""

    consensus_run_id = fields.Integer(metadata={
        "description": "the consensus run to export (default: the project's newest)"})
    folds = fields.Integer(validate=validate.Range(min=2, max=20),
                           metadata={"description": "cross-fitting folds (default 5)"})
    epochs = fields.Integer(validate=validate.Range(min=1, max=100),
                            metadata={"description": "epochs per fold (default 5)"})
    seed = fields.Integer(validate=validate.Range(min=0, max=2**31 - 1),
                          metadata={"description": "seed of folds, weights and batch order"})
    device = fields.String(validate=validate.OneOf(DEVICES), metadata={
        "description": "auto (default: the GPU when the worker has one), cpu or cuda"})


class TrainingRunOut(Schema):
    """A training run: inputs, settings, status and outputs."""

    id = fields.Integer()
    project_id = fields.Integer()
    consensus_run_id = fields.Integer()
    status = fields.String(metadata={"description": "queued, running, succeeded or failed"})
    options = fields.Dict()
    dataset_uri = fields.String(allow_none=True)
    dataset_hash = fields.String()
    guideline_version = fields.Integer(allow_none=True)
    items = fields.Integer()
    output_uri = fields.String(allow_none=True)
    device = fields.String(allow_none=True)
    metrics = fields.Dict(allow_none=True, metadata={
        "description": "accuracy against consensus and gold, timings, item-epochs per second"})
    error = fields.String(allow_none=True)
    created_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class PredictionsIn(Schema):
    """How to import a training run's predictions."""

    redispatch = fields.Boolean(load_default=True, metadata={
        "description": "send flagged items back to dispatch (default true)"})
    extra_labels = fields.Integer(load_default=DEFAULT_EXTRA_LABELS,
                                  validate=validate.Range(min=1, max=25), metadata={
        "description": "more labels asked for each flagged item"})


class PredictionImportOut(Schema):
    """An import of predictions."""

    id = fields.Integer()
    project_id = fields.Integer()
    training_run_id = fields.Integer()
    consensus_run_id = fields.Integer()
    predictions_hash = fields.String()
    thresholds = fields.Dict(metadata={
        "description": "per class, the mean predicted probability over its consensus items"})
    items = fields.Integer()
    flagged = fields.Integer()
    extra_labels = fields.Integer()
    dispatch_run_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class PredictionImportCreatedOut(PredictionImportOut):
    """An import, and whether the same predictions had been imported already."""

    reused = fields.Boolean()


class FlagOut(Schema):
    """An item the model confidently disagrees with the consensus on."""

    task_id = fields.Integer()
    external_id = fields.String()
    consensus_label = fields.String()
    predicted_label = fields.String()
    predicted_probability = fields.Float()
    consensus_probability = fields.Float()
    redispatched = fields.Boolean()


class AgreementQuery(Schema):
    """Per worker or per workforce."""

    by = fields.String(load_default="worker", validate=validate.OneOf(["worker", "workforce"]))


class ModelAgreementOut(Schema):
    """Agreement with the model beside the Dawid-Skene skill."""

    worker_id = fields.Integer()
    workforce_id = fields.Integer()
    workers = fields.Integer()
    labels = fields.Integer()
    agreeing = fields.Integer()
    agreement = fields.Float(allow_none=True)
    skill = fields.Float(allow_none=True)
