"""Lineage of a consensus label: the raw labels, people, guidelines and run behind it."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from coordinator.consensus.models import TaskConsensus
from coordinator.consensus.services import get_run
from coordinator.dispatch.models import Assignment, Worker
from coordinator.errors import NotFound
from coordinator.feedback.models import PredictionFlag, PredictionImport, TrainingRun
from coordinator.guidelines.models import GuidelineVersion
from coordinator.labels.models import Label
from coordinator.projects.models import Task
from coordinator.workforces.models import Workforce


def _in_run(label: Label, superseded_by: int | None, max_label_id: int | None) -> bool | None:
    """Whether the run read this label; None for a run that kept no label watermark.

    A run reads the counted labels in one snapshot and keeps the largest id it read. Labels
    are inserted counted (or set aside as late, never counted), and a counted label stops
    counting only when a correction supersedes it, in the transaction that inserts the
    correction. So the run read a label when its id is at most the watermark and it was
    counted then: it is counted now, or the correction that superseded it came later (an id
    above the watermark). A label whose transaction committed only after the read, with an
    id below the watermark, would be miscounted; :func:`lineage` checks the result against
    the number of labels the run stored for the task and says when they differ.
    """
    if max_label_id is None:
        return None
    if label.id > max_label_id:
        return False
    if label.counted:
        return True
    return label.set_aside == "superseded" and superseded_by is not None and \
        superseded_by > max_label_id


def lineage(session: Session, project_id: int, run_id: int, task_id: int) -> dict[str, Any]:
    """Return where the run's label for the task came from; raise NotFound if it has none."""
    run = get_run(session, project_id, run_id)
    result = session.get(TaskConsensus, (run.id, task_id))
    task = session.get(Task, task_id)
    if result is None or task is None or task.project_id != project_id:
        raise NotFound(gettext("Consensus run %(run)s has no label for task %(task)s.",
                               run=run.id, task=task_id))
    newer = aliased(Label)
    rows = session.execute(
        select(Label, Worker, Workforce, GuidelineVersion, Assignment, newer.id)
        .join(Worker, Worker.id == Label.worker_id)
        .join(Workforce, Workforce.id == Label.workforce_id)
        .join(GuidelineVersion, GuidelineVersion.id == Label.guideline_version_id)
        .join(Assignment, Assignment.id == Label.assignment_id)
        .outerjoin(newer, newer.supersedes_id == Label.id)
        .where(Label.task_id == task.id).order_by(Label.id)).all()
    labels = []
    for label, worker, workforce, version, assignment, superseded_by in rows:
        labels.append({
            "id": label.id, "value": label.value, "counted": label.counted,
            "set_aside": label.set_aside, "supersedes_id": label.supersedes_id,
            "submitted_at": label.submitted_at,
            "in_run": _in_run(label, superseded_by, run.max_label_id),
            "worker": {"id": worker.id, "external_id": worker.external_id,
                       "identity_hash": worker.identity_hash},
            "workforce": {"id": workforce.id, "name": workforce.name, "kind": workforce.kind,
                          "region": workforce.region},
            "guideline": {"version_id": version.id, "number": version.number,
                          "title": version.title, "locale": label.guideline_locale},
            "assignment": {"id": assignment.id, "status": assignment.status,
                           "price": assignment.price, "currency": assignment.currency},
        })
    read = sum(1 for label in labels if label["in_run"])
    return {
        "task": {"id": task.id, "external_id": task.external_id, "gold": task.gold},
        # Whether the labels marked in_run are as many as the run stored for the task: when
        # not (or when the run kept no watermark), in_run cannot be trusted for this task.
        "in_run_checked": run.max_label_id is not None and read == result.labels,
        "consensus": {"label": result.label, "confidence": result.confidence,
                      "posteriors": dict(zip(run.classes, result.posteriors, strict=True)),
                      "labels": result.labels},
        "run": {"id": run.id, "method": run.method, "options": run.options,
                "input_fingerprint": run.input_fingerprint, "max_label_id": run.max_label_id,
                "created_at": run.created_at},
        "labels": labels,
        "training": _training(session, run.id, task.id),
    }


def _training(session: Session, run_id: int, task_id: int) -> dict[str, Any] | None:
    """The newest predictions import judging the run, and what it said of the task.

    An import stores the model's prediction only where it flagged the item (the model
    confidently disagreed with the consensus); for other items ``flagged`` is false and the
    prediction fields are null. None when no training run judged the run.
    """
    found = session.execute(
        select(PredictionImport, TrainingRun)
        .join(TrainingRun, TrainingRun.id == PredictionImport.training_run_id)
        .where(PredictionImport.consensus_run_id == run_id)
        .order_by(PredictionImport.id.desc()).limit(1)).first()
    if found is None:
        return None
    outcome, training = found
    flag = session.get(PredictionFlag, (outcome.id, task_id))
    return {
        "training_run": {"id": training.id, "status": training.status,
                         "device": training.device, "finished_at": training.finished_at},
        "import_id": outcome.id, "flagged": flag is not None,
        "predicted_label": flag.predicted_label if flag else None,
        "predicted_probability": flag.predicted_probability if flag else None,
        "consensus_probability": flag.consensus_probability if flag else None,
        "redispatched": flag.redispatched if flag else None,
    }
