"""Every agreement metric, overall and per grouping, from one pass over label codes.

:func:`aggregation.agreement.agreement_report` works on one grouping at a time through
pandas, and its pairwise Cohen's kappa joins the label table with itself; a report that
wants five breakdowns of a million labels pays that five times. :func:`breakdowns` takes
the labels once as integer codes and gives the same figures (the same definitions,
conventions and duplicate policy: a worker's last label on a task counts) for every
grouping: the pairs of labels on a task are laid out once, and each grouping keeps the
pairs whose two labels fall in the same group.

Inputs are codes, not names: ``task`` and ``worker`` any integers, ``klass`` the class
position from 0, each grouping a code per label with its keys (``codes[i]`` indexes
``keys``), and the reference labels (consensus, gold) as a class position per label, -1
where the task has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Columns of a breakdown, in agreement_report's order.
COLUMNS = ("labels", "tasks", "workers", "krippendorff_alpha", "fleiss_kappa", "cohen_kappa",
           "accuracy_consensus", "accuracy_gold")


#: Up to this many (group, value) cells, distinct counts mark a boolean table, not a sort.
_MASK_CELLS = 1 << 26


@dataclass(frozen=True)
class Grouping:
    """A group code per label and the key of each code (sorted, as groupby sorts them)."""

    codes: np.ndarray
    keys: np.ndarray


def grouping(values: np.ndarray) -> Grouping:
    """Return the grouping of a column of values, its keys sorted."""
    codes, keys = pd.factorize(values, sort=True)  # hashing: strings sort only once each
    return Grouping(codes.astype(np.int64), np.asarray(keys))


def last_per_pair(task: np.ndarray, worker: np.ndarray) -> np.ndarray:
    """Return the rows to keep: per (task, worker), the last row in table order."""
    if not len(task):
        return np.zeros(0, dtype=bool)
    _, task_code = np.unique(task, return_inverse=True)
    _, worker_code = np.unique(worker, return_inverse=True)
    key = task_code.astype(np.int64) * (int(worker_code.max()) + 1) + worker_code
    reverse = key[::-1]
    _, first_in_reverse = np.unique(reverse, return_index=True)
    keep = np.zeros(len(task), dtype=bool)
    keep[len(task) - 1 - first_in_reverse] = True
    return keep


def _share(hits: np.ndarray, group: np.ndarray, known: np.ndarray, G: int) -> np.ndarray:
    compared = np.bincount(group[known], minlength=G)
    correct = np.bincount(group[known], weights=hits[known], minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(compared > 0, correct / np.maximum(compared, 1), np.nan)


def _distinct(group: np.ndarray, other: np.ndarray, span: int, G: int) -> np.ndarray:
    """Return per group the number of distinct ``other`` codes (from 0, below ``span``)."""
    if G * span <= _MASK_CELLS:
        seen = np.zeros(G * span, dtype=bool)
        seen[group * span + other] = True
        return seen.reshape(G, span).sum(axis=1)
    units = np.unique(group * span + other)
    return np.bincount(units // span, minlength=G)


def _alpha_fleiss(group: np.ndarray, task: np.ndarray, klass: np.ndarray, T: int, K: int,
                  G: int) -> tuple[np.ndarray, np.ndarray]:
    """Krippendorff's alpha and Fleiss' kappa per group, over units (group, task)."""
    unit, first = np.unique(group * T + task, return_inverse=True)
    counts = np.bincount(first * K + klass, minlength=len(unit) * K).reshape(-1, K)
    counts = counts.astype(float)
    unit_group = unit // T
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, unit_group, m = counts[pairable], unit_group[pairable], m[pairable]
    n_c = np.zeros((G, K))
    np.add.at(n_c, unit_group, counts)
    n = n_c.sum(axis=1)
    squares = (counts * counts).sum(axis=1)
    matching = (squares - m) / (m - 1)
    o_diagonal = np.bincount(unit_group, weights=matching, minlength=G)
    expected = n * n - (n_c * n_c).sum(axis=1)
    tasks = np.bincount(unit_group, minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(expected > 0, 1.0 - (n - 1) * (n - o_diagonal) / expected, np.nan)
        p_bar = np.bincount(unit_group, weights=(squares - m) / (m * (m - 1)),
                            minlength=G) / tasks
        p_e = ((n_c / n[:, None]) ** 2).sum(axis=1)
        kappa = np.where((tasks > 0) & (p_e < 1.0 - 1e-12), (p_bar - p_e) / (1.0 - p_e), np.nan)
    return alpha, kappa


@dataclass(frozen=True)
class _Pairs:
    """Every pair of labels on one task: the two rows, lower worker code first."""

    a: np.ndarray
    b: np.ndarray


def _pairs(task: np.ndarray, worker: np.ndarray) -> _Pairs:
    """Lay out every pair of labels that share a task (rows sorted by task)."""
    order = np.argsort(task, kind="stable")
    sorted_task = task[order]
    firsts, seconds = [], []
    active = np.arange(len(order) - 1)
    distance = 1
    # Row p pairs with p + d while both are on one task; the candidates shrink each step,
    # so the work is the number of pairs, whatever the largest task.
    while len(active):
        active = active[sorted_task[active + distance] == sorted_task[active]]
        firsts.append(order[active])
        seconds.append(order[active + distance])
        distance += 1
        active = active[active + distance < len(order)]
    a = np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.intp)
    b = np.concatenate(seconds) if seconds else np.zeros(0, dtype=np.intp)
    swap = worker[a] > worker[b]
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    return _Pairs(a, b)


def _pair_kappas(pairs: _Pairs, pair_group: np.ndarray, worker: np.ndarray,
                 klass: np.ndarray, W: int, K: int) -> tuple[np.ndarray, ...]:
    """Cohen's kappa of every (group, worker a, worker b): groups, workers, tasks, kappa."""
    key = (pair_group * W + worker[pairs.a]) * W + worker[pairs.b]
    unique, inverse = np.unique(key, return_inverse=True)
    P = len(unique)
    cells = np.bincount(inverse * (K * K) + klass[pairs.a] * K + klass[pairs.b],
                        minlength=P * K * K).reshape(P, K, K).astype(float)
    total = cells.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = np.trace(cells, axis1=1, axis2=2) / total
        chance = (cells.sum(axis=2) * cells.sum(axis=1)).sum(axis=1) / (total * total)
        kappa = np.where(chance < 1.0 - 1e-12, (observed - chance) / (1.0 - chance), np.nan)
    return unique // (W * W), (unique // W) % W, unique % W, total, kappa


