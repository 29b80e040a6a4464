"""Consensus runs over a project's counted labels; their results; agreement metrics.

A run reads the project's *counted* labels (labels kept aside as late or superseded never
count) and the gold answers of the tasks they label, fingerprints them, aggregates them with
:func:`aggregation.aggregate` and stores one row per task and one per worker. Runs are
immutable: nothing here updates or deletes one. A request whose method, options, classes
and inputs match a stored run gets that run back, so a run is reproducible from what it
records and asking twice costs one read.

On PostgreSQL the labels arrive as three packed integer columns that NumPy reads without a
Python object per label, and the per-task rows go back in one binary ``COPY ... FROM
STDIN`` laid out by NumPy, both on the session's own connection and transaction; on SQLite
plain statements do the same work. ``bench/consensus.py`` measures both against the
aggregation itself.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from flask_babel import gettext
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregation import DEFAULT_METHOD, METHODS, AggregationInputError, AggregationResult, aggregate
from aggregation.agreement import agreement_report
from aggregation.dawid_skene import STOP_RULES
from coordinator.audit.services import Actor, record
from coordinator.consensus.models import ConsensusRun, TaskConsensus, WorkerSkill
from coordinator.db import is_postgres
from coordinator.dispatch.models import Worker
from coordinator.errors import Conflict, InvalidInput
from coordinator.labels.models import Label
from coordinator.projects.models import Project, Task
from coordinator.projects.services import get_project, get_project_row
from coordinator.workforces.models import Workforce

#: Options every method takes: the share of gold held out to measure, and the split's seed.
COMMON_OPTIONS: dict[str, Any] = {"gold_holdout": 0.2, "seed": 0}
#: Options of each method beyond the common ones, with the defaults a run writes out.
METHOD_OPTIONS: dict[str, dict[str, Any]] = {
    "dawid_skene": {"stop": "likelihood", "n_iter": 100, "tol": 1e-5},
}
#: The grouping columns of :func:`agreement`.
AGREEMENT_GROUPS = ("worker", "workforce", "region", "locale")
#: The columns of an agreement row, in order; those a grouping cannot give are None.
AGREEMENT_METRICS = ("labels", "tasks", "workers", "krippendorff_alpha", "fleiss_kappa",
                     "cohen_kappa", "accuracy_consensus", "accuracy_gold")
#: Version of the canonical form :func:`input_fingerprint` hashes.
FINGERPRINT_FORMAT = b"coordinator.consensus.input/1\n"


@dataclass(frozen=True)
class Inputs:
    """What a run reads: the counted labels and the gold answers of their tasks.

    The labels are sorted by task, worker and value, so the same labels make the same
    frame, bit for bit, whatever order the database returned them in.
    """

    #: task id, worker id and class position (into ``classes``) of each label
    task: np.ndarray
    worker: np.ndarray
    klass: np.ndarray
    #: the project's classes
    classes: tuple[str, ...]
    #: gold answers by task id, of the tasks in the labels only, in task order
    gold: pd.Series
    fingerprint: str
    #: the largest id among the labels read: lineage tells the labels the run read by it
    max_label_id: int | None = None

    @property
    def empty(self) -> bool:
        return len(self.task) == 0

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The labels as ``aggregation`` takes them: columns task, worker, label."""
        values = np.asarray(self.classes, dtype=object)[self.klass]
        return pd.DataFrame({"task": self.task, "worker": self.worker,
                             "label": pd.Series(values, dtype=object, copy=False)})


@dataclass(frozen=True)
class RunOutcome:
    """A run, and whether it was made now or found stored with the same inputs."""

    run: ConsensusRun
    reused: bool


# --- options ---------------------------------------------------------------------------------


