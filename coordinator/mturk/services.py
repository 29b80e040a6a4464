"""Mechanical Turk as a workforce: publish HITs, bind and record work, review, pay, clean up.

Every function takes the session, the acting party and an ``MTurk`` client (the boto3
wrapper or the in-memory fake) and only flushes; the request, job or command commits once.
A call MTurk refuses half-way through a batch leaves what was done recorded: the caller
commits it, and a rerun does the rest (HIT creation is idempotent on its request token).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app, has_app_context
from flask_babel import force_locale, gettext, lazy_gettext
from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, apply_changes, record
from coordinator.consensus.models import ConsensusRun, TaskConsensus
from coordinator.db import is_postgres, utcnow
from coordinator.dispatch.models import Assignment, TaskWorker, Worker
from coordinator.dispatch.services import expire_leases
from coordinator.dispatch.services import review as review_assignment
from coordinator.errors import Conflict, CoordinatorError, Forbidden, InvalidInput, NotFound
from coordinator.labels import services as labels
from coordinator.labels.models import Label
from coordinator.mturk.models import (
    MTurkAssignment,
    MTurkBonus,
    MTurkHit,
    MTurkHitSlot,
    MTurkHitType,
    MTurkQualificationSync,
    MTurkSettings,
)
from coordinator.projects.models import Project, Task
from coordinator.projects.services import get_project
from coordinator.workforces.models import Workforce
from integrations.mturk.client import LIVE_HIT_STATUSES, MTurk, MTurkError
from integrations.mturk.fees import (
    MAX_ASSIGNMENTS_PER_HIT,
    InvalidAmount,
    hit_cost,
    parse_amount,
)
from integrations.mturk.hits import (
    InvalidHitParameter,
    MalformedAnswer,
    Requirements,
    external_question,
    hit_id_in,
    parse_answers,
    qualification_requirements,
    request_token,
)

log = logging.getLogger(__name__)

SETTINGS_FIELDS = (
    "reward", "title", "description", "keywords", "assignment_duration_seconds",
    "lifetime_seconds", "auto_approval_delay_seconds", "places", "min_approval_rate",
    "min_approved_hits", "block_qualification_type_id", "review_policy")
#: The form fields the worker page posts to MTurk, found again in the answer XML.
LABEL_FIELD = "label"
LOCALE_FIELD = "locale"
#: Seconds added to a worker's time on an assignment before our lease on it runs out.
LEASE_SLACK_SECONDS = 300
#: Why a label posted from the worker page is not counted yet: MTurk has not listed its
#: assignment with the same worker and HIT (anyone can call the page with invented ids).
UNCONFIRMED = "unconfirmed"
#: High bits of the PostgreSQL advisory lock key one poller holds on a HIT while it polls it.
POLL_LOCK_BASE = 0x4D54 << 48


def client_for_app() -> MTurk:
    """Return the MTurk client of the current app: an injected one (tests) or boto3's."""
    from integrations.mturk.client import BotoMTurk, ClientSettings

    injected = current_app.extensions.get("coordinator.mturk_client")
    if injected is not None:
        return injected  # type: ignore[no-any-return]
    return BotoMTurk.from_settings(ClientSettings.from_config(current_app.config))


def _mturk_workforce(session: Session, workforce_id: int) -> Workforce:
    workforce = session.get(Workforce, workforce_id)
    if workforce is None or workforce.kind != "mturk":
        raise NotFound(gettext("There is no MTurk workforce %(id)s.", id=workforce_id))
    return workforce


class MTurkUnavailable(CoordinatorError):
    """Raise when MTurk kept failing (throttling, faults) after our retries; try again later."""

    status = 502
    slug = "mturk-unavailable"
    title = lazy_gettext("MTurk is not answering")


def refused(exc: MTurkError) -> CoordinatorError:
    """Return the error that tells a caller MTurk refused a call (409) or kept failing (502)."""
    message = gettext("MTurk refused %(operation)s: %(code)s: %(message)s",
                      operation=exc.operation, code=exc.code, message=exc.message[:300])
    if exc.retryable:
        return MTurkUnavailable(message, mturk_code=exc.code)
    return Conflict(message, mturk_code=exc.code)


# --- settings -------------------------------------------------------------------------------


def get_settings(session: Session, project_id: int, workforce_id: int) -> MTurkSettings:
    """Return a project's MTurk settings for a workforce, or raise NotFound."""
    found = session.scalar(select(MTurkSettings).where(
        MTurkSettings.project_id == project_id, MTurkSettings.workforce_id == workforce_id))
    if found is None:
        raise NotFound(gettext("Project %(project)s has no MTurk settings for workforce %(id)s.",
                               project=project_id, id=workforce_id))
    return found


def places_outside(places: list[str], workforce: Workforce) -> list[str]:
    """Return the places whose country is not one of the workforce's countries."""
    allowed = {country.upper() for country in workforce.countries}
    return [place for place in places if place.split("-", 1)[0].upper() not in allowed]


def _check_settings(values: dict[str, Any], workforce: Workforce) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    checked = dict(values)
    outside = places_outside(list(values.get("places") or []), workforce)
    if outside:
        # Worker_Locale is how the workforce's countries (and so the residency rule that
        # routed the work to it) reach MTurk; a place beyond them would widen who may work.
        errors["places"] = [gettext(
            "%(places)s are outside the workforce's countries (%(countries)s).",
            places=", ".join(outside), countries=", ".join(workforce.countries) or "-")]
    if "reward" in values:
        try:
            checked["reward"] = parse_amount(values["reward"])
        except InvalidAmount:
            errors["reward"] = [gettext("Give the reward in US dollars with cents, e.g. 0.05.")]
    try:
        qualification_requirements(_requirements(checked.get("places") or [], checked))
    except InvalidHitParameter as exc:
        errors.setdefault("places", []).append(
            gettext("These requirements are not valid: %(problem)s", problem=str(exc)))
    if errors:
        raise InvalidInput(errors=errors)
    return checked


def configure(session: Session, actor: Actor, project_id: int, workforce_id: int,
              values: dict[str, Any]) -> MTurkSettings:
    """Create or change how a project is offered on an MTurk workforce."""
    get_project(session, project_id)
    workforce = _mturk_workforce(session, workforce_id)
    values = _check_settings(values, workforce)
    settings = session.scalar(select(MTurkSettings).where(
        MTurkSettings.project_id == project_id, MTurkSettings.workforce_id == workforce_id))
    if settings is None:
        missing = [name for name in ("reward", "title", "description") if name not in values]
        if missing:
            raise InvalidInput(errors={name: [gettext("This field is required.")] for name in missing})
        settings = MTurkSettings(project_id=project_id, workforce_id=workforce_id, **values)
        session.add(settings)
        session.flush()
        record(session, actor, "mturk.settings.create", "project", project_id,
               after={"workforce_id": workforce_id, **values})
        return settings
    apply_changes(session, actor, settings, values, action="mturk.settings.update",
                  subject_type="project", fields=SETTINGS_FIELDS)
    return settings


