"""Validation and normalisation of (task, worker, label) tables and gold tables.

Every function in this package goes through :func:`prepare_labels` first, so the rules below
hold everywhere:

- the columns ``task``, ``worker`` and ``label`` must be present
  (:class:`MissingColumnsError`), and none of their cells may be empty
  (:class:`MissingValuesError`);
- every label must be one of the project's classes when they are given
  (:class:`UnknownLabelsError`); without them, the classes are the labels seen, sorted;
- **duplicate policy**: one worker has one vote per task. When a worker labelled the same
  task more than once, the default ``duplicates="last"`` keeps the last row in table order
  (the label store is append-only, so a later row is a resubmission that supersedes the
  earlier one) and counts the superseded rows in :attr:`LabelTable.superseded`;
  ``"first"`` keeps the first row instead; ``"error"`` raises :class:`DuplicateLabelsError`;
- an empty table is valid: it aggregates to an empty result;
- a class that nobody used still gets its column of posteriors (all near zero).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: The columns of a label table, as crowd-kit names them.
COLUMNS = ("task", "worker", "label")
#: The columns of a gold table.
GOLD_COLUMNS = ("task", "label")
#: What to do when a worker labelled the same task more than once.
DUPLICATE_POLICIES = ("last", "first", "error")
#: How many offending values an error message quotes.
_QUOTE = 5


class AggregationInputError(ValueError):
    """Raise when a label or gold table cannot be aggregated as given.

    The message says what is wrong in words a project manager can act on; subclasses carry
    the offending values as attributes for an API to put in its ``errors`` map.
    """


class MissingColumnsError(AggregationInputError):
    """Raise when a table lacks one of the columns it needs."""

    def __init__(self, missing: Sequence[str], present: Iterable[Any], what: str = "label table"):
        self.missing = tuple(missing)
        self.present = tuple(str(c) for c in present)
        super().__init__(
            f"the {what} lacks the column(s) {', '.join(self.missing)} "
            f"(it has: {', '.join(self.present) or 'no columns'})"
        )


class MissingValuesError(AggregationInputError):
    """Raise when a required cell (task, worker, label) is empty."""

    def __init__(self, column: str, rows: Sequence[int], what: str = "label table"):
        self.column = column
        self.rows = tuple(int(r) for r in rows)
        shown = ", ".join(str(r) for r in self.rows[:_QUOTE])
        more = f" and {len(self.rows) - _QUOTE} more" if len(self.rows) > _QUOTE else ""
        super().__init__(
            f"the {what} has {len(self.rows)} empty '{column}' cell(s), at row(s) {shown}{more}"
        )


class UnknownLabelsError(AggregationInputError):
    """Raise when labels are not among the project's classes."""

    def __init__(self, labels: Sequence[Any], rows: int, classes: Sequence[Any],
                 what: str = "label table"):
        self.labels = tuple(labels)
        self.rows = int(rows)
        self.classes = tuple(classes)
        shown = ", ".join(repr(v) for v in self.labels[:_QUOTE])
        more = f" and {len(self.labels) - _QUOTE} more" if len(self.labels) > _QUOTE else ""
        super().__init__(
            f"{self.rows} row(s) of the {what} have labels outside the project's classes "
            f"{list(self.classes)!r}: {shown}{more}"
        )


class DuplicateLabelsError(AggregationInputError):
    """Raise, under ``duplicates="error"``, when a worker labelled a task more than once."""

    def __init__(self, pairs: Sequence[tuple[Any, Any]]):
        self.pairs = tuple(pairs)
        shown = ", ".join(f"(task {t!r}, worker {w!r})" for t, w in self.pairs[:_QUOTE])
        more = f" and {len(self.pairs) - _QUOTE} more" if len(self.pairs) > _QUOTE else ""
        super().__init__(
            f"{len(self.pairs)} worker(s) labelled the same task more than once: {shown}{more}"
        )


class GoldConflictError(AggregationInputError):
    """Raise when the gold table gives one task two different answers."""

    def __init__(self, tasks: Sequence[Any]):
        self.tasks = tuple(tasks)
        shown = ", ".join(repr(t) for t in self.tasks[:_QUOTE])
        super().__init__(f"the gold table gives {len(self.tasks)} task(s) two answers: {shown}")


@dataclass(frozen=True)
class Encoded:
    """A label table as integer codes, the form the engines compute on.

    ``task[i]``, ``worker[i]`` and ``label[i]`` are the codes of row ``i``; ``tasks`` and
    ``workers`` map codes back to identifiers (in order of first appearance), and label code
    ``k`` is ``classes[k]``.
    """

    task: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    tasks: pd.Index
    workers: pd.Index
    classes: tuple

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def n_workers(self) -> int:
        return len(self.workers)

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class LabelTable:
    """A validated label table: one row per (task, worker), every label a known class."""

    #: Columns task, worker, label (and any extra columns asked for), a fresh RangeIndex.
    frame: pd.DataFrame
    #: The project's classes, in the order results use (ties go to the earlier class).
    classes: tuple
    #: Rows dropped by the duplicate policy.
    superseded: int = 0
    _encoded: list = field(default_factory=list, repr=False, compare=False)

    @property
    def n_labels(self) -> int:
        return len(self.frame)

    @property
    def empty(self) -> bool:
        return self.frame.empty

    def encode(self) -> Encoded:
        """Return the table as integer codes (computed once)."""
        if not self._encoded:
            task, tasks = pd.factorize(self.frame["task"], sort=False)
            worker, workers = pd.factorize(self.frame["worker"], sort=False)
            label = pd.Categorical(self.frame["label"], categories=list(self.classes)).codes
            self._encoded.append(Encoded(
                task=task.astype(np.intp, copy=False),
                worker=worker.astype(np.intp, copy=False),
                label=label.astype(np.intp, copy=False),
                tasks=pd.Index(tasks, name="task"),
                workers=pd.Index(workers, name="worker"),
                classes=self.classes,
            ))
        return self._encoded[0]


