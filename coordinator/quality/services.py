"""Quality rounds: judge workers on gold, queue reviews, adjust overlap; serve the review queue.

A round runs after a consensus run, when a manager (HTTP, CLI) asks for it, and does three
things in one transaction:

1. Gold accuracy. Every counted label on a task with a known answer is scored: the answer is
   the review verdict when the task has one, else the task's gold. A worker with at least
   ``gold_min_answers`` such labels and an accuracy below ``gold_accuracy_floor`` is blocked
   on the project: a WorkerBlock row keeps the evidence, the vendor hears ``worker.blocked``,
   and labels for assignments leased from then on are refused (``worker_blocked``). After a
   manager lifts a block the worker is judged again only on new gold answers.
2. Review. A gold task whose consensus label differs from its gold answer, and a task still
   below the target confidence with ``max_overlap`` labels, become review items served to the
   project's review workforce. A verdict is final for its task and is stored beside the
   crowd's labels, never among them: consensus keeps aggregating the crowd.
3. Dynamic overlap (``coordinator.quality.overlap``): uncertain tasks get one more assignment
   through ``dispatch.add_assignments``; confident ones have their unleased offers cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, record
from coordinator.consensus.models import ConsensusRun, TaskConsensus
from coordinator.consensus.services import get_run
from coordinator.db import utcnow
from coordinator.dispatch.models import Assignment, Worker
from coordinator.dispatch.services import add_assignments
from coordinator.errors import Conflict, InvalidInput, NotFound
from coordinator.labels.models import Label
from coordinator.projects.models import Project, Task
from coordinator.projects.services import get_project
from coordinator.quality.gold import below_floor, score_workers
from coordinator.quality.models import ReviewItem, ReviewVerdict, WorkerBlock
from coordinator.quality.overlap import OverlapPlan, TaskState, plan_overlap
from coordinator.webhooks.services import announce

#: Most review items or verdicts in one vendor request.
MAX_REVIEW_BATCH = 500
#: Task ids per IN (...) in one statement.
CHUNK = 5000


# --- gold accuracy and blocks ----------------------------------------------------------------


def _known_answers(session: Session, project_id: int) -> list[tuple[int, int, str, str]]:
    """Return (worker, workforce, label, known answer) for every counted label with one."""
    answer = func.coalesce(ReviewVerdict.label, Task.gold)
    return [tuple(row) for row in session.execute(
        select(Label.worker_id, Label.workforce_id, Label.value, answer)
        .join(Task, Task.id == Label.task_id)
        .outerjoin(ReviewVerdict, ReviewVerdict.task_id == Label.task_id)
        .where(Label.project_id == project_id, Label.counted.is_(True), answer.is_not(None)))]


def evaluate_workers(session: Session, actor: Actor, project: Project, run_id: int | None
                     ) -> list[WorkerBlock]:
    """Block the project's workers whose gold accuracy is below its floor; return new blocks."""
    if project.gold_accuracy_floor is None:
        return []
    scores = score_workers(_known_answers(session, project.id))
    blocks = {b.worker_id: b for b in session.scalars(
        select(WorkerBlock).where(WorkerBlock.project_id == project.id)
        .order_by(WorkerBlock.id))}  # the newest block of each worker wins
    new = []
    for worker_id in below_floor(scores, project.gold_accuracy_floor, project.gold_min_answers):
        score, last = scores[worker_id], blocks.get(worker_id)
        if last is not None and (last.lifted_at is None or last.gold_answers >= score.answers):
            continue  # blocked already, or lifted with no new evidence since
        block = WorkerBlock(
            project_id=project.id, worker_id=worker_id, workforce_id=score.workforce_id,
            run_id=run_id, gold_answers=score.answers, gold_correct=score.correct,
            accuracy=score.accuracy, floor=project.gold_accuracy_floor, blocked_at=utcnow())
        session.add(block)
        new.append(block)
    session.flush()
    for block in new:
        external_id = session.get(Worker, block.worker_id).external_id
        evidence = _evidence(block)
        record(session, actor, "worker.block", "worker", block.worker_id,
               after={"block_id": block.id, "project_id": project.id, **evidence})
        announce(session, block.workforce_id, "worker.blocked", {
            "project_id": project.id, "block_id": block.id, "worker_id": external_id,
            "gold_answers": block.gold_answers, "gold_correct": block.gold_correct,
            "accuracy": block.accuracy, "floor": block.floor})
    return new


