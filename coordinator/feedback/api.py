"""HTTP endpoints for training runs, their predictions, flags and agreement with the model."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from coordinator import db, jobs
from coordinator.api import PAGINATE, Augmented, page_window
from coordinator.auth import MANAGERS, READERS, current_actor, requires
from coordinator.feedback import services
from coordinator.feedback.schemas import (
    AgreementQuery,
    FlagOut,
    ModelAgreementOut,
    PredictionImportCreatedOut,
    PredictionImportOut,
    PredictionsIn,
    TrainingRunIn,
    TrainingRunOut,
)

blp = Blueprint("feedback", __name__, url_prefix="",
                description="Training runs on consensus labels and the model's feedback.")

PROJECT = "/projects/<int:project_id>"
RUN = PROJECT + "/training-runs/<int:training_run_id>"
IMPORT = PROJECT + "/prediction-imports/<int:import_id>"


def export_root() -> str:
    """Return the configured export location, by default ``instance/exports``."""
    from pathlib import Path

    return current_app.config.get("EXPORT_LOCATION") or str(
        Path(current_app.instance_path) / "exports")


@blp.route(PROJECT + "/training-runs", methods=["POST"])
@requires(*MANAGERS)
@blp.arguments(TrainingRunIn)
@blp.response(202, TrainingRunOut)
def start(values: dict[str, Any], project_id: int) -> Any:
    """Export a consensus run and queue the training job on it (the `training` queue)."""
    run_id = values.pop("consensus_run_id", None)
    run = services.start_training_run(db.session(), current_actor(), project_id,
                                      export_root=export_root(), run_id=run_id, options=values)
    db.session().commit()
    jobs.enqueue("training.fit", training_run_id=run.id)
    return run


@blp.route(PROJECT + "/training-runs", methods=["GET"])
@requires(*READERS)
@blp.response(200, TrainingRunOut(many=True))
@blp.paginate(**PAGINATE)
def runs(project_id: int, pagination_parameters: Any) -> Any:
    """List the project's training runs, newest first."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.list_training_runs(
        db.session(), project_id, offset=offset, limit=limit)
    return items


@blp.route(RUN, methods=["GET"])
@requires(*READERS)
@blp.response(200, TrainingRunOut)
def show(project_id: int, training_run_id: int) -> Any:
    """Show one training run."""
    return services.get_training_run(db.session(), project_id, training_run_id)


@blp.route(RUN + "/retry", methods=["POST"])
@requires(*MANAGERS)
@blp.response(202, TrainingRunOut)
def retry(project_id: int, training_run_id: int) -> Any:
    """Queue a failed (or still queued) training run again, with its dataset and settings."""
    run = services.requeue_training_run(db.session(), current_actor(), project_id,
                                        training_run_id)
    db.session().commit()
    jobs.enqueue("training.fit", training_run_id=run.id)
    return run


@blp.route(RUN + "/predictions", methods=["POST"])
@requires(*MANAGERS)
@blp.arguments(PredictionsIn)
@blp.response(201, PredictionImportCreatedOut)
@blp.alt_response(200, schema=PredictionImportCreatedOut,
                  description="These predictions were imported before; that import is "
                              "returned and nothing is flagged again.")
def import_predictions(values: dict[str, Any], project_id: int, training_run_id: int) -> Any:
    """Import the run's predictions: flag confident disagreements and send them back."""
    outcome = services.import_predictions(
        db.session(), current_actor(), project_id, training_run_id=training_run_id,
        redispatch=values["redispatch"], extra_labels=values["extra_labels"])
    db.session().commit()
    body = Augmented(outcome.prediction_import, reused=outcome.reused)
    return (body, 200) if outcome.reused else body


@blp.route(PROJECT + "/prediction-imports", methods=["GET"])
@requires(*READERS)
@blp.response(200, PredictionImportOut(many=True))
def imports(project_id: int) -> Any:
    """List the project's predictions imports, newest first."""
    return services.list_imports(db.session(), project_id)


@blp.route(IMPORT + "/flags", methods=["GET"])
@requires(*READERS)
@blp.response(200, FlagOut(many=True))
@blp.paginate(**PAGINATE)
def flags(project_id: int, import_id: int, pagination_parameters: Any) -> Any:
    """List the items the model confidently disagrees with, in task order."""
    offset, limit = page_window(pagination_parameters)
    items, pagination_parameters.item_count = services.list_flags(
        db.session(), project_id, import_id, offset=offset, limit=limit)
    return items


@blp.route(IMPORT + "/agreement", methods=["GET"])
@requires(*READERS)
@blp.arguments(AgreementQuery, location="query")
@blp.response(200, ModelAgreementOut(many=True))
def agreement(query: dict[str, Any], project_id: int, import_id: int) -> Any:
    """Agreement with the model beside the Dawid-Skene skill, per worker or workforce."""
    return services.model_agreement(db.session(), project_id, import_id, by=query["by"])