def effective_options(method: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Return every option ``method`` will run with, defaults written out; raise InvalidInput."""
    if method not in METHODS:
        raise InvalidInput(errors={"method": [gettext(
            "Unknown method %(value)s; use one of %(methods)s.", value=repr(method)[:80],
            methods=", ".join(METHODS))]})
    allowed = {**COMMON_OPTIONS, **METHOD_OPTIONS.get(method, {})}
    given = {key: value for key, value in (options or {}).items() if value is not None}
    errors = {key: [gettext("The method %(method)s takes no option %(option)s.",
                            method=method, option=key)]
              for key in given if key not in allowed}
    if "gold_holdout" in given and not (
            _is_number(given["gold_holdout"]) and 0.0 <= given["gold_holdout"] <= 1.0):
        errors["gold_holdout"] = [gettext("Give a share between 0 and 1.")]
    if "stop" in given and given["stop"] not in STOP_RULES:
        errors["stop"] = [gettext("Use one of %(rules)s.", rules=", ".join(STOP_RULES))]
    for key in ("n_iter", "seed"):
        if key in given and not (isinstance(given[key], int) and not isinstance(given[key], bool)
                                 and given[key] >= 0):
            errors[key] = [gettext("Give a whole number, 0 or more.")]
    if "tol" in given and not (_is_number(given["tol"]) and given["tol"] > 0):
        errors["tol"] = [gettext("Give a number above 0.")]
    if errors:
        raise InvalidInput(errors=errors)
    merged = {**allowed, **given}
    if "gold_holdout" in merged:
        merged["gold_holdout"] = float(merged["gold_holdout"])
    return dict(sorted(merged.items()))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _reuse_key(method: str, options: dict[str, Any], classes: Sequence[str],
               fingerprint: str) -> str:
    document = json.dumps({"method": method, "options": options, "classes": list(classes),
                           "input": fingerprint}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(document.encode()).hexdigest()


# --- reading the inputs ----------------------------------------------------------------------


def _driver_connection(session: Session) -> Any:
    """Return the psycopg connection of the session's transaction."""
    return session.connection().connection.driver_connection


#: Up to this many classes a CASE gives each label its class position; beyond, a hash join.
_CASE_CLASSES = 16
#: Columns a label read can bring along for grouping: (SQL on labels l / workforces w, kind).
#: Text columns are codes (locales, regions) that never hold a newline.
_GROUP_COLUMNS: dict[str, tuple[str, str]] = {
    "workforce": ("l.workforce_id", "int8"),
    "locale": ("l.guideline_locale", "text"),
    "region": ("w.region", "text"),
}


def class_position(column: str, classes: Sequence[str]) -> tuple[str, str, list[Any]]:
    """Return SQL for the position from 1 of ``column`` in ``classes`` (0: none), the join it
    needs and their parameters."""
    if len(classes) <= _CASE_CLASSES:
        whens = " ".join(f"WHEN %s THEN {position}"
                         for position in range(1, len(classes) + 1))
        return f"CASE {column} {whens} ELSE 0 END", "", list(classes)
    return ("coalesce(c.code, 0)",
            f"LEFT JOIN unnest(%s::text[]) WITH ORDINALITY AS c(value, code) ON c.value = {column}",
            [list(classes)])


def packed_arrays(session: Session, statement: str, params: Sequence[Any]) -> tuple[Any, ...]:
    """Run a one-row query of packed columns (bytea) and return them, None for no rows."""
    with _driver_connection(session).cursor(binary=True) as cursor:
        return tuple(cursor.execute(statement, list(params)).fetchone())


def unpack(data: bytes | None, dtype: str, into: type = np.int64) -> np.ndarray:
    """Return a packed column (None: no rows) as an array of ``into``."""
    return np.frombuffer(data or b"", dtype=dtype).astype(into)


@dataclass(frozen=True)
class _Labels:
    """Counted labels as arrays: task id, worker id, class position from 1 (0: not a class)."""

    task: np.ndarray
    worker: np.ndarray
    position: np.ndarray
    #: the grouping columns asked for, by name
    groups: dict[str, np.ndarray]
    #: the largest id among the labels read (None: none), read in the same snapshot
    max_id: int | None = None


def _read_labels(session: Session, project_id: int, classes: Sequence[str],
                 groups: Sequence[str] = ()) -> _Labels:
    """Read the project's counted labels, with the grouping columns ``groups``."""
    reader = _read_labels_postgres if is_postgres(session) else _read_labels_plain
    return reader(session, project_id, classes, groups)


def _read_labels_postgres(session: Session, project_id: int, classes: Sequence[str],
                          groups: Sequence[str]) -> _Labels:
    """Read the labels as one row of packed columns.

    PostgreSQL packs each column into one bytea of big-endian integers (``string_agg`` of
    ``int8send``), which NumPy reads without a Python object per label: a COPY sends a
    message per row, and reading those alone took longer than the aggregation. Every
    aggregate sees the rows in the same order. One bytea holds at most 1 GB: 134 million
    labels.
    """
    code, join, params = class_position("l.value", classes)
    packed = ["max(l.id)", "string_agg(int8send(l.task_id), ''::bytea)",
              "string_agg(int8send(l.worker_id), ''::bytea)",
              f"string_agg(int2send(({code})::int2), ''::bytea)"]
    for name in groups:
        sql, kind = _GROUP_COLUMNS[name]
        packed.append(f"string_agg(int8send({sql}), ''::bytea)" if kind == "int8"
                      else f"convert_to(string_agg({sql}, E'\\n'), 'UTF8')")
    if "region" in groups:
        join += " JOIN workforces AS w ON w.id = l.workforce_id"
    statement = (f"SELECT {', '.join(packed)} FROM labels AS l {join} "
                 "WHERE l.project_id = %s AND l.counted")
    max_id, task, worker, position, *extra = packed_arrays(session, statement,
                                                           [*params, project_id])
    columns = {}
    for name, data in zip(groups, extra, strict=True):
        if _GROUP_COLUMNS[name][1] == "int8":
            columns[name] = unpack(data, ">i8")
        else:
            columns[name] = np.array(bytes(data).decode().split("\n") if data else [],
                                     dtype=object)
    return _Labels(unpack(task, ">i8"), unpack(worker, ">i8"),
                   unpack(position, ">i2", np.int16), columns, max_id)


def _read_labels_plain(session: Session, project_id: int, classes: Sequence[str],
                       groups: Sequence[str]) -> _Labels:
    extra = {"workforce": Label.workforce_id, "locale": Label.guideline_locale,
             "region": Workforce.region}
    statement = select(Label.id, Label.task_id, Label.worker_id, Label.value,
                       *(extra[name] for name in groups)).where(
        Label.project_id == project_id, Label.counted.is_(True))
    if "region" in groups:
        statement = statement.join(Workforce, Workforce.id == Label.workforce_id)
    rows = session.connection().execute(statement).all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * (4 + len(groups))
    position = {value: index + 1 for index, value in enumerate(classes)}
    return _Labels(
        np.array(columns[1], dtype=np.int64), np.array(columns[2], dtype=np.int64),
        np.array([position.get(value, 0) for value in columns[3]], dtype=np.int16),
        {name: np.array(values, dtype=np.int64 if name == "workforce" else object)
         for name, values in zip(groups, columns[4:], strict=True)},
        max(columns[0], default=None))


def _refuse_unknown_values(session: Session, project: Project) -> None:
    unknown = session.execute(
        select(Label.value, func.count()).where(
            Label.project_id == project.id, Label.counted.is_(True),
            Label.value.not_in(project.label_classes))
        .group_by(Label.value).order_by(Label.value)).all()
    raise Conflict(gettext(
        "%(count)d counted labels have values that are no longer among the project's "
        "classes: %(values)s. Add those classes back to aggregate them.",
        count=sum(n for _, n in unknown), values=", ".join(repr(v) for v, _ in unknown[:5])))


def _read_gold(session: Session, project: Project, tasks: np.ndarray) -> pd.Series:
    """Return the gold answers of ``tasks`` (sorted, unique ids) as a Series by task id."""
    rows = session.execute(select(Task.id, Task.gold).where(
        Task.project_id == project.id, Task.gold.is_not(None)).order_by(Task.id)).all()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    answers = np.array([r[1] for r in rows], dtype=object)
    keep = _members(ids, tasks)
    unknown = sorted({a for a in answers[keep] if a not in project.label_classes})
    if unknown:
        raise Conflict(gettext(
            "Gold answers %(values)s are not among the project's classes; correct the tasks "
            "or add the classes back.", values=", ".join(repr(v) for v in unknown[:5])))
    return pd.Series(answers[keep], index=pd.Index(ids[keep], name="task"), name="label",
                     dtype=object)


def _members(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Return whether each of ``values`` is in ``sorted_set`` (sorted, unique)."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def _canonical_order(task: np.ndarray, worker: np.ndarray, klass: np.ndarray,
                     classes: Sequence[str]) -> np.ndarray:
    """Return the permutation that sorts the labels by task, worker and value."""
    if not len(task):
        return np.empty(0, dtype=np.intp)
    value_rank = np.argsort(np.argsort(np.asarray(classes, dtype=object)))[klass]
    low_task, low_worker = int(task.min()), int(worker.min())
    span_worker = int(worker.max()) - low_worker + 1
    if (int(task.max()) - low_task + 1) * span_worker * len(classes) < 2**62:
        # One integer key sorts in a third of the time of a three-key lexsort.
        key = ((task - low_task) * span_worker + (worker - low_worker)) * len(classes)
        return np.argsort(key + value_rank)
    return np.lexsort((value_rank, worker, task))


def input_fingerprint(task: np.ndarray, worker: np.ndarray, klass: np.ndarray,
                      classes: Sequence[str], gold: pd.Series) -> str:
    """Return the SHA-256 of the labels and gold answers in a canonical form.

    The labels are rows (task id, worker id, value) with value ``classes[klass[i]]``,
    sorted by task, worker and value. Form 1 hashes: the line
    ``coordinator.consensus.input/1``; the JSON list of the distinct values used, sorted,
    and a newline; the task ids of the rows, then their worker ids, as big-endian 8-byte
    integers; the position of each row's value in that list, as big-endian 4-byte integers;
    ``gold`` and a newline; the JSON list of ``[task id, answer]`` pairs in task order.
    The order of the project's classes does not enter: it is part of a run's reuse key.
    """
    used = np.flatnonzero(np.bincount(klass, minlength=len(classes))) if len(klass) else []
    values = sorted(classes[i] for i in used)
    rank = np.zeros(len(classes), dtype=np.int64)
    rank[list(used)] = [values.index(classes[i]) for i in used]
    digest = hashlib.sha256(FINGERPRINT_FORMAT)
    digest.update(json.dumps(values, ensure_ascii=False).encode() + b"\n")
    digest.update(np.ascontiguousarray(task, dtype=">i8").tobytes())
    digest.update(np.ascontiguousarray(worker, dtype=">i8").tobytes())
    digest.update(rank[klass].astype(">i4").tobytes())
    pairs = [[int(t), str(v)] for t, v in zip(gold.index, gold.to_numpy(), strict=True)]
    digest.update(b"gold\n" + json.dumps(pairs, ensure_ascii=False).encode())
    return digest.hexdigest()


def read_inputs(session: Session, project: Project) -> Inputs:
    """Read the project's counted labels and their tasks' gold; fingerprint them.

    Raise Conflict when a counted label or a gold answer is not one of the project's classes
    (a class was removed after labelling).
    """
    classes = tuple(project.label_classes)
    labels = _read_labels(session, project.id, classes)
    task, worker = labels.task, labels.worker
    if (labels.position == 0).any():
        _refuse_unknown_values(session, project)
    klass = labels.position - 1
    order = _canonical_order(task, worker, klass, classes)
    task, worker, klass = task[order], worker[order], klass[order]
    gold = _read_gold(session, project, _distinct_sorted(task))
    return Inputs(task, worker, klass, classes, gold,
                  input_fingerprint(task, worker, klass, classes, gold), labels.max_id)


def _distinct_sorted(values: np.ndarray) -> np.ndarray:
    """Return the distinct values of a sorted array."""
    if not len(values):
        return values
    return values[np.r_[True, values[1:] != values[:-1]]]


# --- running ---------------------------------------------------------------------------------


def _find_run(session: Session, project_id: int, reuse_key: str) -> ConsensusRun | None:
    return session.scalar(select(ConsensusRun).where(
        ConsensusRun.project_id == project_id, ConsensusRun.reuse_key == reuse_key))


def run_consensus(session: Session, actor: Actor, project_id: int,
                  method: str = DEFAULT_METHOD, options: dict[str, Any] | None = None
                  ) -> RunOutcome:
    """Aggregate the project's counted labels and store the run; or return the stored one.

    Raise NotFound for an unknown project, InvalidInput for an unknown method or option, and
    Conflict when the project has no counted label yet or holds labels outside its classes.
    """
    project = get_project(session, project_id)
    options = effective_options(method, options)
    inputs = read_inputs(session, project)
    if inputs.empty:
        raise Conflict(gettext(
            "Project %(id)s has no counted labels yet; there is nothing to aggregate.",
            id=project.id))
    classes = list(inputs.classes)
    key = _reuse_key(method, options, classes, inputs.fingerprint)
    stored = _find_run(session, project.id, key)
    if stored is not None:
        return RunOutcome(stored, reused=True)
    try:
        result = aggregate(inputs.frame, method, classes=classes, gold=inputs.gold, **options)
    except AggregationInputError as error:  # read_inputs leaves none; say it plainly
        raise Conflict(gettext("The labels cannot be aggregated: %(reason)s",
                               reason=str(error))) from error
    workers = _worker_table(session, inputs, result)
    run = ConsensusRun(
        project_id=project.id, method=method, options=options, classes=classes,
        input_fingerprint=inputs.fingerprint, reuse_key=key, labels=len(inputs.task),
        tasks=result.n_tasks, workers=len(workers), ties=len(result.ties),
        iterations=int(result.iterations), converged=result.converged,
        gold_used=result.gold_used, gold_held_out=result.gold_held_out,
        gold_accuracy=json_number(result.gold_accuracy), max_label_id=inputs.max_label_id,
        created_by_id=actor.account_id)
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        # The same request, running beside this one, stored it first.
        stored = _find_run(session, project.id, key)
        if stored is None:
            raise
        return RunOutcome(stored, reused=True)
    _store_tasks(session, run, inputs, result)
    session.execute(insert(WorkerSkill.__table__), [{"run_id": run.id, **row} for row in workers])
    record(session, actor, "consensus.run", "consensus_run", run.id, after={
        "project_id": project.id, "method": method, "options": options, "classes": classes,
        "input_fingerprint": inputs.fingerprint, "labels": run.labels, "tasks": run.tasks,
        "workers": run.workers, "iterations": run.iterations, "converged": run.converged,
        "gold_accuracy": run.gold_accuracy, "max_label_id": run.max_label_id})
    return RunOutcome(run, reused=False)


def json_number(value: Any) -> float | None:
    """Return a float, or None for NaN and None (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class _TaskRows:
    """A run's result per task, as arrays in one order."""

    task: np.ndarray
    klass: np.ndarray
    confidence: np.ndarray
    posteriors: np.ndarray
    labels: np.ndarray


def _task_rows(inputs: Inputs, result: AggregationResult) -> _TaskRows:
    posteriors = result.posteriors.to_numpy(dtype=float)
    task = result.posteriors.index.to_numpy(dtype=np.int64)
    klass = pd.Categorical(result.labels.reindex(result.posteriors.index),
                           categories=list(inputs.classes)).codes.astype(np.intp)
    # The labels are sorted by task: a task's count is the length of its run of rows.
    starts = np.flatnonzero(np.r_[True, inputs.task[1:] != inputs.task[:-1]])
    counts = np.diff(np.r_[starts, len(inputs.task)])
    labels = counts[np.searchsorted(inputs.task[starts], task)]
    confidence = posteriors[np.arange(len(task)), klass]
    return _TaskRows(task, klass, confidence, posteriors, labels)


def _store_tasks(session: Session, run: ConsensusRun, inputs: Inputs,
                 result: AggregationResult) -> None:
    rows = _task_rows(inputs, result)
    if is_postgres(session):
        _copy_tasks(session, run, rows)
        return
    session.execute(insert(TaskConsensus.__table__), [
        {"run_id": run.id, "task_id": int(task), "label": run.classes[klass],
         "confidence": float(confidence), "posteriors": posteriors.tolist(),
         "labels": int(labels)}
        for task, klass, confidence, posteriors, labels in zip(
            rows.task, rows.klass, rows.confidence, rows.posteriors, rows.labels, strict=True)])


#: The signature, flags and header extension length that open a binary COPY, and its end.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_FLOAT8_OID = 701


def _copy_tasks(session: Session, run: ConsensusRun, rows: _TaskRows) -> None:
    """Write the task rows with one binary COPY, its bytes laid out by NumPy.

    Rows with the same label have the same size (the label is their only text), so each
    label's rows are one NumPy record array; the records of every label follow one another.
    Building tuples for psycopg's ``write_row`` would cost a Python object per value.
    """
    K = len(run.classes)
    parts = [_COPY_HEADER]
    for klass, label in enumerate(run.classes):
        chosen = np.flatnonzero(rows.klass == klass)
        if not len(chosen):
            continue
        text = label.encode()
        record = np.dtype([
            ("fields", ">i2"),
            ("run_size", ">i4"), ("run", ">i8"),
            ("task_size", ">i4"), ("task", ">i8"),
            ("label_size", ">i4"), ("label", f"S{len(text)}"),
            ("confidence_size", ">i4"), ("confidence", ">f8"),
            # float8[]: dimensions, a null bitmap flag, element type, length, lower bound,
            # then each element's size and value
            ("posteriors_size", ">i4"), ("dimensions", ">i4"), ("has_nulls", ">i4"),
            ("element_type", ">i4"), ("length", ">i4"), ("lower_bound", ">i4"),
            ("posteriors", [("size", ">i4"), ("value", ">f8")], (K,)),
            ("labels_size", ">i4"), ("labels", ">i4"),
        ])
        out = np.empty(len(chosen), dtype=record)
        out["fields"] = 6
        out["run_size"], out["run"] = 8, run.id
        out["task_size"], out["task"] = 8, rows.task[chosen]
        out["label_size"], out["label"] = len(text), text
        out["confidence_size"], out["confidence"] = 8, rows.confidence[chosen]
        out["posteriors_size"] = 20 + 12 * K
        out["dimensions"], out["has_nulls"], out["element_type"] = 1, 0, _FLOAT8_OID
        out["length"], out["lower_bound"] = K, 1
        out["posteriors"]["size"], out["posteriors"]["value"] = 8, rows.posteriors[chosen]
        out["labels_size"], out["labels"] = 4, rows.labels[chosen]
        parts.append(out.tobytes())
    parts.append(_COPY_TRAILER)
    statement = ("COPY task_consensus (run_id, task_id, label, confidence, posteriors, labels) "
                 "FROM STDIN (FORMAT binary)")
    with _driver_connection(session).cursor() as cursor:
        with cursor.copy(statement) as copy:
            for part in parts:
                copy.write(part)


def _worker_table(session: Session, inputs: Inputs, result: AggregationResult
                  ) -> list[dict[str, Any]]:
    """Return a WorkerSkill row (less the run) per worker, in worker id order."""
    code, workers = pd.factorize(inputs.worker, sort=True)
    labels = np.bincount(code, minlength=len(workers))
    gold_tasks = inputs.gold.index.to_numpy(dtype=np.int64)
    gold_klass = pd.Categorical(inputs.gold.to_numpy(), categories=list(inputs.classes)).codes
    on_gold = _members(inputs.task, gold_tasks)
    at = np.searchsorted(gold_tasks, inputs.task[on_gold])
    right = gold_klass[at] == inputs.klass[on_gold]
    gold_answers = np.bincount(code[on_gold], minlength=len(workers))
    gold_correct = np.bincount(code[on_gold][right], minlength=len(workers))
    skills = (result.worker_skills.reindex(workers).to_numpy(dtype=float)
              if result.worker_skills is not None else np.full(len(workers), np.nan))
    confusions = _confusions(result, workers, len(inputs.classes))
    workforce_of = dict(session.execute(
        select(Worker.id, Worker.workforce_id).where(Worker.id.in_(workers.tolist()))).all())
    return [{"worker_id": int(worker), "workforce_id": workforce_of[int(worker)],
             "skill": json_number(skills[i]),
             "confusion": confusions[i] if confusions is not None else None,
             "labels": int(labels[i]), "gold_answers": int(gold_answers[i]),
             "gold_correct": int(gold_correct[i])}
            for i, worker in enumerate(workers)]


def _confusions(result: AggregationResult, workers: Any, K: int
                ) -> list[list[list[float]]] | None:
    """Return per worker ``confusion[true][answered]``, or None when the method has none."""
    if result.confusions is None:
        return None
    # result.confusions: index (worker, answered), a column per true class.
    cube = result.confusions.to_numpy(dtype=float).reshape(-1, K, K)
    order = pd.Index(result.confusions.index.get_level_values(0)[::K]).get_indexer(workers)
    return np.swapaxes(cube[order], 1, 2).tolist()


# --- reading runs ----------------------------------------------------------------------------


def get_run(session: Session, project_id: int, run_id: int) -> ConsensusRun:
    """Return the run of this project, or raise NotFound (also for another project's run)."""
    return get_project_row(session, ConsensusRun, project_id, run_id, lambda: gettext(
        "Project %(project)s has no consensus run %(id)s.", project=project_id, id=run_id))


def list_runs(session: Session, project_id: int, *, offset: int, limit: int
              ) -> tuple[list[ConsensusRun], int]:
    """Return one page of the project's runs, newest first, and the total."""
    get_project(session, project_id)
    where = ConsensusRun.project_id == project_id
    total = session.scalar(select(func.count()).select_from(ConsensusRun).where(where)) or 0
    page = session.scalars(select(ConsensusRun).where(where)
                           .order_by(ConsensusRun.id.desc()).offset(offset).limit(limit))
    return list(page), total


def task_results(session: Session, project_id: int, run_id: int, *, offset: int, limit: int
                 ) -> tuple[list[dict[str, Any]], int]:
    """Return one page of a run's task results in task order, and the total."""
    run = get_run(session, project_id, run_id)
    rows = session.execute(
        select(TaskConsensus, Task.external_id).join(Task, Task.id == TaskConsensus.task_id)
        .where(TaskConsensus.run_id == run.id).order_by(TaskConsensus.task_id)
        .offset(offset).limit(limit)).all()
    page = [{"task_id": item.task_id, "external_id": external_id, "label": item.label,
             "confidence": item.confidence, "labels": item.labels,
             "posteriors": dict(zip(run.classes, item.posteriors, strict=True))}
            for item, external_id in rows]
    return page, run.tasks


def worker_results(session: Session, project_id: int, run_id: int, *, offset: int, limit: int
                   ) -> tuple[list[dict[str, Any]], int]:
    """Return one page of a run's worker skills in worker order, and the total."""
    run = get_run(session, project_id, run_id)
    rows = session.execute(
        select(WorkerSkill, Worker.external_id).join(Worker, Worker.id == WorkerSkill.worker_id)
        .where(WorkerSkill.run_id == run.id).order_by(WorkerSkill.worker_id)
        .offset(offset).limit(limit)).all()
    page = []
    for item, external_id in rows:
        confusion = None
        if item.confusion is not None:
            confusion = {true: dict(zip(run.classes, row, strict=True))
                         for true, row in zip(run.classes, item.confusion, strict=True)}
        page.append({
            "worker_id": item.worker_id, "external_id": external_id,
            "workforce_id": item.workforce_id, "skill": item.skill, "confusion": confusion,
            "labels": item.labels, "gold_answers": item.gold_answers,
            "gold_correct": item.gold_correct,
            "gold_accuracy": item.gold_correct / item.gold_answers if item.gold_answers else None})
    return page, run.workers


# --- agreement -------------------------------------------------------------------------------


def consensus_labels(session: Session, run: ConsensusRun) -> pd.Series:
    """Return the run's label per task."""
    if is_postgres(session):
        code, join, params = class_position("t.label", run.classes)
        task, position = packed_arrays(session, (
            "SELECT string_agg(int8send(t.task_id), ''::bytea), "
            f"string_agg(int2send(({code})::int2), ''::bytea) "
            f"FROM task_consensus AS t {join} WHERE t.run_id = %s"), [*params, run.id])
        tasks = unpack(task, ">i8")
        labels = np.asarray(run.classes, dtype=object)[unpack(position, ">i2", np.intp) - 1]
    else:
        rows = session.connection().execute(select(TaskConsensus.task_id, TaskConsensus.label)
                                            .where(TaskConsensus.run_id == run.id)).all()
        tasks, labels = zip(*rows, strict=True) if rows else ((), ())
    return pd.Series(labels, index=pd.Index(tasks, name="task", dtype=np.int64), dtype=object)


def newest_run(session: Session, project_id: int) -> ConsensusRun | None:
    """Return the project's newest run, or None before its first."""
    return session.scalar(select(ConsensusRun).where(ConsensusRun.project_id == project_id)
                          .order_by(ConsensusRun.id.desc()).limit(1))


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return json_number(value)
    return value


def agreement(session: Session, project_id: int, run_id: int | None = None,
              by: Iterable[str] = ()) -> dict[str, Any]:
    """Return agreement among the project's counted labels, overall or per group.

    ``by`` names grouping columns among :data:`AGREEMENT_GROUPS`: ``worker``, ``workforce``,
    ``region`` (the workforce's) and ``locale`` (the guideline locale the worker saw).
    Accuracy against consensus uses run ``run_id``, by default the project's newest run
    (none: no such accuracy); accuracy against gold uses the tasks' gold answers now.
    Values that are undefined (one class used, no task with two labels) are None; a project
    without counted labels has no groups. Raise Conflict, as a run does, when counted labels
    lie outside the project's classes.
    """
    by = list(dict.fromkeys(by))
    unknown = [b for b in by if b not in AGREEMENT_GROUPS]
    if unknown:
        raise InvalidInput(errors={"by": [gettext(
            "Group by %(groups)s, not %(value)s.", groups=", ".join(AGREEMENT_GROUPS),
            value=", ".join(unknown))]})
    project = get_project(session, project_id)
    run = get_run(session, project_id, run_id) if run_id is not None else newest_run(
        session, project_id)
    classes = tuple(project.label_classes)
    labels = _read_labels(session, project.id, classes, [b for b in by if b != "worker"])
    if (labels.position == 0).any():
        _refuse_unknown_values(session, project)
    frame = pd.DataFrame({
        "task": labels.task, "worker": labels.worker,
        "label": pd.Series(np.asarray(classes, dtype=object)[labels.position - 1], dtype=object),
        **{name: pd.Series(values, dtype=values.dtype) for name, values in labels.groups.items()}})
    gold_rows = session.execute(select(Task.id, Task.gold).where(
        Task.project_id == project.id, Task.gold.in_(project.label_classes))).all()
    gold = pd.Series([g for _, g in gold_rows], index=pd.Index([t for t, _ in gold_rows],
                                                                name="task"), dtype=object)
    consensus = consensus_labels(session, run) if run is not None else None
    groups: list[dict[str, Any]] = []
    if not frame.empty:
        report = agreement_report(frame, by or None, gold=gold, consensus=consensus,
                                  classes=project.label_classes)
        keys = report.index.to_frame(index=False) if by else pd.DataFrame(index=report.index)
        columns = {name: [_plain(v) for v in report[name].tolist()] if name in report else
                   [None] * len(report) for name in AGREEMENT_METRICS}
        for position in range(len(report)):
            groups.append({
                "group": {name: _plain(keys[name].iloc[position]) for name in by},
                **{name: values[position] for name, values in columns.items()}})
    return {"project_id": project.id, "run_id": run.id if run is not None else None,
            "by": by, "groups": groups}
