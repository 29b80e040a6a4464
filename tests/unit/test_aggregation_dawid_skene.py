"""The Dawid-Skene engines against crowd-kit, the reference, and the two stopping rules."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aggregation import DawidSkene, aggregate, prepare_labels
from aggregation.dawid_skene import fit_arrays, marginal_log_likelihood, tied_tasks
from aggregation.io import read_gold, read_labels

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "act_sp"
MARGIN = 1e-9  # labels are compared where crowd-kit's top two posteriors differ by more


def crowdkit_fit(data: pd.DataFrame, gold: pd.Series | None = None, **options):
    from crowdkit.aggregation import DawidSkene as CrowdKit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CrowdKit(**options).fit(data, gold)


def synthetic(seed: int, tasks: int, workers: int, classes: int, overlap: int,
              label_kind: str = "int", single: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Labels from random confusion matrices; ``single`` extra tasks get one label each."""
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.ones(classes) * 2)
    truth = rng.choice(classes, size=tasks + single, p=prior)
    confusion = rng.dirichlet(np.ones(classes) * 0.5, size=(workers, classes))
    skill = rng.uniform(0.3, 0.9, size=workers)
    confusion = confusion * (1 - skill)[:, None, None] + np.eye(classes) * skill[:, None, None]
    rows = []
    for t in range(tasks + single):
        chosen = rng.choice(workers, size=1 if t >= tasks else overlap, replace=False)
        for w in chosen:
            rows.append((t, w, rng.choice(classes, p=confusion[w, truth[t]])))
    rng.shuffle(rows)
    names = {"int": lambda k: int(k), "str": lambda k: f"class-{k}",
             "bool": lambda k: bool(k)}[label_kind]
    frame = pd.DataFrame({"task": [f"t{t}" for t, _, _ in rows],
                          "worker": [f"w{w}" for _, w, _ in rows],
                          "label": [names(k) for _, _, k in rows]})
    truth_series = pd.Series([names(k) for k in truth],
                             index=pd.Index([f"t{t}" for t in range(tasks + single)],
                                            name="task"))
    return frame, truth_series


def assert_same_as_crowdkit(data: pd.DataFrame, gold: pd.Series | None = None,
                            engine: str = "numpy", **options) -> float:
    """Assert ours equals crowd-kit; return the share of tasks without a near-tie."""
    reference = crowdkit_fit(data, gold, **options)
    ours = DawidSkene(stop="crowdkit", engine=engine, device="cpu" if engine == "torch" else None,
                      **options).fit(data, gold)
    assert ours.n_iter_ == len(reference.loss_history_)
    np.testing.assert_allclose(ours.loss_history_, reference.loss_history_, rtol=0, atol=1e-9)
    theirs = reference.probas_
    mine = ours.probas_.reindex(index=theirs.index, columns=theirs.columns)
    assert np.abs(mine.to_numpy() - theirs.to_numpy()).max() < 1e-6
    top2 = -np.sort(-theirs.to_numpy(), axis=1)[:, :2] if theirs.shape[1] > 1 else None
    clear = np.ones(len(theirs), bool) if top2 is None else (top2[:, 0] - top2[:, 1]) > MARGIN
    mine_labels = ours.labels_.reindex(theirs.index)
    assert (mine_labels[clear] == reference.labels_[clear]).all()
    np.testing.assert_allclose(ours.priors_.reindex(reference.priors_.index),
                               reference.priors_, atol=1e-6)
    errors = ours.errors_.reindex(index=reference.errors_.index,
                                  columns=reference.errors_.columns)
    np.testing.assert_allclose(errors.to_numpy(), reference.errors_.to_numpy(), atol=1e-6)
    return float(clear.mean())


CASES = [
    # seed, tasks, workers, classes, overlap, label kind, single-label tasks
    (1, 60, 8, 2, 3, "int", 0),
    (2, 80, 12, 3, 4, "str", 5),
    (3, 50, 6, 5, 5, "int", 0),
    (4, 120, 30, 4, 2, "str", 10),
    (5, 40, 4, 2, 4, "bool", 0),
]


@pytest.mark.parametrize("case", CASES, ids=[f"seed{c[0]}-K{c[3]}-{c[5]}" for c in CASES])
def test_numpy_engine_matches_crowdkit_on_varied_data(case):
    data, _ = synthetic(*case)
    assert assert_same_as_crowdkit(data) > 0.95


