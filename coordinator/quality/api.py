"""HTTP endpoints for quality: rounds, worker blocks, review items and final labels.

Managers run rounds, lift blocks and read the queue; vendors see their blocked workers, and
the review workforce leases review items and sends verdicts.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from coordinator import db
from coordinator.api import PAGINATE, page_window
from coordinator.auth import MANAGERS, READERS, current_actor, current_principal, requires
from coordinator.dispatch.services import reference_rates
from coordinator.guidelines import services as guidelines
from coordinator.guidelines.services import latest_published
from coordinator.jobs import enqueue
from coordinator.labels.api import vendor_locale
from coordinator.quality import services
from coordinator.quality.schemas import (
    BlockQuery,
    FinalLabelOut,
    FinalLabelQuery,
    LiftIn,
    ReviewItemOut,
    ReviewLeaseIn,
    ReviewLeasesOut,
    ReviewQuery,
    RoundIn,
    RoundOut,
    VendorBlockOut,
    VerdictsIn,
    VerdictsOut,
    WorkerBlockOut,
)
from coordinator.workforces.models import Workforce

blp = Blueprint("quality", __name__, url_prefix="/projects",
                description="Quality rounds after consensus: gold accuracy and worker blocks, "
                            "review items and verdicts, dynamic overlap.")
vendor_blp = Blueprint("vendor_quality", __name__, url_prefix="/vendor",
                       description="For vendors: your blocked workers; for review workforces, "
                                   "review items and verdicts.")

PROJECT = "/<int:project_id>/quality"


@blp.route(PROJECT + "/rounds", methods=["POST"])
@requires(*MANAGERS)
@blp.arguments(RoundIn)
@blp.response(200, RoundOut)
def run_round(values: dict[str, Any], project_id: int) -> Any:
    """After a consensus run: block workers below the gold floor, open reviews, adjust overlap."""
    session = db.session()
    outcome = services.quality_round(
        session, current_actor(), project_id, values.get("run_id"),
        rates=reference_rates(current_app.config["EXCHANGE_RATES"]))
    session.commit()
    enqueue("deliver_webhooks")  # worker.blocked and work.available: tell the vendors now
    return {"project_id": outcome.project_id, "run_id": outcome.run_id,
            "blocked": [b.id for b in outcome.blocked], "review_opened": outcome.review_opened,
            "extra_assignments": outcome.extra_assignments,
            "extra_skipped": outcome.extra_skipped,
            "dispatch_run_id": outcome.dispatch_run_id, "cancelled": outcome.cancelled,
            "stopped": len(outcome.plan.stop), "waiting": len(outcome.plan.waiting),
            "to_review": len(outcome.plan.review)}


@blp.route(PROJECT + "/blocks", methods=["GET"])
@requires(*READERS)
@blp.arguments(BlockQuery, location="query")
@blp.response(200, WorkerBlockOut(many=True))
@blp.paginate(**PAGINATE)
def blocks(query: dict[str, Any], project_id: int, pagination_parameters: Any) -> Any:
    """List the project's worker blocks with their evidence, oldest first."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.list_blocks(
        db.session(), project_id=project_id, active=query.get("active"), offset=offset, limit=limit)
    return items


@blp.route(PROJECT + "/blocks/<int:block_id>/lift", methods=["POST"])
@requires(*MANAGERS)
@blp.arguments(LiftIn)
@blp.response(200, WorkerBlockOut)
def lift(values: dict[str, Any], project_id: int, block_id: int) -> Any:
    """Lift a block, saying why; the worker may take new work again."""
    session = db.session()
    block = services.lift_block(session, current_actor(), project_id, block_id, values["reason"])
    session.commit()
    enqueue("deliver_webhooks")  # worker.unblocked
    items, _ = services.list_blocks(session, project_id=project_id, block_id=block.id,
                                    offset=0, limit=1)
    return items[0]


@blp.route(PROJECT + "/reviews", methods=["GET"])
@requires(*READERS)
@blp.arguments(ReviewQuery, location="query")
@blp.response(200, ReviewItemOut(many=True))
@blp.paginate(**PAGINATE)
def reviews(query: dict[str, Any], project_id: int, pagination_parameters: Any) -> Any:
    """List the project's review items, oldest first, with their verdicts."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.list_reviews(
        db.session(), project_id, status=query.get("status"), offset=offset, limit=limit)
    return items


@blp.route(PROJECT + "/final-labels", methods=["GET"])
@requires(*READERS)
@blp.arguments(FinalLabelQuery, location="query")
@blp.response(200, FinalLabelOut(many=True))
@blp.paginate(**PAGINATE)
def final_labels(query: dict[str, Any], project_id: int, pagination_parameters: Any) -> Any:
    """Each task's final label: a review verdict wins over the run's consensus, and says so."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.final_labels(
        db.session(), project_id, query.get("run_id"), offset=offset, limit=limit)
    return items


@vendor_blp.route("/blocks", methods=["GET"])
@requires("vendor")
@vendor_blp.arguments(BlockQuery, location="query")
@vendor_blp.response(200, VendorBlockOut(many=True))
@vendor_blp.paginate(**PAGINATE)
def vendor_blocks(query: dict[str, Any], pagination_parameters: Any) -> Any:
    """List your workers blocked on projects; labels for work leased since are refused."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.list_blocks(
        db.session(), workforce_id=current_principal().workforce_id, active=query.get("active"),
        offset=offset, limit=limit)
    return items


@vendor_blp.route("/reviews/leases", methods=["POST"])
@requires("vendor")
@vendor_blp.arguments(ReviewLeaseIn)
@vendor_blp.response(200, ReviewLeasesOut)
def lease_reviews(values: dict[str, Any]) -> Any:
    """Lease the next review items of projects your workforce reviews, with the guideline."""
    session = db.session()
    workforce = session.get(Workforce, current_principal().workforce_id)
    leased = services.lease_reviews(session, workforce.id, values["limit"],
                                    actor=current_actor())
    locale = vendor_locale(workforce)
    shown: dict[int, Any] = {}
    items = []
    for item, task, project in leased:
        if project.id not in shown:
            version = latest_published(session, project.id)
            seen = version and guidelines.render(session, project.id, version.number, locale)
            shown[project.id] = None if version is None else {
                "version": version.number, "title": version.title,
                "served_locale": seen.served_locale, "direction": seen.direction, "html": seen.html}
        # What a labeller sees, no more: not the reason, the gold answer or the crowd's labels.
        items.append({"review_id": item.id, "project_id": project.id,
                      "task": {"external_id": task.external_id, "payload": task.payload,
                               "languages": task.languages},
                      "label_classes": project.label_classes,
                      "lease_expires_at": item.lease_expires_at, "guideline": shown[project.id]})
    session.commit()
    return {"items": items}


@vendor_blp.route("/reviews/verdicts", methods=["POST"])
@requires("vendor")
@vendor_blp.arguments(VerdictsIn)
@vendor_blp.response(200, VerdictsOut)
def submit_verdicts(values: dict[str, Any]) -> Any:
    """Send verdicts on leased review items; each is final; a retry answers unchanged."""
    session = db.session()
    outcome = services.submit_verdicts(
        session, current_actor(), current_principal().workforce_id,
        [services.VerdictIn(**v) for v in values["verdicts"]])
    session.commit()
    return outcome
