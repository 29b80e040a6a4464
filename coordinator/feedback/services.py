"""Feedback: export a consensus run, run the training job, import its predictions as flags.

1. :func:`export_dataset` writes a consensus run as a dataset (``training.dataset``'s
   format) to a folder or an S3 prefix.
2. :func:`start_training_run` exports and records a queued run. The ``training.fit`` job
   (on the ``training`` queue) then claims it (:func:`claim_training_run`), trains with no
   session open (:func:`train_claimed_run`: fetch the dataset, train, publish the outputs
   beside it) and records the outcome (:func:`finish_training_run`,
   :func:`fail_training_run`), committing between the steps. :func:`requeue_training_run`
   puts a failed run back in the queue.
3. :func:`import_predictions` reads the out-of-fold predictions back, flags the items where
   the model confidently disagrees with the consensus (confident learning: per class, the
   threshold is the mean predicted probability of the class over the items the consensus
   gives it; an item is flagged when the most probable class above its threshold is not its
   consensus label), records each worker's agreement with the model beside the skill the
   consensus run gave them, and sends the flagged items back to dispatch for more labels,
   away from the workforces that labelled them.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import traceback
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Any

import numpy as np
from flask_babel import gettext
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, record
from coordinator.consensus.models import ConsensusRun, TaskConsensus, WorkerSkill
from coordinator.consensus.services import get_run
from coordinator.db import utcnow
from coordinator.errors import Conflict, InvalidInput, NotFound
from coordinator.feedback.models import (
    ModelAgreement,
    PredictionFlag,
    PredictionImport,
    TrainingRun,
)
from coordinator.guidelines.models import GuidelineVersion
from coordinator.labels.models import Label
from coordinator.projects.models import Task
from coordinator.projects.services import get_project, get_project_row
from integrations.storage import StorageError, download, join, open_storage, upload
from training import dataset as datasets
from training import outputs

log = logging.getLogger(__name__)

#: Settings a training run may be given, with their defaults and allowed ranges.
TRAINING_OPTIONS: dict[str, tuple[Any, Any, Any]] = {
    "folds": (5, 2, 20), "epochs": (5, 1, 100), "seed": (0, 0, 2**31 - 1),
}
DEVICES = ("auto", "cpu", "cuda")
#: Extra labels asked for each flagged item, unless the caller says otherwise.
DEFAULT_EXTRA_LABELS = 2
#: Rows per IN (...) look-up.
CHUNK = 5000


@dataclass(frozen=True)
class Export:
    """A consensus run as a dataset: its manifest and compressed items, and where it went."""

    manifest: dict[str, Any]
    items_gz: bytes
    location: str | None = None


# --- export ----------------------------------------------------------------------------------


def _newest_run(session: Session, project_id: int) -> ConsensusRun:
    run = session.scalar(select(ConsensusRun).where(ConsensusRun.project_id == project_id)
                         .order_by(ConsensusRun.id.desc()).limit(1))
    if run is None:
        raise Conflict(gettext("Project %(id)s has no consensus run yet; run one first.",
                               id=project_id))
    return run


def _guideline_version(session: Session, project_id: int) -> int | None:
    return session.scalar(select(func.max(GuidelineVersion.number)).where(
        GuidelineVersion.project_id == project_id, GuidelineVersion.status == "published"))


def build_export(session: Session, project_id: int, run_id: int | None = None) -> Export:
    """Return the dataset of a consensus run (the newest by default), in task order.

    Raise NotFound for an unknown project or run, Conflict when the project has no run or
    the run has no tasks.
    """
    project = get_project(session, project_id)
    run = get_run(session, project.id, run_id) if run_id is not None else _newest_run(
        session, project.id)
    rows = session.execute(
        select(TaskConsensus.task_id, TaskConsensus.label, TaskConsensus.posteriors,
               Task.external_id, Task.payload, Task.gold)
        .join(Task, Task.id == TaskConsensus.task_id)
        .where(TaskConsensus.run_id == run.id).order_by(TaskConsensus.task_id)).all()
    if not rows:
        raise Conflict(gettext("Consensus run %(id)s has no tasks; there is nothing to export.",
                               id=run.id))
    classes = list(run.classes)
    items = []
    for task_id, label, posteriors, external_id, payload, gold in rows:
        items.append({
            "id": task_id, "external_id": external_id,
            "text": datasets.item_text(payload or {}),
            "features": datasets.item_features(payload or {}),
            "label": label, "posterior": [float(p) for p in posteriors],
            "gold": gold if gold in classes else None,
            "split": datasets.split_of(project.id, task_id)})
    raw = datasets.encode_items(items)
    manifest = datasets.build_manifest(
        project_id=project.id, project_name=project.name, consensus_run_id=run.id,
        guideline_version=_guideline_version(session, project.id), classes=classes,
        items=items, content_hash=hashlib.sha256(raw).hexdigest(),
        created_at=utcnow().astimezone(timezone.utc).isoformat())
    return Export(manifest, datasets.compress(raw))


def export_dataset(session: Session, actor: Actor, project_id: int, location: str,
                   run_id: int | None = None) -> Export:
    """Write a consensus run as a dataset to ``location`` (a folder or s3:// prefix).

    The items go first and the manifest last, so a reader never finds a manifest whose items
    are not there yet. Raise InvalidInput for a location that cannot be written.
    """
    return _write_export(session, actor, build_export(session, project_id, run_id), location)


def _write_export(session: Session, actor: Actor, export: Export, location: str) -> Export:
    try:
        storage = open_storage(location)
        storage.write_bytes(datasets.ITEMS, export.items_gz)
        storage.write_bytes(datasets.MANIFEST, _json_bytes(export.manifest))
    except StorageError as exc:
        raise InvalidInput(errors={"location": [gettext(
            "The dataset cannot be written there: %(reason)s", reason=str(exc))]}) from None
    record(session, actor, "dataset.export", "consensus_run", export.manifest["consensus_run_id"],
           after={"location": storage.uri, "content_hash": export.manifest["content_hash"],
                  "counts": export.manifest["counts"]})
    return Export(export.manifest, export.items_gz, storage.uri)


def _json_bytes(document: Any) -> bytes:
    import json

    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# --- training runs ---------------------------------------------------------------------------


def training_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Return the run's settings with defaults written out; raise InvalidInput naming a bad one."""
    given = {key: value for key, value in (options or {}).items() if value is not None}
    errors: dict[str, list[str]] = {}
    for key in given:
        if key not in TRAINING_OPTIONS and key != "device":
            errors[key] = [gettext("Unknown training option %(option)s.", option=key)]
    merged: dict[str, Any] = {}
    for key, (default, low, high) in TRAINING_OPTIONS.items():
        value = given.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[key] = [gettext("Give a whole number from %(low)s to %(high)s.",
                                   low=low, high=high)]
        merged[key] = value
    device = given.get("device", "auto")
    if device not in DEVICES:
        errors["device"] = [gettext("Use one of %(devices)s.", devices=", ".join(DEVICES))]
    merged["device"] = device
    if errors:
        raise InvalidInput(errors=errors)
    return merged


def default_location(export_root: str, project_id: int, consensus_run_id: int,
                     content_hash: str) -> str:
    """Return where a run's dataset goes under the configured export root."""
    return join(export_root, f"project-{project_id}",
                f"run-{consensus_run_id}-{content_hash[:12]}")


def start_training_run(session: Session, actor: Actor, project_id: int, *, export_root: str,
                       run_id: int | None = None, location: str | None = None,
                       options: dict[str, Any] | None = None) -> TrainingRun:
    """Export a consensus run and record a queued training run on it; the caller enqueues it.

    The dataset goes to ``location``, by default a folder named after the run and its content
    hash under ``export_root``.
    """
    options = training_options(options)
    export = build_export(session, project_id, run_id)
    manifest = export.manifest
    target = location or default_location(export_root, project_id,
                                          manifest["consensus_run_id"], manifest["content_hash"])
    export = _write_export(session, actor, export, target)
    run = TrainingRun(
        project_id=project_id, consensus_run_id=manifest["consensus_run_id"], status="queued",
        options=options, dataset_uri=export.location, dataset_hash=manifest["content_hash"],
        guideline_version=manifest["guideline_version"], items=manifest["counts"]["items"],
        created_by_id=actor.account_id)
    session.add(run)
    session.flush()
    record(session, actor, "training.start", "training_run", run.id, after={
        "project_id": project_id, "consensus_run_id": run.consensus_run_id,
        "dataset_uri": run.dataset_uri, "dataset_hash": run.dataset_hash, "options": options})
    return run


def get_training_run(session: Session, project_id: int, training_run_id: int) -> TrainingRun:
    """Return the project's training run, or raise NotFound."""
    return get_project_row(session, TrainingRun, project_id, training_run_id, lambda: gettext(
        "Project %(project)s has no training run %(id)s.", project=project_id,
        id=training_run_id))


def list_training_runs(session: Session, project_id: int, *, offset: int, limit: int
                       ) -> tuple[list[TrainingRun], int]:
    """Return one page of the project's training runs, newest first, and the total."""
    get_project(session, project_id)
    where = TrainingRun.project_id == project_id
    total = session.scalar(select(func.count()).select_from(TrainingRun).where(where)) or 0
    page = session.scalars(select(TrainingRun).where(where).order_by(TrainingRun.id.desc())
                           .offset(offset).limit(limit))
    return list(page), total


@dataclass(frozen=True)
class TrainingPlan:
    """What training needs of a claimed run, copied out so no session is needed to train."""

    training_run_id: int
    dataset_uri: str
    dataset_hash: str
    options: dict[str, Any]

    @property
    def output_uri(self) -> str:
        """Where the run's outputs go: beside its dataset, named after the run."""
        return join(self.dataset_uri, "outputs", f"training-run-{self.training_run_id}")


def claim_training_run(session: Session, training_run_id: int) -> TrainingPlan | None:
    """Mark a queued run running and return what training it needs; None if it is not queued.

    One conditional UPDATE (queued -> running): of two workers handed the same run (a
    redelivered job), one claims it and the other gets None and trains nothing. The caller
    commits the claim before training, so others see the run running and no transaction
    stays open while it trains. Raise NotFound for an unknown run.
    """
    claimed = session.execute(
        update(TrainingRun).where(TrainingRun.id == training_run_id,
                                  TrainingRun.status == "queued")
        .values(status="running", started_at=utcnow(), finished_at=None, error=None)
        .execution_options(synchronize_session=False)).rowcount
    run = session.get(TrainingRun, training_run_id, populate_existing=True)
    if run is None:
        raise NotFound(gettext("There is no training run %(id)s.", id=training_run_id))
    if not claimed:
        return None
    record(session, Actor.system(), "training.claim", "training_run", run.id,
           before={"status": "queued"}, after={"status": "running"})
    return TrainingPlan(run.id, run.dataset_uri or "", run.dataset_hash, dict(run.options))


def training_run_status(session: Session, training_run_id: int) -> str:
    """Return a run's status; raise NotFound for an unknown run."""
    status = session.scalar(select(TrainingRun.status).where(TrainingRun.id == training_run_id))
    if status is None:
        raise NotFound(gettext("There is no training run %(id)s.", id=training_run_id))
    return status


def train_claimed_run(plan: TrainingPlan, *, progress: Any = None) -> dict[str, Any]:
    """Fetch a claimed run's dataset, train on it and publish the outputs; return their manifest.

    Opens no database session: it runs for minutes between the claim's transaction and the
    result's. The dataset's hash is checked against the run's before anything is trained.
    Raises what :data:`training_errors` names for a run that cannot be done (a bad or
    changed dataset, a missing device, unreadable storage), anything else for a crash.
    """
    from training.crossfit import Settings
    from training.job import train

    with tempfile.TemporaryDirectory(prefix="coordinator-training-") as scratch:
        local_dataset = download(open_storage(plan.dataset_uri), Path(scratch) / "data")
        settings = Settings(folds=plan.options["folds"], epochs=plan.options["epochs"],
                            seed=plan.options["seed"])
        manifest = train(local_dataset, Path(scratch) / "out",
                         device=plan.options.get("device", "auto"), settings=settings,
                         progress=progress, content_hash=plan.dataset_hash)
        upload(Path(scratch) / "out", open_storage(plan.output_uri))
    return manifest


def training_errors() -> tuple[type[Exception], ...]:
    """Return the errors that fail a run for a reason its owner can act on (not a crash)."""
    from training.crossfit import DeviceError
    from training.dataset import DatasetError

    return (DeviceError, DatasetError, StorageError, ValueError)


def finish_training_run(session: Session, training_run_id: int, manifest: dict[str, Any]
                        ) -> TrainingRun:
    """Record a claimed run's success from its outputs' manifest; raise NotFound if unknown."""
    run = session.get(TrainingRun, training_run_id)
    if run is None:
        raise NotFound(gettext("There is no training run %(id)s.", id=training_run_id))
    output_uri = join(run.dataset_uri or "", "outputs", f"training-run-{run.id}")
    _finish(run, manifest, output_uri)
    session.flush()
    record(session, Actor.system(), "training.finish", "training_run", run.id, after={
        "output_uri": output_uri, "device": run.device, "metrics": run.metrics})
    return run


def fail_training_run(session: Session, training_run_id: int, error: BaseException
                      ) -> TrainingRun:
    """Record a claimed run's failure: the message of a known error, else the traceback.

    A crash (anything :func:`training_errors` does not name) is logged with its traceback as
    well. Raise NotFound for an unknown run.
    """
    run = session.get(TrainingRun, training_run_id)
    if run is None:
        raise NotFound(gettext("There is no training run %(id)s.", id=training_run_id))
    if isinstance(error, training_errors()):
        message = str(error)[:4000]
    else:
        log.error("training run %s crashed", run.id, exc_info=error)
        message = "".join(traceback.format_exception(error, limit=5))[-4000:]
    run.status, run.error, run.finished_at = "failed", message, utcnow()
    session.flush()
    record(session, Actor.system(), "training.fail", "training_run", run.id,
           after={"error": run.error})
    return run


def requeue_training_run(session: Session, actor: Actor, project_id: int,
                         training_run_id: int) -> TrainingRun:
    """Put a failed run back in the queue to be trained again; a queued one stays as it is.

    The caller commits and enqueues it. Raise NotFound for an unknown run, Conflict for one
    that is running or succeeded.
    """
    run = get_training_run(session, project_id, training_run_id)
    if run.status == "queued":
        return run
    if run.status != "failed":
        raise Conflict(gettext("Training run %(id)s is %(status)s; only a failed or queued run "
                               "can be run again.", id=run.id, status=run.status))
    before = {"status": run.status, "error": run.error}
    run.status, run.error, run.started_at, run.finished_at = "queued", None, None, None
    session.flush()
    record(session, actor, "training.requeue", "training_run", run.id, before=before,
           after={"status": "queued"})
    return run


def _finish(run: TrainingRun, manifest: dict[str, Any], output_uri: str) -> None:
    details = manifest.get("run", {})
    run.status, run.finished_at, run.output_uri = "succeeded", utcnow(), output_uri
    run.device = f"{details.get('device')} ({details.get('device_name')})"[:200]
    run.metrics = {**manifest.get("metrics", {}),
                   "item_epochs_per_s": details.get("item_epochs_per_s"),
                   "timings": details.get("timings"), "amp_dtype": details.get("amp_dtype")}


# --- importing predictions -------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOutcome:
    """An import, and whether the same predictions had been imported before."""

    prediction_import: PredictionImport
    reused: bool


def _read_outputs(location: str) -> tuple[dict[str, Any], outputs.Predictions]:
    try:
        storage = open_storage(location)
        manifest = outputs.parse_manifest(storage.read_bytes(outputs.MANIFEST))
        # The fixed name: a manifest's "files" never chooses what is read.
        predictions = outputs.parse_predictions(storage.read_bytes(outputs.PREDICTIONS),
                                                manifest)
    except (StorageError, outputs.PredictionsError) as exc:
        raise InvalidInput(errors={"predictions": [gettext(
            "The predictions cannot be used: %(reason)s", reason=str(exc))]}) from None
    return manifest, predictions


def confident_flags(probabilities: np.ndarray, consensus: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the per-class thresholds, the flagged rows and each row's confident class.

    ``consensus`` holds class positions. A class's threshold is the mean probability the
    model gives it over the rows the consensus gives it (a class no row has can never be a
    confident class). A row's confident class is its most probable class among those at or
    above their thresholds (-1: none); the row is flagged when that class is not its
    consensus label.
    """
    K = probabilities.shape[1]
    thresholds = np.full(K, np.inf)
    for k in range(K):
        mine = consensus == k
        if mine.any():
            thresholds[k] = probabilities[mine, k].mean()
    above = probabilities >= thresholds
    masked = np.where(above, probabilities, -1.0)
    confident = masked.argmax(axis=1)
    confident[~above.any(axis=1)] = -1
    flagged = (confident >= 0) & (confident != consensus)
    return thresholds, flagged, confident


def import_predictions(session: Session, actor: Actor, project_id: int, *,
                       training_run_id: int | None = None, location: str | None = None,
                       redispatch: bool = True, extra_labels: int = DEFAULT_EXTRA_LABELS
                       ) -> ImportOutcome:
    """Import a training run's predictions: flag, record agreement, send flags back.

    The predictions come from ``location`` (a training output folder or s3:// prefix), by
    default the output of training run ``training_run_id``. Without a training run, one is
    recorded from the outputs' manifest (a job run by hand on another machine). Importing the
    same predictions again returns the first import and flags nothing again; with
    ``redispatch`` it sends that import's flags not sent yet (none, if they all went).

    Raise InvalidInput when the outputs cannot be read, belong to another project, do not
    have the consensus run's classes or name items outside it, or do not come from
    the training run's dataset; Conflict when the training run has no outputs yet.
    """
    project = get_project(session, project_id)
    if not 1 <= extra_labels <= 25 or isinstance(extra_labels, bool):
        raise InvalidInput(errors={"extra_labels": [gettext("Give a whole number from 1 to 25.")]})
    run = None
    if training_run_id is not None:
        run = get_training_run(session, project.id, training_run_id)
        if location is None:
            if run.status != "succeeded" or not run.output_uri:
                raise Conflict(gettext("Training run %(id)s has no predictions yet (it is "
                                       "%(status)s).", id=run.id, status=run.status))
            location = run.output_uri
    if not location:
        raise InvalidInput(errors={"location": [gettext(
            "Name a training run or the location of its outputs.")]})
    manifest, predictions = _read_outputs(location)
    owner = manifest["dataset"]["project"].get("id")
    if owner != project.id:
        raise InvalidInput(errors={"predictions": [gettext(
            "These predictions are for project %(other)s, not project %(id)s.",
            other=owner, id=project.id)]})
    if run is not None and manifest["dataset"].get("content_hash") != run.dataset_hash:
        raise InvalidInput(errors={"predictions": [gettext(
            "These predictions come from another dataset than training run %(id)s's.",
            id=run.id)]})
    consensus_run_id = manifest["dataset"].get("consensus_run_id")
    if not isinstance(consensus_run_id, int):
        raise InvalidInput(errors={"predictions": [gettext(
            "The predictions do not name their consensus run.")]})
    consensus = get_run(session, project.id, consensus_run_id)
    # The thresholds need a probability for every class the consensus can give, and a class
    # the consensus run does not have cannot be compared with it: the sets must be equal.
    if set(predictions.classes) != set(consensus.classes):
        raise InvalidInput(errors={"classes": [gettext(
            "The predictions' classes (%(given)s) are not those of consensus run %(run)s "
            "(%(classes)s).", given=", ".join(predictions.classes), run=consensus.id,
            classes=", ".join(consensus.classes))]})
    stored = session.scalar(select(PredictionImport).where(
        PredictionImport.project_id == project.id,
        PredictionImport.predictions_hash == predictions.content_hash))
    if stored is not None:
        if redispatch:  # flags an earlier import kept back (or failed to send) go now
            redispatch_flags(session, actor, project.id, stored.id)
        return ImportOutcome(stored, reused=True)
    labels = _consensus_of(session, consensus, predictions.ids)
    classes = list(consensus.classes)
    matrix = np.zeros((len(predictions.ids), len(classes)))
    for column, name in enumerate(predictions.classes):
        matrix[:, classes.index(name)] = predictions.probabilities[:, column]
    thresholds, flagged, confident = confident_flags(matrix, labels)
    outcome = PredictionImport(
        project_id=project.id, consensus_run_id=consensus.id,
        predictions_hash=predictions.content_hash,
        thresholds={c: (float(t) if np.isfinite(t) else None)
                    for c, t in zip(classes, thresholds, strict=True)},
        items=len(predictions.ids), flagged=int(flagged.sum()), extra_labels=extra_labels,
        created_by_id=actor.account_id)
    try:
        # A run recorded for outputs made elsewhere goes in the same savepoint as the
        # import, so losing the race below leaves no run without its import.
        with session.begin_nested():
            if run is None:
                run = _record_manual_run(session, actor, project.id, consensus.id, manifest,
                                         location)
            outcome.training_run_id = run.id
            session.add(outcome)
            session.flush()
    except IntegrityError:  # the same file, imported beside this request, won
        stored = session.scalar(select(PredictionImport).where(
            PredictionImport.project_id == project.id,
            PredictionImport.predictions_hash == predictions.content_hash))
        if stored is None:
            raise
        return ImportOutcome(stored, reused=True)
    rows = np.flatnonzero(flagged)
    flags = [{"import_id": outcome.id, "task_id": int(predictions.ids[i]),
              "consensus_label": classes[labels[i]],
              "predicted_label": classes[confident[i]],
              "predicted_probability": float(matrix[i, confident[i]]),
              "consensus_probability": float(matrix[i, labels[i]]),
              "redispatched": False} for i in rows]
    if flags:
        session.execute(insert(PredictionFlag.__table__), flags)
    agreement = _model_agreement_rows(session, project.id, consensus.id, predictions.ids,
                                      np.asarray(classes, dtype=object)[matrix.argmax(axis=1)])
    if agreement:
        session.execute(insert(ModelAgreement.__table__),
                        [{"import_id": outcome.id, **row} for row in agreement])
    record(session, actor, "predictions.import", "prediction_import", outcome.id, after={
        "project_id": project.id, "training_run_id": run.id, "consensus_run_id": consensus.id,
        "predictions_hash": outcome.predictions_hash, "items": outcome.items,
        "flagged": outcome.flagged, "thresholds": outcome.thresholds})
    if redispatch and flags:
        redispatch_flags(session, actor, project.id, outcome.id)
    return ImportOutcome(outcome, reused=False)


def _consensus_of(session: Session, run: ConsensusRun, ids: np.ndarray) -> np.ndarray:
    """Return the consensus class position of each predicted item; InvalidInput for others."""
    position = {c: i for i, c in enumerate(run.classes)}
    found: dict[int, int] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK].tolist()
        for task_id, label in session.execute(
                select(TaskConsensus.task_id, TaskConsensus.label).where(
                    TaskConsensus.run_id == run.id, TaskConsensus.task_id.in_(chunk))):
            found[task_id] = position[label]
    missing = [int(i) for i in ids if int(i) not in found]
    if missing:
        raise InvalidInput(errors={"items": [gettext(
            "%(count)s predicted item(s) are not in consensus run %(run)s, e.g. %(ids)s.",
            count=len(missing), run=run.id, ids=", ".join(map(str, missing[:10])))]})
    return np.fromiter((found[int(i)] for i in ids), dtype=np.int64, count=len(ids))


def _record_manual_run(session: Session, actor: Actor, project_id: int, consensus_run_id: int,
                       manifest: dict[str, Any], location: str) -> TrainingRun:
    """Record a training run made by hand elsewhere, from its outputs' manifest."""
    settings = manifest.get("settings") or {}
    run = TrainingRun(
        project_id=project_id, consensus_run_id=consensus_run_id, status="running",
        options={key: settings.get(key) for key in TRAINING_OPTIONS}
        | {"device": (manifest.get("run") or {}).get("device")},
        dataset_uri=None, dataset_hash=str(manifest["dataset"].get("content_hash"))[:64],
        guideline_version=manifest["dataset"].get("guideline_version"),
        items=int(manifest.get("items") or 0), created_by_id=actor.account_id,
        started_at=utcnow())
    _finish(run, manifest, location)
    session.add(run)
    session.flush()
    record(session, actor, "training.record", "training_run", run.id, after={
        "project_id": project_id, "output_uri": location, "dataset_hash": run.dataset_hash,
        "device": run.device, "metrics": run.metrics})
    return run


def _model_agreement_rows(session: Session, project_id: int, consensus_run_id: int,
                          ids: np.ndarray, predicted: np.ndarray) -> list[dict[str, Any]]:
    """Return per worker the counted labels on predicted items and how many equal the model."""
    label_of = dict(zip(ids.tolist(), predicted.tolist(), strict=True))
    totals: dict[tuple[int, int], list[int]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK].tolist()
        for worker_id, workforce_id, task_id, value in session.execute(
                select(Label.worker_id, Label.workforce_id, Label.task_id, Label.value).where(
                    Label.project_id == project_id, Label.counted.is_(True),
                    Label.task_id.in_(chunk))):
            entry = totals.setdefault((worker_id, workforce_id), [0, 0])
            entry[0] += 1
            entry[1] += value == label_of[task_id]
    skills = dict(session.execute(select(WorkerSkill.worker_id, WorkerSkill.skill).where(
        WorkerSkill.run_id == consensus_run_id)).all())
    return [{"worker_id": worker, "workforce_id": workforce, "labels": n, "agreeing": agree,
             "skill": skills.get(worker)}
            for (worker, workforce), (n, agree) in sorted(totals.items())]


def redispatch_flags(session: Session, actor: Actor, project_id: int, import_id: int
                     ) -> int | None:
    """Send an import's flagged items not yet sent back to dispatch; return the dispatch run.

    Each gets the import's ``extra_labels`` more assignments, preferably from workforces
    other than those whose labels the consensus counted. A second call sends nothing again.
    """
    from coordinator.dispatch.services import add_assignments

    outcome = get_import(session, project_id, import_id)
    pending = list(session.scalars(select(PredictionFlag.task_id).where(
        PredictionFlag.import_id == outcome.id, PredictionFlag.redispatched.is_(False))
        .order_by(PredictionFlag.task_id)))
    if not pending:
        return outcome.dispatch_run_id
    avoid: dict[int, set[int]] = {task_id: set() for task_id in pending}
    for start in range(0, len(pending), CHUNK):
        for task_id, workforce_id in session.execute(
                select(Label.task_id, Label.workforce_id).where(
                    Label.project_id == project_id, Label.counted.is_(True),
                    Label.task_id.in_(pending[start:start + CHUNK]))):
            avoid[task_id].add(workforce_id)
    dispatch_run = add_assignments(session, actor, project_id,
                                   dict.fromkeys(pending, outcome.extra_labels),
                                   avoid_workforces=avoid)
    outcome.dispatch_run_id = dispatch_run.id
    for start in range(0, len(pending), CHUNK):
        session.execute(update(PredictionFlag).where(
            PredictionFlag.import_id == outcome.id,
            PredictionFlag.task_id.in_(pending[start:start + CHUNK])).values(redispatched=True))
    record(session, actor, "predictions.redispatch", "prediction_import", outcome.id,
           after={"dispatch_run_id": dispatch_run.id, "tasks": len(pending),
                  "extra_labels": outcome.extra_labels})
    return dispatch_run.id


# --- reading imports -------------------------------------------------------------------------


def get_import(session: Session, project_id: int, import_id: int) -> PredictionImport:
    """Return the project's predictions import, or raise NotFound."""
    return get_project_row(session, PredictionImport, project_id, import_id, lambda: gettext(
        "Project %(project)s has no predictions import %(id)s.", project=project_id,
        id=import_id))


def list_flags(session: Session, project_id: int, import_id: int, *, offset: int, limit: int
               ) -> tuple[list[dict[str, Any]], int]:
    """Return one page of an import's flags in task order, and the total."""
    outcome = get_import(session, project_id, import_id)
    rows = session.execute(
        select(PredictionFlag, Task.external_id).join(Task, Task.id == PredictionFlag.task_id)
        .where(PredictionFlag.import_id == outcome.id).order_by(PredictionFlag.task_id)
        .offset(offset).limit(limit)).all()
    page = [{"task_id": flag.task_id, "external_id": external_id,
             "consensus_label": flag.consensus_label, "predicted_label": flag.predicted_label,
             "predicted_probability": flag.predicted_probability,
             "consensus_probability": flag.consensus_probability,
             "redispatched": flag.redispatched} for flag, external_id in rows]
    return page, outcome.flagged


def model_agreement(session: Session, project_id: int, import_id: int, by: str = "worker"
                    ) -> list[dict[str, Any]]:
    """Return agreement with the model beside Dawid-Skene skill, per worker or workforce.

    A workforce's skill is the mean of its workers' skills weighted by their labels.
    """
    if by not in ("worker", "workforce"):
        raise InvalidInput(errors={"by": [gettext("Group by worker or workforce.")]})
    outcome = get_import(session, project_id, import_id)
    rows = list(session.scalars(select(ModelAgreement).where(
        ModelAgreement.import_id == outcome.id).order_by(ModelAgreement.worker_id)))
    if by == "worker":
        return [{"worker_id": r.worker_id, "workforce_id": r.workforce_id, "labels": r.labels,
                 "agreeing": r.agreeing, "agreement": r.agreeing / r.labels if r.labels else None,
                 "skill": r.skill} for r in rows]
    groups: dict[int, dict[str, Any]] = {}
    for r in rows:
        group = groups.setdefault(r.workforce_id, {"workforce_id": r.workforce_id, "workers": 0,
                                                   "labels": 0, "agreeing": 0, "_skill": 0.0,
                                                   "_weight": 0})
        group["workers"] += 1
        group["labels"] += r.labels
        group["agreeing"] += r.agreeing
        if r.skill is not None:
            group["_skill"] += r.skill * r.labels
            group["_weight"] += r.labels
    result = []
    for workforce_id in sorted(groups):
        group = groups[workforce_id]
        weight, skill = group.pop("_weight"), group.pop("_skill")
        group["agreement"] = group["agreeing"] / group["labels"] if group["labels"] else None
        group["skill"] = skill / weight if weight else None
        result.append(group)
    return result


def list_imports(session: Session, project_id: int) -> list[PredictionImport]:
    """Return the project's predictions imports, newest first."""
    get_project(session, project_id)
    return list(session.scalars(select(PredictionImport).where(
        PredictionImport.project_id == project_id).order_by(PredictionImport.id.desc())))