@pytest.mark.parametrize("case", CASES[:3], ids=[f"seed{c[0]}" for c in CASES[:3]])
def test_numpy_engine_matches_crowdkit_with_gold_clamped(case):
    data, truth = synthetic(*case)
    gold = truth.iloc[::4]
    assert_same_as_crowdkit(data, gold)
    ours = DawidSkene(stop="crowdkit").fit(data, gold)
    assert (ours.labels_.reindex(gold.index) == gold).all()


def test_numpy_engine_matches_crowdkit_with_other_options():
    data, _ = synthetic(6, 70, 10, 3, 3)
    assert_same_as_crowdkit(data, n_iter=3)
    assert_same_as_crowdkit(data, tol=1e-2)
    assert_same_as_crowdkit(data, n_iter=0)


def test_numpy_engine_matches_crowdkit_on_real_data():
    data = read_labels(DATA / "labels.csv")
    gold = read_gold(DATA / "gold.csv")
    assert assert_same_as_crowdkit(data) == 1.0
    assert assert_same_as_crowdkit(data, gold.iloc[::3]) == 1.0


def test_likelihood_rule_never_decreases_and_stops_on_the_gain():
    data, _ = synthetic(7, 150, 15, 3, 4)
    model = DawidSkene(tol=1e-7).fit(data)
    trace = np.array(model.loss_history_)
    assert (np.diff(trace) > -1e-12).all()
    assert model.converged_ and trace[-1] - trace[-2] < 1e-7
    assert model.n_iter_ == len(trace) < 100
    # The last value is the log-likelihood of the parameters that entered the last iteration.
    table = prepare_labels(data)
    assert marginal_log_likelihood(table, model.fit_.priors, model.fit_.confusions) >= trace[-1]


def biased_workers(seed: int = 7):
    """Balanced truth; workers over-answer class 0, so majority vote skews the prior."""
    rng = np.random.default_rng(seed)
    tasks, workers, overlap = 400, 30, 5
    truth = rng.integers(0, 2, tasks)
    says_0_if_0 = rng.uniform(0.85, 0.98, workers)
    says_0_if_1 = rng.uniform(0.3, 0.6, workers)
    task = np.repeat(np.arange(tasks), overlap)
    worker = np.concatenate([rng.choice(workers, overlap, replace=False) for _ in range(tasks)])
    p0 = np.where(truth[task] == 0, says_0_if_0[worker], says_0_if_1[worker])
    label = (rng.random(task.size) >= p0).astype(int)
    return (pd.DataFrame({"task": task, "worker": worker, "label": label}),
            pd.Series(truth, index=pd.Index(range(tasks), name="task")))


def test_crowdkit_rule_stops_early_where_the_likelihood_still_rises():
    data, truth = biased_workers()
    reference = crowdkit_fit(data)
    crowdkit_mode = DawidSkene(stop="crowdkit").fit(data)
    likelihood_mode = DawidSkene().fit(data)
    # crowd-kit's quantity falls at the second iteration and it stops there ...
    assert len(reference.loss_history_) == crowdkit_mode.n_iter_ == 2
    assert reference.loss_history_[1] < reference.loss_history_[0]
    # ... while the true likelihood goes on rising for many iterations,
    table = prepare_labels(data)
    at_crowdkit_stop = marginal_log_likelihood(table, crowdkit_mode.fit_.priors,
                                               crowdkit_mode.fit_.confusions)
    at_likelihood_stop = marginal_log_likelihood(table, likelihood_mode.fit_.priors,
                                                 likelihood_mode.fit_.confusions)
    assert likelihood_mode.n_iter_ > 10
    assert at_likelihood_stop > at_crowdkit_stop + 1e-3
    # and going on finds more of the truth.
    accuracy_crowdkit = (reference.labels_.reindex(truth.index) == truth).mean()
    accuracy_likelihood = (likelihood_mode.labels_.reindex(truth.index) == truth).mean()
    assert accuracy_likelihood > accuracy_crowdkit + 0.02


def test_option_errors():
    with pytest.raises(ValueError, match="stopping rule"):
        DawidSkene(stop="elbo")
    with pytest.raises(ValueError, match="n_iter"):
        DawidSkene(n_iter=-1)
    with pytest.raises(ValueError, match="engine"):
        DawidSkene(engine="jax")
    with pytest.raises(ValueError, match="crowd-kit's own"):
        aggregate(biased_workers()[0], engine="crowdkit")


