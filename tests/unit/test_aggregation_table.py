"""Input rules of aggregation/: every bad table gives a clear error or a documented result."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aggregation import (
    AggregationInputError,
    DuplicateLabelsError,
    GoldConflictError,
    MissingColumnsError,
    MissingValuesError,
    UnknownLabelsError,
    aggregate,
    prepare_gold,
    prepare_labels,
)
from aggregation.io import read_gold, read_labels, write_labels, write_result

DATA = Path(__file__).resolve().parents[1] / "data" / "act_sp"


def frame(rows: list[tuple], columns=("task", "worker", "label")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def test_missing_columns_are_named():
    with pytest.raises(MissingColumnsError) as caught:
        prepare_labels(pd.DataFrame({"task": ["t1"], "annotator": ["a"], "answer": ["x"]}))
    assert caught.value.missing == ("worker", "label")
    assert "worker, label" in str(caught.value) and "annotator" in str(caught.value)


def test_missing_columns_in_aggregate_and_gold():
    with pytest.raises(MissingColumnsError):
        aggregate(pd.DataFrame({"task": [], "worker": []}))
    with pytest.raises(MissingColumnsError, match="gold table"):
        aggregate(frame([("t1", "a", "x")]), gold=pd.DataFrame({"task": ["t1"]}))


def test_not_a_frame_is_refused():
    with pytest.raises(AggregationInputError, match="DataFrame"):
        prepare_labels([("t1", "a", "x")])


def test_empty_cells_are_reported_with_their_rows():
    with pytest.raises(MissingValuesError) as caught:
        prepare_labels(frame([("t1", "a", "x"), ("t2", None, "y"), ("t3", "", "x")]))
    assert caught.value.column == "worker" and caught.value.rows == (1, 2)


def test_labels_outside_the_classes_are_refused():
    data = frame([("t1", "a", "pos"), ("t1", "b", "neutral"), ("t2", "a", "NEG")])
    with pytest.raises(UnknownLabelsError) as caught:
        prepare_labels(data, classes=["pos", "neg"])
    assert caught.value.labels == ("neutral", "NEG") and caught.value.rows == 2
    with pytest.raises(UnknownLabelsError):
        aggregate(data, classes=["pos", "neg"])


def test_label_type_mismatch_is_an_error_not_a_silent_miss():
    # Labels read from CSV are text; classes given as numbers do not match them.
    with pytest.raises(UnknownLabelsError, match="'1'"):
        prepare_labels(frame([("t1", "a", "1")]), classes=[0, 1])


def test_repeated_class_is_refused():
    with pytest.raises(AggregationInputError, match="repeat"):
        prepare_labels(frame([("t1", "a", "x")]), classes=["x", "x"])


def test_duplicate_policy_last_keeps_the_resubmission():
    data = frame([("t1", "a", "x"), ("t1", "b", "x"), ("t1", "a", "y"), ("t2", "a", "y")])
    table = prepare_labels(data)
    assert table.superseded == 1
    assert table.frame.values.tolist() == [["t1", "b", "x"], ["t1", "a", "y"], ["t2", "a", "y"]]
    codes = table.encode()
    assert list(codes.tasks[codes.task]) == ["t1", "t1", "t2"]
    assert list(codes.workers[codes.worker]) == ["b", "a", "a"]
    assert [table.classes[k] for k in codes.label] == ["x", "y", "y"]


def test_duplicate_policy_first_and_error():
    data = frame([("t1", "a", "x"), ("t1", "a", "y")])
    assert prepare_labels(data, duplicates="first").frame["label"].tolist() == ["x"]
    with pytest.raises(DuplicateLabelsError) as caught:
        prepare_labels(data, duplicates="error")
    assert caught.value.pairs == (("t1", "a"),)
    with pytest.raises(AggregationInputError, match="unknown duplicate policy"):
        prepare_labels(data, duplicates="mean")


def test_duplicates_count_once_in_the_result():
    # Worker a says y three times on t1; counted three times it would outvote b and c.
    data = frame([("t1", "a", "y"), ("t1", "b", "x"), ("t1", "c", "x"), ("t1", "a", "y"),
                  ("t1", "a", "y")])
    result = aggregate(data, "majority_vote")
    assert result.labels["t1"] == "x" and result.superseded == 2
    assert result.posteriors.loc["t1", "x"] == pytest.approx(2 / 3)


def test_empty_project_gives_an_empty_result():
    empty = frame([])
    for method in ("dawid_skene", "majority_vote", "wawa", "glad"):
        result = aggregate(empty, method, classes=["pos", "neg"])
        assert result.labels.empty and result.n_tasks == 0
        assert list(result.posteriors.columns) == ["pos", "neg"]
        assert result.iterations == 0 and np.isnan(result.gold_accuracy)


def test_one_class_used_keeps_every_project_class():
    data = frame([("t1", "a", "pos"), ("t1", "b", "pos"), ("t2", "a", "pos")])
    for method in ("dawid_skene", "majority_vote", "one_coin_dawid_skene"):
        result = aggregate(data, method, classes=["neg", "pos", "neutral"])
        assert list(result.posteriors.columns) == ["neg", "pos", "neutral"]
        assert result.labels.tolist() == ["pos", "pos"]
        assert np.allclose(result.posteriors["pos"], 1.0)
        assert np.allclose(result.posteriors.sum(axis=1), 1.0)


def test_single_worker_task_follows_that_worker_through_their_confusion():
    # t3 has one label, from b; b agrees with a everywhere else, so b's answer stands.
    data = frame([("t1", "a", "x"), ("t1", "b", "x"), ("t2", "a", "y"), ("t2", "b", "y"),
                  ("t3", "b", "y")])
    result = aggregate(data)
    assert result.labels["t3"] == "y"
    assert result.posteriors.loc["t3", "y"] > 0.9


def test_gold_rules():
    classes = ("x", "y")
    assert prepare_gold(None, classes).empty
    gold = prepare_gold(pd.DataFrame({"task": ["t1", "t1", "t2"], "label": ["x", "x", "y"]}),
                        classes)
    assert gold.to_dict() == {"t1": "x", "t2": "y"}
    with pytest.raises(GoldConflictError) as caught:
        prepare_gold(pd.DataFrame({"task": ["t1", "t1"], "label": ["x", "y"]}), classes)
    assert caught.value.tasks == ("t1",)
    with pytest.raises(UnknownLabelsError, match="gold table"):
        prepare_gold(pd.Series({"t1": "z"}), classes)


def test_extra_columns_are_kept_only_when_asked_and_must_exist():
    data = frame([("t1", "a", "x", "eu")], columns=("task", "worker", "label", "region"))
    assert list(prepare_labels(data).frame.columns) == ["task", "worker", "label"]
    assert "region" in prepare_labels(data, keep=["region"]).frame.columns
    with pytest.raises(MissingColumnsError, match="locale"):
        prepare_labels(data, keep=["locale"])


def test_input_frame_is_not_modified():
    data = frame([("t1", "a", "x"), ("t1", "a", "y")])
    before = data.copy()
    aggregate(data)
    pd.testing.assert_frame_equal(data, before)


def test_csv_round_trip_reads_text(tmp_path):
    labels = read_labels(DATA / "labels.csv")
    assert list(labels.columns) == ["task", "worker", "label"]
    assert set(labels["label"]) == {"0", "1"}
    gold = read_gold(DATA / "gold.csv")
    assert len(gold) == 600 and gold.index.name == "task"
    source = io.StringIO("task,worker,label\n007,w1,NA\n007,w2,\n")
    with pytest.raises(MissingValuesError):  # only the empty cell is missing; "NA" is text
        prepare_labels(read_labels(source))
    written = tmp_path / "labels.csv"
    write_labels(labels.head(10), written)
    pd.testing.assert_frame_equal(read_labels(written), labels.head(10))
    result = aggregate(labels, classes=["0", "1"])
    write_result(result, tmp_path / "result.csv")
    back = pd.read_csv(tmp_path / "result.csv", dtype={"task": str, "label": str})
    assert list(back.columns) == ["task", "label", "confidence", "p_0", "p_1"]
    assert back.set_index("task")["label"].to_dict() == result.labels.to_dict()
