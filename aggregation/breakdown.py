"""Every agreement metric, overall and per grouping, from one pass over label codes.

:func:`aggregation.agreement.agreement_report` works on one grouping at a time through
pandas, and its pairwise Cohen's kappa joins the label table with itself; a report that
wants five breakdowns of a million labels pays that five times. :func:`breakdowns` takes
the labels once as integer codes and gives the same figures (the same definitions,
conventions and duplicate policy: a worker's last label on a task counts) for every
grouping. Cohen's kappa needs, per pair of workers in a group, only their common tasks,
agreements and confusion margins: ordinary tasks give them from their pairs of labels,
and heavy ones (a gold task served thousands of times) from dense matrix products over
the workers who meet there, so a task with m labels never lays out m**2 pairs.

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


#: A unit (task in a group) with more labels than this may be counted as a dense block.
HEAVY = 32
#: Cells of a dense block computed at once: bounds the memory of a heavy group's pairs.
_BLOCK_CELLS = 1 << 20
#: How much cheaper a dense cell is than a pair of labels laid out (measured, roughly).
_DENSE_ADVANTAGE = 4

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
class _PairKappas:
    """Cohen's kappa of every pair of workers with a common task in one group."""

    group: np.ndarray   #: group code of each pair
    first: np.ndarray   #: the lower worker code of each pair
    second: np.ndarray  #: the higher worker code
    tasks: np.ndarray   #: common tasks of the pair within its group
    kappa: np.ndarray