def _requirements(places: list[str], settings: Any) -> Requirements:
    get = settings.get if isinstance(settings, dict) else lambda name: getattr(settings, name)
    return Requirements(places=tuple(places), min_approval_rate=get("min_approval_rate"),
                        min_approved_hits=get("min_approved_hits"),
                        block_qualification_type_id=get("block_qualification_type_id"))


def hit_type_params(settings: MTurkSettings, workforce: Workforce) -> dict[str, Any]:
    """Return the CreateHITType parameters of a project on a workforce, exactly as sent."""
    places = list(settings.places) or list(workforce.countries)
    return {
        "AutoApprovalDelayInSeconds": settings.auto_approval_delay_seconds,
        "AssignmentDurationInSeconds": settings.assignment_duration_seconds,
        "Reward": settings.reward,
        "Title": settings.title,
        "Keywords": settings.keywords,
        "Description": settings.description,
        "QualificationRequirements": qualification_requirements(_requirements(places, settings)),
    }


# --- publishing -----------------------------------------------------------------------------


@dataclass
class PlannedHit:
    """One HIT a publish will create."""

    task_id: int
    round: int
    assignment_ids: list[int]
    guideline_version_id: int


@dataclass
class PublishResult:
    """What one publish did, and what stopped it if something did."""

    created: list[MTurkHit] = field(default_factory=list)
    adopted: int = 0
    planned: int = 0
    cost: Decimal = Decimal(0)
    failure: dict[str, Any] | None = None


def _adopt_replacements(session: Session, project_id: int, workforce_id: int, now: datetime,
                        *, hit_pk: int | None = None) -> int:
    """Put fresh offers that replace an expired lease back into the replaced one's HIT."""
    # MTurk reopens the slot of an abandoned or returned assignment by itself, so its
    # replacement must ride in the same HIT rather than be published a second time; but
    # only while that HIT is live: once it expired nobody can take the slot there, and the
    # replacement waits unlinked for the next publish, which puts it in a new round.
    query = (
        select(Assignment.id, MTurkHitSlot.hit_pk)
        .join(MTurkHitSlot, MTurkHitSlot.assignment_id == Assignment.replaces_id)
        .join(MTurkHit, MTurkHit.id == MTurkHitSlot.hit_pk)
        .where(Assignment.project_id == project_id, Assignment.workforce_id == workforce_id,
               Assignment.status == "offered", MTurkHit.status == "live",
               MTurkHit.expires_at > now))
    if hit_pk is not None:
        query = query.where(MTurkHitSlot.hit_pk == hit_pk)
    rows = session.execute(query).all()
    linked = set(session.scalars(select(MTurkHitSlot.assignment_id).where(
        MTurkHitSlot.assignment_id.in_([row.id for row in rows])))) if rows else set()
    fresh = [row for row in rows if row.id not in linked]
    for row in fresh:
        session.add(MTurkHitSlot(assignment_id=row.id, hit_pk=row.hit_pk))
    session.flush()
    return len(fresh)


def _shuffled(planned: list[PlannedHit]) -> list[PlannedHit]:
    """Return the planned HITs in a random order, so HIT ids and times do not follow task ids."""
    # Gold tasks are often imported together; HITs made in task order would line them up.
    random.SystemRandom().shuffle(planned)
    return planned


def plan(session: Session, project_id: int, workforce_id: int) -> list[PlannedHit]:
    """Return the HITs the offered, unpublished assignments of a project on MTurk need."""
    pending = session.execute(
        select(Assignment.id, Assignment.task_id, Assignment.guideline_version_id)
        .outerjoin(MTurkHitSlot, MTurkHitSlot.assignment_id == Assignment.id)
        .where(Assignment.project_id == project_id, Assignment.workforce_id == workforce_id,
               Assignment.status == "offered", MTurkHitSlot.hit_pk.is_(None))
        .order_by(Assignment.task_id, Assignment.id)).all()
    by_task: dict[tuple[int, int], list[int]] = defaultdict(list)
    for row in pending:
        by_task[(row.task_id, row.guideline_version_id)].append(row.id)
    rounds = dict(session.execute(
        select(MTurkHit.task_id, func.max(MTurkHit.round))
        .where(MTurkHit.workforce_id == workforce_id,
               MTurkHit.task_id.in_({task for task, _ in by_task}))
        .group_by(MTurkHit.task_id)).all())
    planned: list[PlannedHit] = []
    for (task_id, version_id), ids in by_task.items():
        for start in range(0, len(ids), MAX_ASSIGNMENTS_PER_HIT):
            rounds[task_id] = rounds.get(task_id, 0) + 1
            planned.append(PlannedHit(task_id, rounds[task_id],
                                      ids[start:start + MAX_ASSIGNMENTS_PER_HIT], version_id))
    return _shuffled(planned)


def _hit_type(session: Session, client: MTurk, settings: MTurkSettings, workforce: Workforce,
              version_id: int) -> MTurkHitType:
    params = hit_type_params(settings, workforce)
    digest = hashlib.sha256(json.dumps(
        {"workforce": workforce.id, "project": settings.project_id, "guideline": version_id,
         "params": {**params, "Reward": str(params["Reward"])}},
        sort_keys=True).encode()).hexdigest()
    known = session.scalar(select(MTurkHitType).where(MTurkHitType.params_hash == digest))
    if known is not None:
        return known
    type_id = client.create_hit_type(**params)
    hit_type = MTurkHitType(workforce_id=workforce.id, project_id=settings.project_id,
                            guideline_version_id=version_id, reward=settings.reward,
                            params_hash=digest, hit_type_id=type_id,
                            params={**params, "Reward": str(params["Reward"])})
    session.add(hit_type)
    session.flush()
    return hit_type


def worker_page_url(base_url: str, *, production: bool) -> str:
    """Return the ExternalQuestion URL of the worker page under ``base_url``."""
    if not base_url:
        raise Conflict(gettext("Set COORDINATOR_MTURK_WORKER_PAGE_URL to this service's public "
                               "address before publishing HITs."))
    if production and not base_url.startswith("https://"):
        raise Conflict(gettext("MTurk shows production HITs only from an https:// address."))
    return base_url.rstrip("/") + "/mturk/task"


def _check_places(settings: MTurkSettings, workforce: Workforce, project: Project) -> None:
    """Refuse to publish HITs whose Worker_Locale would let workers outside the workforce in."""
    places = list(settings.places) or list(workforce.countries)
    outside = places_outside(places, workforce)
    if outside:
        raise Conflict(gettext(
            "The MTurk places %(places)s are outside the workforce's countries; change the "
            "project's MTurk settings.", places=", ".join(outside)))
    if not places and project.residency_region != "global":
        raise Conflict(gettext(
            "The project's data must stay in %(region)s, but these HITs would have no locale "
            "requirement; give the workforce its countries or the settings places.",
            region=project.residency_region))


