"""The auditor's report: agreement, gold, confusion, cost and disagreement of a project.

A report reads the project's counted labels, optionally only those submitted in a date
range, and the consensus run it names (by default the newest). Every section carries its
``source``: the run's id and input fingerprint, and the count and SHA-256 of the label ids
it was computed from, so each figure can be recomputed. ``scope`` says which labels:
``window`` (the counted labels read for the report: agreement, gold over time,
disagreement), ``run`` (the labels the run read, by its input fingerprint: confusion,
skills, the model's figures) or ``priced`` (every label in the window whose assignment was
not rejected, counted or not: cost).

Labels come from PostgreSQL as packed columns (as a consensus run reads them) and the work
is NumPy over them, so a million labels take seconds; ``bench/report.py`` measures it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aggregation.breakdown import breakdowns, grouping
from coordinator.audit.models import AuditEvent
from coordinator.consensus.models import ConsensusRun, TaskConsensus, WorkerSkill
from coordinator.consensus.services import (
    class_position,
    consensus_labels,
    get_run,
    json_number,
    newest_run,
    packed_arrays,
    unpack,
)
from coordinator.db import is_postgres
from coordinator.dispatch.models import Assignment, Worker
from coordinator.feedback.models import ModelAgreement, PredictionImport, TrainingRun
from coordinator.labels.models import Label
from coordinator.projects.models import Project, Task
from coordinator.projects.services import get_project
from coordinator.workforces.models import Workforce

#: The breakdowns of agreement, in report order.
BREAKDOWNS = ("workforce", "region", "locale", "worker")
#: Version of the canonical form the labels fingerprint hashes.
LABELS_FORMAT = b"coordinator.reports.labels/1\n"
#: Items listed under "most disagreement" unless the caller asks for another number.
DEFAULT_TOP = 20
#: Reports kept per process for the page and CSV downloads that follow a first request.
CACHE_SIZE = 8
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Window:
    """Labels submitted at or after ``since`` and before ``until``; None: unbounded."""

    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class _Labels:
    """The counted labels in the window, as arrays in label id order."""

    id: np.ndarray
    task: np.ndarray
    worker: np.ndarray
    workforce: np.ndarray
    #: class position from 0
    klass: np.ndarray
    locale: np.ndarray
    #: days since 1970-01-01 (UTC) of submission
    day: np.ndarray


# --- reading ---------------------------------------------------------------------------------


def _read_labels(session: Session, project: Project, window: Window) -> _Labels:
    classes = list(project.label_classes)
    if is_postgres(session):
        code, join, params = class_position("l.value", classes)
        where, extra = ["l.project_id = %s", "l.counted"], [project.id]
        if window.since is not None:
            where.append("l.submitted_at >= %s")
            extra.append(window.since)
        if window.until is not None:
            where.append("l.submitted_at < %s")
            extra.append(window.until)
        # One ordered subquery, so every aggregate sees the rows in label id order.
        statement = (
            "SELECT string_agg(int8send(id), ''::bytea), string_agg(int8send(task_id), ''::bytea),"
            " string_agg(int8send(worker_id), ''::bytea),"
            " string_agg(int8send(workforce_id), ''::bytea),"
            " string_agg(int2send(code), ''::bytea),"
            " convert_to(string_agg(guideline_locale, E'\\n'), 'UTF8'),"
            " string_agg(int4send(day), ''::bytea) FROM ("
            f"SELECT l.id, l.task_id, l.worker_id, l.workforce_id, ({code})::int2 AS code,"
            " l.guideline_locale,"
            " floor(extract(epoch FROM l.submitted_at) / 86400)::int4 AS day"
            f" FROM labels AS l {join} WHERE {' AND '.join(where)} ORDER BY l.id) AS s")
        ids, task, worker, workforce, code_, locale, day = packed_arrays(
            session, statement, [*params, *extra])
        locales = (np.array(bytes(locale).decode().split("\n"), dtype=object) if locale
                   else np.empty(0, dtype=object))
        return _Labels(unpack(ids, ">i8"), unpack(task, ">i8"), unpack(worker, ">i8"),
                       unpack(workforce, ">i8"), unpack(code_, ">i2", np.int16) - 1,
                       locales, unpack(day, ">i4"))
    statement = select(Label.id, Label.task_id, Label.worker_id, Label.workforce_id,
                       Label.value, Label.guideline_locale, Label.submitted_at).where(
        Label.project_id == project.id, Label.counted.is_(True)).order_by(Label.id)
    if window.since is not None:
        statement = statement.where(Label.submitted_at >= window.since)
    if window.until is not None:
        statement = statement.where(Label.submitted_at < window.until)
    rows = session.execute(statement).all()
    position = {value: index for index, value in enumerate(classes)}
    column = list(zip(*rows, strict=True)) if rows else [()] * 7
    return _Labels(
        np.array(column[0], dtype=np.int64), np.array(column[1], dtype=np.int64),
        np.array(column[2], dtype=np.int64), np.array(column[3], dtype=np.int64),
        np.array([position.get(v, -1) for v in column[4]], dtype=np.int16),
        np.array(column[5], dtype=object),
        np.array([(moment - _EPOCH).days for moment in column[6]], dtype=np.int64))


def labels_fingerprint(ids: np.ndarray) -> str:
    """Return the SHA-256 of label ids: the form line, then the ids ascending, 8 bytes each."""
    digest = hashlib.sha256(LABELS_FORMAT)
    digest.update(np.ascontiguousarray(np.sort(ids), dtype=">i8").tobytes())
    return digest.hexdigest()


def _workforces(session: Session) -> dict[int, Workforce]:
    return {w.id: w for w in session.scalars(select(Workforce))}


# --- sections --------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return json_number(value)
    return value


def _agreement(labels: _Labels, gold: pd.Series, consensus: pd.Series | None,
               classes: Sequence[str], region_of: dict[int, str]) -> dict[str, Any]:
    """Agreement overall and by every breakdown, from one pass over the labels."""
    if not len(labels.id):
        return {"overall": None, **{f"by_{by}": [] for by in BREAKDOWNS}}
    workforces, workforce_code = np.unique(labels.workforce, return_inverse=True)
    region = np.array([region_of[int(w)] for w in workforces], dtype=object)[workforce_code]
    tables = breakdowns(labels.task, labels.worker, labels.klass, len(classes), {
        "workforce": grouping(labels.workforce), "region": grouping(region),
        "locale": grouping(labels.locale), "worker": grouping(labels.worker)},
        consensus=_reference(labels.task, consensus, classes) if consensus is not None
        else None, gold=_reference(labels.task, gold, classes))
    section: dict[str, Any] = {}
    for by in (None, *BREAKDOWNS):
        table = tables[by]
        rows = []
        for key, values in zip(table.index, table.to_dict("records"), strict=True):
            row = {by: _plain(key)} if by else {}
            row.update({name: _plain(value) for name, value in values.items()})
            rows.append(row)
        if by is None:
            section["overall"] = rows[0]
        else:
            section[f"by_{by}"] = rows
    return section


def _reference(task: np.ndarray, answers: pd.Series, classes: Sequence[str]) -> np.ndarray:
    """Return the class position of each label's task in ``answers`` (-1: none)."""
    if not len(answers):
        return np.full(len(task), -1, dtype=np.int64)
    ids = answers.index.to_numpy(dtype=np.int64)
    order = np.argsort(ids)
    ids = ids[order]
    codes = pd.Categorical(answers.to_numpy()[order], categories=list(classes)).codes
    at = np.minimum(np.searchsorted(ids, task), len(ids) - 1)
    return np.where(ids[at] == task, codes[at], -1).astype(np.int64)


