"""Feedback: training runs on consensus labels, their imported predictions and the flags raised.

A training run records what it read (the exported dataset's location and content hash, the
consensus run, the guideline version), how it trained (settings, device) and what it wrote
(the output location and metrics). Importing its predictions records one import per
distinct predictions file, the per-class thresholds used, a flag per item where the model
confidently disagrees with the consensus, and each worker's agreement with the model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, JsonDocument, UTCDateTime, utcnow

TRAINING_STATES = ("queued", "running", "succeeded", "failed")
#: A probability or a share; double precision everywhere.
Double = Float(precision=53)
#: A JSON document whose absence is SQL NULL.
OptionalDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class TrainingRun(Base):
    """One training job over an exported consensus run: inputs, settings, status, outputs."""

    __tablename__ = "training_runs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')",
                        name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    consensus_run_id: Mapped[int] = mapped_column(ForeignKey("consensus_runs.id"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    #: the training settings (folds, epochs, seed...) and the device asked for
    options: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    #: where the dataset was exported (a folder or s3:// prefix); empty for a run made by
    #: hand elsewhere and recorded when its predictions were imported
    dataset_uri: Mapped[str | None] = mapped_column(String(2000))
    #: the dataset manifest's content_hash (SHA-256 of the uncompressed items)
    dataset_hash: Mapped[str] = mapped_column(String(64))
    #: the newest published guideline version when the dataset was exported
    guideline_version: Mapped[int | None]
    #: items in the dataset
    items: Mapped[int]
    #: where the outputs were written (predictions, metrics, model)
    output_uri: Mapped[str | None] = mapped_column(String(2000))
    #: the device the job ran on, e.g. ``cuda:0 (NVIDIA H100)``
    device: Mapped[str | None] = mapped_column(String(200))
    #: summary metrics and timings from the outputs' manifest
    metrics: Mapped[dict[str, Any] | None] = mapped_column(OptionalDocument)
    #: why a failed run failed
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PredictionImport(Base):
    """One predictions file brought back; importing the same file again returns this row."""

    __tablename__ = "prediction_imports"
    __table_args__ = (UniqueConstraint("project_id", "predictions_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    training_run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id"))
    consensus_run_id: Mapped[int] = mapped_column(ForeignKey("consensus_runs.id"))
    #: SHA-256 of the uncompressed predictions file
    predictions_hash: Mapped[str] = mapped_column(String(64))
    #: per class, the mean predicted probability of that class over the items the consensus
    #: gives it (confident learning's threshold)
    thresholds: Mapped[dict[str, float]] = mapped_column(JsonDocument)
    #: items predicted, and those flagged
    items: Mapped[int]
    flagged: Mapped[int]
    #: extra labels asked per flagged item; the dispatch run that asked for them
    extra_labels: Mapped[int]
    dispatch_run_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_runs.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PredictionFlag(Base):
    """An item whose consensus label the model confidently disagrees with."""

    __tablename__ = "prediction_flags"

    import_id: Mapped[int] = mapped_column(ForeignKey("prediction_imports.id"), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    consensus_label: Mapped[str] = mapped_column(String(200))
    #: the class above its threshold with the highest probability
    predicted_label: Mapped[str] = mapped_column(String(200))
    predicted_probability: Mapped[float] = mapped_column(Double)
    #: the model's probability of the consensus label
    consensus_probability: Mapped[float] = mapped_column(Double)
    #: whether the item was sent back to dispatch for more labels
    redispatched: Mapped[bool] = mapped_column(default=False)


class ModelAgreement(Base):
    """How often one worker's counted labels equal the model's prediction, in one import."""

    __tablename__ = "model_agreements"

    import_id: Mapped[int] = mapped_column(ForeignKey("prediction_imports.id"), primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"), primary_key=True)
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    #: the worker's counted labels on predicted items, and how many equal the prediction
    labels: Mapped[int]
    agreeing: Mapped[int]
    #: the worker's Dawid-Skene skill in the consensus run (None when the method gives none)
    skill: Mapped[float | None] = mapped_column(Double)
