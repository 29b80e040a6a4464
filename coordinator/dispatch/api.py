"""HTTP endpoints for managers: dispatch, progress, pause and resume, routing explanations."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from coordinator import db
from coordinator.api import PAGINATE, page_window
from coordinator.auth import MANAGERS, READERS, current_actor, requires
from coordinator.dispatch import reasons, services
from coordinator.dispatch.models import ASSIGNMENT_STATES
from coordinator.dispatch.schemas import (
    AssignmentOut,
    DecisionOut,
    DispatchIn,
    DispatchOut,
    ProjectProgressOut,
    ReviewIn,
)
from coordinator.jobs import enqueue
from coordinator.localisation import reader_locale
from coordinator.projects.schemas import ProjectOut
from coordinator.projects.services import get_project
from i18n.formatting import format_money

blp = Blueprint("dispatch", __name__, url_prefix="",
                description="Route tasks to workforces, follow their progress, review work.")

PROJECT = "/projects/<int:project_id>"


@blp.route(PROJECT + "/dispatch", methods=["POST"])
@requires(*MANAGERS)
@blp.arguments(DispatchIn)
@blp.response(200, DispatchOut)
def dispatch(task_filter: dict[str, Any], project_id: int) -> Any:
    """Give each selected task the assignments it still needs, by the routing policy."""
    rates = services.reference_rates(current_app.config["EXCHANGE_RATES"])
    result = services.dispatch(db.session(), current_actor(), project_id, task_filter, rates=rates)
    db.session().commit()
    enqueue("deliver_webhooks")  # tell the vendors now, not at the next sweep
    run = result.run
    return {
        "run_id": run.id, "tasks_considered": run.tasks_considered,
        "assignments_created": run.assignments_created,
        "by_workforce": {str(k): v for k, v in result.by_workforce.items()},
        "unroutable": run.unroutable, "unroutable_tasks": result.unroutable,
        "guideline_version_id": run.guideline_version_id,
    }


def _pause(project_id: int, paused: bool) -> Any:
    project = services.set_paused(db.session(), current_actor(), project_id, paused)
    db.session().commit()
    return project


@blp.route(PROJECT + "/pause", methods=["POST"])
@requires(*MANAGERS)
@blp.response(200, ProjectOut)
def pause(project_id: int) -> Any:
    """Stop dispatching and leasing a project's work; leases already held run on."""
    return _pause(project_id, True)


@blp.route(PROJECT + "/resume", methods=["POST"])
@requires(*MANAGERS)
@blp.response(200, ProjectOut)
def resume(project_id: int) -> Any:
    """Let a paused project's work be dispatched and leased again."""
    return _pause(project_id, False)


@blp.route(PROJECT + "/progress", methods=["GET"])
@requires(*READERS)
@blp.response(200, ProjectProgressOut)
def progress(project_id: int) -> Any:
    """Show per workforce: offered, leased, submitted, overdue, and cost so far."""
    session = db.session()
    project = get_project(session, project_id)
    locale = reader_locale()
    rows, totals = [], defaultdict(Decimal)
    for entry in services.progress(session, project_id):
        rows.append({
            "workforce_id": entry.workforce.id, "name": entry.workforce.name,
            **{state: entry.counts.get(state, 0) for state in ASSIGNMENT_STATES},
            "overdue": entry.overdue, "cost": entry.cost, "currency": entry.currency,
            "cost_display": format_money(entry.cost, entry.currency, locale),
        })
        totals[entry.currency] += entry.cost
    return {"paused": project.paused, "workforces": rows,
            "cost_by_currency": {c: format_money(v, c, locale) for c, v in sorted(totals.items())}}


@blp.route(PROJECT + "/tasks/<int:task_id>/routing", methods=["GET"])
@requires(*READERS)
@blp.response(200, DecisionOut(many=True))
def routing(project_id: int, task_id: int) -> Any:
    """Explain every routing decision for a task: who got it, and why the others did not."""
    decisions = services.explain(db.session(), project_id, task_id)
    for decision in decisions:
        chosen_scores = [c["score"] for c in decision["candidates"] if c["chosen"] and c["score"]]
        best = min(chosen_scores, default=None)
        for candidate in decision["candidates"]:
            candidate["reasons"] = reasons.describe_candidate(candidate, best)
    return decisions


class AssignmentQuery(Schema):
    status = fields.String(validate=validate.OneOf(ASSIGNMENT_STATES))


@blp.route(PROJECT + "/assignments", methods=["GET"])
@requires(*READERS)
@blp.arguments(AssignmentQuery, location="query")
@blp.response(200, AssignmentOut(many=True))
@blp.paginate(**PAGINATE)
def assignments(query: dict[str, Any], project_id: int, pagination_parameters: Any) -> Any:
    """List a project's assignments, oldest first, optionally in one state."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.list_assignments(
        db.session(), project_id=project_id, status=query.get("status"), offset=offset, limit=limit)
    return items


@blp.route("/assignments/<int:assignment_id>/review", methods=["POST"])
@requires(*MANAGERS)
@blp.arguments(ReviewIn)
@blp.response(200, AssignmentOut)
def review(values: dict[str, Any], assignment_id: int) -> Any:
    """Accept or reject submitted work; a rejection carries a reason the vendor sees."""
    assignment = services.review(db.session(), current_actor(), assignment_id,
                                 accept=values["decision"] == "accept", reason=values["reason"])
    db.session().commit()
    return assignment