def _evidence(block: WorkerBlock) -> dict[str, Any]:
    return {"run_id": block.run_id, "gold_answers": block.gold_answers,
            "gold_correct": block.gold_correct, "accuracy": block.accuracy,
            "floor": block.floor, "blocked_at": block.blocked_at.isoformat()}


def lift_block(session: Session, actor: Actor, project_id: int, block_id: int, reason: str
               ) -> WorkerBlock:
    """Lift a block: the worker may take new work again; the row stays as evidence."""
    block = get_block(session, project_id, block_id)
    if not (reason or "").strip():
        raise InvalidInput(errors={"reason": [gettext("Say why the block is lifted.")]})
    if block.lifted_at is not None:
        raise Conflict(gettext("Block %(id)s was lifted already.", id=block.id))
    block.lifted_at, block.lifted_by_id, block.lift_reason = utcnow(), actor.account_id, reason
    session.flush()
    record(session, actor, "worker.unblock", "worker", block.worker_id,
           before={"block_id": block.id, "lifted_at": None},
           after={"block_id": block.id, "lifted_at": block.lifted_at.isoformat(), "reason": reason})
    announce(session, block.workforce_id, "worker.unblocked", {
        "project_id": block.project_id, "block_id": block.id,
        "worker_id": session.get(Worker, block.worker_id).external_id})
    return block


def get_block(session: Session, project_id: int, block_id: int) -> WorkerBlock:
    """Return the project's block, or raise NotFound."""
    block = session.get(WorkerBlock, block_id)
    if block is None or block.project_id != project_id:
        get_project(session, project_id)
        raise NotFound(gettext("Project %(project)s has no worker block %(id)s.",
                               project=project_id, id=block_id))
    return block


def list_blocks(session: Session, *, offset: int, limit: int, project_id: int | None = None,
                workforce_id: int | None = None, active: bool | None = None
                ) -> tuple[list[dict[str, Any]], int]:
    """Return one page of blocks, oldest first, with each worker's external id."""
    query = select(WorkerBlock, Worker.external_id).join(Worker, Worker.id == WorkerBlock.worker_id)
    if project_id is not None:
        get_project(session, project_id)
        query = query.where(WorkerBlock.project_id == project_id)
    if workforce_id is not None:
        query = query.where(WorkerBlock.workforce_id == workforce_id)
    if active is not None:
        query = query.where(WorkerBlock.lifted_at.is_(None) if active
                            else WorkerBlock.lifted_at.is_not(None))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(WorkerBlock.id).offset(offset).limit(limit))
    return [{**{c.key: getattr(block, c.key) for c in WorkerBlock.__table__.columns},
             "worker_external_id": external_id, "active": block.lifted_at is None}
            for block, external_id in rows], total


def blocked_workers(session: Session, workforce_id: int) -> dict[tuple[int, str], datetime]:
    """Return ``(project id, worker external id) -> blocked since`` for a workforce's active blocks.

    Label submission refuses a label from such a worker for an assignment of that project
    leased at or after the moment of the block.
    """
    return {(project_id, external_id): blocked_at for project_id, external_id, blocked_at in
            session.execute(
                select(WorkerBlock.project_id, Worker.external_id, WorkerBlock.blocked_at)
                .join(Worker, Worker.id == WorkerBlock.worker_id)
                .where(WorkerBlock.workforce_id == workforce_id, WorkerBlock.lifted_at.is_(None)))}


# --- review items ----------------------------------------------------------------------------


def _enqueue(session: Session, actor: Actor, project: Project, run: ConsensusRun,
             reasons: dict[int, str]) -> int:
    """Open a review item for each task not reviewed before; return how many were opened."""
    if not reasons:
        return 0
    seen = set(session.scalars(select(ReviewItem.task_id).where(
        ReviewItem.project_id == project.id, ReviewItem.task_id.in_(list(reasons)))))
    rows = [{"project_id": project.id, "task_id": task_id, "reason": reason, "run_id": run.id,
             "status": "open", "created_at": utcnow()}
            for task_id, reason in sorted(reasons.items()) if task_id not in seen]
    if rows:
        session.execute(insert(ReviewItem.__table__), rows)
        record(session, actor, "review.enqueue", "project", project.id, after={
            "run_id": run.id, "items": len(rows),
            "by_reason": {r: sum(1 for row in rows if row["reason"] == r) for r in set(reasons.values())}})
    return len(rows)


