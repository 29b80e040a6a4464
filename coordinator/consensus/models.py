"""Consensus: immutable runs of an aggregation method over a project's counted labels.

A run keeps what it read (a fingerprint of the labels and gold), how it aggregated (method,
options, classes) and what came out: one row per task and one per worker. Nothing here is
ever updated; new labels make a new run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.db import Base, BigId, JsonDocument, UTCDateTime, utcnow

#: Probabilities in the run's class order: a float8[] on PostgreSQL (fixed width, so a run's
#: rows are written with binary COPY), a JSON array on SQLite.
FloatList = JSON().with_variant(ARRAY(Float(precision=53)), "postgresql")
#: A probability or a rate; double precision everywhere.
Double = Float(precision=53)
#: A JSON document whose absence is SQL NULL (JsonDocument writes None as JSON ``null``).
OptionalDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class ConsensusRun(Base):
    """One aggregation of a project's counted labels; immutable once stored."""

    __tablename__ = "consensus_runs"
    __table_args__ = (UniqueConstraint("project_id", "reuse_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    #: one of ``aggregation.METHODS``, e.g. ``dawid_skene``
    method: Mapped[str] = mapped_column(String(32))
    #: every option the method ran with, defaults written out, so the run can be repeated
    options: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    #: the project's label classes when the run was made: the order of ``posteriors``
    classes: Mapped[list[str]] = mapped_column(JsonDocument)
    #: SHA-256 of the sorted (task, worker, value) rows of the counted labels and of the gold
    #: answers of those tasks; see ``coordinator.consensus.services.input_fingerprint``
    input_fingerprint: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of method, options, classes and fingerprint: a second request with the same
    #: key gets this run back instead of a new one
    reuse_key: Mapped[str] = mapped_column(String(64))
    #: counted labels, tasks with at least one, and workers who gave them
    labels: Mapped[int]
    tasks: Mapped[int]
    workers: Mapped[int]
    #: tasks whose two most probable classes tie (their label is the earlier class)
    ties: Mapped[int]
    #: EM iterations (0 for methods without); whether they settled before the cap
    iterations: Mapped[int]
    converged: Mapped[bool | None]
    #: gold answers given to the method, and those held out to measure it
    gold_used: Mapped[int]
    gold_held_out: Mapped[int]
    #: share of held-out gold tasks whose consensus equals the gold answer; empty with none
    gold_accuracy: Mapped[float | None] = mapped_column(Double)
    #: the largest id among the labels the run read (its watermark, for lineage); empty for
    #: runs made before it was kept
    max_label_id: Mapped[int | None] = mapped_column(BigInteger)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TaskConsensus(Base):
    """The consensus label of one task in one run.

    No foreign keys, on purpose: a run writes its rows in one COPY, and PostgreSQL checks a
    foreign key with one query per row; each of the two keys took longer than the whole
    COPY (200,000 rows: 0.36 s without, 1.16 s with the run's key, 1.78 s with both). The
    rows are written only by ``run_consensus``, in the transaction that creates the run,
    with task ids it has just read from labels (whose own keys are checked); runs and tasks
    are never deleted.
    """

    __tablename__ = "task_consensus"

    #: the ConsensusRun
    run_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: the Task
    task_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: the most probable class; a tie goes to the earlier class in the run's order
    label: Mapped[str] = mapped_column(String(200))
    #: the posterior probability of ``label``
    confidence: Mapped[float] = mapped_column(Double)
    #: the posterior of every class, in the run's class order
    posteriors: Mapped[list[float]] = mapped_column(FloatList)
    #: counted labels the task had
    labels: Mapped[int]


class WorkerSkill(Base):
    """What one run learnt about one worker, and how the worker did on gold tasks."""

    __tablename__ = "worker_skills"

    run_id: Mapped[int] = mapped_column(ForeignKey("consensus_runs.id"), primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id"), primary_key=True)
    workforce_id: Mapped[int] = mapped_column(ForeignKey("workforces.id"))
    #: the method's skill score (Dawid-Skene: probability of a right answer); empty when
    #: the method gives none for this worker
    skill: Mapped[float | None] = mapped_column(Double)
    #: Dawid-Skene only: ``confusion[c][k]`` = P(answers class k | true class c), classes
    #: in the run's order
    confusion: Mapped[list[list[float]] | None] = mapped_column(OptionalDocument)
    #: counted labels of this worker in the run
    labels: Mapped[int]
    #: labels on tasks with a gold answer, and how many of them equal it
    gold_answers: Mapped[int]
    gold_correct: Mapped[int]