def _weighted_mean(index: np.ndarray, kappa: np.ndarray, tasks: np.ndarray, G: int
                   ) -> np.ndarray:
    defined = ~np.isnan(kappa)
    weight = np.bincount(index[defined], weights=tasks[defined], minlength=G)
    total = np.bincount(index[defined], weights=(kappa * tasks)[defined], minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(weight > 0, total / np.maximum(weight, 1e-300), np.nan)


def breakdowns(task: np.ndarray, worker: np.ndarray, klass: np.ndarray, n_classes: int,
               groupings: Mapping[str, Grouping], *, consensus: np.ndarray | None = None,
               gold: np.ndarray | None = None) -> dict[str | None, pd.DataFrame]:
    """Return agreement_report's table overall (key None) and for each grouping.

    ``worker`` may be among ``groupings``: its rows have no alpha or Fleiss' kappa, and a
    worker's Cohen's kappa is the mean over the pairs they belong to. Each table is indexed
    by the grouping's keys (``["all"]`` overall); a grouping's keys without labels are left
    out, as groupby leaves them out.
    """
    keep = last_per_pair(task, worker)
    task, worker, klass = task[keep], worker[keep], klass.astype(np.int64)[keep]
    groupings = {name: Grouping(g.codes[keep], g.keys) for name, g in groupings.items()}
    consensus = consensus[keep] if consensus is not None else None
    gold = gold[keep] if gold is not None else None
    _, task_code = np.unique(task, return_inverse=True)
    worker_ids, worker_code = np.unique(worker, return_inverse=True)
    task_code, worker_code = task_code.reshape(-1), worker_code.reshape(-1)
    T, W, K = max(int(task_code.max(initial=-1)) + 1, 1), max(len(worker_ids), 1), max(
        n_classes, 1)
    pairs = _pairs(task_code, worker_code)
    overall_pairs = _pair_kappas(pairs, np.zeros(len(pairs.a), dtype=np.int64), worker_code,
                                 klass, W, K)
    result: dict[str | None, pd.DataFrame] = {}
    everything = {None: Grouping(np.zeros(len(task), dtype=np.int64), np.array(["all"])),
                  **groupings}
    for name, group in everything.items():
        used = np.unique(group.codes)
        G = len(used)
        code = np.searchsorted(used, group.codes).astype(np.int64)
        labels = np.bincount(code, minlength=G)
        if name == "worker":  # one label per (task, worker) is left: a label is a task
            table = {"labels": labels, "tasks": labels, "workers": np.ones(G, dtype=np.int64)}
        else:
            table = {"labels": labels, "tasks": _distinct(code, task_code, T, G),
                     "workers": _distinct(code, worker_code, W, G)}
        if name != "worker":
            table["krippendorff_alpha"], table["fleiss_kappa"] = _alpha_fleiss(
                code, task_code, klass, T, K, G)
        if name is None:
            _, _, _, tasks, kappa = overall_pairs
            table["cohen_kappa"] = _weighted_mean(np.zeros(len(kappa), dtype=np.int64), kappa,
                                                  tasks, 1)
        elif name == "worker":
            _, first, second, tasks, kappa = overall_pairs
            # Worker codes are the group codes here when every worker is its own group.
            to_group = np.full(W, -1, dtype=np.int64)
            to_group[worker_code] = code
            index = np.concatenate([to_group[first], to_group[second]])
            table["cohen_kappa"] = _weighted_mean(index, np.concatenate([kappa, kappa]),
                                                  np.concatenate([tasks, tasks]), G)
        else:
            same = code[pairs.a] == code[pairs.b]
            chosen = _Pairs(pairs.a[same], pairs.b[same])
            groups_of, _, _, tasks, kappa = _pair_kappas(chosen, code[chosen.a], worker_code,
                                                         klass, W, K)
            table["cohen_kappa"] = _weighted_mean(groups_of, kappa, tasks, G)
        if consensus is not None:
            table["accuracy_consensus"] = _share(consensus == klass, code, consensus >= 0, G)
        if gold is not None:
            table["accuracy_gold"] = _share(gold == klass, code, gold >= 0, G)
        result[name] = pd.DataFrame(table, index=pd.Index(group.keys[used] if len(used) else
                                                          group.keys[:0]))
    return result
