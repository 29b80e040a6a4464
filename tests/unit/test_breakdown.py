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
