"""Take labels from vendors: validate each, store the good ones, report the bad ones by index."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext
from sqlalchemy import (
    ColumnElement,
    Row,
    bindparam,
    false,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, id_ranges, record
from coordinator.db import copy_rows, is_postgres, unnest, utcnow
from coordinator.dispatch.models import Assignment, TaskWorker, Worker
from coordinator.dispatch.services import expire_leases
from coordinator.errors import Conflict, InvalidInput
from coordinator.labels.models import IdempotentRequest, Label
from coordinator.projects.models import Project
from coordinator.quality.services import ActiveBlock, blocked_workers
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
    #: the assignment's row as ``_load`` read it (id, project, task, status, lease, guideline)
    assignment: Row[Any]
    locale: str
    set_aside: str | None = None
    #: the label this one corrects (its id, assignment and worker)
    supersedes: Row[Any] | None = None


@dataclass
class _Batch:
    """The state a submission reads once and the writes it collects."""

    assignments: dict[int, Row[Any]]
    projects: dict[int, Project]
    current_labels: dict[int, Row[Any]]
    current_workers: dict[int, str]
    claims: dict[tuple[int, str], int]
    #: assignments given a label earlier in this request; a second one is refused
    taken: set[int] = field(default_factory=set)
    #: each locale code met, normalised (None: not a locale); a batch repeats a few codes
    locales: dict[str, str | None] = field(default_factory=dict)
    accepted: list[_Accepted] = field(default_factory=list)
    #: indexes of accepted items a concurrent request changed first; refused as conflicts
    lost: set[int] = field(default_factory=set)
    results: list[dict[str, Any]] = field(default_factory=list)
    #: (project id, worker external id) -> the active block; see coordinator.quality
    blocked: dict[tuple[int, str], ActiveBlock] = field(default_factory=dict)
    #: ids of the Worker rows this request created, and (label id, assignment, worker id,
    #: value) of each label it wrote: what the audit event names
    new_workers: list[int] = field(default_factory=list)
    written: list[tuple[int, int, int, str]] = field(default_factory=list)


def _among(column: Any, ids: Any) -> ColumnElement[bool]:
    """Return ``column IN (ids)`` with the integers written into the statement.

    A batch holds thousands of ids; as one bound parameter each they make a statement the
    driver re-parses on every call, and SQLAlchemy's own literal rendering costs more than
    the query. Integers cannot inject anything.
    """
    numbers = sorted({int(value) for value in ids})
    if not numbers:
        return false()
    return column.op("IN")(literal_column("(" + ",".join(map(str, numbers)) + ")"))


#: The fields of a Submission, in the order the request hash reads them.
_HASHED = ("assignment_id", "worker_id", "label", "worker_identity", "locale", "supersedes")


def _request_hash(items: list[Submission]) -> str:
    """Return the SHA-256 of the labels' content, whatever the JSON's spacing or key order."""
    body = json.dumps([[getattr(item, name) for name in _HASHED] for item in items],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _error(index: int, code: str, message: str) -> dict[str, Any]:
    return {"index": index, "status": "error", "error": {"code": code, "message": message}}


def _person_keys(workforce_id: int, item: Submission) -> list[str]:
    """Return every key a person is known by: the vendor's id for them, and their identity hash."""
    # Both are claimed, so a vendor that sends the identity only some of the time still
    # cannot have one worker label a task twice.
    keys = [f"{workforce_id}:{item.worker_id}"]
    if item.worker_identity:
        keys.append(item.worker_identity)
    return keys