def create_or_find_hit(client: MTurk, *, hit_type_id: str, max_assignments: int,
                       lifetime_seconds: int, question: str, token: str,
                       annotation: str) -> dict[str, Any]:
    """Create a HIT; when MTurk says its token was used, return that first HIT instead."""
    try:
        return client.create_hit(hit_type_id=hit_type_id, max_assignments=max_assignments,
                                 lifetime_seconds=lifetime_seconds, question=question,
                                 token=token, annotation=annotation)
    except MTurkError as exc:
        if not exc.already_done:
            raise
        # The first call got through (its answer was lost): find that HIT, never make another.
        hit_id = hit_id_in(exc.message)
        if hit_id:
            return client.get_hit(hit_id)
        for found in client.list_hits():
            if found.get("RequesterAnnotation") == annotation:
                return found
        raise


def publish(session: Session, actor: Actor, client: MTurk, project_id: int, workforce_id: int,
            *, page_url: str, limit: int | None = None) -> PublishResult:
    """Turn a project's offered MTurk assignments into HITs, if the account can pay for them."""
    project = get_project(session, project_id)
    workforce = _mturk_workforce(session, workforce_id)
    settings = get_settings(session, project.id, workforce.id)
    if project.paused:
        raise Conflict(gettext("The project is paused; resume it before publishing HITs."))
    _check_places(settings, workforce, project)
    result = PublishResult(adopted=_adopt_replacements(session, project.id, workforce.id, utcnow()))
    planned = plan(session, project.id, workforce.id)[:limit]
    result.planned = len(planned)
    if not planned:
        return result
    rewards = fees = Decimal(0)
    for hit in planned:
        reward_part, fee_part = hit_cost(settings.reward, len(hit.assignment_ids))
        rewards, fees = rewards + reward_part, fees + fee_part
    result.cost = rewards + fees
    try:
        balance = client.account_balance()
    except MTurkError as exc:
        raise refused(exc) from None
    if balance < result.cost:
        raise Conflict(gettext(
            "The MTurk balance is %(balance)s USD; these %(hits)d HITs (%(assignments)d assignments) "
            "cost %(cost)s USD: %(rewards)s in rewards and %(fees)s in MTurk fees.",
            balance=balance, hits=len(planned), assignments=sum(len(h.assignment_ids) for h in planned),
            cost=result.cost, rewards=rewards, fees=fees),
            balance=str(balance), cost=str(result.cost), rewards=str(rewards), fees=str(fees),
            hits=len(planned))
    question = external_question(page_url)
    for hit in planned:
        try:
            hit_type = _hit_type(session, client, settings, workforce, hit.guideline_version_id)
            token = request_token("hit", workforce.id, hit.task_id, hit.round)
            answer = create_or_find_hit(
                client, hit_type_id=hit_type.hit_type_id, max_assignments=len(hit.assignment_ids),
                lifetime_seconds=settings.lifetime_seconds, question=question, token=token,
                annotation=token)
        except MTurkError as exc:
            log.warning("publishing stopped at task %s: %s", hit.task_id, exc)
            result.failure = {"task_id": hit.task_id, "operation": exc.operation,
                              "code": exc.code, "message": exc.message}
            break
        # A HIT found again after a lost answer offers what it was made with, which may be
        # fewer slots than planned now; the rest wait for the next round.
        offered = hit.assignment_ids[:int(answer.get("MaxAssignments") or len(hit.assignment_ids))]
        row = MTurkHit(workforce_id=workforce.id, project_id=project.id, task_id=hit.task_id,
                       round=hit.round, hit_type_pk=hit_type.id, hit_id=answer["HITId"],
                       request_token=token, max_assignments=len(offered),
                       reward=settings.reward, status="live", expires_at=answer["Expiration"])
        session.add(row)
        session.flush()
        session.add_all(MTurkHitSlot(assignment_id=aid, hit_pk=row.id) for aid in offered)
        session.flush()
        result.created.append(row)
    record(session, actor, "mturk.publish", "project", project.id, after={
        "workforce_id": workforce.id, "hits": [h.hit_id for h in result.created],
        "adopted": result.adopted, "planned": result.planned, "failure": result.failure})
    return result


# --- the worker page ------------------------------------------------------------------------


def get_hit(session: Session, hit_id: str) -> MTurkHit:
    """Return one of our HITs by MTurk's id, or raise NotFound."""
    hit = session.scalar(select(MTurkHit).where(MTurkHit.hit_id == hit_id))
    if hit is None:
        raise NotFound(gettext("This HIT is not one of ours."))
    return hit


def hit_assignments(session: Session, hit: MTurkHit) -> list[MTurkAssignment]:
    """Return the MTurk assignments of one of our HITs, in the order workers accepted them."""
    return list(session.scalars(select(MTurkAssignment).where(MTurkAssignment.hit_pk == hit.id)
                                .order_by(MTurkAssignment.id)))


def _free_slot(session: Session, hit: MTurkHit) -> Assignment | None:
    # SKIP LOCKED: a concurrent bind holding the first free slot must not make this one
    # see no free slot at all once it re-checks the row; it takes the next one instead.
    return session.scalar(
        select(Assignment)
        .join(MTurkHitSlot, MTurkHitSlot.assignment_id == Assignment.id)
        .where(MTurkHitSlot.hit_pk == hit.id, Assignment.status == "offered")
        .order_by(Assignment.id).limit(1).with_for_update(skip_locked=True, of=Assignment))


def _refuse_repeat_worker(session: Session, hit: MTurkHit, worker_id: str) -> None:
    """Refuse a worker who labelled, or holds an assignment of, this HIT's task already."""
    # MTurk keeps a worker to one assignment per HIT, not per task: a later round's HIT is
    # another HIT to MTurk. The labels service would refuse the label at the end; refusing
    # here saves the worker the work and keeps the slot free for someone else.
    claimed = session.scalar(select(TaskWorker.assignment_id).where(
        TaskWorker.task_id == hit.task_id,
        TaskWorker.person_key == f"{hit.workforce_id}:{worker_id}").limit(1))
    holding = session.scalar(
        select(MTurkAssignment.id).join(MTurkHit, MTurkHit.id == MTurkAssignment.hit_pk)
        .where(MTurkHit.task_id == hit.task_id, MTurkHit.workforce_id == hit.workforce_id,
               MTurkAssignment.worker_external_id == worker_id,
               MTurkAssignment.status.in_(("working", "submitted", "approved"))).limit(1))
    if claimed is not None or holding is not None:
        raise Conflict(gettext("You have already worked on this item in another HIT; please "
                               "return this HIT."), code="duplicate_worker")


