"""The method registry: uniform results, deterministic ties, gold, the scikit-learn fix."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn

from aggregation import METHODS, AggregationResult, aggregate, split_gold
from aggregation.io import read_gold, read_labels

DATA = Path(__file__).resolve().parents[1] / "data" / "act_sp"
#: Options that keep the slow crowd-kit methods fast on small data.
QUICK = {"glad": {"n_iter": 3, "m_step_max_iter": 5}, "mace": {"n_restarts": 1, "n_iter": 5},
         "zero_based_skill": {"n_iter": 5}}


@pytest.fixture(scope="module")
def small():
    labels = read_labels(DATA / "labels.csv")
    tasks = labels["task"].drop_duplicates().iloc[:40]
    return labels[labels["task"].isin(tasks)], read_gold(DATA / "gold.csv")


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_returns_the_uniform_result(method, small):
    labels, gold = small
    result = aggregate(labels, method, classes=["0", "1"], gold=gold, **QUICK.get(method, {}))
    assert isinstance(result, AggregationResult) and result.method == method
    tasks = pd.unique(labels["task"])
    assert list(result.labels.index) == list(tasks) and result.labels.index.name == "task"
    assert list(result.posteriors.index) == list(tasks)
    assert list(result.posteriors.columns) == ["0", "1"]
    assert np.allclose(result.posteriors.sum(axis=1), 1.0)
    assert set(result.labels) <= {"0", "1"}
    top = result.posteriors.to_numpy().argmax(axis=1)
    assert (result.labels.to_numpy() == np.array(["0", "1"])[top]).all()
    assert result.gold_held_out > 0 and 0.5 < result.gold_accuracy <= 1.0
    assert result.gold_used == (0 if METHODS[method].gold is None else 40 - result.gold_held_out)
    if result.worker_skills is not None:
        assert set(result.worker_skills.index) == set(labels["worker"])
    if method == "dawid_skene":
        assert result.confusions.shape == (2 * labels["worker"].nunique(), 2)
        sums = result.confusions.groupby(level="worker").sum()
        assert np.allclose(sums, 1.0)
        assert result.stop == "likelihood" and result.converged and result.iterations > 0


def test_unknown_method_and_options():
    data = pd.DataFrame({"task": ["t"], "worker": ["a"], "label": ["x"]})
    with pytest.raises(KeyError, match="unknown aggregation method"):
        aggregate(data, "bayes")
    with pytest.raises(TypeError, match="takes no options"):
        aggregate(data, "majority_vote", n_iter=3)


def test_majority_vote_ties_do_not_depend_on_row_order():
    rows = [("t1", "a", "neg"), ("t1", "b", "pos"), ("t2", "a", "pos"), ("t2", "b", "neg"),
            ("t3", "a", "pos"), ("t3", "b", "pos")]
    forward = pd.DataFrame(rows, columns=["task", "worker", "label"])
    backward = forward.iloc[::-1]
    classes = ["pos", "neg"]
    for method in ("majority_vote", "wawa"):
        one = aggregate(forward, method, classes=classes)
        two = aggregate(backward, method, classes=classes)
        assert one.labels.to_dict() == two.labels.to_dict() == {"t1": "pos", "t2": "pos",
                                                                "t3": "pos"}
        assert set(one.ties) == {"t1", "t2"}


def test_crowdkit_majority_vote_breaks_ties_by_row_order():
    # The behaviour we replace: same labels, other row order, other answer.
    from crowdkit.aggregation import MajorityVote

    forward = pd.DataFrame({"task": ["t1", "t1"], "worker": ["a", "b"], "label": ["x", "y"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert MajorityVote().fit_predict(forward)["t1"] == "x"
        assert MajorityVote().fit_predict(forward.iloc[::-1])["t1"] == "y"


def _crowdkit_original(name: str, data: pd.DataFrame, gold: pd.Series | None, monkeypatch):
    """Run crowd-kit's own class with check_is_fitted made a no-op (the part that breaks)."""
    import crowdkit.aggregation.classification as classification
    from crowdkit.aggregation import GoldMajorityVote, Wawa, ZeroBasedSkill

    module, cls = {"wawa": (classification.wawa, Wawa),
                   "zero_based_skill": (classification.zero_based_skill, ZeroBasedSkill),
                   "gold_majority_vote": (classification.gold_majority_vote,
                                          GoldMajorityVote)}[name]
    monkeypatch.setattr(module, "check_is_fitted", lambda *args, **kwargs: None)
    model = cls(**QUICK["zero_based_skill"]) if name == "zero_based_skill" else cls()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if gold is None:
            return model.fit(data).predict_proba(data), model.skills_
        return model.fit(data, gold).predict_proba(data), model.skills_