def test_crowdkit_engine_through_aggregate_is_the_reference():
    data = read_labels(DATA / "labels.csv")
    ours = aggregate(data, stop="crowdkit", gold_holdout=1.0)
    theirs = aggregate(data, stop="crowdkit", engine="crowdkit", gold_holdout=1.0)
    assert ours.iterations == theirs.iterations and ours.stop == theirs.stop == "crowdkit"
    assert np.abs(ours.posteriors - theirs.posteriors.loc[ours.posteriors.index]).max().max() \
        < 1e-6
    assert (ours.labels == theirs.labels.loc[ours.labels.index]).all()


def test_arrays_engine_handles_an_empty_table_and_refuses_a_task_without_labels():
    fit = fit_arrays(np.array([], int), np.array([], int), np.array([], int), 0, 0, 2)
    assert fit.posteriors.shape == (0, 2) and fit.iterations == 0
    with pytest.raises(ValueError, match="at least one label"):
        fit_arrays(np.array([0, 2]), np.array([0, 0]), np.array([1, 0]), 3, 1, 2)


def test_row_order_does_not_change_the_fit():
    data, truth = synthetic(8, 90, 10, 3, 4)
    forward = DawidSkene().fit(data, truth.iloc[::6])
    backward = DawidSkene().fit(data.iloc[::-1], truth.iloc[::6])
    assert forward.n_iter_ == backward.n_iter_
    np.testing.assert_allclose(backward.probas_.loc[forward.probas_.index], forward.probas_,
                               atol=1e-12)


def test_ties_go_to_the_first_class_and_are_listed():
    # Two workers disagree on every task, symmetrically: every posterior is 1/2.
    data = pd.DataFrame({"task": ["t1", "t1", "t2", "t2"], "worker": ["a", "b", "a", "b"],
                         "label": ["y", "x", "x", "y"]})
    model = DawidSkene(classes=["y", "x"]).fit(data)
    assert model.labels_.tolist() == ["y", "y"]
    assert list(tied_tasks(model.probas_)) == ["t1", "t2"]


def test_importing_aggregation_loads_neither_torch_nor_crowdkit():
    code = ("import sys, aggregation, aggregation.agreement, aggregation.io, "
            "aggregation.dawid_skene_torch; "
            "print('torch' in sys.modules, 'crowdkit' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


# --- torch ------------------------------------------------------------------------------------


def test_torch_engine_matches_crowdkit_and_numpy_on_cpu():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # small tensors: thread start-up would dominate
    data, truth = synthetic(2, 80, 12, 3, 4, "str", 5)
    assert_same_as_crowdkit(data, engine="torch")
    assert_same_as_crowdkit(data, truth.iloc[::5], engine="torch")
    for stop in ("likelihood", "crowdkit"):
        ours_numpy = DawidSkene(stop=stop).fit(data, truth.iloc[::5])
        ours_torch = DawidSkene(stop=stop, engine="torch", device="cpu").fit(data,
                                                                             truth.iloc[::5])
        assert ours_numpy.n_iter_ == ours_torch.n_iter_
        np.testing.assert_allclose(ours_torch.probas_, ours_numpy.probas_, atol=1e-12)
        np.testing.assert_allclose(ours_torch.errors_, ours_numpy.errors_, atol=1e-12)
        np.testing.assert_allclose(ours_torch.loss_history_, ours_numpy.loss_history_,
                                   atol=1e-12)
    through_registry = aggregate(data, engine="torch", device="cpu")
    assert (through_registry.labels == aggregate(data).labels).all()


def test_torch_engine_takes_tensors_and_reports_a_missing_device():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from aggregation import dawid_skene_torch

    codes = [torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 1, 0, 1, 1]),
             torch.tensor([1, 1, 0, 0, 1])]
    fit = dawid_skene_torch.fit_arrays(*codes, 3, 2, 2, device="cpu")
    reference = fit_arrays(*(c.numpy() for c in codes), 3, 2, 2)
    np.testing.assert_allclose(fit.posteriors, reference.posteriors, atol=1e-12)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            dawid_skene_torch.resolve_device("cuda")
        assert dawid_skene_torch.resolve_device(None).type == "cpu"
