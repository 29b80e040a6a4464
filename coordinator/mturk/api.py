"""HTTP endpoints for managers: MTurk settings, publishing HITs, bonuses, reconciliation."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from coordinator import db
from coordinator.api import Augmented
from coordinator.auth import MANAGERS, READERS, current_actor, requires
from coordinator.mturk import services
from coordinator.mturk.schemas import (
    BonusIn,
    BonusOut,
    CleanupOut,
    HitOut,
    PublishIn,
    PublishOut,
    QualificationSyncOut,
    ReconcileOut,
    SettingsIn,
    SettingsOut,
)
from coordinator.workforces.models import Workforce
from integrations.mturk.client import MTurkError

blp = Blueprint("mturk", __name__, url_prefix="",
                description="Mechanical Turk: HIT settings, publishing, bonuses, cleanup, "
                            "reconciliation, the block qualification.")

SETTINGS = "/projects/<int:project_id>/mturk/<int:workforce_id>"


def _out(settings: Any) -> Any:
    workforce = db.session().get(Workforce, settings.workforce_id)
    params = services.hit_type_params(settings, workforce)
    return Augmented(settings, qualification_requirements=params["QualificationRequirements"])


@blp.route(SETTINGS, methods=["PUT"])
@requires(*MANAGERS)
@blp.arguments(SettingsIn)
@blp.response(200, SettingsOut)
def put_settings(values: dict[str, Any], project_id: int, workforce_id: int) -> Any:
    """Set how a project's work is offered on an MTurk workforce."""
    settings = services.configure(db.session(), current_actor(), project_id, workforce_id, values)
    db.session().commit()
    return _out(settings)


@blp.route(SETTINGS, methods=["GET"])
@requires(*READERS)
@blp.response(200, SettingsOut)
def get_settings(project_id: int, workforce_id: int) -> Any:
    """Show a project's MTurk settings and the qualification requirements they send."""
    return _out(services.get_settings(db.session(), project_id, workforce_id))


@blp.route(SETTINGS + "/publish", methods=["POST"])
@requires(*MANAGERS)
@blp.arguments(PublishIn)
@blp.response(200, PublishOut)
def publish(values: dict[str, Any], project_id: int, workforce_id: int) -> Any:
    """Create HITs for the project's offered MTurk assignments, if the balance covers them."""
    config = current_app.config
    page = services.worker_page_url(config["MTURK_WORKER_PAGE_URL"],
                                    production=config["MTURK_PRODUCTION"] and not config["MTURK_SANDBOX"])
    result = services.publish(db.session(), current_actor(), services.client_for_app(), project_id,
                              workforce_id, page_url=page, limit=values.get("limit"))
    db.session().commit()  # what was created stays recorded even when the batch stopped
    return {"created": [hit.hit_id for hit in result.created], "adopted": result.adopted,
            "planned": result.planned, "cost": result.cost, "failure": result.failure}


@blp.route("/mturk/assignments/<string:mturk_assignment_id>/bonus", methods=["POST"])
@requires(*MANAGERS)
@blp.arguments(BonusIn)
@blp.response(200, BonusOut)
def bonus(values: dict[str, Any], mturk_assignment_id: str) -> Any:
    """Pay a worker a bonus once; a retry with the same key finds the first payment."""
    session = db.session()
    bonus = services.request_bonus(session, current_actor(), mturk_assignment_id, **values)
    session.commit()  # the intent and its token are on disk before MTurk is asked to pay
    paid = services.pay_bonus(session, current_actor(), services.client_for_app(), bonus)
    session.commit()
    return paid


@blp.route("/mturk/reconcile", methods=["GET"])
@requires(*READERS)
@blp.response(200, ReconcileOut)
def reconcile() -> Any:
    """List HITs on MTurk we do not know, and ours that MTurk no longer has live."""
    try:
        return services.reconcile(db.session(), services.client_for_app())
    except MTurkError as exc:
        raise services.refused(exc) from None  # 409 refused, 502 still failing after retries


@blp.route("/mturk/cleanup", methods=["POST"])
@requires(*MANAGERS)
@blp.response(200, CleanupOut)
def cleanup() -> Any:
    """Expire HITs whose work was all cancelled, and delete finished or expired ones."""
    done = services.cleanup(db.session(), current_actor(), services.client_for_app())
    db.session().commit()  # what MTurk did is recorded even when some HITs were kept
    return done


@blp.route("/mturk/workforces/<int:workforce_id>/block-qualification/sync", methods=["POST"])
@requires(*MANAGERS)
@blp.response(200, QualificationSyncOut)
def sync_qualification(workforce_id: int) -> Any:
    """Give the block qualification to blocked workers and take it from those whose block was lifted."""
    try:
        changes = services.sync_block_qualification(db.session(), current_actor(), workforce_id,
                                                    services.client_for_app())
    except MTurkError as exc:
        raise services.refused(exc) from None  # a rerun compares with MTurk's holders again
    db.session().commit()
    return changes


@blp.route("/mturk/hits/<string:hit_id>", methods=["GET"])
@requires(*READERS)
@blp.response(200, HitOut)
def hit(hit_id: str) -> Any:
    """Show one of our HITs with its MTurk assignments, answers not counted and discrepancies."""
    session = db.session()
    found = services.get_hit(session, hit_id)
    assignments = services.hit_assignments(session, found)
    return Augmented(found, assignments=assignments,
                     discrepancies=sum(1 for a in assignments if a.answer_label is not None))
