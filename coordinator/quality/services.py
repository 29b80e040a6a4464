"""Quality rounds: judge workers on gold, queue reviews, adjust overlap; serve the review queue.

A round runs after a consensus run, when a manager (HTTP, CLI) asks for it, and does three
things in one transaction:

1. Gold accuracy. Every counted label on a task with a known answer is scored: the answer is
   the review verdict when the task has one, else the task's gold. A worker with at least
   ``gold_min_answers`` such labels and an accuracy below ``gold_accuracy_floor`` is blocked
   on the project: a WorkerBlock row keeps the evidence (the scored label ids too), the
   vendor hears ``worker.blocked``, and the worker's labels are refused from then on
   (``worker_blocked``; on Mechanical Turk, for assignments accepted from then on). After a
   manager lifts a block the worker is judged only on labels submitted after the lift, and
   again needs ``gold_min_answers`` of them.
2. Review. A gold task whose consensus label, or the crowd's own most given label (two
   labels or more), differs from its gold answer, and a task still below the target
   confidence with ``max_overlap`` labels, become review items served to the project's
   review workforce; a project without one opens none. A verdict is final for its task and
   is stored beside the crowd's labels, never among them: consensus keeps aggregating the
   crowd.
3. Dynamic overlap (``coordinator.quality.overlap``): uncertain tasks get one more assignment
   through ``dispatch.add_assignments`` (skipped, and said why, when dispatch refuses, e.g.
   on a paused project); confident ones with the redundancy's labels have their unleased
   offers cancelled and are recorded as stopped, so ordinary dispatch leaves them alone.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, id_ranges, record
from coordinator.consensus.models import ConsensusRun, TaskConsensus
from coordinator.consensus.services import get_run
from coordinator.db import utcnow
from coordinator.dispatch.models import Assignment, TaskWorker, Worker
from coordinator.dispatch.routing import covers
from coordinator.dispatch.services import add_assignments
from coordinator.errors import Conflict, InvalidInput
from coordinator.labels.models import Label
from coordinator.projects.models import Project, Task
from coordinator.projects.services import get_project, get_project_row
from coordinator.quality.gold import below_floor, score_workers
from coordinator.quality.models import OverlapStop, ReviewItem, ReviewVerdict, WorkerBlock
from coordinator.quality.overlap import OverlapPlan, TaskState, plan_overlap
from coordinator.webhooks.services import announce
from coordinator.workforces.models import Workforce

#: Most review items or verdicts in one vendor request.
MAX_REVIEW_BATCH = 500
#: Task ids per IN (...) in one statement.
CHUNK = 5000


# --- gold accuracy and blocks ----------------------------------------------------------------


@dataclass(frozen=True)
class _Known:
    """A counted label on a task with a known answer."""

    label_id: int
    worker_id: int
    workforce_id: int
    value: str
    answer: str
    #: where the answer came from: ``verdict`` (a review) or ``gold``
    source: str
    submitted_at: datetime


def _known_answers(session: Session, project_id: int) -> list[_Known]:
    """Return every counted label of the project on a task with a known answer."""
    answer = func.coalesce(ReviewVerdict.label, Task.gold)
    return [_Known(label_id, worker_id, workforce_id, value, known,
                   "gold" if verdict_id is None else "verdict", submitted_at)
            for label_id, worker_id, workforce_id, value, known, verdict_id, submitted_at
            in session.execute(
                select(Label.id, Label.worker_id, Label.workforce_id, Label.value, answer,
                       ReviewVerdict.id, Label.submitted_at)
                .join(Task, Task.id == Label.task_id)
                .outerjoin(ReviewVerdict, ReviewVerdict.task_id == Label.task_id)
                .where(Label.project_id == project_id, Label.counted.is_(True),
                       answer.is_not(None))
                .order_by(Label.id))]


def evaluate_workers(session: Session, actor: Actor, project: Project, run_id: int | None
                     ) -> list[WorkerBlock]:
    """Block the project's workers whose gold accuracy is below its floor; return new blocks."""
    if project.gold_accuracy_floor is None:
        return []
    blocks = {b.worker_id: b for b in session.scalars(
        select(WorkerBlock).where(WorkerBlock.project_id == project.id)
        .order_by(WorkerBlock.id))}  # the newest block of each worker wins
    known = []
    for row in _known_answers(session, project.id):
        last = blocks.get(row.worker_id)
        if last is not None and (last.lifted_at is None or row.submitted_at <= last.lifted_at):
            continue  # blocked already, or evidence the lifted block was judged on
        known.append(row)
    scores = score_workers((k.worker_id, k.workforce_id, k.value, k.answer) for k in known)
    scored: dict[int, dict[str, list[int]]] = defaultdict(lambda: {"gold": [], "verdict": []})
    for row in known:
        scored[row.worker_id][row.source].append(row.label_id)
    new = []
    for worker_id in below_floor(scores, project.gold_accuracy_floor, project.gold_min_answers):
        score = scores[worker_id]
        block = WorkerBlock(
            project_id=project.id, worker_id=worker_id, workforce_id=score.workforce_id,
            run_id=run_id, gold_answers=score.answers, gold_correct=score.correct,
            accuracy=score.accuracy, floor=project.gold_accuracy_floor, blocked_at=utcnow(),
            evidence=scored[worker_id])
        session.add(block)
        new.append(block)
    if not new:
        return new
    session.flush()
    external = dict(session.execute(select(Worker.id, Worker.external_id).where(
        Worker.id.in_([b.worker_id for b in new]))).all())
    # One event for the round's blocks: each block's figures and scored label ids as runs,
    # and a hash over the full evidence, so a large round costs one row, not one per worker.
    record(session, actor, "worker.block", "project", project.id, after={
        "run_id": run_id, "workers": len(new),
        "blocks": [{"block_id": b.id, "worker_id": b.worker_id, **_evidence(b),
                    "label_ids": {source: id_ranges(ids) for source, ids in b.evidence.items()}}
                   for b in new],
        "evidence_sha256": _evidence_hash(new)})
    for block in new:
        announce(session, block.workforce_id, "worker.blocked", {
            "project_id": project.id, "block_id": block.id,
            "worker_id": external[block.worker_id], "gold_answers": block.gold_answers,
            "gold_correct": block.gold_correct, "accuracy": block.accuracy,
            "floor": block.floor})
    return new