def submit(session: Session, actor: Actor, workforce_id: int, idempotency_key: str,
           items: list[Submission], *, now: datetime | None = None) -> SubmitOutcome:
    """Store each acceptable label once; a retry with the same key returns the first answer."""
    if not 1 <= len(items) <= MAX_LABELS_PER_REQUEST:
        raise InvalidInput(errors={"labels": [gettext(
            "Send between 1 and %(n)d labels.", n=MAX_LABELS_PER_REQUEST)]})
    digest = _request_hash(items)
    replay = _replay(session, workforce_id, idempotency_key, digest)
    if replay is not None:
        return replay
    _serialise_key(session, workforce_id, idempotency_key)
    # A concurrent request with this key held the lock until it committed; its answer is
    # stored now, so give that one back rather than fail on the key's uniqueness.
    replay = _replay(session, workforce_id, idempotency_key, digest)
    if replay is not None:
        return replay
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
        "errors": response["errors"], "label_ids": id_ranges(row[0] for row in batch.written),
        "labels_sha256": written_hash(batch.written), "new_workers": sorted(batch.new_workers)})
    return SubmitOutcome(response)


#: Version of the canonical form ``written_hash`` reads.
WRITTEN_FORM = "coordinator.labels.written/1"


def written_hash(rows: list[tuple[int, int, int, str]]) -> str:
    """Return the SHA-256 of the labels written: JSON ``[form, [id, assignment, worker, value]...]``
    in label id order, without spaces; one hash over the batch, so it costs next to nothing."""
    body = json.dumps([WRITTEN_FORM, sorted(rows)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _replay(session: Session, workforce_id: int, key: str, digest: str) -> SubmitOutcome | None:
    """Return the stored answer to an earlier request with ``key``, if there was one."""
    stored = session.scalar(select(IdempotentRequest).where(
        IdempotentRequest.workforce_id == workforce_id, IdempotentRequest.key == key))
    if stored is None:
        return None
    if stored.request_hash != digest:
        raise Conflict(gettext("This Idempotency-Key was used for different labels; use a new key."))
    return SubmitOutcome(stored.response, replayed=True)


def _serialise_key(session: Session, workforce_id: int, key: str) -> None:
    """Make concurrent requests with one Idempotency-Key wait for each other (PostgreSQL)."""
    # Requests with different keys need no lock: each write below is conditional on the
    # state the checks saw, so the loser of a race learns it by item instead of blocking.
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                        {"key": f"labels:{workforce_id}:{key}"})


def _load(session: Session, workforce_id: int, items: list[Submission]) -> _Batch:
    ids = {item.assignment_id for item in items}
    # Plain rows, not ORM objects, and no row locks: a batch reads thousands, and ``_write``
    # changes them only where they still are as read here.
    assignments = {a.id: a for a in session.execute(
        select(Assignment.id, Assignment.project_id, Assignment.task_id, Assignment.status,
               Assignment.lease_expires_at, Assignment.guideline_version_id,
               Assignment.guideline_locale, Assignment.leased_at)
        .where(_among(Assignment.id, ids), Assignment.workforce_id == workforce_id))}
    projects = {p.id: p for p in session.scalars(
        select(Project).where(Project.id.in_({a.project_id for a in assignments.values()})))}
    # Only corrections need the labels they supersede and who gave them; most batches hold none.
    corrected = {i.assignment_id for i in items if i.supersedes is not None} & assignments.keys()
    current: dict[int, Row[Any]] = {}
    current_workers: dict[int, str] = {}
    if corrected:
        current = {label.assignment_id: label for label in session.execute(
            select(Label.id, Label.assignment_id, Label.worker_id)
            .where(_among(Label.assignment_id, corrected), Label.counted.is_(True)))}
        current_workers = dict(session.execute(
            select(Worker.id, Worker.external_id)
            .where(_among(Worker.id, {label.worker_id for label in current.values()}))).all())
    claims = {(task_id, person): assignment_id for task_id, person, assignment_id in session.execute(
        select(TaskWorker.task_id, TaskWorker.person_key, TaskWorker.assignment_id)
        .where(_among(TaskWorker.task_id, {a.task_id for a in assignments.values()})))}
    return _Batch(assignments, projects, current, current_workers, claims,
                  blocked=blocked_workers(session, workforce_id))


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
    block = batch.blocked.get((assignment.project_id, item.worker_id))
    if block is not None and block.refuses(assignment.leased_at, now):
        return _error(index, "worker_blocked", gettext(
            "Worker %(worker)s is blocked on this project since %(since)s (gold accuracy below "
            "the project's floor); their labels are not accepted.",
            worker=item.worker_id, since=block.since.isoformat(timespec="seconds")))
    locale = _locale(batch, item.locale or assignment.guideline_locale or project.source_locale)
    if locale is None:
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
    if assignment.status != "leased" or assignment.id in batch.taken:
        return _error(index, "already_submitted", gettext(
            "Assignment %(id)s already has a label; send supersedes to correct it.",
            id=assignment.id))
    claims = [(assignment.task_id, key) for key in _person_keys(workforce_id, item)]
    for claim in claims:
        if batch.claims.get(claim, assignment.id) != assignment.id:
            return _error(index, "duplicate_worker", gettext(
                "Worker %(worker)s already labelled this task; each label must come from a "
                "different person.", worker=item.worker_id))
    for claim in claims:
        batch.claims[claim] = assignment.id
    batch.taken.add(assignment.id)
    batch.accepted.append(_Accepted(index, item, assignment, locale))
    return None


def _locale(batch: _Batch, code: str) -> str | None:
    """Return ``code`` normalised, or None when it is not a locale."""
    if code not in batch.locales:
        try:
            batch.locales[code] = normalise_locale(code)
        except InvalidLocale:
            batch.locales[code] = None
    return batch.locales[code]


def _check_correction(batch: _Batch, index: int, item: Submission, assignment: Row[Any],
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


def _workers(session: Session, workforce_id: int, accepted: list[_Accepted],
             created_ids: list[int]) -> dict[str, int]:
    wanted = {entry.item.worker_id: entry.item.worker_identity for entry in accepted}
    known = dict(session.execute(select(Worker.external_id, Worker.id).where(
        Worker.workforce_id == workforce_id, Worker.external_id.in_(list(wanted)))).all())
    missing = [{"workforce_id": workforce_id, "external_id": external_id, "identity_hash": identity}
               for external_id, identity in wanted.items() if external_id not in known]
    if missing:
        created = session.execute(
            insert(Worker.__table__).returning(Worker.external_id, Worker.id,
                                               sort_by_parameter_order=True), missing)
        fresh = dict(created.all())
        known.update(fresh)
        created_ids.extend(fresh.values())
    return known


def _write(session: Session, batch: _Batch, workforce_id: int, now: datetime) -> None:
    if not batch.accepted:
        return
    worker_ids = _workers(session, workforce_id, batch.accepted, batch.new_workers)
    # Claim first: assignments still leased and labels still current, as the checks saw them.
    # Whatever a concurrent request took in the meantime drops out here, before any insert.
    fresh = _claim_assignments(session, batch, worker_ids, now)
    _claim_superseded(session, batch)
    accepted = [e for e in batch.accepted if e.index not in batch.lost]
    for entry in batch.accepted:
        if entry.index in batch.lost:
            batch.results[entry.index] = _error(entry.index, "conflict", gettext(
                "Assignment %(id)s changed while this request was being processed; send this "
                "label again to learn why.", id=entry.assignment.id))
    if not accepted:
        return
    rows = [(
        e.assignment.project_id, e.assignment.task_id, e.assignment.id, workforce_id,
        worker_ids[e.item.worker_id], e.item.label, e.assignment.guideline_version_id, e.locale,
        e.set_aside is None, e.set_aside, e.supersedes.id if e.supersedes else None, now,
    ) for e in accepted]
    label_ids = _insert_labels(session, rows)
    batch.written = [(label_id, row[2], row[4], row[5]) for label_id, row in zip(label_ids, rows,
                                                                               strict=True)]
    for entry, label_id in zip(accepted, label_ids, strict=True):
        batch.results[entry.index]["label_id"] = label_id
        if entry.supersedes is not None:
            batch.results[entry.index]["supersedes"] = entry.supersedes.id
    _insert_claims(session, [(e.assignment.task_id, key, e.assignment.id)
                             for e in fresh for key in _person_keys(workforce_id, e.item)])


LABEL_COLUMNS = ["project_id", "task_id", "assignment_id", "workforce_id", "worker_id", "value",
                 "guideline_version_id", "guideline_locale", "counted", "set_aside",
                 "supersedes_id", "submitted_at"]
CLAIM_COLUMNS = ["task_id", "person_key", "assignment_id"]


def _insert_labels(session: Session, rows: list[tuple[Any, ...]]) -> list[int]:
    """Insert label rows, tuples in LABEL_COLUMNS order; return their ids in the rows' order."""
    if not is_postgres(session):
        return list(session.scalars(
            insert(Label.__table__).returning(Label.id, sort_by_parameter_order=True),
            [dict(zip(LABEL_COLUMNS, row, strict=True)) for row in rows]))
    # Ids from the sequence first, so the rows can go by COPY, which returns nothing.
    ids = list(session.scalars(
        text("SELECT nextval(pg_get_serial_sequence('labels', 'id')) "
             "FROM generate_series(1, :n)"), {"n": len(rows)}))
    ids.sort()
    copy_rows(session, Label.__table__, ["id", *LABEL_COLUMNS],
              ((label_id, *row) for label_id, row in zip(ids, rows, strict=True)))
    return ids


def _insert_claims(session: Session, claims: list[tuple[int, str, int]]) -> None:
    """Record that each person labelled each task, as (task, person key, assignment) rows."""
    if not claims:
        return
    if is_postgres(session):
        copy_rows(session, TaskWorker.__table__, CLAIM_COLUMNS, claims)
        return
    session.execute(insert(TaskWorker.__table__),
                    [dict(zip(CLAIM_COLUMNS, claim, strict=True)) for claim in claims])


def _claim_assignments(session: Session, batch: _Batch, worker_ids: dict[str, int],
                       now: datetime) -> list[_Accepted]:
    """Mark the fresh labels' assignments submitted where still leased; return the winners."""
    fresh = [e for e in batch.accepted if e.set_aside is None and e.supersedes is None]
    if not fresh:
        return []
    table = Assignment.__table__
    rows = [{"id": e.assignment.id, "worker_id": worker_ids[e.item.worker_id]} for e in fresh]
    if is_postgres(session):
        data = unnest(table, rows)
        # The id list as well as the join, so the rows are found by key, not by a scan.
        won = set(session.scalars(update(table).where(
            table.c.id == data.c.id, _among(table.c.id, [row["id"] for row in rows]),
            table.c.status == "leased",
        ).values(status="submitted", submitted_at=now, worker_id=data.c.worker_id)
            .returning(table.c.id)))
    else:
        won = set(session.scalars(update(table).where(
            _among(table.c.id, [row["id"] for row in rows]), table.c.status == "leased",
        ).values(status="submitted", submitted_at=now).returning(table.c.id)))
        session.execute(
            update(table).where(table.c.id == bindparam("assignment"))
            .values(worker_id=bindparam("worker")),
            [{"assignment": row["id"], "worker": row["worker_id"]} for row in rows
             if row["id"] in won])
    batch.lost.update(e.index for e in fresh if e.assignment.id not in won)
    return [e for e in fresh if e.assignment.id in won]


def _claim_superseded(session: Session, batch: _Batch) -> None:
    """Set aside the labels being corrected where they are still current."""
    corrections = [e for e in batch.accepted if e.supersedes is not None]
    if not corrections:
        return
    won = set(session.scalars(
        update(Label).where(_among(Label.id, {e.supersedes.id for e in corrections}),
                            Label.counted.is_(True))
        .values(counted=False, set_aside="superseded").returning(Label.id)))
    batch.lost.update(e.index for e in corrections if e.supersedes.id not in won)