def _label_pairs(unit: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return every pair of the given rows that share a unit, as two arrays of rows."""
    order = rows[np.argsort(unit[rows], kind="stable")]
    sorted_unit = unit[order]
    firsts, seconds = [], []
    active = np.arange(len(order) - 1)
    distance = 1
    # Row p pairs with p + d while both are on one unit; the candidates shrink each step,
    # so the work is the number of pairs, whatever the largest unit.
    while len(active):
        active = active[sorted_unit[active + distance] == sorted_unit[active]]
        firsts.append(order[active])
        seconds.append(order[active + distance])
        distance += 1
        active = active[active + distance < len(order)]
    empty = np.zeros(0, dtype=np.intp)
    return (np.concatenate(firsts) if firsts else empty,
            np.concatenate(seconds) if seconds else empty)


def _dense_units(unit: np.ndarray, column: np.ndarray, unit_group: np.ndarray
                 ) -> np.ndarray:
    """Return per unit whether it is counted in a dense block of its group's columns.

    A unit with more than :data:`HEAVY` labels (a gold task served again and again) gives
    the square of its labels in pairs. The heavy units of a group go to a dense block when
    its cost is below laying those pairs out: the block has a cell per pair of the group's
    heavy columns, and each cell costs a multiply-add per heavy unit (matrix products, some
    32 of which cost about as much as one pair laid out, sorted and summed), as when the
    same crowd answers every gold task.
    """
    size = np.bincount(unit)
    heavy = size > HEAVY
    dense = np.zeros(len(size), dtype=bool)
    if not heavy.any():
        return dense
    on_heavy = heavy[unit]
    label_group = unit_group[unit[on_heavy]]
    groups, first = np.unique(label_group, return_inverse=True)
    columns = _distinct(first, np.unique(column[on_heavy], return_inverse=True)[1],
                        int(column.max()) + 1, len(groups))
    at = np.searchsorted(groups, unit_group[heavy])
    pairs = np.bincount(at, weights=size[heavy] * (size[heavy] - 1.0) / 2, minlength=len(groups))
    units = np.bincount(at, minlength=len(groups))
    cells = columns * (columns - 1.0) / 2
    chosen = np.zeros(int(unit_group.max()) + 1, dtype=bool)
    chosen[groups[cells * (1 + units / 32) <= _DENSE_ADVANTAGE * pairs]] = True
    dense[heavy] = chosen[unit_group[heavy]]
    return dense


def _dense_block(unit: np.ndarray, column: np.ndarray, klass: np.ndarray,
                 fold: tuple[np.ndarray, ...]) -> list[tuple[np.ndarray, ...]]:
    """Return the pairs of one dense block, by slab: first, second, tasks, Cohen's kappa.

    ``unit`` and ``column`` code the block's labels from 0; ``fold`` is ``(column a,
    column b, class a, class b)`` of label pairs between its columns met on other units,
    a's column lower, added cell by cell. For a pair (a, b), ``chance`` is the sum over
    classes k of (common tasks where a gave k) x (common tasks where b gave k). Presence
    and class indicators are multiplied as float32 matrices (exact for counts below 2**24),
    a slab of rows of the upper triangle at a time, so memory stays near _BLOCK_CELLS.
    """
    n_units, n = int(unit.max()) + 1, int(column.max()) + 1
    presence = np.zeros((n_units, n), dtype=np.float32)
    presence[unit, column] = 1.0
    fold_a, fold_b, fold_ka, fold_kb = fold
    classes = np.unique(np.concatenate([klass, fold_ka, fold_kb]))
    gave = np.zeros((len(classes), n_units, n), dtype=np.float32)
    gave[np.searchsorted(classes, klass), unit, column] = 1.0
    order = np.argsort(fold_a, kind="stable")
    fold_a, fold_b, fold_ka, fold_kb = (x[order] for x in fold)
    found: list[tuple[np.ndarray, ...]] = []
    slab = max(1, _BLOCK_CELLS // n)
    for start in range(0, n, slab):
        stop = min(start + slab, n)
        rows, width = slice(start, stop), n - start  # columns from ``start`` on: b > a

        def cells(chosen: np.ndarray | None = None, weights: np.ndarray | None = None
                  ) -> np.ndarray:
            at = cell if chosen is None else cell[chosen]
            return np.bincount(at, weights=weights, minlength=(stop - start) * width
                               ).reshape(stop - start, width)

        lo, hi = np.searchsorted(fold_a, [start, stop])
        cell = (fold_a[lo:hi] - start) * width + (fold_b[lo:hi] - start)
        ka, kb = fold_ka[lo:hi], fold_kb[lo:hi]
        tasks = (presence[:, rows].T @ presence[:, start:]).astype(float) + cells()
        agreements = cells(weights=(ka == kb).astype(float))
        chance = np.zeros_like(tasks)
        for k, one in zip(classes, gave, strict=True):
            agreements += one[:, rows].T @ one[:, start:]
            by_a = (one[:, rows].T @ presence[:, start:]).astype(float) + cells(ka == k)
            by_b = (presence[:, rows].T @ one[:, start:]).astype(float) + cells(kb == k)
            chance += by_a * by_b
        upper = np.arange(width)[None, :] > np.arange(stop - start)[:, None]
        r, c = np.nonzero(upper & (tasks > 0))
        found.append(((start + r).astype(np.int32), (start + c).astype(np.int32),
                      *_kappa(tasks[r, c], agreements[r, c], chance[r, c])))
    return found


def _kappa(tasks: np.ndarray, agreements: np.ndarray, chance: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Return the tasks and Cohen's kappa of pairs from their counts (see _dense_block)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = agreements / tasks
        expected = chance / (tasks * tasks)
        return tasks, np.where(expected < 1.0 - 1e-12,
                               (observed - expected) / (1.0 - expected), np.nan)


def _pair_kappas(group: np.ndarray, task: np.ndarray, worker: np.ndarray, klass: np.ndarray,
                 T: int, W: int) -> _PairKappas:
    """Cohen's kappa of every (group, worker a, worker b) with a common task in the group.

    One label per (task, worker). A unit is a (group, task) and a column a (group, worker),
    so labels meet only labels of their own group. Per pair only the common tasks, the
    agreements and the chance term (the confusion matrix's margins multiplied) are kept,
    never the pairs of labels of a heavy unit: those are counted in a dense block of their
    group's columns (see :func:`_dense_units`), and the ordinary units' pairs of labels
    are laid out and summed by pair of columns.
    """
    units, unit = np.unique(group * T + task, return_inverse=True)
    columns, column = np.unique(group * W + worker, return_inverse=True)
    unit, column = unit.reshape(-1), column.reshape(-1)
    C, K = len(columns), int(klass.max(initial=0)) + 1
    on_dense = _dense_units(unit, column, units // T)[unit] if len(unit) else unit > 0
    a, b = _label_pairs(unit, np.flatnonzero(~on_dense))
    a, b = np.where(column[a] > column[b], b, a), np.where(column[a] > column[b], a, b)
    # The dense blocks' columns, numbered within their group (columns sort by group).
    block_columns = np.unique(column[on_dense])
    block_group = columns[block_columns] // W
    block_start = np.searchsorted(block_group, block_group)
    local = np.full(C, -1, dtype=np.int64)
    local[block_columns] = np.arange(len(block_columns)) - block_start
    folded = (local[column[a]] >= 0) & (local[column[b]] >= 0)
    parts: list[tuple[np.ndarray, ...]] = []
    light_a, light_b = a[~folded], b[~folded]
    key = column[light_a].astype(np.int64) * C + column[light_b]
    pair, inverse = np.unique(key, return_inverse=True)
    inverse, P = inverse.reshape(-1), len(pair)
    ka, kb = klass[light_a], klass[light_b]
    by_a = np.bincount(inverse * K + ka, minlength=P * K).reshape(P, K).astype(float)
    by_b = np.bincount(inverse * K + kb, minlength=P * K).reshape(P, K).astype(float)
    parts.append((pair // C, pair % C, *_kappa(
        np.bincount(inverse, minlength=P).astype(float),
        np.bincount(inverse, weights=(ka == kb).astype(float), minlength=P),
        (by_a * by_b).sum(axis=1))))
    fold_group = columns[column[a[folded]]] // W
    for g in np.unique(block_group):
        rows = np.flatnonzero(on_dense & (columns[column] // W == g))
        _, block_unit = np.unique(unit[rows], return_inverse=True)
        chosen = fold_group == g
        fa, fb = a[folded][chosen], b[folded][chosen]
        offset = block_columns[block_start[np.searchsorted(block_group, g)]]
        for first, second, tasks, kappa in _dense_block(
                block_unit.reshape(-1), local[column[rows]], klass[rows],
                (local[column[fa]], local[column[fb]], klass[fa], klass[fb])):
            parts.append((first + offset, second + offset, tasks, kappa))
    first, second, tasks, kappa = (np.concatenate(x) for x in zip(*parts, strict=True))
    # Pairs stay within a group, and within a group columns sort by worker.
    first, second = columns[first], columns[second]
    return _PairKappas(first // W, first % W, second % W, tasks, kappa)


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
    overall_pairs = _pair_kappas(np.zeros(len(task_code), dtype=np.int64), task_code,
                                 worker_code, klass, T, W)
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
            pairs = overall_pairs
            table["cohen_kappa"] = _weighted_mean(pairs.group, pairs.kappa, pairs.tasks, 1)
        elif name == "worker":
            pairs = overall_pairs
            # Worker codes are the group codes here when every worker is its own group.
            to_group = np.full(W, -1, dtype=np.int64)
            to_group[worker_code] = code
            index = np.concatenate([to_group[pairs.first], to_group[pairs.second]])
            table["cohen_kappa"] = _weighted_mean(index, np.concatenate([pairs.kappa] * 2),
                                                  np.concatenate([pairs.tasks] * 2), G)
        else:
            pairs = _pair_kappas(code, task_code, worker_code, klass, T, W)
            table["cohen_kappa"] = _weighted_mean(pairs.group, pairs.kappa, pairs.tasks, G)
        if consensus is not None:
            table["accuracy_consensus"] = _share(consensus == klass, code, consensus >= 0, G)
        if gold is not None:
            table["accuracy_gold"] = _share(gold == klass, code, gold >= 0, G)
        result[name] = pd.DataFrame(table, index=pd.Index(group.keys[used] if len(used) else
                                                          group.keys[:0]))
    return result