def bind(session: Session, hit: MTurkHit, mturk_assignment_id: str, worker_id: str, *,
         now: datetime | None = None) -> MTurkAssignment:
    """Give a worker who accepted ``hit`` one of its offered assignments, leased to them.

    The ids come from the page's URL, which anyone can call: nothing here proves MTurk made
    the assignment. So the label posted for it is kept aside until a poll sees MTurk list
    the assignment with the same worker and HIT (:func:`confirm`), and the slot it leases
    is released by the poll once MTurk's own deadline for the assignment has passed without
    MTurk listing it (:func:`_release_stale`): an invented id holds a slot for at most one
    assignment duration plus ``LEASE_SLACK_SECONDS``.
    """
    now = now or utcnow()
    known = session.scalar(select(MTurkAssignment).where(
        MTurkAssignment.mturk_assignment_id == mturk_assignment_id))
    if known is not None:
        if known.hit_pk != hit.id or known.worker_external_id != worker_id:
            raise Forbidden(gettext("This assignment belongs to another worker or HIT."))
        return known
    project = session.get(Project, hit.project_id)
    if project is None or project.paused:
        raise Conflict(gettext("This work is paused; please return the HIT."), code="paused")
    settings = get_settings(session, hit.project_id, hit.workforce_id)
    _refuse_repeat_worker(session, hit, worker_id)
    free = _free_slot(session, hit)
    if free is None:
        # A returned or abandoned assignment's lease may have run out since the last poll:
        # put its replacement into this HIT before telling the worker everything is taken.
        expire_leases(session, now=now, workforce_id=hit.workforce_id)
        _adopt_replacements(session, hit.project_id, hit.workforce_id, now, hit_pk=hit.id)
        free = _free_slot(session, hit)
    if free is None:
        raise Conflict(gettext("Every assignment of this HIT is taken; return the HIT."),
                       code="taken")
    free.status = "leased"
    free.leased_at = now
    free.lease_expires_at = now + timedelta(
        seconds=settings.assignment_duration_seconds + LEASE_SLACK_SECONDS)
    bound = MTurkAssignment(mturk_assignment_id=mturk_assignment_id, hit_pk=hit.id,
                            assignment_id=free.id, worker_external_id=worker_id, accepted_at=now)
    session.add(bound)
    session.flush()
    record(session, Actor.system(), "mturk.assignment.accept", "assignment", free.id,
           after={"mturk_assignment_id": mturk_assignment_id, "worker": worker_id})
    return bound


def get_bound(session: Session, mturk_assignment_id: str, worker_id: str) -> MTurkAssignment:
    """Return a bound MTurk assignment of ``worker_id``, or refuse."""
    bound = session.scalar(select(MTurkAssignment).where(
        MTurkAssignment.mturk_assignment_id == mturk_assignment_id))
    if bound is None:
        raise NotFound(gettext("There is no such assignment."))
    if bound.worker_external_id != worker_id:
        raise Forbidden(gettext("This assignment belongs to another worker."))
    return bound


def item_of(session: Session, bound: MTurkAssignment) -> tuple[Task, Project, int]:
    """Return the task, project and guideline version a bound assignment is about."""
    assignment = session.get(Assignment, bound.assignment_id)
    if assignment is None:
        raise NotFound(gettext("There is no such assignment."))
    task = session.get(Task, assignment.task_id)
    project = session.get(Project, assignment.project_id)
    assert task is not None and project is not None
    return task, project, assignment.guideline_version_id


def record_label(session: Session, bound: MTurkAssignment, label: str, locale: str | None, *,
                 now: datetime | None = None) -> dict[str, Any]:
    """Store a worker's label through the labels service; a replay returns the first answer."""
    if bound.assignment_id is None:
        raise Conflict(gettext("This MTurk assignment is not bound to any of our assignments."))
    hit = session.get(MTurkHit, bound.hit_pk)
    assert hit is not None
    outcome = labels.submit(
        session, Actor.system(), hit.workforce_id, f"mturk:{bound.mturk_assignment_id}",
        [labels.Submission(assignment_id=bound.assignment_id, worker_id=bound.worker_external_id,
                           label=label, locale=locale)], now=now)
    result = outcome.response["results"][0]
    if result["status"] == "created" and bound.label_id is None:
        bound.label_id = result["label_id"]
        bound.locale = locale
        bound.status = "submitted"
        bound.submitted_at = now or utcnow()
        if bound.confirmed_at is None:
            # Set aside in the same transaction as the insert: no reader ever sees it counted.
            label = session.get(Label, result["label_id"])
            assert label is not None
            label.counted, label.set_aside = False, UNCONFIRMED
        session.flush()
    return result


def confirm(session: Session, bound: MTurkAssignment, now: datetime) -> bool:
    """Count the page's label of an assignment MTurk listed with the same worker and HIT."""
    if bound.confirmed_at is not None:
        return False
    bound.confirmed_at = now
    label = session.get(Label, bound.label_id) if bound.label_id is not None else None
    if label is not None and label.set_aside == UNCONFIRMED:
        label.counted, label.set_aside = True, None
    session.flush()
    record(session, Actor.system(), "mturk.assignment.confirm", "assignment",
           bound.assignment_id or 0, after={"mturk_assignment_id": bound.mturk_assignment_id,
                                            "label_id": bound.label_id})
    return True


# --- results --------------------------------------------------------------------------------


@dataclass
class PollResult:
    """What one poll found and did."""

    hits: int = 0
    recorded: int = 0
    invalid: int = 0
    approved: int = 0
    rejected: int = 0
    #: answers whose label in MTurk's XML differs from the one our page stored
    discrepancies: int = 0
    #: page labels counted because MTurk listed their assignment with the same worker and HIT
    confirmed: int = 0
    #: slots given back: bindings MTurk never listed by its own deadline for them
    released: int = 0
    #: decisions MTurk made itself (auto-approval, a rejection made on MTurk) copied to ours
    mirrored: int = 0
    #: HITs another poller held (PostgreSQL advisory lock) and this one left alone
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.recorded or self.invalid or self.approved or self.rejected
                    or self.discrepancies or self.confirmed or self.released or self.mirrored)


def _mark_invalid(session: Session, hit: MTurkHit, bound: MTurkAssignment | None,
                  item: dict[str, Any], problem: str) -> MTurkAssignment:
    log.warning("MTurk assignment %s of HIT %s not counted: %s", item["AssignmentId"],
                hit.hit_id, problem, extra={"mturk_assignment": item["AssignmentId"]})
    if bound is None:
        bound = MTurkAssignment(mturk_assignment_id=item["AssignmentId"], hit_pk=hit.id,
                                worker_external_id=item.get("WorkerId", ""))
        session.add(bound)
    bound.status = "invalid"
    bound.answer = item.get("Answer")
    bound.problem = problem[:500]
    bound.submitted_at = item.get("SubmitTime")
    session.flush()
    return bound