def _sorted_classes(values: Iterable[Hashable]) -> tuple:
    values = list(values)
    try:
        return tuple(sorted(values))
    except TypeError:  # mixed types: a stable, readable order
        return tuple(sorted(values, key=lambda v: (type(v).__name__, str(v))))


def _check_columns(frame: Any, needed: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise AggregationInputError(
            f"the {what} must be a pandas DataFrame, not {type(frame).__name__}")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise MissingColumnsError(missing, frame.columns, what)


def _check_values(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    for column in columns:
        values = frame[column]
        empty = values.isna().to_numpy(dtype=bool, copy=True)
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            empty |= values.eq("").fillna(False).to_numpy(dtype=bool)
        if empty.any():
            raise MissingValuesError(column, np.flatnonzero(empty), what)


def _check_classes(labels: pd.Series, classes: tuple, what: str) -> None:
    if len(set(classes)) != len(classes):
        raise AggregationInputError(f"the project's classes repeat a value: {list(classes)!r}")
    unknown = ~labels.isin(classes)
    if unknown.any():
        bad = labels[unknown]
        raise UnknownLabelsError(list(pd.unique(bad)), int(unknown.sum()), classes, what)


def prepare_labels(
    frame: pd.DataFrame,
    classes: Sequence[Any] | None = None,
    *,
    duplicates: str = "last",
    keep: Sequence[str] = (),
) -> LabelTable:
    """Validate a (task, worker, label) frame and apply the duplicate policy.

    ``classes`` are the project's classes in display order; without them the labels seen are
    used, sorted. ``keep`` names extra columns to carry along (grouping columns such as
    ``region``); they must exist. Raise :class:`AggregationInputError` (one of its
    subclasses) on bad input. The input frame is never modified.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise AggregationInputError(
            f"unknown duplicate policy {duplicates!r}; use one of {', '.join(DUPLICATE_POLICIES)}")
    _check_columns(frame, [*COLUMNS, *[k for k in keep if k not in COLUMNS]], "label table")
    columns = [*COLUMNS, *[k for k in dict.fromkeys(keep) if k not in COLUMNS]]
    data = frame.loc[:, columns].reset_index(drop=True)
    _check_values(data, COLUMNS, "label table")
    if classes is None:
        classes = _sorted_classes(pd.unique(data["label"]))
    else:
        classes = tuple(classes)
        _check_classes(data["label"], classes, "label table")

    table = LabelTable(frame=data, classes=classes)
    codes = table.encode()
    key = codes.task.astype(np.int64) * max(codes.n_workers, 1) + codes.worker
    ordered = np.sort(key)
    if not (ordered[1:] == ordered[:-1]).any():  # the common case, faster than hashing
        return table
    pair = pd.Series(key)
    repeated = pair.duplicated(keep=False).to_numpy()
    if duplicates == "error":
        pairs = data.loc[repeated, ["task", "worker"]].drop_duplicates()
        raise DuplicateLabelsError(list(pairs.itertuples(index=False, name=None)))
    kept = ~pair.duplicated(keep=duplicates).to_numpy()
    # Every (task, worker) keeps one row, so no task or worker disappears and the codes
    # stay valid for the rows that remain.
    subset = Encoded(task=codes.task[kept], worker=codes.worker[kept], label=codes.label[kept],
                     tasks=codes.tasks, workers=codes.workers, classes=classes)
    return LabelTable(frame=data.loc[kept].reset_index(drop=True), classes=classes,
                      superseded=int((~kept).sum()), _encoded=[subset])


def prepare_gold(gold: pd.DataFrame | pd.Series | None, classes: Sequence[Any]) -> pd.Series:
    """Return gold answers as a Series of labels indexed by task (name ``task``).

    Accept a ``task,label`` frame or a Series indexed by task. Repeated identical rows are
    merged; a task with two different answers raises :class:`GoldConflictError`; answers
    outside ``classes`` raise :class:`UnknownLabelsError`. ``None`` gives an empty Series.
    """
    if gold is None:
        return pd.Series([], index=pd.Index([], name="task"), name="label", dtype=object)
    if isinstance(gold, pd.Series):
        gold = pd.DataFrame({"task": gold.index, "label": gold.to_numpy()})
    _check_columns(gold, GOLD_COLUMNS, "gold table")
    data = gold.loc[:, list(GOLD_COLUMNS)].reset_index(drop=True)
    _check_values(data, GOLD_COLUMNS, "gold table")
    _check_classes(data["label"], tuple(classes), "gold table")
    data = data.drop_duplicates()
    conflicts = data["task"].duplicated(keep=False)
    if conflicts.any():
        raise GoldConflictError(list(pd.unique(data.loc[conflicts, "task"])))
    return pd.Series(data["label"].to_numpy(), index=pd.Index(data["task"], name="task"),
                     name="label")