def _gold_conflicts(session: Session, project: Project, run: ConsensusRun) -> list[int]:
    return list(session.scalars(
        select(Task.id).join(TaskConsensus, TaskConsensus.task_id == Task.id)
        .where(TaskConsensus.run_id == run.id, Task.gold.is_not(None),
               Task.gold != TaskConsensus.label)))


def list_reviews(session: Session, project_id: int, *, offset: int, limit: int,
                 status: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Return one page of the project's review items, oldest first, with any verdict."""
    get_project(session, project_id)
    query = (select(ReviewItem, Task.external_id, ReviewVerdict)
             .join(Task, Task.id == ReviewItem.task_id)
             .outerjoin(ReviewVerdict, ReviewVerdict.review_item_id == ReviewItem.id)
             .where(ReviewItem.project_id == project_id))
    if status is not None:
        query = query.where(ReviewItem.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = []
    for item, external_id, verdict in session.execute(
            query.order_by(ReviewItem.id).offset(offset).limit(limit)):
        page.append({"id": item.id, "task_id": item.task_id, "external_id": external_id,
                     "reason": item.reason, "run_id": item.run_id, "status": item.status,
                     "created_at": item.created_at,
                     "verdict": None if verdict is None else {
                         "id": verdict.id, "label": verdict.label, "note": verdict.note,
                         "reviewer_id": verdict.reviewer_id, "decided_at": verdict.decided_at}})
    return page, total


def lease_reviews(session: Session, workforce_id: int, limit: int, *,
                  now: datetime | None = None) -> list[tuple[ReviewItem, Task, Project]]:
    """Lease the next review items of projects this workforce reviews; expired leases reopen."""
    now = now or utcnow()
    session.execute(update(ReviewItem).where(
        ReviewItem.status == "leased", ReviewItem.lease_expires_at <= now,
    ).values(status="open", leased_by_id=None, lease_expires_at=None))
    mine = select(Project.id).where(Project.review_workforce_id == workforce_id,
                                    Project.paused.is_(False))
    items = list(session.scalars(
        select(ReviewItem).where(ReviewItem.status == "open", ReviewItem.project_id.in_(mine))
        .order_by(ReviewItem.id).limit(limit).with_for_update(skip_locked=True)))
    if not items:
        return []
    tasks = {t.id: t for t in session.scalars(select(Task).where(Task.id.in_([i.task_id for i in items])))}
    projects = {p.id: p for p in session.scalars(
        select(Project).where(Project.id.in_({i.project_id for i in items})))}
    for item in items:
        item.status, item.leased_by_id = "leased", workforce_id
        item.lease_expires_at = now + timedelta(minutes=projects[item.project_id].lease_minutes)
    session.flush()
    return [(item, tasks[item.task_id], projects[item.project_id]) for item in items]


@dataclass
class VerdictIn:
    """One verdict as the review workforce sent it."""

    review_id: int
    reviewer_id: str
    label: str
    note: str = ""


def _reviewer(session: Session, workforce_id: int, external_id: str) -> int:
    worker = session.scalar(select(Worker).where(
        Worker.workforce_id == workforce_id, Worker.external_id == external_id))
    if worker is None:
        worker = Worker(workforce_id=workforce_id, external_id=external_id)
        session.add(worker)
        session.flush()
    return worker.id


def _verdict_error(index: int, code: str, message: str) -> dict[str, Any]:
    return {"index": index, "status": "error", "error": {"code": code, "message": message}}


def submit_verdicts(session: Session, actor: Actor, workforce_id: int, verdicts: list[VerdictIn]
                    ) -> dict[str, Any]:
    """Store each verdict on a review item leased to this workforce; report the others by index.

    Sending the same verdict again (same item, reviewer and label) answers ``unchanged`` with
    the stored verdict, so a retry is safe; a different label for a decided item is refused.
    """
    if not 1 <= len(verdicts) <= MAX_REVIEW_BATCH:
        raise InvalidInput(errors={"verdicts": [gettext(
            "Send between 1 and %(n)d verdicts.", n=MAX_REVIEW_BATCH)]})
    items = {i.id: i for i in session.scalars(
        select(ReviewItem).where(ReviewItem.id.in_({v.review_id for v in verdicts}))
        .order_by(ReviewItem.id).with_for_update())}
    projects = {p.id: p for p in session.scalars(
        select(Project).where(Project.id.in_({i.project_id for i in items.values()})))}
    stored = {v.review_item_id: v for v in session.scalars(
        select(ReviewVerdict).where(ReviewVerdict.review_item_id.in_(list(items))))}
    results: list[dict[str, Any]] = []
    for index, given in enumerate(verdicts):
        item = items.get(given.review_id)
        project = projects.get(item.project_id) if item else None
        if item is None or (item.leased_by_id != workforce_id
                            and project.review_workforce_id != workforce_id):
            results.append(_verdict_error(index, "not_found", gettext(
                "There is no review item %(id)s for this workforce.", id=given.review_id)))
            continue
        if not given.reviewer_id.strip():
            results.append(_verdict_error(index, "invalid_reviewer",
                                          gettext("reviewer_id must not be empty.")))
            continue
        if given.label not in project.label_classes:
            results.append(_verdict_error(index, "invalid_label", gettext(
                "%(value)s is not one of the project's label classes: %(classes)s.",
                value=repr(given.label)[:80], classes=", ".join(project.label_classes))))
            continue
        if item.status == "decided":
            verdict = stored[item.id]
            reviewer = session.get(Worker, verdict.reviewer_id)
            if verdict.label == given.label and reviewer.external_id == given.reviewer_id:
                results.append({"index": index, "status": "unchanged", "verdict_id": verdict.id})
            else:
                results.append(_verdict_error(index, "already_decided", gettext(
                    "Review item %(id)s is decided already; its verdict is final.", id=item.id)))
            continue
        if item.status != "leased" or item.leased_by_id != workforce_id:
            results.append(_verdict_error(index, "not_leased", gettext(
                "Review item %(id)s is not leased to you; lease it first.", id=item.id)))
            continue
        verdict = ReviewVerdict(
            review_item_id=item.id, project_id=item.project_id, task_id=item.task_id,
            workforce_id=workforce_id, reviewer_id=_reviewer(session, workforce_id, given.reviewer_id),
            label=given.label, note=given.note, decided_at=utcnow())
        session.add(verdict)
        item.status = "decided"
        session.flush()
        stored[item.id] = verdict
        record(session, actor, "review.verdict", "task", item.task_id, before={"status": "leased"},
               after={"review_item_id": item.id, "verdict_id": verdict.id, "label": verdict.label,
                      "reviewer": given.reviewer_id})
        results.append({"index": index, "status": "created", "verdict_id": verdict.id})
    return {"created": sum(1 for r in results if r["status"] == "created"),
            "errors": sum(1 for r in results if r["status"] == "error"), "results": results}


def final_labels(session: Session, project_id: int, run_id: int | None, *, offset: int,
                 limit: int) -> tuple[list[dict[str, Any]], int]:
    """Return one page of each task's final label: the verdict where there is one, else the run's.

    Each row keeps the crowd's consensus beside the verdict and says which one is final.
    """
    run = _run(session, project_id, run_id)
    rows = session.execute(
        select(TaskConsensus, Task.external_id, ReviewVerdict.id, ReviewVerdict.label)
        .join(Task, Task.id == TaskConsensus.task_id)
        .outerjoin(ReviewVerdict, ReviewVerdict.task_id == TaskConsensus.task_id)
        .where(TaskConsensus.run_id == run.id).order_by(TaskConsensus.task_id)
        .offset(offset).limit(limit))
    page = [{"task_id": item.task_id, "external_id": external_id, "run_id": run.id,
             "label": verdict_label if verdict_id is not None else item.label,
             "source": "review" if verdict_id is not None else "consensus",
             "consensus_label": item.label, "confidence": item.confidence, "labels": item.labels,
             "verdict_id": verdict_id, "verdict_label": verdict_label}
            for item, external_id, verdict_id, verdict_label in rows]
    return page, run.tasks


# --- the round -------------------------------------------------------------------------------


@dataclass
class RoundOutcome:
    """What one quality round did."""

    project_id: int
    run_id: int
    blocked: list[WorkerBlock] = field(default_factory=list)
    review_opened: int = 0
    extra_assignments: int = 0
    dispatch_run_id: int | None = None
    cancelled: int = 0
    plan: OverlapPlan = field(default_factory=OverlapPlan)


def _run(session: Session, project_id: int, run_id: int | None) -> ConsensusRun:
    if run_id is not None:
        return get_run(session, project_id, run_id)
    get_project(session, project_id)
    run = session.scalar(select(ConsensusRun).where(ConsensusRun.project_id == project_id)
                         .order_by(ConsensusRun.id.desc()).limit(1))
    if run is None:
        raise Conflict(gettext("Project %(id)s has no consensus run yet; run consensus first.",
                               id=project_id))
    return run


def _task_states(session: Session, project: Project, run: ConsensusRun) -> list[TaskState]:
    live = dict(session.execute(
        select(Assignment.task_id, func.count()).where(
            Assignment.project_id == project.id,
            Assignment.status.in_(("offered", "leased", "submitted", "accepted")))
        .group_by(Assignment.task_id)).all())
    pending = dict(session.execute(
        select(Assignment.task_id, func.count()).where(
            Assignment.project_id == project.id, Assignment.status.in_(("offered", "leased")))
        .group_by(Assignment.task_id)).all())
    excluded = set(session.scalars(select(Task.id).where(
        Task.project_id == project.id, Task.gold.is_not(None))))
    excluded |= set(session.scalars(select(ReviewItem.task_id).where(
        ReviewItem.project_id == project.id)))
    return [TaskState(task_id, confidence, labels, live.get(task_id, 0), pending.get(task_id, 0),
                      task_id in excluded)
            for task_id, confidence, labels in session.execute(
                select(TaskConsensus.task_id, TaskConsensus.confidence, TaskConsensus.labels)
                .where(TaskConsensus.run_id == run.id).order_by(TaskConsensus.task_id))]


def quality_round(session: Session, actor: Actor, project_id: int, run_id: int | None = None,
                  *, rates: dict[str, Decimal] | None = None) -> RoundOutcome:
    """Judge workers on gold, open review items and adjust overlap after a consensus run.

    ``run_id`` defaults to the project's newest run. Raise Conflict when there is none (an
    empty project has none: consensus refuses to run without labels).
    """
    project = get_project(session, project_id)
    run = _run(session, project.id, run_id)
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    outcome = RoundOutcome(project.id, run.id)
    outcome.blocked = evaluate_workers(session, actor, project, run.id)
    max_overlap = project.max_overlap or project.redundancy
    plan = plan_overlap(_task_states(session, project, run), project.target_confidence, max_overlap)
    reasons = dict.fromkeys(plan.review, "uncertain_at_max_overlap")
    reasons.update(dict.fromkeys(_gold_conflicts(session, project, run), "gold_conflict"))
    outcome.review_opened = _enqueue(session, actor, project, run, reasons)
    for start in range(0, len(plan.stop), CHUNK):
        outcome.cancelled += len(list(session.scalars(
            update(Assignment).where(Assignment.task_id.in_(plan.stop[start:start + CHUNK]),
                                     Assignment.status == "offered")
            .values(status="cancelled").returning(Assignment.id))))
    if plan.extra:
        # Another label from a workforce that has not labelled the task yet, where one may.
        holders: dict[int, set[int]] = {}
        for task_id, workforce_id in session.execute(
                select(Assignment.task_id, Assignment.workforce_id).where(
                    Assignment.task_id.in_(plan.extra),
                    Assignment.status.in_(("submitted", "accepted")))):
            holders.setdefault(task_id, set()).add(workforce_id)
        dispatch_run = add_assignments(session, actor, project.id, dict.fromkeys(plan.extra, 1),
                                       avoid_workforces=holders, rates=rates)
        outcome.dispatch_run_id = dispatch_run.id
        outcome.extra_assignments = dispatch_run.assignments_created
    outcome.plan = plan
    record(session, actor, "quality.round", "project", project.id, after={
        "run_id": run.id, "blocked": [b.worker_id for b in outcome.blocked],
        "review_opened": outcome.review_opened, "extra_assignments": outcome.extra_assignments,
        "dispatch_run_id": outcome.dispatch_run_id, "cancelled": outcome.cancelled,
        "stopped": len(plan.stop), "waiting": len(plan.waiting)})
    return outcome
