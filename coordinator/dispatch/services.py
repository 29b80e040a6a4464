"""Dispatch: route tasks to workforces, lease work to vendors, expire leases, report progress."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, record
from coordinator.db import insert_rows, utcnow
from coordinator.dispatch.models import LIVE_STATES, Assignment, DispatchRun, RoutingDecision
from coordinator.dispatch.money import REFERENCE_RATES_USD, MissingRate, parse_rates, to_usd
from coordinator.dispatch.routing import Candidate, Router, allowed_regions
from coordinator.errors import Conflict, InvalidInput, NotFound
from coordinator.guidelines.services import latest_published
from coordinator.projects.models import Project, Task
from coordinator.projects.services import get_project
from coordinator.quality.gold import gold_task_ids, mix_gold, shuffle_rows
from coordinator.quality.stops import settled_task_ids
from coordinator.webhooks.services import announce
from coordinator.workforces.models import Workforce

#: Tasks whose decisions are listed in a dispatch's answer; the rest are counted.
MAX_LISTED_UNROUTABLE = 100
#: Rows per IN (...) look-up.
CHUNK = 5000


@dataclass
class DispatchResult:
    """What one dispatch did."""

    run: DispatchRun
    by_workforce: dict[int, int]
    unroutable: list[dict[str, Any]] = field(default_factory=list)


def _local_midnight(now: datetime, zone: str) -> datetime:
    local = now.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _used_today(session: Session, workforces: list[Workforce], now: datetime) -> dict[int, int]:
    used: dict[int, int] = {}
    for workforce in workforces:
        since = _local_midnight(now, workforce.timezone)
        used[workforce.id] = session.scalar(
            select(func.count()).select_from(Assignment).where(
                Assignment.workforce_id == workforce.id, Assignment.created_at >= since,
                Assignment.status.not_in(("cancelled", "expired")))) or 0
    return used


def _candidates(session: Session, rates: dict[str, Decimal], now: datetime) -> list[Candidate]:
    workforces = list(session.scalars(select(Workforce).order_by(Workforce.id)))
    used = _used_today(session, workforces, now)
    candidates = []
    for workforce in workforces:
        try:
            price_usd = to_usd(workforce.price_per_label, workforce.currency, rates)
        except MissingRate:
            raise Conflict(gettext(
                "There is no reference exchange rate for %(currency)s (workforce %(name)s); set "
                "COORDINATOR_EXCHANGE_RATES.", currency=workforce.currency, name=workforce.name)
            ) from None
        candidates.append(Candidate(
            id=workforce.id, name=workforce.name, region=workforce.region,
            languages=tuple(workforce.languages), active=workforce.active,
            daily_capacity=workforce.daily_capacity,
            capacity_left=max(workforce.daily_capacity - used[workforce.id], 0),
            price=workforce.price_per_label, currency=workforce.currency, price_usd=price_usd))
    return candidates


def _selected_tasks(session: Session, project_id: int, task_filter: dict[str, Any]) -> list[Any]:
    query = select(Task.id, Task.external_id, Task.languages).where(Task.project_id == project_id)
    external_ids = task_filter.get("external_ids")
    if external_ids:
        found: list[Any] = []
        for start in range(0, len(external_ids), CHUNK):
            found.extend(session.execute(
                query.where(Task.external_id.in_(external_ids[start:start + CHUNK]))))
        missing = set(external_ids) - {row.external_id for row in found}
        if missing:
            raise InvalidInput(errors={"external_ids": [gettext(
                "These tasks are not in the project: %(ids)s", ids=", ".join(sorted(missing)[:20]))]})
        rows = sorted(found, key=lambda row: row.id)
    else:
        rows = list(session.execute(query.order_by(Task.id)))
    languages = set(task_filter.get("languages") or [])
    if languages:
        rows = [row for row in rows if languages & set(row.languages)]
    limit = task_filter.get("limit")
    return rows[:limit] if limit else rows


def _live_counts(session: Session, task_ids: list[int]) -> dict[int, list[int]]:
    holding: dict[int, list[int]] = defaultdict(list)
    for start in range(0, len(task_ids), CHUNK):
        for task_id, workforce_id in session.execute(
            select(Assignment.task_id, Assignment.workforce_id).where(
                Assignment.task_id.in_(task_ids[start:start + CHUNK]),
                Assignment.status.in_(LIVE_STATES))):
            holding[task_id].append(workforce_id)
    return holding


def reference_rates(extra: str) -> dict[str, Decimal]:
    """Return the built-in reference rates with the configured ones on top."""
    return {**REFERENCE_RATES_USD, **parse_rates(extra)}


def _begin(session: Session, project_id: int, rates: dict[str, Decimal]
           ) -> tuple[Project, Any, Router]:
    """Lock the project for a run and return it, its guideline and a router over the workforces."""
    project = get_project(session, project_id)
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    if project.paused:
        raise Conflict(gettext("The project is paused; resume it before dispatching."))
    guideline = latest_published(session, project.id)
    if guideline is None:
        raise Conflict(gettext("Publish a guideline before dispatching: workers need one."))
    router = Router(_candidates(session, rates, utcnow()),
                    allowed_regions(project.residency_region, project.allowed_regions))
    return project, guideline, router


def dispatch(session: Session, actor: Actor, project_id: int, task_filter: dict[str, Any],
             *, rates: dict[str, Decimal]) -> DispatchResult:
    """Create the assignments a project's selected tasks still need, by the routing policy.

    With a gold rate above zero, gold tasks are not routed for redundancy: they are mixed
    into each workforce's new work at that rate instead (see coordinator.quality.gold).
    Tasks that dynamic overlap stopped or sent to review get nothing more here: a quality
    round decides their work (see coordinator.quality.services).
    """
    project, guideline, router = _begin(session, project_id, rates)
    tasks = _selected_tasks(session, project.id, task_filter)
    gold = gold_task_ids(session, project.id) if project.gold_rate > 0 else set()
    settled = settled_task_ids(session, project.id)
    regular = [task for task in tasks if task.id not in gold and task.id not in settled]
    holding = _live_counts(session, [task.id for task in regular])
    decisions: list[tuple[Any, Any, int]] = []
    for task in regular:
        needed = project.redundancy - len(holding.get(task.id, ()))
        if needed > 0:
            decisions.append((task, router.route(task.languages, needed, holding.get(task.id, ())), needed))
    if gold:
        decisions.extend(mix_gold(session, project, router, decisions, gold))
    return _finish(session, actor, project, guideline, router, task_filter, len(tasks), decisions,
                   gold)


def add_assignments(session: Session, actor: Actor, project_id: int, extra: Mapping[int, int],
                    *, avoid_workforces: Mapping[int, Collection[int]] | None = None,
                    rates: dict[str, Decimal] | None = None) -> DispatchRun:
    """Give each task in ``extra`` that many more assignments beyond its live ones.

    Routed by the same policy as ``dispatch`` and recorded as a dispatch run with the same
    per-task reasons; a workforce in ``avoid_workforces[task]`` is chosen only when no other
    eligible workforce has capacity. ``rates`` defaults to the configured exchange rates.
    """
    errors = [gettext("Task %(id)s: the number of extra assignments must be 1 to 25.", id=task_id)
              for task_id, count in extra.items()
              if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 25]
    if not extra:
        errors.append(gettext("Name at least one task."))
    if errors:
        raise InvalidInput(errors={"extra": errors})
    if rates is None:
        from flask import current_app
        rates = reference_rates(current_app.config.get("EXCHANGE_RATES", ""))
    project, guideline, router = _begin(session, project_id, rates)
    ids = sorted(extra)
    tasks: list[Any] = []
    for start in range(0, len(ids), CHUNK):
        tasks.extend(session.execute(
            select(Task.id, Task.external_id, Task.languages)
            .where(Task.project_id == project.id, Task.id.in_(ids[start:start + CHUNK]))))
    missing = set(ids) - {task.id for task in tasks}
    if missing:
        raise InvalidInput(errors={"extra": [gettext(
            "These tasks are not in the project: %(ids)s",
            ids=", ".join(str(i) for i in sorted(missing)[:20]))]})
    tasks.sort(key=lambda task: task.id)
    holding = _live_counts(session, ids)
    avoid = avoid_workforces or {}
    decisions = [
        (task, router.route(task.languages, extra[task.id], holding.get(task.id, ()),
                            avoid.get(task.id, ())), extra[task.id])
        for task in tasks]
    task_filter = {"extra": {str(task_id): count for task_id, count in sorted(extra.items())}}
    if avoid:
        task_filter["avoid"] = {str(t): sorted(w) for t, w in sorted(avoid.items()) if w}
    return _finish(session, actor, project, guideline, router, task_filter, len(tasks),
                   decisions).run


def _finish(session: Session, actor: Actor, project: Project, guideline: Any, router: Router,
            task_filter: dict[str, Any], considered: int, decisions: list[tuple[Any, Any, int]],
            gold: Collection[int] = ()) -> DispatchResult:
    """Store a run's decisions and assignments, tell the vendors, audit it."""
    run = DispatchRun(
        project_id=project.id, created_by_id=actor.account_id, task_filter=task_filter,
        policy=router.policy(), guideline_version_id=guideline.id, tasks_considered=considered,
        assignments_created=sum(len(d.chosen) for _, d, _ in decisions),
        unroutable=sum(1 for _, d, _ in decisions if d.short))
    session.add(run)
    session.flush()
    _store(session, project, run, decisions, guideline.id, router, gold)
    by_workforce: dict[int, int] = defaultdict(int)
    for _, decision, _ in decisions:
        for workforce_id in decision.chosen:
            by_workforce[workforce_id] += 1
    for workforce_id, count in by_workforce.items():
        announce(session, workforce_id, "work.available",
                 {"project_id": project.id, "run_id": run.id, "assignments": count})
    record(session, actor, "dispatch.run", "project", project.id, after={
        "run_id": run.id, "task_filter": task_filter, "tasks_considered": run.tasks_considered,
        "assignments_created": run.assignments_created, "unroutable": run.unroutable})
    unroutable = [
        {"task_id": task.id, "external_id": task.external_id, "short": decision.short,
         "reasons": router.groups[decision.group]}
        for task, decision, _ in decisions if decision.short
    ][:MAX_LISTED_UNROUTABLE]
    return DispatchResult(run, dict(by_workforce), unroutable)