def _gold_over_time(labels: _Labels, gold: pd.Series, classes: Sequence[str]
                    ) -> list[dict[str, Any]]:
    if not len(gold) or not len(labels.task):
        return []
    gold_tasks = gold.index.to_numpy(dtype=np.int64)
    order = np.argsort(gold_tasks)
    gold_tasks = gold_tasks[order]
    gold_klass = pd.Categorical(gold.to_numpy()[order], categories=list(classes)).codes
    at = np.minimum(np.searchsorted(gold_tasks, labels.task), len(gold_tasks) - 1)
    on_gold = gold_tasks[at] == labels.task
    right = on_gold & (gold_klass[at] == labels.klass)
    days, inverse = np.unique(labels.day[on_gold], return_inverse=True)
    answered = np.bincount(inverse, minlength=len(days))
    correct = np.bincount(inverse, weights=right[on_gold], minlength=len(days)).astype(int)
    return [{"day": (_EPOCH + timedelta(days=int(day))).date().isoformat(),
             "labels": int(n), "correct": int(c), "accuracy": c / n}
            for day, n, c in zip(days, answered, correct, strict=True)]


def _confusion(session: Session, run: ConsensusRun | None, workforces: dict[int, Workforce]
               ) -> dict[str, Any]:
    """Skills and confusion matrices of the run: per worker, and label-weighted per workforce."""
    if run is None:
        return {"classes": [], "by_workforce": [], "workers": []}
    rows = session.execute(
        select(WorkerSkill, Worker.external_id).join(Worker, Worker.id == WorkerSkill.worker_id)
        .where(WorkerSkill.run_id == run.id).order_by(WorkerSkill.worker_id)).all()
    workers, sums = [], {}
    for skill, external_id in rows:
        workers.append({
            "worker_id": skill.worker_id, "external_id": external_id,
            "workforce_id": skill.workforce_id, "skill": skill.skill, "labels": skill.labels,
            "gold_answers": skill.gold_answers, "gold_correct": skill.gold_correct,
            "gold_accuracy": skill.gold_correct / skill.gold_answers
            if skill.gold_answers else None})
        entry = sums.setdefault(skill.workforce_id, {"workers": 0, "labels": 0, "skill": 0.0,
                                                     "skill_labels": 0, "matrix": None})
        entry["workers"] += 1
        entry["labels"] += skill.labels
        if skill.skill is not None:
            entry["skill"] += skill.skill * skill.labels
            entry["skill_labels"] += skill.labels
        if skill.confusion is not None:
            weighted = np.asarray(skill.confusion, dtype=float) * skill.labels
            entry["matrix"] = weighted if entry["matrix"] is None else entry["matrix"] + weighted
    by_workforce = []
    for workforce_id, entry in sorted(sums.items()):
        matrix = entry["matrix"]
        if matrix is not None:
            totals = matrix.sum(axis=1, keepdims=True)
            matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
        by_workforce.append({
            "workforce_id": workforce_id, "name": workforces[workforce_id].name,
            "workers": entry["workers"], "labels": entry["labels"],
            "skill": entry["skill"] / entry["skill_labels"] if entry["skill_labels"] else None,
            "matrix": matrix.tolist() if matrix is not None else None})
    return {"classes": list(run.classes), "by_workforce": by_workforce, "workers": workers}