@pytest.mark.parametrize("method", ["wawa", "zero_based_skill", "gold_majority_vote"])
def test_sklearn_fix_gives_crowdkits_own_answer(method, monkeypatch):
    labels = read_labels(DATA / "labels.csv")
    gold = read_gold(DATA / "gold.csv")
    # crowd-kit breaks majority-vote ties by row order and we by class order, which changes
    # the skills; on tasks without a tie both are the same algorithm.
    votes = labels.groupby(["task", "label"]).size().unstack(fill_value=0)
    untied = votes.index[votes["0"] != votes["1"]]
    labels = labels[labels["task"].isin(untied)]
    probas, skills = _crowdkit_original(method, labels,
                                        gold if method == "gold_majority_vote" else None,
                                        monkeypatch)
    ours = aggregate(labels, method, gold=gold, gold_holdout=0.0, **QUICK.get(method, {}))
    theirs = probas.reindex(index=ours.posteriors.index, columns=["0", "1"])
    assert np.abs(ours.posteriors.to_numpy() - theirs.to_numpy()).max() < 1e-12
    pd.testing.assert_series_equal(ours.worker_skills.sort_index(), skills.sort_index(),
                                   check_names=False, check_index_type=False)


@pytest.mark.skipif(tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 6),
                    reason="the breakage needs scikit-learn >= 1.6")
def test_crowdkit_predict_is_broken_on_this_scikit_learn():
    from crowdkit.aggregation import Wawa

    data = read_labels(DATA / "labels.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AttributeError, match="__sklearn_tags__"):
            Wawa().fit_predict(data)
    assert aggregate(data, "wawa").n_tasks == 600  # ours works on the same versions


def test_weighted_vote_with_all_weights_zero_falls_back_to_equal_weights():
    # c got its one gold task wrong, so its weight is 0 and t3, which only c labelled, would
    # be 0/0 in crowd-kit (no answer). We count c's vote there at equal weight, as a tie
    # would be: visible in the posteriors, not a silent first class.
    rows = [("t1", "a", "x"), ("t1", "c", "y"), ("t2", "a", "y"), ("t3", "c", "y")]
    data = pd.DataFrame(rows, columns=["task", "worker", "label"])
    result = aggregate(data, "gold_majority_vote", gold=pd.Series({"t1": "x"}),
                       gold_holdout=0.0)
    assert result.worker_skills["c"] == 0.0
    assert result.labels["t3"] == "y" and result.posteriors.loc["t3", "y"] == 1.0
    assert not result.posteriors.isna().any().any()


def test_gold_split_is_stable_and_measures_only_held_out_tasks():
    gold = read_gold(DATA / "gold.csv")
    used, held = split_gold(gold, 0.25, seed=3)
    assert len(used) + len(held) == len(gold) and not used.index.intersection(held.index).size
    assert 0.18 < len(held) / len(gold) < 0.32
    again_used, again_held = split_gold(gold.iloc[::-1], 0.25, seed=3)
    assert set(again_held.index) == set(held.index)
    grown_used, grown_held = split_gold(gold.iloc[:300], 0.25, seed=3)
    assert set(grown_held.index) <= set(held.index)
    assert split_gold(gold, 0.0)[1].empty and split_gold(gold, 1.0)[0].empty
    with pytest.raises(ValueError):
        split_gold(gold, 1.5)


def test_gold_is_clamped_in_dawid_skene_and_only_held_out_gold_is_measured():
    labels = read_labels(DATA / "labels.csv")
    gold = read_gold(DATA / "gold.csv")
    used, held = split_gold(gold, 0.2, seed=0)
    result = aggregate(labels, gold=gold, gold_holdout=0.2, seed=0)
    assert result.gold_used == len(used) and result.gold_held_out == len(held)
    assert (result.labels.loc[used.index] == used).all()  # clamped
    assert result.gold_accuracy == pytest.approx((result.labels.loc[held.index] == held).mean())
    all_measured = aggregate(labels, gold=gold, gold_holdout=1.0)
    assert all_measured.gold_used == 0 and all_measured.gold_held_out == 600
    assert 0.85 < all_measured.gold_accuracy < 0.95


def test_gold_majority_vote_without_gold_for_a_worker_uses_the_mean_skill():
    rows = [("t1", "a", "x"), ("t1", "b", "y"), ("t2", "a", "y"), ("t2", "b", "y"),
            ("t3", "c", "x"), ("t3", "a", "y")]
    data = pd.DataFrame(rows, columns=["task", "worker", "label"])
    result = aggregate(data, "gold_majority_vote", gold=pd.Series({"t1": "x", "t2": "y"}),
                       gold_holdout=0.0)
    assert result.worker_skills.to_dict() == {"a": 1.0, "b": 0.5, "c": 0.75}
    assert result.extras["workers_without_gold"] == 1
    assert result.labels["t3"] == "y"  # a (1.0) outweighs c (0.75)


def test_method_extras():
    labels = read_labels(DATA / "labels.csv")
    small = labels[labels["task"].isin(labels["task"].drop_duplicates().iloc[:20])]
    glad = aggregate(small, "glad", **QUICK["glad"])
    assert set(glad.extras["task_difficulty"].index) == set(small["task"])
    mace = aggregate(small, "mace", n_restarts=1, n_iter=3)
    spam = mace.extras["spam_label_distribution"]
    assert set(spam.index) == set(small["worker"]) and list(spam.columns) == ["0", "1"]
    assert ((mace.worker_skills >= 0) & (mace.worker_skills <= 1)).all()