def _store(session: Session, project: Project, run: DispatchRun, decisions: list[tuple[Any, Any, int]],
           guideline_id: int, router: Router, gold: Collection[int]) -> None:
    prices = {c.id: (c.price, c.currency) for c in router.candidates}
    insert_rows(session, RoutingDecision.__table__, [
        {"run_id": run.id, "task_id": task.id, "group": decision.group, "chosen": decision.chosen,
         "scores": decision.scores, "needed": needed}
        for task, decision, needed in decisions])
    rows = [
        {"project_id": project.id, "task_id": task.id, "workforce_id": workforce_id,
         "run_id": run.id, "guideline_version_id": guideline_id, "status": "offered",
         "price": prices[workforce_id][0], "currency": prices[workforce_id][1]}
        for task, decision, _ in decisions for workforce_id in decision.chosen]
    if gold:
        rows = shuffle_rows(rows)
    insert_rows(session, Assignment.__table__, rows)


def set_paused(session: Session, actor: Actor, project_id: int, paused: bool) -> Project:
    """Pause or resume a project's dispatch and leasing."""
    project = get_project(session, project_id)
    if project.paused != paused:
        project.paused = paused
        session.flush()
        record(session, actor, "project.pause" if paused else "project.resume", "project",
               project.id, before={"paused": not paused}, after={"paused": paused})
    return project