def _cost(session: Session, project: Project, window: Window, labels: _Labels,
          consensus: pd.Series | None, workforces: dict[int, Workforce]) -> list[dict[str, Any]]:
    """Spend per workforce and currency, and what each consensus label it helped make cost.

    Spend is the price fixed at dispatch of every label the workforce gave in the window,
    counted or not (a late label is paid too), unless its assignment was rejected. A
    workforce's consensus labels are the tasks of the run it gave a counted label for.
    """
    statement = (select(Label.workforce_id, Assignment.currency, func.count(),
                        func.sum(Assignment.price))
                 .join(Assignment, Assignment.id == Label.assignment_id)
                 .where(Label.project_id == project.id, Assignment.status != "rejected")
                 .group_by(Label.workforce_id, Assignment.currency)
                 .order_by(Label.workforce_id, Assignment.currency))
    if window.since is not None:
        statement = statement.where(Label.submitted_at >= window.since)
    if window.until is not None:
        statement = statement.where(Label.submitted_at < window.until)
    made: dict[int, int] = {}
    if consensus is not None and len(labels.task):
        run_tasks = np.sort(consensus.index.to_numpy(dtype=np.int64))
        at = np.minimum(np.searchsorted(run_tasks, labels.task), len(run_tasks) - 1)
        in_run = run_tasks[at] == labels.task if len(run_tasks) else np.zeros(0, bool)
        workforces_, workforce = np.unique(labels.workforce[in_run], return_inverse=True)
        task = labels.task[in_run]
        span = int(task.max(initial=0)) + 1
        # One integer per (workforce, task): a 1-D unique, far cheaper than rows of a 2-D one.
        pairs = np.unique(workforce.astype(np.int64) * span + task)
        counts = np.bincount(pairs // span, minlength=len(workforces_))
        made = dict(zip(workforces_.tolist(), counts.tolist(), strict=True))
    rows = []
    for workforce_id, currency, count, spend in session.execute(statement).all():
        spend = Decimal(spend or 0)
        consensus_labels = made.get(workforce_id, 0)
        rows.append({
            "workforce_id": workforce_id, "name": workforces[workforce_id].name,
            "currency": currency, "labels": count, "spend": spend,
            "consensus_labels": consensus_labels,
            "cost_per_consensus_label": (spend / consensus_labels).quantize(Decimal("0.0001"))
            if consensus_labels else None})
    return rows


def _priced_labels(session: Session, project: Project, window: Window) -> tuple[int, str]:
    """Return the count and fingerprint of the labels the cost section prices.

    They are every label in the window whose assignment was not rejected, counted or not:
    not the counted labels the other sections read, so the section says its own.
    """
    if is_postgres(session):
        where, params = ["l.project_id = %s", "a.status <> 'rejected'"], [project.id]
        if window.since is not None:
            where.append("l.submitted_at >= %s")
            params.append(window.since)
        if window.until is not None:
            where.append("l.submitted_at < %s")
            params.append(window.until)
        count, digest = packed_arrays(session, (
            "SELECT count(*), sha256(%s::bytea || coalesce(string_agg(int8send(l.id), "
            "''::bytea ORDER BY l.id), ''::bytea)) FROM labels AS l JOIN assignments AS a "
            f"ON a.id = l.assignment_id WHERE {' AND '.join(where)}"), [LABELS_FORMAT, *params])
        return int(count), bytes(digest).hex()
    statement = (select(Label.id).join(Assignment, Assignment.id == Label.assignment_id)
                 .where(Label.project_id == project.id, Assignment.status != "rejected"))
    if window.since is not None:
        statement = statement.where(Label.submitted_at >= window.since)
    if window.until is not None:
        statement = statement.where(Label.submitted_at < window.until)
    ids = np.fromiter(session.scalars(statement), dtype=np.int64)
    return len(ids), labels_fingerprint(ids)


def _run_source(run: ConsensusRun | None) -> dict[str, Any]:
    """The source of figures a run stored: its own labels, not the report's window."""
    return {"run_id": run.id if run is not None else None,
            "run_fingerprint": run.input_fingerprint if run is not None else None,
            "labels": run.labels if run is not None else 0, "labels_fingerprint": None,
            "since": None, "until": None, "scope": "run"}


def _disagreement(session: Session, labels: _Labels, run: ConsensusRun | None,
                  classes: Sequence[str], top: int) -> list[dict[str, Any]]:
    """The ``top`` tasks with two or more labels whose labels agree least."""
    if not len(labels.task) or top == 0:
        return []
    K = len(classes)
    tasks, inverse = np.unique(labels.task, return_inverse=True)
    counts = np.bincount(inverse * K + labels.klass, minlength=len(tasks) * K).reshape(-1, K)
    total = counts.sum(axis=1)
    several = total >= 2
    share = np.where(several, counts.max(axis=1) / np.maximum(total, 1), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / np.maximum(total, 1)[:, None]
        entropy = -np.nansum(np.where(p > 0, p * np.log2(p), 0.0), axis=1)
    # Least agreement first; then the most even spread; then more labels; then task id.
    order = np.lexsort((tasks, -total, -entropy, share))
    chosen = [i for i in order[:top] if several[i]]
    if not chosen:
        return []
    ids = [int(tasks[i]) for i in chosen]
    external = dict(session.execute(select(Task.id, Task.external_id)
                                    .where(Task.id.in_(ids))).all())
    results = {}
    if run is not None:
        results = {row.task_id: row for row in session.scalars(select(TaskConsensus).where(
            TaskConsensus.run_id == run.id, TaskConsensus.task_id.in_(ids)))}
    rows = []
    for i in chosen:
        task_id = int(tasks[i])
        result = results.get(task_id)
        rows.append({
            "task_id": task_id, "external_id": external.get(task_id), "labels": int(total[i]),
            "agreement": float(share[i]), "entropy": float(entropy[i]),
            "counts": {klass: int(n) for klass, n in zip(classes, counts[i], strict=True)},
            "consensus": result.label if result is not None else None,
            "confidence": result.confidence if result is not None else None})
    return rows


def _model(session: Session, run: ConsensusRun | None, workforces: dict[int, Workforce],
           skills: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Model-versus-crowd figures of the newest predictions import judging the run.

    None when no training run's predictions judged it. Per workforce, agreement with the
    model sits beside the Dawid-Skene skill the run gave the same workers.
    """
    if run is None:
        return None
    found = session.execute(
        select(PredictionImport, TrainingRun)
        .join(TrainingRun, TrainingRun.id == PredictionImport.training_run_id)
        .where(PredictionImport.consensus_run_id == run.id)
        .order_by(PredictionImport.id.desc()).limit(1)).first()
    if found is None:
        return None
    outcome, training = found
    metrics = training.metrics or {}
    rows = session.execute(
        select(ModelAgreement.workforce_id, func.count(), func.sum(ModelAgreement.labels),
               func.sum(ModelAgreement.agreeing))
        .where(ModelAgreement.import_id == outcome.id)
        .group_by(ModelAgreement.workforce_id).order_by(ModelAgreement.workforce_id)).all()
    skill_of = {row["workforce_id"]: row["skill"] for row in skills}
    return {
        "training_run": {"id": training.id, "status": training.status,
                         "device": training.device, "dataset_hash": training.dataset_hash,
                         "items": training.items, "finished_at": training.finished_at},
        "import_id": outcome.id, "predictions_hash": outcome.predictions_hash,
        "items": outcome.items, "flagged": outcome.flagged,
        "flagged_share": outcome.flagged / outcome.items if outcome.items else None,
        "accuracy_consensus": json_number(metrics.get("accuracy_consensus")),
        "accuracy_gold": json_number(metrics.get("accuracy_gold")),
        "gold_items": metrics.get("gold_items"),
        "by_workforce": [{
            "workforce_id": workforce_id, "name": workforces[workforce_id].name,
            "workers": int(workers), "labels": int(labels or 0),
            "agreeing": int(agreeing or 0),
            "agreement": int(agreeing or 0) / int(labels) if labels else None,
            "skill": skill_of.get(workforce_id)}
            for workforce_id, workers, labels, agreeing in rows],
    }


# --- the report ------------------------------------------------------------------------------


def _run_summary(run: ConsensusRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"id": run.id, "method": run.method, "input_fingerprint": run.input_fingerprint,
            "labels": run.labels, "tasks": run.tasks, "workers": run.workers,
            "gold_accuracy": run.gold_accuracy, "created_at": run.created_at}


def build_report(session: Session, project_id: int, *, run_id: int | None = None,
                 window: Window = Window(), top: int = DEFAULT_TOP) -> dict[str, Any]:
    """Return the whole report of a project, as plain data the API, CSV and HTML render.

    Raise NotFound for an unknown project or a run of another project. A project (or a
    window) without counted labels gives a report whose sections are empty.
    """
    project = get_project(session, project_id)
    run = get_run(session, project_id, run_id) if run_id is not None else newest_run(
        session, project_id)
    classes = list(project.label_classes)
    labels = _read_labels(session, project, window)
    known = labels.klass >= 0  # labels of a removed class cannot enter the metrics
    if not known.all():
        labels = _Labels(*(getattr(labels, name)[known] for name in _Labels.__dataclass_fields__))
    workforces = _workforces(session)
    source = {"run_id": run.id if run is not None else None,
              "run_fingerprint": run.input_fingerprint if run is not None else None,
              "labels": len(labels.id), "labels_fingerprint": labels_fingerprint(labels.id),
              "since": window.since, "until": window.until, "scope": "window"}
    priced, priced_fingerprint = _priced_labels(session, project, window)
    # Confusion, skills and the model's figures are what the run stored: they come from the
    # run's labels (its input fingerprint), whatever the window. Cost prices its own labels.
    run_source = _run_source(run)
    cost_source = {**source, "labels": priced, "labels_fingerprint": priced_fingerprint,
                   "scope": "priced"}
    region_of = {wid: w.region for wid, w in workforces.items()}
    gold_rows = session.execute(select(Task.id, Task.gold).where(
        Task.project_id == project.id, Task.gold.in_(classes))).all()
    gold = pd.Series([g for _, g in gold_rows], dtype=object,
                     index=pd.Index([t for t, _ in gold_rows], name="task", dtype=np.int64))
    consensus = consensus_labels(session, run) if run is not None else None
    agreement = {"source": source, **_agreement(labels, gold, consensus, classes, region_of)}
    for row in agreement["by_workforce"]:
        row["name"] = workforces[row["workforce"]].name
    confusion = _confusion(session, run, workforces)
    return {
        "project": {"id": project.id, "name": project.name, "classes": classes},
        "generated_at": datetime.now(timezone.utc),
        "source": source,
        "run": _run_summary(run),
        "agreement": agreement,
        "gold_over_time": {"source": source,
                           "rows": _gold_over_time(labels, gold, classes)},
        "confusion": {"source": run_source, **confusion},
        "cost": {"source": cost_source,
                 "rows": _cost(session, project, window, labels, consensus, workforces)},
        "disagreement": {"source": source,
                         "rows": _disagreement(session, labels, run, classes, top)},
        "model": _with_source(_model(session, run, workforces, confusion["by_workforce"]),
                              run_source),
    }


def _with_source(section: dict[str, Any] | None, source: dict[str, Any]
                 ) -> dict[str, Any] | None:
    return None if section is None else {"source": source, **section}


def day_window(since: date | datetime | None, until: date | datetime | None) -> Window:
    """Return the window of ``since`` and ``until``; a date ``until`` includes that day."""
    def moment(value: date | datetime | None, *, end: bool) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        start = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
        return start + timedelta(days=1) if end else start

    return Window(moment(since, end=False), moment(until, end=True))


# --- the cache -------------------------------------------------------------------------------

_cache: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_cache_lock = threading.Lock()


def _fingerprint_now(session: Session, project: Project, window: Window) -> str:
    """Return the labels fingerprint a report in ``window`` would have, read cheaply.

    On PostgreSQL the database hashes the ids itself, so no id crosses the wire.
    """
    classes = list(project.label_classes)
    if is_postgres(session):
        where, params = ["project_id = %s", "counted", "value = ANY(%s)"], [project.id, classes]
        if window.since is not None:
            where.append("submitted_at >= %s")
            params.append(window.since)
        if window.until is not None:
            where.append("submitted_at < %s")
            params.append(window.until)
        (digest,) = packed_arrays(session, (
            "SELECT sha256(%s::bytea || coalesce(string_agg(int8send(id), ''::bytea "
            f"ORDER BY id), ''::bytea)) FROM labels WHERE {' AND '.join(where)}"),
            [LABELS_FORMAT, *params])
        return bytes(digest).hex()
    statement = select(Label.id).where(Label.project_id == project.id, Label.counted.is_(True),
                                       Label.value.in_(classes))
    if window.since is not None:
        statement = statement.where(Label.submitted_at >= window.since)
    if window.until is not None:
        statement = statement.where(Label.submitted_at < window.until)
    return labels_fingerprint(np.fromiter(session.scalars(statement), dtype=np.int64))


def cached_report(session: Session, project_id: int, *, run_id: int | None = None,
                  window: Window = Window(), top: int = DEFAULT_TOP) -> dict[str, Any]:
    """Return :func:`build_report`'s report, reusing one built for the same state.

    The key is the database, project, resolved run, window, ``top``, the labels
    fingerprint read now and the audit chain's head: every state change writes an audit
    event, so gold answers, workforces, prices or training imports that changed since move
    the head and the report is built again. A report is never served for other labels.
    """
    project = get_project(session, project_id)
    run = get_run(session, project_id, run_id) if run_id is not None else newest_run(
        session, project_id)
    head = session.execute(select(AuditEvent.seq, AuditEvent.hash)
                           .order_by(AuditEvent.seq.desc()).limit(1)).first()
    key = (session.get_bind().url.render_as_string(hide_password=True), project.id,
           run.id if run is not None else None, window, top,
           _fingerprint_now(session, project, window), tuple(head) if head else None)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    report = build_report(session, project_id, run_id=run.id if run is not None else None,
                          window=window, top=top)
    if report["source"]["labels_fingerprint"] != key[5]:
        return report  # labels changed while it was built: serve it, keep nothing
    with _cache_lock:
        _cache[key] = report
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return report
