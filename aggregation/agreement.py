"""Agreement metrics over a task, worker, label table, overall or per group.

Every metric is a pure function ``metric(frame, by=None, ...)``: ``frame`` has the columns
``task``, ``worker``, ``label`` plus any grouping columns (``workforce``, ``region``,
``locale``...), and ``by`` names one or more of them. Without ``by`` a metric returns a
float; with ``by`` a DataFrame indexed by the groups, with the metric and the counts it
rests on. The table goes through :func:`aggregation.table.prepare_labels` first, so a
worker who labelled a task twice counts once (the last label, by default).

Conventions, chosen so that no number is silently wrong:

- Units (tasks) with fewer than two labels carry no information about agreement and are
  left out of alpha and kappa; the ``tasks`` and ``labels`` counts say what was used.
- A value that is undefined is NaN, never 0 or 1: no task with two labels; only one class
  used (alpha and Fleiss' kappa divide by the expected disagreement, which is then 0);
  a pair of workers whose answers give chance agreement 1.
- Within a group, labels are compared only with labels of the same group: alpha for
  ``by="region"`` is the agreement among the labels given in that region.
- Alpha and Fleiss' kappa measure agreement *among* workers, so grouping them by
  ``worker`` is refused; per worker, use :func:`cohen_kappa` or the accuracies.
- Fleiss' kappa with a varying number of labels per task uses each task's own count in its
  agreement term (Fleiss 1971 assumes a constant count; with one it is exactly his).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .table import (
    AggregationInputError,
    LabelTable,
    MissingColumnsError,
    prepare_gold,
    prepare_labels,
)

By = str | Sequence[str] | None


def _by_list(by: By) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _prepare(frame: pd.DataFrame | LabelTable, by: list[str], classes: Any,
             duplicates: str) -> LabelTable:
    if isinstance(frame, LabelTable):
        missing = [b for b in by if b not in frame.frame.columns]
        if missing:
            raise MissingColumnsError(missing, frame.frame.columns)
        return frame
    return prepare_labels(frame, classes, duplicates=duplicates, keep=by)


def _group_codes(data: pd.DataFrame, by: list[str]) -> tuple[np.ndarray, pd.Index]:
    """Return a group code per row and the group keys (NaN keys form their own group)."""
    if not by:
        return np.zeros(len(data), dtype=np.intp), pd.Index(["all"])
    grouped = data.groupby(by, dropna=False, sort=True)
    codes = grouped.ngroup().to_numpy(dtype=np.intp)
    return codes, grouped.size().index


def _unit_counts(table: LabelTable, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return label counts per (group, task) unit, shape (units, classes), and their groups."""
    codes = table.encode()
    K = max(codes.n_classes, 1)
    key = group.astype(np.int64) * max(codes.n_tasks, 1) + codes.task
    unit, first = np.unique(key, return_inverse=True)
    counts = np.bincount(first * K + codes.label, minlength=len(unit) * K).reshape(len(unit), K)
    return counts.astype(float), (unit // max(codes.n_tasks, 1)).astype(np.intp)


def _refuse_worker(by: list[str], metric: str) -> None:
    if "worker" in by:
        raise AggregationInputError(
            f"{metric} measures agreement among workers and cannot be grouped by worker; "
            "use cohen_kappa or the accuracies per worker")


def _finish(values: pd.DataFrame, by: list[str], metric: str) -> float | pd.DataFrame:
    if not by:
        return float(values[metric].iloc[0]) if len(values) else float("nan")
    return values


def krippendorff_alpha(frame: pd.DataFrame | LabelTable, by: By = None, *,
                       classes: Sequence[Any] | None = None, duplicates: str = "last"
                       ) -> float | pd.DataFrame:
    """Krippendorff's alpha for nominal data (Krippendorff 2011, "Computing ... alpha").

    ``alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k`` over the coincidence
    matrix ``o`` of the tasks with two or more labels. Columns with ``by``: alpha, tasks
    (pairable tasks), labels (pairable values).
    """
    by = _by_list(by)
    _refuse_worker(by, "Krippendorff's alpha")
    table = _prepare(frame, by, classes, duplicates)
    group, keys = _group_codes(table.frame, by)
    G = len(keys)
    counts, unit_group = _unit_counts(table, group)
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, unit_group, m = counts[pairable], unit_group[pairable], m[pairable]
    matching = (counts * (counts - 1)).sum(axis=1) / (m - 1)     # sum_c o_cc per unit
    n_c = np.zeros((G, counts.shape[1]))
    np.add.at(n_c, unit_group, counts)
    n = n_c.sum(axis=1)
    o_diagonal = np.bincount(unit_group, weights=matching, minlength=G)
    expected = n * n - (n_c * n_c).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(expected > 0, 1.0 - (n - 1) * (n - o_diagonal) / expected, np.nan)
    values = pd.DataFrame({"alpha": alpha,
                           "tasks": np.bincount(unit_group, minlength=G),
                           "labels": n.astype(np.int64)}, index=keys)
    return _finish(values, by, "alpha")


def fleiss_kappa(frame: pd.DataFrame | LabelTable, by: By = None, *,
                 classes: Sequence[Any] | None = None, duplicates: str = "last"
                 ) -> float | pd.DataFrame:
    """Fleiss' kappa (Fleiss 1971) over the tasks with two or more labels.

    ``kappa = (P_bar - P_e) / (1 - P_e)`` with ``P_i = (sum_c n_ic^2 - n_i) / (n_i (n_i - 1))``
    and ``P_e = sum_c p_c^2``. Columns with ``by``: fleiss_kappa, tasks, labels,
    min_labels and max_labels per task (equal when the design is Fleiss' own).
    """
    by = _by_list(by)
    _refuse_worker(by, "Fleiss' kappa")
    table = _prepare(frame, by, classes, duplicates)
    group, keys = _group_codes(table.frame, by)
    G = len(keys)
    counts, unit_group = _unit_counts(table, group)
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, unit_group, m = counts[pairable], unit_group[pairable], m[pairable]
    agreement = ((counts * counts).sum(axis=1) - m) / (m * (m - 1))
    tasks = np.bincount(unit_group, minlength=G)
    n_c = np.zeros((G, counts.shape[1]))
    np.add.at(n_c, unit_group, counts)
    n = n_c.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_bar = np.bincount(unit_group, weights=agreement, minlength=G) / tasks
        p_e = ((n_c / n[:, None]) ** 2).sum(axis=1)
        kappa = np.where((tasks > 0) & (p_e < 1.0 - 1e-12), (p_bar - p_e) / (1.0 - p_e),
                         np.nan)
    low = np.full(G, np.nan)
    high = np.full(G, np.nan)
    if len(m):
        low_s = pd.Series(m).groupby(unit_group).min()
        high_s = pd.Series(m).groupby(unit_group).max()
        low[low_s.index] = low_s.to_numpy()
        high[high_s.index] = high_s.to_numpy()
    values = pd.DataFrame({"fleiss_kappa": kappa, "tasks": tasks, "labels": n.astype(np.int64),
                           "min_labels": low, "max_labels": high}, index=keys)
    return _finish(values, by, "fleiss_kappa")


def pairwise_cohen_kappa(frame: pd.DataFrame | LabelTable, by: By = None, *,
                         classes: Sequence[Any] | None = None, duplicates: str = "last",
                         min_common: int = 1) -> pd.DataFrame:
    """Cohen's kappa for every pair of workers who labelled common tasks.

    One row per pair (``worker_a`` < ``worker_b``; within each group of ``by``, which must
    not contain ``worker``) with the number of common ``tasks``, the raw ``agreement`` and
    ``kappa`` (NaN when chance agreement is 1, e.g. both always gave the same one class).
    Pairs with fewer than ``min_common`` common tasks are left out. Each kappa equals
    ``sklearn.metrics.cohen_kappa_score`` on the pair's common tasks.
    """
    by = [b for b in _by_list(by) if b != "worker"]
    table = _prepare(frame, by, classes, duplicates)
    codes = table.encode()
    K = max(codes.n_classes, 1)
    group, keys = _group_codes(table.frame, by)
    try:
        order = np.argsort(np.asarray(codes.workers), kind="stable")
    except TypeError:
        order = np.argsort(codes.workers.astype(str), kind="stable")
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    rows = pd.DataFrame({"unit": group.astype(np.int64) * max(codes.n_tasks, 1) + codes.task,
                         "w": rank[codes.worker], "k": codes.label})
    joined = rows.merge(rows, on="unit", suffixes=("_a", "_b"))
    joined = joined[joined["w_a"] < joined["w_b"]]
    columns = [*by, "worker_a", "worker_b", "tasks", "agreement", "kappa"]
    if joined.empty:
        return pd.DataFrame({c: [] for c in columns})
    W = len(codes.workers)
    pair_group = (joined["unit"].to_numpy() // max(codes.n_tasks, 1))
    key = (pair_group * W + joined["w_a"].to_numpy()) * W + joined["w_b"].to_numpy()
    pair, unique = pd.factorize(key, sort=True)
    P = len(unique)
    cells = np.bincount(pair * K * K + joined["k_a"].to_numpy() * K + joined["k_b"].to_numpy(),
                        minlength=P * K * K).reshape(P, K, K).astype(float)
    total = cells.sum(axis=(1, 2))
    observed = np.trace(cells, axis1=1, axis2=2) / total
    chance = (cells.sum(axis=2) * cells.sum(axis=1)).sum(axis=1) / (total * total)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(chance < 1.0 - 1e-12, (observed - chance) / (1.0 - chance), np.nan)
    unique = np.asarray(unique)
    sorted_workers = np.asarray(codes.workers, dtype=object)[order]
    result = pd.DataFrame({
        "worker_a": sorted_workers[(unique // W) % W],
        "worker_b": sorted_workers[unique % W],
        "tasks": total.astype(np.int64), "agreement": observed, "kappa": kappa})
    if by:
        group_keys = keys.to_frame(index=False).iloc[unique // (W * W)].reset_index(drop=True)
        result = pd.concat([group_keys, result], axis=1)
    result = result[result["tasks"] >= min_common].reset_index(drop=True)
    return result[columns]


def cohen_kappa(frame: pd.DataFrame | LabelTable, by: By = None, *,
                classes: Sequence[Any] | None = None, duplicates: str = "last",
                min_common: int = 1) -> float | pd.DataFrame:
    """Mean pairwise Cohen's kappa, weighted by common tasks, overall or per group.

    With ``worker`` in ``by``, each worker's value is the mean over the pairs they belong
    to. Pairs whose kappa is undefined are left out; columns: cohen_kappa, pairs, tasks
    (the sum of common tasks over the pairs used).
    """
    by = _by_list(by)
    others = [b for b in by if b != "worker"]
    pairs = pairwise_cohen_kappa(frame, others, classes=classes, duplicates=duplicates,
                                 min_common=min_common)
    pairs = pairs[pairs["kappa"].notna()]
    if "worker" in by:
        pairs = pd.concat([pairs.rename(columns={"worker_a": "worker"}),
                           pairs.rename(columns={"worker_b": "worker"})], ignore_index=True)
    pairs = pairs.assign(weighted=pairs["kappa"] * pairs["tasks"])
    if not by:
        total = pairs["tasks"].sum()
        return float(pairs["weighted"].sum() / total) if total else float("nan")
    grouped = pairs.groupby(by, dropna=False, sort=True)
    values = pd.DataFrame({"cohen_kappa": grouped["weighted"].sum() / grouped["tasks"].sum(),
                           "pairs": grouped.size(), "tasks": grouped["tasks"].sum()})
    table = _prepare(frame, by, classes, duplicates)
    _, keys = _group_codes(table.frame, by)
    return values.reindex(keys).fillna({"pairs": 0, "tasks": 0}).astype(
        {"pairs": np.int64, "tasks": np.int64})


def accuracy(frame: pd.DataFrame | LabelTable, reference: pd.Series, by: By = None, *,
             classes: Sequence[Any] | None = None, duplicates: str = "last"
             ) -> float | pd.DataFrame:
    """Share of labels equal to ``reference`` (a label per task), overall or per group.

    Only labels of tasks that have a reference count; columns with ``by``: accuracy,
    labels (compared), tasks.
    """
    by = _by_list(by)
    table = _prepare(frame, by, classes, duplicates)
    data = table.frame
    truth = data["task"].map(reference)
    known = truth.notna().to_numpy()
    hits = np.zeros(len(data))
    hits[known] = data["label"].to_numpy()[known] == truth.to_numpy()[known]
    if not by:
        return float(hits[known].mean()) if known.any() else float("nan")
    group, keys = _group_codes(data, by)
    G = len(keys)
    compared = np.bincount(group[known], minlength=G)
    correct = np.bincount(group[known], weights=hits[known], minlength=G)
    tasks = pd.Series(data["task"].to_numpy()[known]).groupby(group[known]).nunique()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(compared > 0, correct / compared, np.nan)
    return pd.DataFrame({"accuracy": share, "labels": compared,
                         "tasks": tasks.reindex(range(G), fill_value=0).to_numpy()},
                        index=keys)


def accuracy_against_gold(frame: pd.DataFrame | LabelTable,
                          gold: pd.DataFrame | pd.Series, by: By = None, *,
                          classes: Sequence[Any] | None = None, duplicates: str = "last"
                          ) -> float | pd.DataFrame:
    """Accuracy of each label against gold answers (a ``task,label`` frame or Series)."""
    by = _by_list(by)
    table = _prepare(frame, by, classes, duplicates)
    return accuracy(table, prepare_gold(gold, table.classes), by)


def accuracy_against_consensus(frame: pd.DataFrame | LabelTable, consensus: Any,
                               by: By = None, *, classes: Sequence[Any] | None = None,
                               duplicates: str = "last") -> float | pd.DataFrame:
    """Accuracy of each label against the consensus label of its task.

    ``consensus`` is an :class:`aggregation.methods.AggregationResult` or a Series of labels
    by task. The consensus includes the worker's own label, which flatters workers on
    tasks with few labels; compare workers with similar numbers of labels per task.
    """
    labels = getattr(consensus, "labels", consensus)
    return accuracy(frame, labels, by, classes=classes, duplicates=duplicates)


def agreement_report(frame: pd.DataFrame | LabelTable, by: By = None, *,
                     gold: pd.DataFrame | pd.Series | None = None, consensus: Any = None,
                     classes: Sequence[Any] | None = None, duplicates: str = "last"
                     ) -> pd.DataFrame:
    """Every metric side by side, one row per group (one row ``all`` without ``by``).

    Columns: labels, tasks, workers, krippendorff_alpha and fleiss_kappa (not when grouped
    by worker), cohen_kappa, and accuracy_consensus / accuracy_gold when given.
    """
    by = _by_list(by)
    table = _prepare(frame, by, classes, duplicates)
    data = table.frame
    group, keys = _group_codes(data, by)
    report = pd.DataFrame(index=keys)
    report["labels"] = np.bincount(group, minlength=len(keys))
    report["tasks"] = pd.Series(data["task"].to_numpy()).groupby(group).nunique().to_numpy() \
        if len(data) else np.zeros(len(keys), dtype=np.int64)
    report["workers"] = pd.Series(data["worker"].to_numpy()).groupby(group).nunique() \
        .to_numpy() if len(data) else np.zeros(len(keys), dtype=np.int64)
    if not by:
        report["krippendorff_alpha"] = krippendorff_alpha(table)
        report["fleiss_kappa"] = fleiss_kappa(table)
        report["cohen_kappa"] = cohen_kappa(table)
        if consensus is not None:
            report["accuracy_consensus"] = accuracy_against_consensus(table, consensus)
        if gold is not None:
            report["accuracy_gold"] = accuracy_against_gold(table, gold)
        return report
    if "worker" not in by:
        report["krippendorff_alpha"] = krippendorff_alpha(table, by)["alpha"]
        report["fleiss_kappa"] = fleiss_kappa(table, by)["fleiss_kappa"]
    report["cohen_kappa"] = cohen_kappa(table, by)["cohen_kappa"]
    if consensus is not None:
        report["accuracy_consensus"] = accuracy_against_consensus(table, consensus, by)[
            "accuracy"]
    if gold is not None:
        report["accuracy_gold"] = accuracy_against_gold(table, gold, by)["accuracy"]
    return report