def _release(session: Session, bound: MTurkAssignment, problem: str, now: datetime) -> None:
    """Void a binding MTurk does not back; give its slot back to the HIT as a fresh offer."""
    # The page's label (if any) stays set aside as unconfirmed; the slot's assignment ends
    # ``expired`` like a lapsed lease and a replacement offer takes its place, which the
    # poll puts back into the HIT while it is live, or the next publish into a new round.
    log.warning("MTurk assignment %s released: %s", bound.mturk_assignment_id, problem,
                extra={"mturk_assignment": bound.mturk_assignment_id})
    bound.status = "invalid"
    bound.problem = problem[:500]
    assignment = session.get(Assignment, bound.assignment_id) if bound.assignment_id else None
    replacement = None
    if assignment is not None and assignment.status in ("leased", "submitted"):
        assignment.status = "expired"
        replacement = Assignment(
            project_id=assignment.project_id, task_id=assignment.task_id,
            workforce_id=assignment.workforce_id, run_id=assignment.run_id,
            guideline_version_id=assignment.guideline_version_id, status="offered",
            price=assignment.price, currency=assignment.currency, replaces_id=assignment.id)
        session.add(replacement)
    session.flush()
    record(session, Actor.system(), "mturk.assignment.release", "assignment",
           bound.assignment_id or 0, after={
               "mturk_assignment_id": bound.mturk_assignment_id, "problem": problem[:500],
               "replacement_id": replacement.id if replacement is not None else None})


def _collect(session: Session, hit: MTurkHit, item: dict[str, Any], bound: MTurkAssignment | None,
             result: PollResult, now: datetime) -> MTurkAssignment | None:
    """Confirm and record one listed MTurk assignment's label once; return it when it may be reviewed."""
    if bound is not None and bound.status in ("approved", "rejected", "invalid"):
        return None
    if bound is None or bound.assignment_id is None:
        _mark_invalid(session, hit, bound, item, "MTurk reports an assignment our page never served")
        result.invalid += 1
        return None
    if bound.worker_external_id != item.get("WorkerId") or bound.hit_pk != hit.id \
            or item.get("HITId", hit.hit_id) != hit.hit_id:
        # Our page served this id to someone else than the worker MTurk names: the page's
        # label is not this assignment's; the slot goes back.
        _release(session, bound, "the worker or HIT MTurk names is not the one our page served", now)
        bound.answer = item.get("Answer")
        result.invalid += 1
        return None
    if confirm(session, bound, now):
        result.confirmed += 1 if bound.label_id is not None else 0
    try:
        answers = parse_answers(item.get("Answer") or "")
    except MalformedAnswer as exc:
        if bound.label_id is None:
            _mark_invalid(session, hit, bound, item, str(exc))
            result.invalid += 1
            return None
        # Our page stored the label before MTurk got the form; that label counts and is
        # reviewed. MTurk's unreadable copy is kept as evidence, once.
        if bound.answer is None:
            log.warning("MTurk assignment %s of HIT %s: MTurk's answer is unreadable (%s); "
                        "the label our page stored counts", bound.mturk_assignment_id,
                        hit.hit_id, exc, extra={"mturk_assignment": bound.mturk_assignment_id})
            bound.answer = item.get("Answer")
            bound.problem = (f"MTurk's answer could not be read ({exc}); the label our page "
                             "stored is the one counted")[:500]
            session.flush()
        answers = None
    if bound.label_id is None:
        assert answers is not None
        outcome = record_label(session, bound, answers.get(LABEL_FIELD, ""),
                               answers.get(LOCALE_FIELD) or None, now=now)
        if outcome["status"] != "created":
            _mark_invalid(session, hit, bound, item, outcome["error"]["message"])
            result.invalid += 1
            return None
        result.recorded += 1
    elif answers is not None and _note_discrepancy(session, hit, bound, item,
                                                   answers.get(LABEL_FIELD, "")):
        result.discrepancies += 1
    if bound.submitted_at is None:
        bound.submitted_at = item.get("SubmitTime") or now
    return bound


def _note_discrepancy(session: Session, hit: MTurkHit, bound: MTurkAssignment,
                      item: dict[str, Any], given: str) -> bool:
    """Keep a label MTurk's answer XML contradicts on record; return True the first time."""
    # Our page stored the label before posting to MTurk, through a token bound to the
    # assignment, so ours is the one counted; MTurk's copy is kept as evidence only.
    label = session.get(Label, bound.label_id)
    if label is None or label.value == given or bound.answer_label == given[:200]:
        return False
    log.warning("MTurk assignment %s of HIT %s: MTurk's answer says %r, our page stored %r; "
                "ours stands", bound.mturk_assignment_id, hit.hit_id, given, label.value,
                extra={"mturk_assignment": bound.mturk_assignment_id})
    bound.answer_label = given[:200]
    bound.answer = item.get("Answer")
    bound.problem = (f"MTurk's answer says {given!r}; the label our page stored, "
                     f"{label.value!r}, is the one counted")[:500]
    session.flush()
    record(session, Actor.system(), "mturk.assignment.discrepancy", "assignment",
           bound.assignment_id or 0, after={"mturk_assignment_id": bound.mturk_assignment_id,
                                            "stored": label.value, "mturk_answer": given[:200]})
    return True


def _verdict(session: Session, settings: MTurkSettings, bound: MTurkAssignment
             ) -> tuple[bool, str | None] | None:
    """Return (approve, reason) under the project's policy, or None to wait."""
    if settings.review_policy == "manual" or bound.label_id is None:
        return None
    label = session.get(Label, bound.label_id)
    task = session.get(Task, label.task_id) if label else None
    if label is None or task is None or not label.counted:
        return None
    # Every task waits for a consensus run that covers it, gold or not, and every mismatch
    # gets the same words: when and how a submission is judged must not tell a worker
    # which items are control questions, nor what their expected answer is.
    consensus = session.scalar(
        select(TaskConsensus.label).join(ConsensusRun, ConsensusRun.id == TaskConsensus.run_id)
        .where(TaskConsensus.task_id == task.id).order_by(ConsensusRun.id.desc()).limit(1))
    if consensus is None:
        return None
    if task.gold is not None:
        expected: str | None = task.gold
    else:
        expected = consensus if settings.review_policy == "consensus" else None
    if expected is None or label.value == expected:
        return True, None
    return False, _in_locale(bound.locale, lambda: gettext(
        "Your answer did not match the answer expected for this item. Please read the "
        "guideline again before your next HIT."))


def _in_locale(locale: str | None, message: Any) -> str:
    """Return ``message()`` translated into the worker's locale when we have a catalog for it."""
    if locale and has_app_context():
        with force_locale(locale):
            return str(message())
    return str(message())


def _settle_ours(session: Session, bound: MTurkAssignment, approve: bool, reason: str | None) -> None:
    """Bring our assignment to the decision made on MTurk, if it is still waiting for one."""
    assert bound.assignment_id is not None
    assignment = session.get(Assignment, bound.assignment_id)
    if assignment is not None and assignment.status == "submitted":
        review_assignment(session, Actor.system(), bound.assignment_id, accept=approve, reason=reason)


def _review(session: Session, client: MTurk, settings: MTurkSettings, bound: MTurkAssignment,
            now: datetime, result: PollResult) -> None:
    verdict = _verdict(session, settings, bound)
    if verdict is None:
        return
    approve, reason = verdict
    if approve:
        client.approve(bound.mturk_assignment_id, None)
    else:
        client.reject(bound.mturk_assignment_id, reason or "")
    bound.status = "approved" if approve else "rejected"
    bound.review_reason = reason
    bound.reviewed_at = now
    session.flush()
    _settle_ours(session, bound, approve, reason)
    if approve:
        result.approved += 1
    else:
        result.rejected += 1


