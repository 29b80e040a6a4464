"""Dawid-Skene in vectorised NumPy, step for step the algorithm of crowd-kit 1.4.2.

Same initialisation (majority-vote shares, gold rows clamped to one-hot), same E-step and
M-step (confusion counts clipped at 1e-10 for the labels a worker used, then normalised per
worker and true class; the class prior clipped at 1e-10), same iteration cap and tolerance.
Only the stopping quantity is a choice:

``stop="crowdkit"``
    crowd-kit's own quantity, reproduced exactly: an evidence lower bound per label in which
    the log class prior is added once per *label* instead of once per task. It is not the
    likelihood EM increases, so it can fall while the likelihood still rises, and crowd-kit
    then stops after two or three iterations on some real datasets.
``stop="likelihood"`` (the default)
    the true marginal log-likelihood of the observed labels per label,
    ``sum_t log sum_c p_c prod_{labels of t} e_w[observed | c]`` divided by the number of
    labels (for a gold task only its gold class enters the sum). EM never decreases it, so
    the run stops when an iteration gains less than ``tol``. It costs nothing extra: the
    E-step computes it on the way.

Trace semantics are those of crowd-kit's ``loss_history_``: one value per iteration; under
``"likelihood"``, value ``i`` is the log-likelihood of the parameters that entered
iteration ``i`` (so the last value is the converged one). The returned posteriors come from
the last E-step and the confusions from the last M-step, as in crowd-kit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .table import LabelTable, prepare_gold, prepare_labels

#: crowd-kit's floor for probabilities before taking logs.
EPS = 1e-10
STOP_RULES = ("likelihood", "crowdkit")


@dataclass(frozen=True)
class DawidSkeneFit:
    """What the engine computes, as arrays over codes (see :class:`aggregation.table.Encoded`)."""

    #: Posterior class probabilities, shape (tasks, classes).
    posteriors: np.ndarray
    #: Class prior, shape (classes,).
    priors: np.ndarray
    #: ``confusions[w, k, c]`` = P(worker w answers class k | true class c);
    #: zero for classes the worker never answered.
    confusions: np.ndarray
    iterations: int
    #: True when the stopping quantity gained less than ``tol`` before ``n_iter`` ran out.
    converged: bool
    stop: str
    #: The stopping quantity per iteration (per label).
    trace: tuple[float, ...]


def check_options(n_iter: int, tol: float, stop: str) -> None:
    """Raise ValueError for options no engine accepts."""
    if stop not in STOP_RULES:
        raise ValueError(f"unknown stopping rule {stop!r}; use one of {', '.join(STOP_RULES)}")
    if int(n_iter) != n_iter or n_iter < 0:
        raise ValueError(f"n_iter must be a whole number >= 0, not {n_iter!r}")
    if tol != tol:  # NaN would never stop and never say why
        raise ValueError("tol must be a number, not NaN")


def gold_codes(tasks: pd.Index, classes: tuple, gold: pd.Series | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Return (task codes, class codes) of the gold answers whose task is in ``tasks``."""
    if gold is None or len(gold) == 0:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty
    task = tasks.get_indexer(gold.index)
    present = task >= 0
    label = pd.Categorical(gold.to_numpy()[present], categories=list(classes)).codes
    return task[present].astype(np.intp), label.astype(np.intp)


