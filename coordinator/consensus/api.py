"""HTTP endpoints for consensus runs, their results per task and worker, and agreement."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from coordinator import db
from coordinator.api import PAGINATE, Augmented, page_window
from coordinator.auth import MANAGERS, READERS, current_actor, requires
from coordinator.consensus import services
from coordinator.consensus.schemas import (
    AgreementOut,
    AgreementQuery,
    ConsensusIn,
    ConsensusRunCreatedOut,
    ConsensusRunOut,
    TaskConsensusOut,
    WorkerSkillOut,
)

blp = Blueprint("consensus", __name__, url_prefix="",
                description="Consensus runs over counted labels, worker skills and agreement.")

PROJECT = "/projects/<int:project_id>"
RUN = PROJECT + "/consensus/<int:run_id>"


@blp.route(PROJECT + "/consensus", methods=["POST"])
@requires(*MANAGERS)
@blp.arguments(ConsensusIn)
@blp.response(201, ConsensusRunCreatedOut)
@blp.alt_response(200, schema=ConsensusRunCreatedOut,
                  description="A run with the same method, options and inputs was stored "
                              "already; it is returned, nothing is recomputed.")
def run(values: dict[str, Any], project_id: int) -> Any:
    """Aggregate the project's counted labels into one label per task, and store the run."""
    method = values.pop("method")
    outcome = services.run_consensus(db.session(), current_actor(), project_id, method, values)
    db.session().commit()
    body = Augmented(outcome.run, reused=outcome.reused)
    return (body, 200) if outcome.reused else body


@blp.route(PROJECT + "/consensus", methods=["GET"])
@requires(*READERS)
@blp.response(200, ConsensusRunOut(many=True))
@blp.paginate(**PAGINATE)
def runs(project_id: int, pagination_parameters: Any) -> Any:
    """List the project's consensus runs, newest first."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.list_runs(
        db.session(), project_id, offset=offset, limit=limit)
    return items


@blp.route(RUN, methods=["GET"])
@requires(*READERS)
@blp.response(200, ConsensusRunOut)
def show(project_id: int, run_id: int) -> Any:
    """Show one run."""
    return services.get_run(db.session(), project_id, run_id)


@blp.route(RUN + "/tasks", methods=["GET"])
@requires(*READERS)
@blp.response(200, TaskConsensusOut(many=True))
@blp.paginate(**PAGINATE)
def tasks(project_id: int, run_id: int, pagination_parameters: Any) -> Any:
    """List a run's label, confidence and posteriors per task, in task order."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.task_results(
        db.session(), project_id, run_id, offset=offset, limit=limit)
    return items


@blp.route(RUN + "/workers", methods=["GET"])
@requires(*READERS)
@blp.response(200, WorkerSkillOut(many=True))
@blp.paginate(**PAGINATE)
def workers(project_id: int, run_id: int, pagination_parameters: Any) -> Any:
    """List a run's skill, confusion matrix and gold accuracy per worker."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.worker_results(
        db.session(), project_id, run_id, offset=offset, limit=limit)
    return items


@blp.route(PROJECT + "/agreement", methods=["GET"])
@requires(*READERS)
@blp.arguments(AgreementQuery, location="query")
@blp.response(200, AgreementOut)
def agreement(query: dict[str, Any], project_id: int) -> Any:
    """Krippendorff's alpha, Fleiss' and Cohen's kappa and accuracies, overall or per group."""
    return services.agreement(db.session(), project_id, run_id=query.get("run_id"),
                              by=query["by"])
