"""The canonical order and fingerprint of a consensus run's inputs, without a database."""

from __future__ import annotations

import numpy as np
import pandas as pd

from coordinator.consensus.services import _canonical_order, input_fingerprint

CLASSES = ("positive", "negative", "neutral")


def _labels(seed: int = 3, n: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pairs = rng.choice(200 * 30, size=n, replace=False)  # distinct (task, worker) pairs
    return (1000 + pairs // 30).astype(np.int64), (7 + pairs % 30).astype(np.int64), \
        rng.integers(0, 3, size=n).astype(np.int16)


def _fingerprint(task, worker, klass, classes=CLASSES, gold=None):
    order = _canonical_order(task, worker, klass, classes)
    gold = gold if gold is not None else pd.Series([], dtype=object)
    return input_fingerprint(task[order], worker[order], klass[order], classes, gold)


def test_the_fingerprint_does_not_depend_on_the_order_rows_arrive_in():
    task, worker, klass = _labels()
    shuffle = np.random.default_rng(9).permutation(len(task))
    assert _fingerprint(task, worker, klass) == _fingerprint(
        task[shuffle], worker[shuffle], klass[shuffle])


def test_it_changes_with_any_label_and_with_gold():
    task, worker, klass = _labels()
    base = _fingerprint(task, worker, klass)
    changed = klass.copy()
    changed[17] = (changed[17] + 1) % 3
    assert _fingerprint(task, worker, changed) != base
    assert _fingerprint(task[1:], worker[1:], klass[1:]) != base
    gold = pd.Series(["negative"], index=pd.Index([int(task.min())], name="task"))
    assert _fingerprint(task, worker, klass, gold=gold) != base


def test_the_order_of_the_classes_does_not_enter():
    task, worker, klass = _labels()
    reordered = ("neutral", "positive", "negative")
    moved = np.array([reordered.index(c) for c in CLASSES], dtype=np.int16)[klass]
    assert _fingerprint(task, worker, klass) == _fingerprint(task, worker, moved, reordered)


def _lexsorted(task, worker, klass):
    value_rank = np.argsort(np.argsort(np.array(CLASSES, dtype=object)))[klass]
    return np.lexsort((value_rank, worker, task))


def test_the_one_key_sort_and_the_lexsort_for_ids_too_large_for_it_agree():
    task, worker, klass = _labels()
    assert (_canonical_order(task, worker, klass, CLASSES) == _lexsorted(task, worker, klass)).all()
    # Spans whose product passes 2**62 would overflow one int64 key.
    wide = np.r_[task, 2**61], np.r_[worker + 2**40, 7], np.r_[klass, 0].astype(np.int16)
    assert (_canonical_order(*wide, CLASSES) == _lexsorted(*wide)).all()