def fit_arrays(
    task: np.ndarray,
    worker: np.ndarray,
    label: np.ndarray,
    n_tasks: int,
    n_workers: int,
    n_classes: int,
    *,
    n_iter: int = 100,
    tol: float = 1e-5,
    stop: str = "likelihood",
    gold_task: np.ndarray | None = None,
    gold_label: np.ndarray | None = None,
) -> DawidSkeneFit:
    """Fit Dawid-Skene on integer codes; every task code in ``range(n_tasks)`` must occur."""
    check_options(n_iter, tol, stop)
    K, T, W = int(n_classes), int(n_tasks), int(n_workers)
    n = len(task)
    if n == 0:
        return DawidSkeneFit(np.zeros((0, K)), np.zeros(K), np.zeros((W, K, K)), 0, True,
                             stop, ())
    task = np.asarray(task, dtype=np.intp)
    label = np.asarray(label, dtype=np.intp)
    P = W * K
    per_task = np.bincount(task, minlength=T)
    if len(per_task) != T or not per_task.all():
        raise ValueError("every task code in range(n_tasks) must have at least one label")
    # Initialisation: majority-vote shares, as crowd-kit's MajorityVote().fit_predict_proba.
    votes = np.bincount(label * T + task, minlength=K * T).reshape(K, T).astype(float)
    # From here on only (worker, label) pairs are needed, in rows grouped by task: the
    # per-task sums become contiguous segment sums and the per-label reads of the task
    # posteriors become repeats, both streaming through memory.
    pair = np.asarray(worker, dtype=np.intp) * K + label
    if np.any(task[1:] < task[:-1]):
        pair = pair[np.argsort(task, kind="stable")]
    starts = np.r_[0, np.cumsum(per_task)[:-1]]
    seen = np.bincount(pair, minlength=P) > 0
    gold_task = np.empty(0, np.intp) if gold_task is None else np.asarray(gold_task, np.intp)
    gold_label = np.empty(0, np.intp) if gold_label is None else np.asarray(gold_label, np.intp)

    def clamp(q: np.ndarray) -> None:  # q is class-major: (K, T)
        if len(gold_task):
            q[:, gold_task] = 0.0
            q[gold_label, gold_task] = 1.0

    def m_step(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts = np.empty((K, P))
        for c in range(K):
            counts[c] = np.bincount(pair, weights=np.repeat(q[c], per_task), minlength=P)
        errors = np.where(seen, np.maximum(counts, EPS), 0.0)
        by_worker = errors.reshape(K, W, K)
        by_worker /= by_worker.sum(axis=2, keepdims=True)
        priors = q.mean(axis=1)
        return priors, counts, errors

    def log_joint(priors: np.ndarray, errors: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            log_errors = np.log(errors)  # -inf only where a worker never used a class
        log_priors = np.log(np.maximum(priors, EPS))
        joint = np.empty((K, T))
        for c in range(K):
            joint[c] = np.add.reduceat(log_errors[c][pair], starts)
            joint[c] += log_priors[c]
        return joint

    def crowdkit_bound(q: np.ndarray, priors: np.ndarray, counts: np.ndarray,
                       errors: np.ndarray) -> float:
        with np.errstate(divide="ignore"):
            log_errors = np.where(seen, np.log(errors), 0.0)
        expectation = float((counts * log_errors).sum())
        expectation += float(counts.sum(axis=1) @ np.log(np.maximum(priors, EPS)))
        clipped = np.maximum(q, EPS)
        entropy = -float((clipped * np.log(clipped)).sum())
        return (expectation + entropy) / n

    q = votes / votes.sum(axis=0)
    del votes
    clamp(q)
    priors, counts, errors = m_step(q)

    gold_mask = np.zeros(T, dtype=bool)
    gold_mask[gold_task] = True
    free = ~gold_mask
    trace: list[float] = []
    previous = -np.inf
    converged = False
    for _ in range(int(n_iter)):
        joint = log_joint(priors, errors)
        top = joint.max(axis=0)
        q = np.exp(joint - top)
        total = q.sum(axis=0)
        q /= total
        if stop == "likelihood":
            value = float((top[free] + np.log(total[free])).sum())
            if len(gold_task):
                value += float(joint[gold_label, gold_task].sum())
            value /= n
        clamp(q)
        priors, counts, errors = m_step(q)
        if stop == "crowdkit":
            value = crowdkit_bound(q, priors, counts, errors)
        trace.append(value)
        if value - previous < tol:
            converged = True
            break
        previous = value

    confusions = errors.reshape(K, W, K).transpose(1, 2, 0).copy()  # [w, observed, true]
    return DawidSkeneFit(np.ascontiguousarray(q.T), priors, confusions, len(trace), converged,
                         stop, tuple(trace))


def marginal_log_likelihood(table: LabelTable, priors: np.ndarray, confusions: np.ndarray
                            ) -> float:
    """Return the marginal log-likelihood per label of a table under given parameters.

    ``confusions`` is indexed like :attr:`DawidSkeneFit.confusions` over the table's own
    worker codes. Useful to compare two fits of the same data on the quantity EM maximises.
    """
    codes = table.encode()
    if table.empty:
        return 0.0
    with np.errstate(divide="ignore"):
        log_errors = np.log(confusions[codes.worker, codes.label, :])  # (n, K)
    joint = np.zeros((codes.n_tasks, codes.n_classes))
    np.add.at(joint, codes.task, log_errors)
    joint += np.log(np.maximum(priors, EPS))
    top = joint.max(axis=1)
    return float((top + np.log(np.exp(joint - top[:, None]).sum(axis=1))).sum() / table.n_labels)


class DawidSkene:
    """Dawid-Skene aggregator with crowd-kit's interface, on the NumPy (or torch) engine.

    ``DawidSkene(stop="crowdkit").fit_predict(df)`` returns crowd-kit's labels; posteriors
    agree within 1e-6. ``engine="torch"`` runs the same steps in torch on ``device``
    (default: CUDA when present). Fitted attributes follow crowd-kit: ``labels_``,
    ``probas_``, ``priors_``, ``errors_`` (indexed by worker and observed label, one column
    per true label), ``loss_history_``; plus ``n_iter_`` and ``converged_``.
    """

    def __init__(self, n_iter: int = 100, tol: float = 1e-5, stop: str = "likelihood", *,
                 engine: str = "numpy", device: str | None = None,
                 classes: Any = None, duplicates: str = "last"):
        check_options(n_iter, tol, stop)
        if engine not in ("numpy", "torch"):
            raise ValueError(f"unknown engine {engine!r}; use 'numpy' or 'torch'")
        self.n_iter, self.tol, self.stop = n_iter, tol, stop
        self.engine, self.device = engine, device
        self.classes, self.duplicates = classes, duplicates

    def fit(self, data: pd.DataFrame, true_labels: pd.Series | pd.DataFrame | None = None
            ) -> DawidSkene:
        table = prepare_labels(data, self.classes, duplicates=self.duplicates)
        gold = prepare_gold(true_labels, table.classes)
        fit = fit_table(table, gold, n_iter=self.n_iter, tol=self.tol, stop=self.stop,
                        engine=self.engine, device=self.device)
        codes = table.encode()
        self.table_ = table
        self.fit_ = fit
        self.probas_ = posterior_frame(fit.posteriors, codes.tasks, table.classes)
        self.labels_ = most_probable(self.probas_)
        self.priors_ = pd.Series(fit.priors, index=pd.Index(table.classes, name="label"),
                                 name="prior")
        self.errors_ = confusion_frame(fit.confusions, codes.workers, table.classes)
        self.loss_history_ = list(fit.trace)
        self.n_iter_ = fit.iterations
        self.converged_ = fit.converged
        return self

    def fit_predict(self, data: pd.DataFrame, true_labels: Any = None) -> pd.Series:
        return self.fit(data, true_labels).labels_

    def fit_predict_proba(self, data: pd.DataFrame, true_labels: Any = None) -> pd.DataFrame:
        return self.fit(data, true_labels).probas_


def fit_table(table: LabelTable, gold: pd.Series | None = None, *, n_iter: int = 100,
              tol: float = 1e-5, stop: str = "likelihood", engine: str = "numpy",
              device: str | None = None) -> DawidSkeneFit:
    """Fit Dawid-Skene on a prepared table, gold answers clamped."""
    codes = table.encode()
    gold_task, gold_label = gold_codes(codes.tasks, codes.classes, gold)
    arguments = dict(n_iter=n_iter, tol=tol, stop=stop, gold_task=gold_task,
                     gold_label=gold_label)
    if engine == "torch":
        from . import dawid_skene_torch  # torch stays out of the import path until asked for

        return dawid_skene_torch.fit_arrays(
            codes.task, codes.worker, codes.label, codes.n_tasks, codes.n_workers,
            codes.n_classes, device=device, **arguments)
    return fit_arrays(codes.task, codes.worker, codes.label, codes.n_tasks, codes.n_workers,
                      codes.n_classes, **arguments)


def posterior_frame(posteriors: np.ndarray, tasks: pd.Index, classes: tuple) -> pd.DataFrame:
    """Return posteriors as a frame indexed by task with one column per class."""
    return pd.DataFrame(posteriors, index=pd.Index(tasks, name="task"),
                        columns=pd.Index(list(classes), name="label"))


def confusion_frame(confusions: np.ndarray, workers: pd.Index, classes: tuple) -> pd.DataFrame:
    """Return ``confusions[w, observed, true]`` as crowd-kit's ``errors_`` layout."""
    W, K = len(workers), len(classes)
    index = pd.MultiIndex.from_arrays(
        [np.repeat(np.asarray(workers, dtype=object), K), np.tile(np.asarray(classes, dtype=object), W)],
        names=["worker", "label"])
    return pd.DataFrame(confusions.reshape(W * K, K), index=index,
                        columns=pd.Index(list(classes), name="label"))


#: Posteriors closer than this to the top one count as tied.
TIE_TOLERANCE = 1e-12


def most_probable(posteriors: pd.DataFrame) -> pd.Series:
    """Return the most probable class per task; a tie goes to the earliest class in order.

    Ties are decided by the project's class order, never by the order of the rows, so the
    same labels in any row order give the same answer.
    """
    values = posteriors.to_numpy()
    if values.size == 0:
        return pd.Series([], index=posteriors.index, name="label", dtype=object)
    near_top = values >= values.max(axis=1, keepdims=True) - TIE_TOLERANCE
    chosen = posteriors.columns.take(near_top.argmax(axis=1))
    return pd.Series(chosen.to_numpy(), index=posteriors.index, name="label")


def tied_tasks(posteriors: pd.DataFrame) -> pd.Index:
    """Return the tasks whose top two posteriors are within :data:`TIE_TOLERANCE`."""
    values = posteriors.to_numpy()
    if values.size == 0 or values.shape[1] < 2:
        return posteriors.index[:0]
    top2 = -np.partition(-values, 1, axis=1)[:, :2]
    return posteriors.index[(top2[:, 0] - top2[:, 1]) <= TIE_TOLERANCE]