def expire_leases(session: Session, *, now: datetime | None = None,
                  workforce_id: int | None = None) -> int:
    """Return expired leases to the pool: each becomes ``expired`` and a fresh offer replaces it."""
    now = now or utcnow()
    query = select(Assignment).where(
        Assignment.status == "leased", Assignment.lease_expires_at <= now).order_by(Assignment.id)
    if workforce_id is not None:
        query = query.where(Assignment.workforce_id == workforce_id)
    expired = list(session.scalars(query.with_for_update(skip_locked=True)))
    by_workforce: dict[int, list[int]] = defaultdict(list)
    for assignment in expired:
        assignment.status = "expired"
        session.add(Assignment(
            project_id=assignment.project_id, task_id=assignment.task_id,
            workforce_id=assignment.workforce_id, run_id=assignment.run_id,
            guideline_version_id=assignment.guideline_version_id, status="offered",
            price=assignment.price, currency=assignment.currency, replaces_id=assignment.id))
        by_workforce[assignment.workforce_id].append(assignment.id)
    session.flush()
    for owner, ids in by_workforce.items():
        announce(session, owner, "lease.expired", {"assignment_ids": ids})
        record(session, Actor.system(), "lease.expire", "workforce", owner, after={"assignment_ids": ids})
    return len(expired)