#: Version of the canonical form ``_evidence_hash`` reads.
EVIDENCE_FORM = "coordinator.quality.block-evidence/1"


def _evidence_hash(blocks: list[WorkerBlock]) -> str:
    """Return the SHA-256 of JSON ``[form, [[block id, worker id, {source: label ids}]...]]``."""
    body = [EVIDENCE_FORM, sorted([b.id, b.worker_id, {k: sorted(v) for k, v in b.evidence.items()}]
                                  for b in blocks)]
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
                          ).hexdigest()


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
    return get_project_row(session, WorkerBlock, project_id, block_id, lambda: gettext(
        "Project %(project)s has no worker block %(id)s.", project=project_id, id=block_id))


def list_blocks(session: Session, *, offset: int, limit: int, project_id: int | None = None,
                workforce_id: int | None = None, active: bool | None = None,
                block_id: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Return one page of blocks, oldest first, with each worker's external id."""
    query = select(WorkerBlock, Worker.external_id).join(Worker, Worker.id == WorkerBlock.worker_id)
    if block_id is not None:
        query = query.where(WorkerBlock.id == block_id)
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


@dataclass(frozen=True)
class ActiveBlock:
    """A worker's block as label submission applies it."""

    since: datetime
    #: Mechanical Turk: the worker is known when the HIT is accepted, so work accepted before
    #: the block may be finished; a vendor names the worker only with the label, so every
    #: label sent after the block is refused, whenever its assignment was leased
    at_lease: bool

    def refuses(self, leased_at: datetime | None, now: datetime) -> bool:
        """Return whether a label sent ``now`` for work leased at ``leased_at`` is refused."""
        return ((leased_at or now) if self.at_lease else now) >= self.since


def blocked_workers(session: Session, workforce_id: int) -> dict[tuple[int, str], ActiveBlock]:
    """Return ``(project id, worker external id) -> block`` for a workforce's active blocks."""
    at_lease = session.scalar(select(Workforce.kind).where(Workforce.id == workforce_id)) == "mturk"
    return {(project_id, external_id): ActiveBlock(blocked_at, at_lease)
            for project_id, external_id, blocked_at in session.execute(
                select(WorkerBlock.project_id, Worker.external_id, WorkerBlock.blocked_at)
                .join(Worker, Worker.id == WorkerBlock.worker_id)
                .where(WorkerBlock.workforce_id == workforce_id, WorkerBlock.lifted_at.is_(None)))}


# --- review items ----------------------------------------------------------------------------


def _enqueue(session: Session, actor: Actor, project: Project, run: ConsensusRun,
             reasons: dict[int, str]) -> int:
    """Open a review item for each task not reviewed before; return how many were opened."""
    if not reasons or project.review_workforce_id is None:
        return 0  # nobody to review: the tasks stay in the round's to_review count
    # A subquery, not the ids: a large round would pass PostgreSQL's 65,535 parameters.
    seen = set(session.scalars(select(ReviewItem.task_id).where(
        ReviewItem.project_id == project.id)))
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
    """Return gold tasks whose consensus, or the crowd's most given label, is not the gold.

    Dawid-Skene clamps gold tasks to their gold answer, so their consensus nearly always
    agrees; the crowd's own answer (two counted labels or more, gold not among the most
    given) shows the conflict all the same.
    """
    conflicts = set(session.scalars(
        select(Task.id).join(TaskConsensus, TaskConsensus.task_id == Task.id)
        .where(TaskConsensus.run_id == run.id, Task.gold.is_not(None),
               Task.gold != TaskConsensus.label)))
    votes: dict[int, Counter[str]] = defaultdict(Counter)
    gold: dict[int, str] = {}
    for task_id, answer, value, count in session.execute(
            select(Task.id, Task.gold, Label.value, func.count())
            .join(Label, Label.task_id == Task.id)
            .where(Task.project_id == project.id, Task.gold.is_not(None),
                   Label.counted.is_(True))
            .group_by(Task.id, Task.gold, Label.value)):
        votes[task_id][value] += count
        gold[task_id] = answer
    for task_id, counts in votes.items():
        top = max(counts.values())
        if sum(counts.values()) >= 2 and counts[gold[task_id]] < top:
            conflicts.add(task_id)
    return sorted(conflicts)


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


def _reopen_expired(session: Session, now: datetime) -> None:
    """Put review items whose lease ran out back in the queue; one event per former holder."""
    expired = session.execute(
        select(ReviewItem.id, ReviewItem.leased_by_id)
        .where(ReviewItem.status == "leased", ReviewItem.lease_expires_at <= now)
        .order_by(ReviewItem.id).with_for_update(skip_locked=True)).all()
    if not expired:
        return
    # Conditional: an item decided meanwhile by its holder stays decided.
    reopened = set(session.scalars(
        update(ReviewItem).where(ReviewItem.id.in_([i for i, _ in expired]),
                                 ReviewItem.status == "leased",
                                 ReviewItem.lease_expires_at <= now)
        .values(status="open", leased_by_id=None, lease_expires_at=None)
        .returning(ReviewItem.id)))
    by_holder: dict[int, list[int]] = defaultdict(list)
    for item_id, holder in expired:
        if item_id in reopened:
            by_holder[holder].append(item_id)
    for holder, ids in sorted(by_holder.items()):
        record(session, Actor.system(), "review.lease_expire", "workforce", holder,
               before={"status": "leased"}, after={"status": "open", "review_item_ids": ids})


def lease_reviews(session: Session, workforce_id: int, limit: int, *,
                  now: datetime | None = None, actor: Actor | None = None
                  ) -> list[tuple[ReviewItem, Task, Project]]:
    """Lease the next review items of projects this workforce reviews; expired leases reopen.

    An inactive workforce is served nothing, and only items whose task's languages it covers.
    """
    now = now or utcnow()
    _reopen_expired(session, now)
    workforce = session.get(Workforce, workforce_id)
    if workforce is None or not workforce.active:
        return []
    mine = select(Project.id).where(Project.review_workforce_id == workforce_id,
                                    Project.paused.is_(False))
    # Pick without locks, then claim conditionally: an item a concurrent lease took drops out.
    picked: list[int] = []
    after, window = 0, max(limit * 4, 100)
    while len(picked) < limit:
        page = list(session.execute(
            select(ReviewItem.id, Task.languages).join(Task, Task.id == ReviewItem.task_id)
            .where(ReviewItem.status == "open", ReviewItem.project_id.in_(mine),
                   ReviewItem.id > after)
            .order_by(ReviewItem.id).limit(window)))
        picked += [item_id for item_id, languages in page
                   if all(covers(workforce.languages, code) for code in languages)]
        if len(page) < window:
            break
        after = page[-1][0]
    ids = list(session.scalars(
        update(ReviewItem).where(ReviewItem.id.in_(picked[:limit]), ReviewItem.status == "open")
        .values(status="leased", leased_by_id=workforce_id).returning(ReviewItem.id)))
    if not ids:
        return []
    # One event per call (open -> leased) naming every item taken.
    record(session, actor or Actor.system(), "review.lease", "workforce", workforce_id,
           before={"status": "open"}, after={"status": "leased", "review_item_ids": sorted(ids)})
    items = list(session.scalars(select(ReviewItem).where(ReviewItem.id.in_(ids))
                                 .order_by(ReviewItem.id)))
    tasks = {t.id: t for t in session.scalars(select(Task).where(Task.id.in_([i.task_id for i in items])))}
    projects = {p.id: p for p in session.scalars(
        select(Project).where(Project.id.in_({i.project_id for i in items})))}
    for item in items:
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
    #: the vendor's stable hash of the person, as labels carry it (``worker_identity``)
    reviewer_identity: str | None = None


def _reviewers(session: Session, workforce_id: int, external_ids: set[str]) -> dict[str, int]:
    """Return the worker id of each reviewer, adding the ones this workforce never sent."""
    known = dict(session.execute(select(Worker.external_id, Worker.id).where(
        Worker.workforce_id == workforce_id, Worker.external_id.in_(external_ids))).all())
    added = [Worker(workforce_id=workforce_id, external_id=e)
             for e in sorted(external_ids - set(known))]
    if added:
        session.add_all(added)
        session.flush()
        known.update((w.external_id, w.id) for w in added)
    return known


def _verdict_error(index: int, code: str, message: str) -> dict[str, Any]:
    return {"index": index, "status": "error", "error": {"code": code, "message": message}}


def submit_verdicts(session: Session, actor: Actor, workforce_id: int, verdicts: list[VerdictIn]
                    ) -> dict[str, Any]:
    """Store each verdict on a review item leased to this workforce; report the others by index.

    Sending the same verdict again (same item, reviewer and label) answers ``unchanged`` with
    the stored verdict, so a retry is safe; a different label for a decided item is refused,
    and so is a verdict from a person who labelled the task (by the keys label claims use).
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
    labelled = {(task_id, key) for task_id, key in session.execute(
        select(TaskWorker.task_id, TaskWorker.person_key).where(
            TaskWorker.task_id.in_({i.task_id for i in items.values()})))}
    reviewer_of = dict(session.execute(select(Worker.id, Worker.external_id).where(
        Worker.id.in_({v.reviewer_id for v in stored.values()}))).all())
    stored_by = {item_id: reviewer_of[v.reviewer_id] for item_id, v in stored.items()}
    results: list[dict[str, Any]] = []
    accepted: list[tuple[dict[str, Any], ReviewItem, VerdictIn]] = []
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
            if verdict.label == given.label and stored_by[item.id] == given.reviewer_id:
                # The verdict may be one of this batch's: its id is known after the flush.
                results.append({"index": index, "status": "unchanged", "verdict": verdict})
            else:
                results.append(_verdict_error(index, "already_decided", gettext(
                    "Review item %(id)s is decided already; its verdict is final.", id=item.id)))
            continue
        if item.status != "leased" or item.leased_by_id != workforce_id:
            results.append(_verdict_error(index, "not_leased", gettext(
                "Review item %(id)s is not leased to you; lease it first.", id=item.id)))
            continue
        keys = [f"{workforce_id}:{given.reviewer_id}", given.reviewer_identity]
        if any((item.task_id, key) in labelled for key in keys if key):
            results.append(_verdict_error(index, "reviewer_labelled", gettext(
                "Reviewer %(reviewer)s labelled this task; another person must review it.",
                reviewer=given.reviewer_id)))
            continue
        verdict = ReviewVerdict(
            review_item_id=item.id, project_id=item.project_id, task_id=item.task_id,
            workforce_id=workforce_id, label=given.label, note=given.note, decided_at=utcnow())
        item.status = "decided"
        stored[item.id], stored_by[item.id] = verdict, given.reviewer_id
        result = {"index": index, "status": "created", "verdict": verdict}
        results.append(result)
        accepted.append((result, item, given))
    if accepted:
        reviewers = _reviewers(session, workforce_id, {g.reviewer_id for _, _, g in accepted})
        for result, _, given in accepted:
            result["verdict"].reviewer_id = reviewers[given.reviewer_id]
        session.add_all(result["verdict"] for result, _, _ in accepted)
        session.flush()
    for result in results:
        if "verdict" in result:
            result["verdict_id"] = result.pop("verdict").id
    created = [(result, item) for result, item, _ in accepted]
    if created:
        # One event per batch (leased -> decided): the items, verdict ids and a content hash.
        rows = [[r["verdict_id"], item.id, item.task_id, stored[item.id].reviewer_id,
                 stored[item.id].label] for r, item in created]
        record(session, actor, "review.verdicts", "workforce", workforce_id,
               before={"status": "leased"}, after={
                   "status": "decided", "created": len(created),
                   "review_item_ids": sorted(item.id for _, item in created),
                   "verdict_ids": id_ranges(r["verdict_id"] for r, _ in created),
                   "verdicts_sha256": verdicts_hash(rows)})
    return {"created": len(created),
            "errors": sum(1 for r in results if r["status"] == "error"), "results": results}


#: Version of the canonical form ``verdicts_hash`` reads.
VERDICTS_FORM = "coordinator.quality.verdicts/1"


def verdicts_hash(rows: list[list[Any]]) -> str:
    """Return the SHA-256 of the verdicts written: JSON ``[form, [[verdict id, review item,
    task, reviewer worker id, label]...]]`` in verdict id order, without spaces."""
    body = json.dumps([VERDICTS_FORM, sorted(rows)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


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
    #: why the uncertain tasks got no extra assignments (dispatch refused), or None
    extra_skipped: str | None = None
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


def _record_stops(session: Session, project: Project, run: ConsensusRun, plan: OverlapPlan) -> None:
    """Remember the tasks stopped now; forget those a newer run finds uncertain again."""
    stopped = set(session.scalars(select(OverlapStop.task_id).where(
        OverlapStop.project_id == project.id)))
    rows = [{"task_id": task_id, "project_id": project.id, "run_id": run.id, "stopped_at": utcnow()}
            for task_id in plan.stop if task_id not in stopped]
    if rows:
        session.execute(insert(OverlapStop.__table__), rows)
    again = sorted(stopped & set(plan.extra + plan.waiting))
    for start in range(0, len(again), CHUNK):
        session.execute(delete(OverlapStop).where(OverlapStop.task_id.in_(again[start:start + CHUNK])))


def _add_extra(session: Session, actor: Actor, project: Project, extra: list[int],
               outcome: RoundOutcome, rates: dict[str, Decimal] | None) -> None:
    """Give each uncertain task one more assignment, or say in ``outcome`` why none were made."""
    # Another label from a workforce that has not labelled the task yet, where one may.
    holders: dict[int, set[int]] = {}
    for start in range(0, len(extra), CHUNK):
        for task_id, workforce_id in session.execute(
                select(Assignment.task_id, Assignment.workforce_id).where(
                    Assignment.task_id.in_(extra[start:start + CHUNK]),
                    Assignment.status.in_(("submitted", "accepted")))):
            holders.setdefault(task_id, set()).add(workforce_id)
    try:
        # Dispatch refuses (paused project, no guideline, a missing rate) before it writes
        # anything, so the round's blocks and review items stand without the extra work.
        dispatch_run = add_assignments(session, actor, project.id, dict.fromkeys(extra, 1),
                                       avoid_workforces=holders, rates=rates)
    except Conflict as refused:
        outcome.extra_skipped = str(refused)
        return
    outcome.dispatch_run_id = dispatch_run.id
    outcome.extra_assignments = dispatch_run.assignments_created


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
    plan = plan_overlap(_task_states(session, project, run), project.target_confidence, max_overlap,
                        project.redundancy)
    reasons = dict.fromkeys(plan.review, "uncertain_at_max_overlap")
    reasons.update(dict.fromkeys(_gold_conflicts(session, project, run), "gold_conflict"))
    outcome.review_opened = _enqueue(session, actor, project, run, reasons)
    for start in range(0, len(plan.stop), CHUNK):
        outcome.cancelled += len(list(session.scalars(
            update(Assignment).where(Assignment.task_id.in_(plan.stop[start:start + CHUNK]),
                                     Assignment.status == "offered")
            .values(status="cancelled").returning(Assignment.id))))
    _record_stops(session, project, run, plan)
    if plan.extra:
        _add_extra(session, actor, project, plan.extra, outcome, rates)
    outcome.plan = plan
    record(session, actor, "quality.round", "project", project.id, after={
        "run_id": run.id, "blocked": [b.worker_id for b in outcome.blocked],
        "review_opened": outcome.review_opened, "extra_assignments": outcome.extra_assignments,
        "extra_skipped": outcome.extra_skipped,
        "dispatch_run_id": outcome.dispatch_run_id, "cancelled": outcome.cancelled,
        "stopped": len(plan.stop), "waiting": len(plan.waiting)})
    return outcome
