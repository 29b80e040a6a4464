"""Agreement metrics against published values and scikit-learn, overall and per group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from aggregation import AggregationInputError, MissingColumnsError, aggregate
from aggregation.agreement import (
    accuracy,
    accuracy_against_consensus,
    accuracy_against_gold,
    agreement_report,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen_kappa,
)
from aggregation.io import read_gold, read_labels

DATA = Path(__file__).resolve().parents[1] / "data" / "act_sp"


def from_matrix(rows: list[str], missing: str) -> pd.DataFrame:
    """Observers x units reliability data (Krippendorff's layout) as a label table."""
    records = [(f"u{unit}", f"o{observer}", value)
               for observer, row in enumerate(rows)
               for unit, value in enumerate(row.split()) if value != missing]
    return pd.DataFrame(records, columns=["task", "worker", "label"])


def from_counts(table: list[list[int]]) -> pd.DataFrame:
    """Subjects x categories counts (Fleiss' layout) as a label table."""
    records = []
    for subject, counts in enumerate(table):
        rater = 0
        for category, count in enumerate(counts):
            for _ in range(count):
                records.append((f"s{subject}", f"r{rater}", category))
                rater += 1
    return pd.DataFrame(records, columns=["task", "worker", "label"])


def test_krippendorff_alpha_on_krippendorffs_own_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C:
    # 4 observers, 12 units, missing values; nominal alpha = 0.743.
    data = from_matrix(["1 2 3 3 2 1 4 1 2 . . .",
                        "1 2 3 3 2 2 4 1 2 5 . 3",
                        ". 3 3 3 2 3 4 2 2 5 1 .",
                        "1 2 3 3 2 4 4 1 2 5 1 ."], missing=".")
    assert krippendorff_alpha(data) == pytest.approx(0.743, abs=5e-4)
    # By hand, from the paper's coincidence matrix: n = 40 pairable values, diagonal
    # o_cc = 7, 10, 8, 4, 3 (sum 32), n_c = 9, 13, 10, 5, 3 (sum of squares 384), so
    # alpha = 1 - (n - 1) * (n - 32) / (n^2 - 384) = 1 - 312 / 1216.
    assert krippendorff_alpha(data) == pytest.approx(1 - 312 / 1216, abs=1e-12)
    assert krippendorff_alpha(data, by=[]) == pytest.approx(1 - 312 / 1216)


def test_krippendorff_alpha_on_the_wikipedia_example():
    # en.wikipedia.org/wiki/Krippendorff's_alpha, "A computational example": 0.691.
    data = from_matrix(["* * * * * 3 4 1 2 1 1 3 3 * 3",
                        "1 * 2 1 3 3 4 3 * * * * * * *",
                        "* * 2 1 3 4 4 * 2 1 1 3 3 * 4"], missing="*")
    assert krippendorff_alpha(data) == pytest.approx(0.691, abs=5e-4)


FLEISS_1971 = [  # Fleiss (1971), Table 1: 30 patients, 6 psychiatrists each, 5 diagnoses
    [0, 0, 0, 6, 0], [0, 3, 0, 0, 3], [0, 1, 4, 0, 1], [0, 0, 0, 0, 6], [0, 3, 0, 3, 0],
    [2, 0, 4, 0, 0], [0, 0, 4, 0, 2], [2, 0, 3, 1, 0], [2, 0, 0, 4, 0], [0, 0, 0, 0, 6],
    [1, 0, 0, 5, 0], [1, 1, 0, 4, 0], [0, 3, 3, 0, 0], [1, 0, 0, 5, 0], [0, 2, 0, 3, 1],
    [0, 0, 5, 0, 1], [3, 0, 0, 1, 2], [5, 1, 0, 0, 0], [0, 2, 0, 4, 0], [1, 0, 2, 0, 3],
    [0, 0, 0, 0, 6], [0, 1, 0, 5, 0], [0, 2, 0, 1, 3], [2, 0, 0, 4, 0], [1, 0, 0, 4, 1],
    [0, 5, 0, 1, 0], [4, 0, 0, 0, 2], [0, 2, 0, 4, 0], [1, 0, 5, 0, 0], [0, 0, 0, 0, 6],
]


def test_fleiss_kappa_on_fleiss_1971():
    data = from_counts(FLEISS_1971)
    assert fleiss_kappa(data) == pytest.approx(0.430, abs=5e-4)
    assert fleiss_kappa(data.assign(site="a"), by="site").loc["a", "min_labels"] == 6


def test_fleiss_kappa_on_the_wikipedia_example():
    # en.wikipedia.org/wiki/Fleiss'_kappa, worked example: 10 subjects, 14 raters, 0.210.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(from_counts(table)) == pytest.approx(0.210, abs=5e-4)


def test_pairwise_cohen_kappa_equals_scikit_learn():
    data = read_labels(DATA / "labels.csv")
    pairs = pairwise_cohen_kappa(data)
    assert (pairs["worker_a"] < pairs["worker_b"]).all()
    by_worker = {w: g.set_index("task")["label"] for w, g in data.groupby("worker")}
    checked = 0
    for row in pairs.sort_values("tasks", ascending=False).head(25).itertuples():
        a, b = by_worker[row.worker_a], by_worker[row.worker_b]
        common = a.index.intersection(b.index)
        assert row.tasks == len(common)
        expected = cohen_kappa_score(a[common], b[common])
        if np.isnan(expected):
            assert np.isnan(row.kappa)
        else:
            assert row.kappa == pytest.approx(expected, abs=1e-12)
            checked += 1
    assert checked >= 20


def test_pairwise_cohen_kappa_undefined_when_both_always_give_one_class():
    data = pd.DataFrame({"task": ["t1", "t1", "t2", "t2"], "worker": ["a", "b", "a", "b"],
                         "label": ["x", "x", "x", "x"]})
    pairs = pairwise_cohen_kappa(data)
    assert pairs["agreement"].tolist() == [1.0] and np.isnan(pairs["kappa"].iloc[0])
    assert np.isnan(cohen_kappa(data))


def test_one_class_used_gives_nan_not_perfect_agreement():
    data = pd.DataFrame({"task": ["t1", "t1", "t2", "t2"], "worker": ["a", "b", "a", "b"],
                         "label": ["x"] * 4})
    assert np.isnan(krippendorff_alpha(data, classes=["x", "y"]))
    assert np.isnan(fleiss_kappa(data, classes=["x", "y"]))
    assert accuracy_against_gold(data, pd.Series({"t1": "x"})) == 1.0


def test_single_worker_tasks_and_empty_tables_are_left_out_and_counted():
    data = pd.DataFrame({"task": ["t1", "t1", "t2", "t3"], "worker": ["a", "b", "a", "b"],
                         "label": ["x", "y", "x", "y"], "region": ["eu", "eu", "eu", "us"]})
    alpha = krippendorff_alpha(data, by="region")
    assert alpha.loc["eu", "tasks"] == 1 and alpha.loc["eu", "labels"] == 2
    assert alpha.loc["us", "tasks"] == 0 and np.isnan(alpha.loc["us", "alpha"])
    empty = data.iloc[:0]
    assert np.isnan(krippendorff_alpha(empty)) and np.isnan(fleiss_kappa(empty))
    assert np.isnan(cohen_kappa(empty)) and pairwise_cohen_kappa(empty).empty
    assert np.isnan(accuracy(empty, pd.Series(dtype=object)))


def test_grouping_columns_compare_labels_within_each_group():
    data = pd.DataFrame({
        "task": ["t1", "t1", "t2", "t2", "t1", "t1", "t2", "t2"],
        "worker": ["a", "b", "a", "b", "c", "d", "c", "d"],
        "label": ["x", "x", "y", "y", "x", "y", "y", "x"],
        "region": ["eu"] * 4 + ["us"] * 4,
    })
    alpha = krippendorff_alpha(data, by="region")
    assert alpha.loc["eu", "alpha"] == pytest.approx(1.0)
    assert alpha.loc["us", "alpha"] < 0
    kappa = cohen_kappa(data, by="region")
    assert kappa.loc["eu", "cohen_kappa"] == 1.0 and kappa.loc["us", "cohen_kappa"] == -1.0
    pairs = pairwise_cohen_kappa(data, by="region")
    assert pairs[["region", "worker_a", "worker_b"]].values.tolist() == [["eu", "a", "b"],
                                                                         ["us", "c", "d"]]


def test_per_worker_grouping():
    data = read_labels(DATA / "labels.csv")
    with pytest.raises(AggregationInputError, match="cannot be grouped by worker"):
        krippendorff_alpha(data, by="worker")
    with pytest.raises(AggregationInputError, match="cannot be grouped by worker"):
        fleiss_kappa(data, by=["region", "worker"])
    per_worker = cohen_kappa(data, by="worker")
    assert set(per_worker.index) == set(data["worker"])
    pairs = pairwise_cohen_kappa(data)
    pairs = pairs[pairs["kappa"].notna()]
    worker = per_worker.index[0]
    mine = pairs[(pairs["worker_a"] == worker) | (pairs["worker_b"] == worker)]
    expected = (mine["kappa"] * mine["tasks"]).sum() / mine["tasks"].sum()
    assert per_worker.loc[worker, "cohen_kappa"] == pytest.approx(expected)
    assert per_worker.loc[worker, "pairs"] == len(mine)


def test_missing_grouping_column_is_named():
    data = read_labels(DATA / "labels.csv")
    with pytest.raises(MissingColumnsError, match="locale"):
        krippendorff_alpha(data, by="locale")


def test_accuracy_against_gold_and_consensus_per_worker_and_workforce():
    data = read_labels(DATA / "labels.csv")
    gold = read_gold(DATA / "gold.csv")
    workers = sorted(data["worker"].unique())
    data["workforce"] = data["worker"].map({w: ("vendor" if i % 2 else "mturk")
                                            for i, w in enumerate(workers)})
    overall = accuracy_against_gold(data, gold)
    hits = (data["label"] == data["task"].map(gold)).mean()
    assert overall == pytest.approx(hits)
    per_worker = accuracy_against_gold(data, gold, by="worker")
    some = workers[3]
    mine = data[data["worker"] == some]
    assert per_worker.loc[some, "accuracy"] == pytest.approx(
        (mine["label"] == mine["task"].map(gold)).mean())
    assert per_worker.loc[some, "labels"] == len(mine)
    per_force = accuracy_against_gold(data, gold, by="workforce")
    assert per_force["labels"].sum() == len(data)
    consensus = aggregate(data)
    against = accuracy_against_consensus(data, consensus, by=["workforce", "worker"])
    assert against.index.names == ["workforce", "worker"] and len(against) == len(workers)
    assert accuracy_against_consensus(data, consensus.labels) > overall  # includes own vote


def test_agreement_report_puts_every_metric_side_by_side():
    data = read_labels(DATA / "labels.csv")
    gold = read_gold(DATA / "gold.csv")
    data["locale"] = np.where(data["task"].astype(int) % 2 == 0, "en", "de")
    consensus = aggregate(data)
    report = agreement_report(data, by="locale", gold=gold, consensus=consensus)
    assert list(report.index) == ["de", "en"]
    assert list(report.columns) == ["labels", "tasks", "workers", "krippendorff_alpha",
                                    "fleiss_kappa", "cohen_kappa", "accuracy_consensus",
                                    "accuracy_gold"]
    assert report.loc["en", "krippendorff_alpha"] == pytest.approx(
        krippendorff_alpha(data[data["locale"] == "en"]))
    overall = agreement_report(data, gold=gold)
    assert list(overall.index) == ["all"] and overall.loc["all", "labels"] == len(data)
    per_worker = agreement_report(data, by="worker", gold=gold)
    assert "krippendorff_alpha" not in per_worker.columns
    assert 0.4 < overall.loc["all", "krippendorff_alpha"] < 0.6


def test_duplicates_count_once_in_agreement():
    data = pd.DataFrame({"task": ["t1", "t1", "t1"], "worker": ["a", "b", "a"],
                         "label": ["y", "x", "x"]})
    # a's resubmission (x) supersedes its first answer (y): full agreement on t1.
    assert pairwise_cohen_kappa(data)["agreement"].tolist() == [1.0]
    with pytest.raises(AggregationInputError):
        krippendorff_alpha(data, duplicates="error")