def _mirror(session: Session, bound: MTurkAssignment, mturk_status: str, now: datetime,
            result: PollResult) -> None:
    """Copy a decision MTurk made itself (auto-approval, a rejection on MTurk) to ours."""
    approve = mturk_status == "Approved"
    reason = None if approve else gettext("Rejected on MTurk.")
    bound.status = "approved" if approve else "rejected"
    bound.review_reason = bound.review_reason or reason
    bound.reviewed_at = now
    session.flush()
    _settle_ours(session, bound, approve, reason)
    record(session, Actor.system(), "mturk.assignment.mirror", "assignment",
           bound.assignment_id or 0, after={"mturk_assignment_id": bound.mturk_assignment_id,
                                            "mturk_status": mturk_status})
    result.mirrored += 1


def _release_stale(session: Session, settings: MTurkSettings, bindings: list[MTurkAssignment],
                   listed: set[str], now: datetime, result: PollResult) -> None:
    """Give back the slots of bindings MTurk has not listed by its own deadline for them."""
    # MTurk drops an assignment not submitted within AssignmentDurationInSeconds of its
    # acceptance (and reopens the slot); we bound it no earlier than that acceptance. So a
    # binding still unlisted after the duration plus our slack was returned, abandoned or
    # invented: none of them may keep a slot.
    deadline = timedelta(seconds=settings.assignment_duration_seconds + LEASE_SLACK_SECONDS)
    for bound in bindings:
        if (bound.status in ("working", "submitted") and bound.confirmed_at is None
                and bound.mturk_assignment_id not in listed and bound.accepted_at + deadline <= now):
            _release(session, bound, "MTurk did not list this assignment by its deadline; "
                     "it was returned, abandoned or never made on MTurk", now)
            result.released += 1


def _free_offered(session: Session, hit: MTurkHit) -> list[int]:
    """Unlink the slots of an ended HIT nobody took, so the next publish offers them again."""
    ids = list(session.scalars(
        select(MTurkHitSlot.assignment_id).join(Assignment, Assignment.id == MTurkHitSlot.assignment_id)
        .where(MTurkHitSlot.hit_pk == hit.id, Assignment.status == "offered")))
    if ids:
        session.execute(delete(MTurkHitSlot).where(MTurkHitSlot.assignment_id.in_(ids)))
        session.flush()
        record(session, Actor.system(), "mturk.hit.free", "assignment", hit.task_id,
               after={"hit_id": hit.hit_id, "assignment_ids": ids})
    return ids


def _end(session: Session, hit: MTurkHit, status: str) -> None:
    """Mark a HIT expired or disposed, and free the slots nobody took in it."""
    hit.status = status
    session.flush()
    _free_offered(session, hit)


def _pending_hits(workforce_id: int | None) -> Any:
    """Return the query of HITs that may still have work to collect: ours, not yet deleted."""
    # A HIT is polled while any of its slots is offered or leased or submitted, or any of
    # its bindings waits for MTurk (working, submitted): after its expiry too, since work
    # accepted before it may still be submitted, reviewed or auto-approved.
    open_slot = exists(
        select(MTurkHitSlot.assignment_id).join(Assignment, Assignment.id == MTurkHitSlot.assignment_id)
        .where(MTurkHitSlot.hit_pk == MTurkHit.id,
               Assignment.status.in_(("offered", "leased", "submitted"))))
    open_binding = exists(select(MTurkAssignment.id).where(
        MTurkAssignment.hit_pk == MTurkHit.id, MTurkAssignment.status.in_(("working", "submitted"))))
    query = (select(MTurkHit).where(MTurkHit.status.in_(("live", "expired")),
                                    or_(open_slot, open_binding))
             .order_by(MTurkHit.id))
    if workforce_id is not None:
        query = query.where(MTurkHit.workforce_id == workforce_id)
    return query


def _locked(session: Session, hit: MTurkHit) -> bool:
    """Take this transaction's advisory lock on a HIT (PostgreSQL); False when another holds it."""
    if not is_postgres(session):
        return True  # SQLite runs one writer at a time
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(POLL_LOCK_BASE + hit.id))))


def _poll_hit(session: Session, client: MTurk, settings: MTurkSettings, hit: MTurkHit,
              result: PollResult, now: datetime) -> None:
    bindings = hit_assignments(session, hit)  # once per HIT, not once per listed item
    by_id = {bound.mturk_assignment_id: bound for bound in bindings}
    listed: set[str] = set()
    if any(bound.status in ("working", "submitted") for bound in bindings):
        for item in client.list_assignments(hit.hit_id):
            listed.add(item["AssignmentId"])
            bound = by_id.get(item["AssignmentId"]) or session.scalar(select(MTurkAssignment).where(
                MTurkAssignment.mturk_assignment_id == item["AssignmentId"]))
            bound = _collect(session, hit, item, bound, result, now)
            if bound is None:
                continue
            mturk_status = item.get("AssignmentStatus")
            if mturk_status == "Submitted" and bound.status == "submitted":
                _review(session, client, settings, bound, now, result)
            elif mturk_status in ("Approved", "Rejected") and bound.status in ("working", "submitted"):
                _mirror(session, bound, mturk_status, now, result)
        _release_stale(session, settings, bindings, listed, now, result)
    hit.polled_at = now
    if hit.status == "live" and hit.expires_at <= now:
        _end(session, hit, "expired")
    elif hit.status == "live":
        _adopt_replacements(session, hit.project_id, hit.workforce_id, now, hit_pk=hit.id)
    session.flush()


def poll_each(session: Session, client: MTurk, *, workforce_id: int | None = None,
              now: datetime | None = None, result: PollResult | None = None
              ) -> Iterator[PollResult]:
    """Poll HIT by HIT, yielding the running totals after each so the caller can commit it.

    Only flushes, like every service; the job and the command commit at each yield, so a
    crash or an MTurk failure later loses nothing done before. On PostgreSQL each HIT is
    polled under a transaction-scoped advisory lock: a second poller running at the same
    time skips the HITs the first one holds instead of reviewing them twice.
    """
    now = now or utcnow()
    result = result if result is not None else PollResult()
    settings_cache: dict[tuple[int, int], MTurkSettings] = {}
    hit_ids = list(session.scalars(_pending_hits(workforce_id).with_only_columns(MTurkHit.id)))
    for hit_pk in hit_ids:
        hit = session.get(MTurkHit, hit_pk)
        if hit is None:
            continue
        if not _locked(session, hit):
            result.skipped += 1
            continue
        session.refresh(hit)  # another poller may have changed it before we took the lock
        if hit.status not in ("live", "expired"):
            continue
        key = (hit.project_id, hit.workforce_id)
        if key not in settings_cache:
            settings_cache[key] = get_settings(session, *key)
        result.hits += 1
        try:
            _poll_hit(session, client, settings_cache[key], hit, result, now)
        except MTurkError as exc:
            # One HIT's trouble must not hold up the others; the next poll tries it again.
            log.warning("polling HIT %s failed: %s", hit.hit_id, exc)
            result.errors.append(f"{hit.hit_id}: {exc.code}")
        yield result
    session.flush()
    if result:
        record(session, Actor.system(), "mturk.poll", "workforce", workforce_id or 0, after={
            "recorded": result.recorded, "invalid": result.invalid, "approved": result.approved,
            "rejected": result.rejected, "discrepancies": result.discrepancies,
            "confirmed": result.confirmed, "released": result.released,
            "mirrored": result.mirrored})


