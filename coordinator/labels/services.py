"""Take labels from vendors: validate each, store the good ones, report the bad ones by index."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, record
from coordinator.db import utcnow
from coordinator.dispatch.models import Assignment, TaskWorker, Worker
from coordinator.dispatch.services import expire_leases
from coordinator.errors import Conflict, InvalidInput
from coordinator.labels.models import IdempotentRequest, Label
from coordinator.projects.models import Project
from i18n.locales import InvalidLocale, normalise_locale

MAX_LABELS_PER_REQUEST = 5000


@dataclass
class Submission:
    """One label as the vendor sent it."""

    assignment_id: int
    worker_id: str
    label: str
    worker_identity: str | None = None
    locale: str | None = None
    supersedes: int | None = None


@dataclass
class SubmitOutcome:
    """The per-item results of a submission, and whether they were replayed from a retry."""

    response: dict[str, Any]
    replayed: bool = False


@dataclass
class _Accepted:
    """A label that passed every check, waiting to be written with the others."""

    index: int
    item: Submission
    assignment: Assignment
    locale: str
    set_aside: str | None = None
    supersedes: Label | None = None


@dataclass
class _Batch:
    """The state a submission reads once and the writes it collects."""

    assignments: dict[int, Assignment]
    projects: dict[int, Project]
    current_labels: dict[int, Label]
    current_workers: dict[int, str]
    claims: dict[tuple[int, str], int]
    accepted: list[_Accepted] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)


def _request_hash(items: list[Submission]) -> str:
    body = json.dumps([vars(item) for item in items], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _error(index: int, code: str, message: str) -> dict[str, Any]:
    return {"index": index, "status": "error", "error": {"code": code, "message": message}}


def _person_key(workforce_id: int, item: Submission) -> str:
    return item.worker_identity or f"{workforce_id}:{item.worker_id}"


def submit(session: Session, actor: Actor, workforce_id: int, idempotency_key: str,
           items: list[Submission], *, now: datetime | None = None) -> SubmitOutcome:
    """Store each acceptable label once; a retry with the same key returns the first answer."""
    if not 1 <= len(items) <= MAX_LABELS_PER_REQUEST:
        raise InvalidInput(errors={"labels": [gettext(
            "Send between 1 and %(n)d labels.", n=MAX_LABELS_PER_REQUEST)]})
    digest = _request_hash(items)
    stored = session.scalar(select(IdempotentRequest).where(
        IdempotentRequest.workforce_id == workforce_id, IdempotentRequest.key == idempotency_key))
    if stored is not None:
        if stored.request_hash != digest:
            raise Conflict(gettext(
                "This Idempotency-Key was used for different labels; use a new key."))
        return SubmitOutcome(stored.response, replayed=True)
    now = now or utcnow()
    expire_leases(session, now=now, workforce_id=workforce_id)
    batch = _load(session, workforce_id, items)
    for index, item in enumerate(items):
        error = _check(batch, workforce_id, index, item, now)
        batch.results.append(error or {"index": index, "status": "created"})
    _write(session, batch, workforce_id, now)
    response = {
        "created": sum(1 for r in batch.results if r["status"] == "created"),
        "errors": sum(1 for r in batch.results if r["status"] == "error"),
        "results": batch.results,
    }
    session.add(IdempotentRequest(workforce_id=workforce_id, key=idempotency_key,
                                  request_hash=digest, response=response))
    session.flush()
    record(session, actor, "labels.submit", "workforce", workforce_id, after={
        "idempotency_key": idempotency_key, "created": response["created"],
        "errors": response["errors"]})
    return SubmitOutcome(response)


def _load(session: Session, workforce_id: int, items: list[Submission]) -> _Batch:
    ids = sorted({item.assignment_id for item in items})
    # Lock in id order so two submissions touching the same assignments cannot deadlock.
    assignments = {a.id: a for a in session.scalars(
        select(Assignment).where(Assignment.id.in_(ids), Assignment.workforce_id == workforce_id)
        .order_by(Assignment.id).with_for_update())}
    projects = {p.id: p for p in session.scalars(
        select(Project).where(Project.id.in_({a.project_id for a in assignments.values()})))}
    current = {label.assignment_id: label for label in session.scalars(
        select(Label).where(Label.assignment_id.in_(list(assignments)), Label.counted.is_(True)))}
    current_workers = dict(session.execute(
        select(Worker.id, Worker.external_id)
        .where(Worker.id.in_({label.worker_id for label in current.values()}))).all())
    claims = {(task_id, person): assignment_id for task_id, person, assignment_id in session.execute(
        select(TaskWorker.task_id, TaskWorker.person_key, TaskWorker.assignment_id)
        .where(TaskWorker.task_id.in_({a.task_id for a in assignments.values()})))}
    return _Batch(assignments, projects, current, current_workers, claims)


def _check(batch: _Batch, workforce_id: int, index: int, item: Submission,
           now: datetime) -> dict[str, Any] | None:
    """Queue ``item`` for writing, or return the error that keeps it out."""
    assignment = batch.assignments.get(item.assignment_id)
    if assignment is None:
        return _error(index, "not_found", gettext(
            "There is no assignment %(id)s for this workforce.", id=item.assignment_id))
    project = batch.projects[assignment.project_id]
    if item.label not in project.label_classes:
        return _error(index, "invalid_label", gettext(
            "%(value)s is not one of the project's label classes: %(classes)s.",
            value=repr(item.label)[:80], classes=", ".join(project.label_classes)))
    if not item.worker_id.strip():
        return _error(index, "invalid_worker", gettext("worker_id must not be empty."))
    try:
        locale = normalise_locale(item.locale or assignment.guideline_locale or project.source_locale)
    except InvalidLocale:
        return _error(index, "invalid_locale", gettext(
            "%(value)s is not a locale; use a code such as en, pt_BR or sr_Latn.",
            value=repr(item.locale)[:80]))
    if item.supersedes is not None:
        return _check_correction(batch, index, item, assignment, locale)
    if assignment.status == "expired" or (
            assignment.status == "leased" and assignment.lease_expires_at <= now):
        batch.accepted.append(_Accepted(index, item, assignment, locale, set_aside="late"))
        return _error(index, "lease_expired", gettext(
            "The lease on assignment %(id)s expired before this label arrived; it is kept aside "
            "and not counted.", id=assignment.id))
    if assignment.status == "offered":
        return _error(index, "not_leased", gettext(
            "Assignment %(id)s is not leased to you; lease it first.", id=assignment.id))
    if assignment.status != "leased":
        return _error(index, "already_submitted", gettext(
            "Assignment %(id)s already has a label; send supersedes to correct it.",
            id=assignment.id))
    person = _person_key(workforce_id, item)
    claimed = batch.claims.get((assignment.task_id, person))
    if claimed is not None and claimed != assignment.id:
        return _error(index, "duplicate_worker", gettext(
            "Worker %(worker)s already labelled this task; each label must come from a "
            "different person.", worker=item.worker_id))
    batch.claims[(assignment.task_id, person)] = assignment.id
    assignment.status = "submitted"  # a second item for it in this request is refused
    batch.accepted.append(_Accepted(index, item, assignment, locale))
    return None


def _check_correction(batch: _Batch, index: int, item: Submission, assignment: Assignment,
                      locale: str) -> dict[str, Any] | None:
    current = batch.current_labels.get(assignment.id)
    if current is None or current.id != item.supersedes:
        return _error(index, "not_current", gettext(
            "Label %(id)s is not the current label of assignment %(assignment)s.",
            id=item.supersedes, assignment=assignment.id))
    if batch.current_workers.get(current.worker_id) != item.worker_id:
        return _error(index, "other_worker", gettext(
            "Only the worker who gave label %(id)s may correct it.", id=current.id))
    del batch.current_labels[assignment.id]  # one correction per label per request
    batch.accepted.append(_Accepted(index, item, assignment, locale, supersedes=current))
    return None


def _workers(session: Session, workforce_id: int, accepted: list[_Accepted]) -> dict[str, int]:
    wanted = {entry.item.worker_id: entry.item.worker_identity for entry in accepted}
    known = dict(session.execute(select(Worker.external_id, Worker.id).where(
        Worker.workforce_id == workforce_id, Worker.external_id.in_(list(wanted)))).all())
    missing = [{"workforce_id": workforce_id, "external_id": external_id, "identity_hash": identity}
               for external_id, identity in wanted.items() if external_id not in known]
    if missing:
        created = session.execute(
            insert(Worker.__table__).returning(Worker.external_id, Worker.id,
                                               sort_by_parameter_order=True), missing)
        known.update(dict(created.all()))
    return known


def _write(session: Session, batch: _Batch, workforce_id: int, now: datetime) -> None:
    if not batch.accepted:
        return
    worker_ids = _workers(session, workforce_id, batch.accepted)
    rows = [{
        "project_id": e.assignment.project_id, "task_id": e.assignment.task_id,
        "assignment_id": e.assignment.id, "workforce_id": workforce_id,
        "worker_id": worker_ids[e.item.worker_id], "value": e.item.label,
        "guideline_version_id": e.assignment.guideline_version_id, "guideline_locale": e.locale,
        "counted": e.set_aside is None, "set_aside": e.set_aside,
        "supersedes_id": e.supersedes.id if e.supersedes else None, "submitted_at": now,
    } for e in batch.accepted]
    label_ids = session.scalars(
        insert(Label.__table__).returning(Label.id, sort_by_parameter_order=True), rows).all()
    for entry, label_id in zip(batch.accepted, label_ids, strict=True):
        batch.results[entry.index]["label_id"] = label_id
        if entry.supersedes is not None:
            batch.results[entry.index]["supersedes"] = entry.supersedes.id
    fresh = [e for e in batch.accepted if e.set_aside is None and e.supersedes is None]
    if fresh:
        session.execute(insert(TaskWorker.__table__), [
            {"task_id": e.assignment.task_id, "person_key": _person_key(workforce_id, e.item),
             "assignment_id": e.assignment.id} for e in fresh])
        _mark_submitted(session, fresh, worker_ids, now)
    superseded = [e.supersedes.id for e in batch.accepted if e.supersedes is not None]
    if superseded:
        session.execute(update(Label).where(Label.id.in_(superseded))
                        .values(counted=False, set_aside="superseded"))


def _mark_submitted(session: Session, fresh: list[_Accepted], worker_ids: dict[str, int],
                    now: datetime) -> None:
    for entry in fresh:
        entry.assignment.submitted_at = now
        entry.assignment.worker_id = worker_ids[entry.item.worker_id]
    session.flush()
