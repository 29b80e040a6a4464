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


def _in_run(label: Label, superseded_at: Any, run_created_at: Any) -> bool:
    """Whether the run read this label: counted when the run was made.

    A label submitted after the run was not read; a label superseded after the run was.
    """
    if label.submitted_at > run_created_at:
        return False
    if label.counted:
        return True
    return label.set_aside == "superseded" and superseded_at is not None and \
        superseded_at > run_created_at


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
        select(Label, Worker, Workforce, GuidelineVersion, Assignment, newer.submitted_at)
        .join(Worker, Worker.id == Label.worker_id)
        .join(Workforce, Workforce.id == Label.workforce_id)
        .join(GuidelineVersion, GuidelineVersion.id == Label.guideline_version_id)
        .join(Assignment, Assignment.id == Label.assignment_id)
        .outerjoin(newer, newer.supersedes_id == Label.id)
        .where(Label.task_id == task.id).order_by(Label.id)).all()
    labels = []
    for label, worker, workforce, version, assignment, superseded_at in rows:
        labels.append({
            "id": label.id, "value": label.value, "counted": label.counted,
            "set_aside": label.set_aside, "supersedes_id": label.supersedes_id,
            "submitted_at": label.submitted_at,
            "in_run": _in_run(label, superseded_at, run.created_at),
            "worker": {"id": worker.id, "external_id": worker.external_id,
                       "identity_hash": worker.identity_hash},
            "workforce": {"id": workforce.id, "name": workforce.name, "kind": workforce.kind,
                          "region": workforce.region},
            "guideline": {"version_id": version.id, "number": version.number,
                          "title": version.title, "locale": label.guideline_locale},
            "assignment": {"id": assignment.id, "status": assignment.status,
                           "price": assignment.price, "currency": assignment.currency},
        })
    return {
        "task": {"id": task.id, "external_id": task.external_id, "gold": task.gold},
        "consensus": {"label": result.label, "confidence": result.confidence,
                      "posteriors": dict(zip(run.classes, result.posteriors, strict=True)),
                      "labels": result.labels},
        "run": {"id": run.id, "method": run.method, "options": run.options,
                "input_fingerprint": run.input_fingerprint, "created_at": run.created_at},
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