def poll(session: Session, client: MTurk, *, workforce_id: int | None = None,
         now: datetime | None = None) -> PollResult:
    """Fetch submitted work of HITs with work outstanding, confirm and record each label once,
    copy MTurk's own decisions, review under the policy; the caller commits once."""
    result = PollResult()
    for _ in poll_each(session, client, workforce_id=workforce_id, now=now, result=result):
        pass
    return result


# --- bonuses --------------------------------------------------------------------------------


def request_bonus(session: Session, actor: Actor, mturk_assignment_id: str, *, amount: object,
                  reason: str, key: str) -> MTurkBonus:
    """Record the intent to pay a bonus, with its request token, before MTurk is asked.

    The caller commits it before :func:`pay_bonus`, so a crash after MTurk paid leaves a
    pending row that a retry checks against MTurk's own list of payments. Each call counts
    one more attempt; the same ``key`` finds the same row.
    """
    bound = session.scalar(select(MTurkAssignment).where(
        MTurkAssignment.mturk_assignment_id == mturk_assignment_id))
    if bound is None:
        raise NotFound(gettext("There is no such assignment."))
    try:
        value = parse_amount(amount)
    except InvalidAmount:
        raise InvalidInput(errors={"amount": [gettext(
            "Give the bonus in US dollars with cents, e.g. 0.50.")]}) from None
    if not reason.strip():
        raise InvalidInput(errors={"reason": [gettext("Tell the worker why they get the bonus.")]})
    if not key.strip():
        raise InvalidInput(errors={"key": [gettext("Give the bonus a key that a retry repeats.")]})
    token = request_token("bonus", mturk_assignment_id, key)
    bonus = session.scalar(select(MTurkBonus).where(MTurkBonus.request_token == token))
    if bonus is not None:
        if bonus.amount != value or bonus.reason != reason:
            raise Conflict(gettext("This bonus key was used for another amount or reason; "
                                   "use a new key."))
        if not bonus.paid:
            bonus.attempts += 1
            session.flush()
        return bonus
    bonus = MTurkBonus(mturk_assignment_pk=bound.id, amount=value, reason=reason,
                       request_token=token, attempts=1)
    session.add(bonus)
    session.flush()
    record(session, actor, "mturk.bonus.request", "assignment", bound.assignment_id or 0, after={
        "mturk_assignment_id": mturk_assignment_id, "amount": value, "token": token})
    return bonus


def _paid_already(session: Session, client: MTurk, bonus: MTurkBonus, bound: MTurkAssignment
                  ) -> datetime | None:
    """Return when MTurk paid ``bonus`` if its list of payments shows it, else None."""
    # MTurk keeps request tokens for 24 hours only, so a retry after that cannot count on
    # SendBonus refusing a second payment. A payment for the same worker, amount and reason
    # that none of our paid bonuses accounts for is this one's.
    found = [payment for payment in client.bonus_payments(bound.mturk_assignment_id)
             if payment.get("WorkerId") == bound.worker_external_id
             and Decimal(str(payment.get("BonusAmount"))) == bonus.amount
             and payment.get("Reason") == bonus.reason]
    accounted = session.scalar(select(func.count()).select_from(MTurkBonus).where(
        MTurkBonus.mturk_assignment_pk == bound.id, MTurkBonus.paid.is_(True),
        MTurkBonus.amount == bonus.amount, MTurkBonus.reason == bonus.reason,
        MTurkBonus.id != bonus.id)) or 0
    if len(found) <= accounted:
        return None
    granted = found[accounted].get("GrantTime")
    return granted if isinstance(granted, datetime) else utcnow()


def pay_bonus(session: Session, actor: Actor, client: MTurk, bonus: MTurkBonus) -> MTurkBonus:
    """Pay a bonus :func:`request_bonus` recorded (and the caller committed), at most once."""
    if bonus.paid:
        return bonus
    bound = session.get(MTurkAssignment, bonus.mturk_assignment_pk)
    assert bound is not None
    try:
        paid_at = _paid_already(session, client, bonus, bound) if bonus.attempts > 1 else None
        if paid_at is None:
            client.send_bonus(worker_id=bound.worker_external_id,
                              assignment_id=bound.mturk_assignment_id, amount=bonus.amount,
                              reason=bonus.reason, token=bonus.request_token)
            paid_at = utcnow()
        else:
            log.info("bonus %s was paid on MTurk already (%s); not sent again",
                     bonus.request_token, paid_at)
    except MTurkError as exc:
        raise refused(exc) from None
    bonus.paid = True
    bonus.paid_at = paid_at
    session.flush()
    record(session, actor, "mturk.bonus", "assignment", bound.assignment_id or 0, after={
        "mturk_assignment_id": bound.mturk_assignment_id, "amount": bonus.amount,
        "token": bonus.request_token, "attempts": bonus.attempts})
    return bonus


# --- cleaning up and reconciling ------------------------------------------------------------


@dataclass
class CleanupResult:
    """HITs expired early because their work was cancelled, and HITs deleted from MTurk."""

    expired: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.expired or self.deleted)