def lease(session: Session, workforce_id: int, limit: int, *, now: datetime | None = None,
          actor: Actor | None = None) -> list[Assignment]:
    """Lease the next ``limit`` offered assignments to a workforce; concurrent callers never share one."""
    now = now or utcnow()
    expire_leases(session, now=now, workforce_id=workforce_id)
    paused = select(Project.id).where(Project.paused.is_(True))
    # One statement picks and marks the rows: SKIP LOCKED on PostgreSQL lets concurrent
    # pullers pass each other by, and SQLite runs the statement under its single writer lock.
    # The pick is a materialised CTE: as a plain IN (subquery) PostgreSQL may rescan it, and
    # each rescan skips the rows this statement just updated and locks the next ones, leasing
    # more than ``limit``.
    picked = (
        select(Assignment.id)
        .where(Assignment.workforce_id == workforce_id, Assignment.status == "offered",
               Assignment.project_id.not_in(paused))
        .order_by(Assignment.id).limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked").prefix_with("MATERIALIZED", dialect="postgresql"))
    leased_ids = list(session.scalars(
        update(Assignment)
        .where(Assignment.id.in_(select(picked.c.id)), Assignment.status == "offered")
        .values(status="leased", leased_at=now)
        .returning(Assignment.id)))
    if not leased_ids:
        return []
    # One event per call (offered -> leased) naming every assignment taken.
    record(session, actor or Actor.system(), "lease.take", "workforce", workforce_id,
           before={"status": "offered"},
           after={"status": "leased", "assignments": sorted(leased_ids)})
    assignments = list(session.scalars(
        select(Assignment).where(Assignment.id.in_(leased_ids)).order_by(Assignment.id)))
    minutes = dict(session.execute(select(Project.id, Project.lease_minutes).where(
        Project.id.in_({a.project_id for a in assignments}))).all())
    for assignment in assignments:
        assignment.lease_expires_at = now + timedelta(minutes=minutes[assignment.project_id])
    session.flush()
    return assignments


def get_assignment(session: Session, assignment_id: int, *, workforce_id: int | None = None) -> Assignment:
    """Return an assignment, or raise NotFound; ``workforce_id`` hides other vendors' work."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None or (workforce_id is not None and assignment.workforce_id != workforce_id):
        raise NotFound(gettext("There is no assignment %(id)s.", id=assignment_id))
    return assignment


def review(session: Session, actor: Actor, assignment_id: int, *, accept: bool,
           reason: str | None) -> Assignment:
    """Accept or reject a submitted assignment; a rejection needs a reason the vendor can read."""
    assignment = get_assignment(session, assignment_id)
    if assignment.status not in ("submitted", "accepted", "rejected"):
        raise Conflict(gettext("Only submitted work can be accepted or rejected."))
    if not accept and not (reason or "").strip():
        raise InvalidInput(errors={"reason": [gettext("Say why the work is rejected.")]})
    before = {"status": assignment.status}
    assignment.status = "accepted" if accept else "rejected"
    assignment.reviewed_at = utcnow()
    assignment.review_reason = reason
    session.flush()
    record(session, actor, "assignment.review", "assignment", assignment.id, before=before,
           after={"status": assignment.status, "reason": reason})
    return assignment


@dataclass
class WorkforceProgress:
    """How one workforce is doing on a project."""

    workforce: Workforce
    counts: dict[str, int]
    overdue: int
    cost: Decimal
    currency: str


def progress(session: Session, project_id: int, *, now: datetime | None = None) -> list[WorkforceProgress]:
    """Return per workforce: assignments by state, overdue leases and cost so far."""
    get_project(session, project_id)
    now = now or utcnow()
    rows = session.execute(
        select(Assignment.workforce_id, Assignment.status, func.count(), func.sum(Assignment.price))
        .where(Assignment.project_id == project_id)
        .group_by(Assignment.workforce_id, Assignment.status)).all()
    overdue = dict(session.execute(
        select(Assignment.workforce_id, func.count())
        .where(Assignment.project_id == project_id, Assignment.status == "leased",
               Assignment.lease_expires_at < now)
        .group_by(Assignment.workforce_id)).all())
    by_workforce: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"counts": {}, "cost": Decimal(0)})
    for workforce_id, status, count, price_sum in rows:
        entry = by_workforce[workforce_id]
        entry["counts"][status] = count
        if status in ("submitted", "accepted"):
            entry["cost"] += Decimal(price_sum or 0)
    workforces = {w.id: w for w in session.scalars(
        select(Workforce).where(Workforce.id.in_(list(by_workforce))))}
    return [
        WorkforceProgress(workforces[wid], entry["counts"], overdue.get(wid, 0), entry["cost"],
                          workforces[wid].currency)
        for wid, entry in sorted(by_workforce.items(), key=lambda item: workforces[item[0]].name)
    ]


def explain(session: Session, project_id: int, task_id: int) -> list[dict[str, Any]]:
    """Return every routing decision for a task, with each workforce's eligibility and score."""
    task = session.get(Task, task_id)
    if task is None or task.project_id != project_id:
        raise NotFound(gettext("There is no task %(id)s in this project.", id=task_id))
    rows = session.execute(
        select(RoutingDecision, DispatchRun)
        .join(DispatchRun, DispatchRun.id == RoutingDecision.run_id)
        .where(RoutingDecision.task_id == task_id).order_by(RoutingDecision.id.desc())).all()
    explained = []
    for decision, run in rows:
        reasons = run.policy["groups"].get(decision.group, {})
        workforces = run.policy["workforces"]
        candidates = []
        for wid, snapshot in workforces.items():
            refused = reasons.get(wid, [])
            score = decision.scores.get(wid)
            candidates.append({
                "workforce_id": int(wid), "name": snapshot["name"], "eligible": not refused,
                "chosen": int(wid) in decision.chosen, "score": score, "reasons": refused,
                "price": snapshot["price"], "currency": snapshot["currency"],
                "capacity_left_at_start": snapshot["capacity_left_at_start"],
            })
        explained.append({"run_id": run.id, "decided_at": run.created_at, "needed": decision.needed,
                          "chosen": decision.chosen, "candidates": candidates})
    return explained


def list_assignments(session: Session, *, offset: int, limit: int, project_id: int | None = None,
                     workforce_id: int | None = None, status: str | None = None
                     ) -> tuple[list[Assignment], int]:
    """Return one page of assignments, oldest first, filtered by project, workforce and state."""
    query = select(Assignment)
    if project_id is not None:
        get_project(session, project_id)
        query = query.where(Assignment.project_id == project_id)
    if workforce_id is not None:
        query = query.where(Assignment.workforce_id == workforce_id)
    if status is not None:
        query = query.where(Assignment.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(Assignment.id).offset(offset).limit(limit))
    return list(page), total
