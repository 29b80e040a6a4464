"""HTTP endpoints for vendors: lease work, submit labels, see their own assignments."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_babel import gettext
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from coordinator import db
from coordinator.api import PAGINATE, page_window
from coordinator.auth import current_actor, current_principal, requires
from coordinator.dispatch import services as dispatch
from coordinator.dispatch.models import ASSIGNMENT_STATES
from coordinator.dispatch.schemas import LeaseIn, LeasesOut, VendorAssignmentOut
from coordinator.errors import InvalidInput
from coordinator.guidelines import services as guidelines
from coordinator.guidelines.models import GuidelineVersion
from coordinator.labels import services
from coordinator.labels.parsing import parse_submission
from coordinator.labels.schemas import SubmitIn, SubmitOut
from coordinator.projects.models import Project, Task
from coordinator.workforces.models import Workforce
from i18n.formatting import format_deadline
from i18n.locales import InvalidLocale, normalise_locale

blp = Blueprint("vendor", __name__, url_prefix="/vendor",
                description="For vendors: lease work, submit labels, follow your assignments.")

IDEMPOTENCY_HEADER = "Idempotency-Key"


def vendor_locale(workforce: Workforce) -> str:
    """Return the locale to serve guidelines in: the account's, the request's, the workforce's."""
    principal = current_principal()
    candidates = [principal.locale] + [tag for tag, _ in request.accept_languages]
    for candidate in candidates:
        if candidate and candidate != "*":
            try:
                return normalise_locale(candidate)
            except InvalidLocale:
                continue
    return workforce.languages[0]


@blp.route("/leases", methods=["POST"])
@requires("vendor")
@blp.arguments(LeaseIn)
@blp.response(200, LeasesOut)
def lease(values: dict[str, Any]) -> Any:
    """Lease the next N assignments, each with its task and the guideline in your locale."""
    session = db.session()
    workforce = session.get(Workforce, current_principal().workforce_id)
    leased = dispatch.lease(session, workforce.id, values["limit"], actor=current_actor())
    locale = vendor_locale(workforce)
    tasks = {t.id: t for t in session.scalars(
        select(Task).where(Task.id.in_({a.task_id for a in leased})))}
    projects = {p.id: p for p in session.scalars(
        select(Project).where(Project.id.in_({a.project_id for a in leased})))}
    shown: dict[str, Any] = {}
    leases = []
    for assignment in leased:
        key = f"{assignment.project_id}:{assignment.guideline_version_id}"
        if key not in shown:
            version = session.get(GuidelineVersion, assignment.guideline_version_id)
            seen = guidelines.render(session, assignment.project_id, version.number, locale)
            shown[key] = {"project_id": assignment.project_id, "version": version.number,
                          "title": version.title, "served_locale": seen.served_locale,
                          "fallback": seen.fallback, "direction": seen.direction, "html": seen.html}
        assignment.guideline_locale = shown[key]["served_locale"]
        task = tasks[assignment.task_id]
        leases.append({
            "assignment_id": assignment.id, "project_id": assignment.project_id,
            "task": {"external_id": task.external_id, "payload": task.payload,
                     "languages": task.languages},
            "lease_expires_at": assignment.lease_expires_at,
            "lease_expires_local": format_deadline(assignment.lease_expires_at, workforce.timezone,
                                                   locale),
            "label_classes": projects[assignment.project_id].label_classes, "guideline": key,
        })
    session.commit()
    return {"leases": leases, "guidelines": shown}


@blp.route("/labels", methods=["POST"])
@requires("vendor")
@blp.response(200, SubmitOut)
@blp.doc(requestBody={"required": True, "content": {"application/json": {"schema": SubmitIn}}})
@blp.doc(parameters=[{"in": "header", "name": IDEMPOTENCY_HEADER, "required": True,
                      "schema": {"type": "string", "maxLength": 200},
                      "description": "unique per batch; a retry with the same key and body "
                      "returns the first answer and creates nothing"}])
def submit() -> Any:
    """Submit up to 5,000 labels; good ones are stored, bad ones reported by index."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if not 1 <= len(key) <= 200:
        raise InvalidInput(gettext("Send an Idempotency-Key header of 1 to 200 characters."),
                           errors={IDEMPOTENCY_HEADER: [gettext("Missing or too long.")]})
    items = parse_submission(request.get_json())
    outcome = services.submit(db.session(), current_actor(), current_principal().workforce_id,
                              key, items)
    db.session().commit()
    # The response is already in SubmitOut's shape; dumping 5,000 results again costs more
    # than storing them.
    response = jsonify(outcome.response)
    response.headers["Idempotent-Replayed"] = "true" if outcome.replayed else "false"
    return response


class VendorAssignmentQuery(Schema):
    status = fields.String(validate=validate.OneOf(ASSIGNMENT_STATES))


@blp.route("/assignments", methods=["GET"])
@requires("vendor")
@blp.arguments(VendorAssignmentQuery, location="query")
@blp.response(200, VendorAssignmentOut(many=True))
@blp.paginate(**PAGINATE)
def assignments(query: dict[str, Any], pagination_parameters: Any) -> Any:
    """List your workforce's assignments, oldest first, optionally in one state."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = dispatch.list_assignments(
        db.session(), workforce_id=current_principal().workforce_id, status=query.get("status"),
        offset=offset, limit=limit)
    return items