def cleanup(session: Session, actor: Actor, client: MTurk, *, now: datetime | None = None
            ) -> CleanupResult:
    """Expire HITs whose work was all cancelled, and delete finished or expired ones.

    A HIT is deleted only once none of its MTurk assignments waits for the poll (working
    or submitted): the poll confirms, reviews, copies MTurk's decisions or releases them
    first, and MTurk forgets a HIT's assignments when it is deleted. A HIT MTurk no longer
    has is marked disposed rather than tried again on every run.
    """
    now = now or utcnow()
    result = CleanupResult()
    hits = session.scalars(select(MTurkHit).where(MTurkHit.status.in_(("live", "expired")))
                           .order_by(MTurkHit.id)).all()
    states: dict[int, set[str]] = defaultdict(set)
    for hit_pk, status in session.execute(  # one grouped query, not one per HIT
            select(MTurkHitSlot.hit_pk, Assignment.status)
            .join(Assignment, Assignment.id == MTurkHitSlot.assignment_id)
            .join(MTurkHit, MTurkHit.id == MTurkHitSlot.hit_pk)
            .where(MTurkHit.status.in_(("live", "expired")))
            .group_by(MTurkHitSlot.hit_pk, Assignment.status)):
        states[hit_pk].add(status)
    waiting = set(session.scalars(
        select(MTurkAssignment.hit_pk).join(MTurkHit, MTurkHit.id == MTurkAssignment.hit_pk)
        .where(MTurkHit.status.in_(("live", "expired")),
               MTurkAssignment.status.in_(("working", "submitted")))
        .group_by(MTurkAssignment.hit_pk)))
    for hit in hits:
        hit_states = states.get(hit.id, set())
        try:
            if hit.status == "live" and hit_states and hit_states <= {"cancelled"}:
                client.expire_hit(hit.hit_id)
                hit.expires_at = now
                _end(session, hit, "expired")
                result.expired.append(hit.hit_id)
            done = not hit_states & {"offered", "leased", "submitted"}
            if (hit.expires_at <= now or done) and hit.id in waiting:
                result.kept[hit.hit_id] = "assignments still waiting for the poll"
                continue
            if hit.expires_at <= now or done:
                if hit.status == "live":
                    client.expire_hit(hit.hit_id)
                    _end(session, hit, "expired")
                client.delete_hit(hit.hit_id)
                _end(session, hit, "disposed")
                result.deleted.append(hit.hit_id)
        except MTurkError as exc:
            if exc.missing:
                # Deleted on MTurk already (by hand, or by a run whose commit was lost).
                _end(session, hit, "disposed")
                result.deleted.append(hit.hit_id)
                continue
            # Most often: submissions still waiting for review; the next cleanup retries.
            result.kept[hit.hit_id] = f"{exc.code}: {exc.message}"[:300]
    session.flush()
    if result:
        record(session, actor, "mturk.cleanup", "workforce", 0,
               after={"expired": result.expired, "deleted": result.deleted})
    return result


@dataclass
class Reconciliation:
    """HITs on MTurk we do not know, and HITs we think are live that MTurk does not."""

    unknown: list[str] = field(default_factory=list)
    not_live: list[dict[str, str]] = field(default_factory=list)


def reconcile(session: Session, client: MTurk) -> Reconciliation:
    """Compare MTurk's HITs with ours; change nothing."""
    ours = {hit.hit_id: hit for hit in session.scalars(select(MTurkHit))}
    seen: dict[str, str] = {}
    for hit in client.list_hits():
        seen[hit["HITId"]] = hit.get("HITStatus", "")
    found = Reconciliation(unknown=sorted(h for h in seen if h not in ours))
    for hit_id, hit in sorted(ours.items()):
        if hit.status != "live":
            continue
        status = seen.get(hit_id)
        if status not in LIVE_HIT_STATUSES:
            found.not_live.append({"hit_id": hit_id, "mturk_status": status or "missing"})
    return found


# --- the block qualification ----------------------------------------------------------------


def _block_types(session: Session, workforce_id: int) -> dict[str, set[int]]:
    """Return each block qualification type of a workforce and the projects that use it."""
    found: dict[str, set[int]] = defaultdict(set)
    for project_id, type_id in session.execute(
            select(MTurkSettings.project_id, MTurkSettings.block_qualification_type_id).where(
                MTurkSettings.workforce_id == workforce_id,
                MTurkSettings.block_qualification_type_id.is_not(None))):
        found[type_id].add(project_id)
    return found


def _fingerprint(known: set[str], banned: set[str]) -> str:
    return hashlib.sha256(json.dumps([sorted(known), sorted(banned)]).encode()).hexdigest()


def sync_block_qualification(session: Session, actor: Actor, workforce_id: int, client: MTurk, *,
                             only_if_changed: bool = False) -> dict[str, list[str]]:
    """Give the block qualification to blocked workers, take it from those whose block was lifted.

    Blocks come from the quality stage (``coordinator.quality.services.blocked_workers``),
    per project: a worker blocked on any project using a qualification type holds that
    type. The HITs require that a worker does not hold it (``DoesNotExist``), so a blocked
    worker can take no new HIT while workers never seen before can. The type is taken only
    from workers this workforce knows: a holder we have never seen was blocked by hand on
    MTurk and is left alone. Compares with MTurk's holders, so a second run changes
    nothing; with ``only_if_changed`` a type whose workers and blocks are as at its last
    sync is skipped without calling MTurk.
    """
    from coordinator.quality.services import blocked_workers

    _mturk_workforce(session, workforce_id)
    active = blocked_workers(session, workforce_id)
    known = set(session.scalars(select(Worker.external_id).where(Worker.workforce_id == workforce_id)))
    changes: dict[str, list[str]] = {"blocked": [], "unblocked": [], "skipped": []}
    for type_id, projects in sorted(_block_types(session, workforce_id).items()):
        banned = {external for (project_id, external) in active if project_id in projects}
        fingerprint = _fingerprint(known, banned)
        last = session.get(MTurkQualificationSync, (workforce_id, type_id))
        if only_if_changed and last is not None and last.fingerprint == fingerprint:
            changes["skipped"].append(type_id)
            continue
        holders = set(client.qualified_workers(type_id))
        for worker in sorted(banned - holders):
            client.grant_qualification(type_id, worker, 1)
            changes["blocked"].append(worker)
        for worker in sorted((holders & known) - banned):
            client.revoke_qualification(type_id, worker, gettext(
                "Your block on this work was lifted; you can take its HITs again."))
            changes["unblocked"].append(worker)
        if last is None:
            last = MTurkQualificationSync(workforce_id=workforce_id, qualification_type_id=type_id)
            session.add(last)
        last.fingerprint, last.synced_at = fingerprint, utcnow()
        session.flush()
    if changes["blocked"] or changes["unblocked"]:
        record(session, actor, "mturk.qualification.sync", "workforce", workforce_id,
               after={"blocked": changes["blocked"], "unblocked": changes["unblocked"]})
    return changes


def sync_changed_block_qualifications(session: Session, client: MTurk) -> dict[str, Any]:
    """Sync the block qualification of every MTurk workforce whose workers or blocks changed."""
    # Run by the poll job: blocks change in quality rounds and when a manager lifts one,
    # and reach MTurk within one poll period. One workforce's MTurk trouble is logged and
    # left for the next poll (its fingerprint is not stored, so it is tried again).
    outcome: dict[str, Any] = {"blocked": 0, "unblocked": 0, "errors": []}
    workforce_ids = sorted(set(session.scalars(
        select(MTurkSettings.workforce_id).where(MTurkSettings.block_qualification_type_id.is_not(None)))))
    for workforce_id in workforce_ids:
        try:
            changes = sync_block_qualification(session, Actor.system(), workforce_id, client,
                                               only_if_changed=True)
        except MTurkError as exc:
            log.warning("block qualification sync of workforce %s failed: %s", workforce_id, exc)
            outcome["errors"].append(f"workforce {workforce_id}: {exc.code}")
            continue
        outcome["blocked"] += len(changes["blocked"])
        outcome["unblocked"] += len(changes["unblocked"])
    return outcome
