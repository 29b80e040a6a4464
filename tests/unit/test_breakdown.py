"""The one-pass breakdowns give agreement_report's figures, grouping by grouping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aggregation.agreement import agreement_report
from aggregation.breakdown import breakdowns, grouping, last_per_pair

CLASSES = ["a", "b", "c"]


def _crowd(seed: int, labels: int = 600):
    rng = np.random.default_rng(seed)
    task = rng.integers(0, 90, labels)
    worker = rng.integers(0, 25, labels) * 7 + 3  # ids that are not codes
    truth = rng.integers(0, 3, 90)
    right = rng.random(labels) < 0.7
    klass = np.where(right, truth[task], rng.integers(0, 3, labels))
    workforce = worker % 3
    locale = np.array(["de", "en", "hi"], dtype=object)[rng.integers(0, 3, labels)]
    region = np.array(["eu", "in", "eu"], dtype=object)[workforce]
    return task, worker, klass, workforce, locale, region, truth


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_grouping_matches_agreement_report(seed):
    task, worker, klass, workforce, locale, region, truth = _crowd(seed)
    frame = pd.DataFrame({"task": task, "worker": worker,
                          "label": np.asarray(CLASSES, dtype=object)[klass],
                          "workforce": workforce, "locale": locale, "region": region})
    gold_tasks = np.arange(0, 90, 4)
    gold = pd.Series(np.asarray(CLASSES, dtype=object)[truth[gold_tasks]], index=gold_tasks)
    consensus = pd.Series(np.asarray(CLASSES, dtype=object)[truth[:80]], index=np.arange(80))
    gold_code = np.full(90, -1)
    gold_code[gold_tasks] = truth[gold_tasks]
    consensus_code = np.full(90, -1)
    consensus_code[:80] = truth[:80]
    tables = breakdowns(task, worker, klass, 3, {
        "workforce": grouping(workforce), "region": grouping(region),
        "locale": grouping(locale), "worker": grouping(worker)},
        consensus=consensus_code[task], gold=gold_code[task])
    for by in (None, "workforce", "region", "locale", "worker"):
        expected = agreement_report(frame, [by] if by else None, gold=gold, consensus=consensus,
                                    classes=CLASSES)
        got = tables[by]
        assert list(got.index) == list(expected.index), by
        assert list(got.columns) == list(expected.columns), by
        for column in expected.columns:
            np.testing.assert_allclose(got[column].to_numpy(dtype=float),
                                       expected[column].to_numpy(dtype=float),
                                       rtol=1e-9, err_msg=f"{by} {column}")


def test_a_workers_last_label_on_a_task_counts():
    task, worker = np.array([1, 1, 1, 2]), np.array([5, 6, 5, 5])
    assert last_per_pair(task, worker).tolist() == [False, True, True, True]


def test_one_class_gives_undefined_agreement_not_perfect():
    task, worker, klass = np.array([1, 1, 2, 2]), np.array([1, 2, 1, 2]), np.zeros(4, int)
    table = breakdowns(task, worker, klass, 2, {})[None]
    assert table["labels"].tolist() == [4]
    assert np.isnan(table["krippendorff_alpha"].iloc[0])
    assert np.isnan(table["fleiss_kappa"].iloc[0]) and np.isnan(table["cohen_kappa"].iloc[0])


def _gold_heavy(seed: int, gold_tasks: int, answers: int, workers: int, normal_tasks: int):
    """Gold tasks answered ``answers`` times each by distinct workers, beside 5-label tasks."""
    rng = np.random.default_rng(seed)
    task = np.concatenate([np.repeat(np.arange(gold_tasks), answers),
                           np.repeat(np.arange(gold_tasks, gold_tasks + normal_tasks), 5)])
    worker = np.concatenate([*(rng.permutation(workers)[:answers] for _ in range(gold_tasks)),
                             rng.integers(0, workers, normal_tasks * 5)]) * 3 + 1
    truth = rng.integers(0, 3, gold_tasks + normal_tasks)
    klass = np.where(rng.random(len(task)) < 0.7, truth[task], rng.integers(0, 3, len(task)))
    return task, worker, klass


def test_gold_heavy_tasks_match_agreement_report(monkeypatch):
    import aggregation.breakdown as breakdown

    blocks = []
    dense_block = breakdown._dense_block
    monkeypatch.setattr(breakdown, "_dense_block",
                        lambda *args: blocks.append(1) or dense_block(*args))
    task, worker, klass = _gold_heavy(4, gold_tasks=6, answers=70, workers=90, normal_tasks=150)
    workforce = worker % 2
    locale = np.where(worker % 5 == 0, "de", "en")  # per worker: gold units stay heavy
    frame = pd.DataFrame({"task": task, "worker": worker,
                          "label": np.asarray(CLASSES, dtype=object)[klass],
                          "workforce": workforce, "locale": locale})
    tables = breakdowns(task, worker, klass, 3, {"workforce": grouping(workforce),
                                                 "locale": grouping(locale),
                                                 "worker": grouping(worker)})
    assert blocks, "the gold tasks were not counted as dense blocks"
    for by in (None, "workforce", "locale", "worker"):
        expected = agreement_report(frame, [by] if by else None, classes=CLASSES)
        got = tables[by]
        assert list(got.index) == list(expected.index), by
        for column in expected.columns:
            np.testing.assert_allclose(got[column].to_numpy(dtype=float),
                                       expected[column].to_numpy(dtype=float),
                                       rtol=1e-9, err_msg=f"{by} {column}")


def test_gold_heavy_tasks_never_lay_out_their_pairs_of_labels(monkeypatch):
    import tracemalloc

    import aggregation.breakdown as breakdown

    # 20 gold tasks x 2,000 answers among 3,000 workers: 40 million pairs of labels, about
    # 4.5 million pairs of workers.
    task, worker, klass = _gold_heavy(5, gold_tasks=20, answers=2000, workers=3000,
                                      normal_tasks=4000)
    laid_out = []
    label_pairs = breakdown._label_pairs

    def counting(unit, rows):
        a, b = label_pairs(unit, rows)
        laid_out.append(len(a))
        return a, b

    monkeypatch.setattr(breakdown, "_label_pairs", counting)
    tracemalloc.start()
    try:
        table = breakdowns(task, worker, klass, 3, {})[None]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(laid_out) <= 10 * len(task)
    # About 4.5 million pairs of workers at some 90 bytes each; two int64 arrays of the
    # 40 million pairs of labels alone would take 610 MiB (laying them out took over 2 GiB).
    assert peak < 512 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert table["labels"].tolist() == [int(last_per_pair(task, worker).sum())]
    assert -1.0 <= table["cohen_kappa"].iloc[0] <= 1.0
