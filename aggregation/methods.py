"""Aggregation methods behind one call and one result type.

``aggregate(labels, method=..., classes=..., gold=...)`` validates the table (see
:mod:`aggregation.table` for the rules), runs one method and returns an
:class:`AggregationResult`. Methods:

================================  ===============================================  ==========
name                              what                                             uses gold
================================  ===============================================  ==========
``dawid_skene`` (default)         our engine of crowd-kit's DawidSkene; stops on    clamped
                                  the marginal likelihood unless ``stop="crowdkit"``
``majority_vote``                 crowd-kit MajorityVote                           no
``wawa``                          crowd-kit Wawa (votes weighted by agreement       no
                                  with the majority)
``zero_based_skill``              crowd-kit ZeroBasedSkill                          no
``gold_majority_vote``            crowd-kit GoldMajorityVote (votes weighted by     skills
                                  accuracy on gold)
``one_coin_dawid_skene``          crowd-kit OneCoinDawidSkene                       no
``glad``                          crowd-kit GLAD (slow: ~1 min per 30,000 labels)   no
``mace``                          crowd-kit MACE                                    no
================================  ===============================================  ==========

Decisions taken here, each covered by a test:

- **Ties** go to the earliest class in the project's class order, for every method.
  crowd-kit's MajorityVote breaks them by the order the labels first appear in the data, so
  the same labels in another row order gave another answer. Tied tasks are listed in
  :attr:`AggregationResult.ties`. In a weighted vote, a task whose voters all weigh 0
  (crowd-kit would divide 0 by 0 and fail) is decided by its plain majority.
- **scikit-learn >= 1.6**: crowd-kit 1.4.2's Wawa, ZeroBasedSkill and GoldMajorityVote call
  ``sklearn.utils.validation.check_is_fitted`` on classes that are not scikit-learn
  estimators, which fails with ``AttributeError: ... __sklearn_tags__``. We do not pin
  scikit-learn: we call their ``fit`` (which works) and the weighted majority vote their
  ``predict`` would run, which is all ``predict`` does.
- **Gold** answers are split, by a hash of the task id (stable across runs and row orders),
  into a part the method may use (``1 - gold_holdout``) and a held-out part that only
  measures: :attr:`AggregationResult.gold_accuracy`. Methods that cannot use gold ignore
  the first part, so every method is measured on the same held-out tasks.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import dawid_skene as ds
from .table import LabelTable, prepare_gold, prepare_labels


@dataclass(frozen=True)
class AggregationResult:
    """One method's answer for a project."""

    method: str
    #: The project's classes, in order; the columns of :attr:`posteriors`.
    classes: tuple
    #: The chosen class per task (index ``task``).
    labels: pd.Series
    #: Posterior probability of each class per task; rows sum to 1.
    posteriors: pd.DataFrame
    #: A score per worker (index ``worker``), or None. Dawid-Skene: the probability the
    #: worker's answer is right under the fitted prior, ``sum_c p_c e_w[c|c]``; Wawa and the
    #: majority votes: agreement with the (gold or majority) answer; one-coin: the coin;
    #: GLAD: alpha (expertise); MACE: the probability the worker is not spamming.
    worker_skills: pd.Series | None = None
    #: Dawid-Skene confusions: index (worker, observed label), a column per true label,
    #: ``confusions.loc[(w, k), c] = P(w answers k | true class c)``; None for other methods.
    confusions: pd.DataFrame | None = None
    #: Class prior, when the method fits one.
    priors: pd.Series | None = None
    #: EM iterations run (0 for methods without iterations).
    iterations: int = 0
    #: Whether the stopping quantity settled before the iteration cap (None: not iterative).
    converged: bool | None = None
    #: Which quantity decided the stop: "likelihood", "crowdkit" or None.
    stop: str | None = None
    #: The stopping quantity per iteration (per label); see :mod:`aggregation.dawid_skene`.
    trace: tuple[float, ...] = ()
    #: Tasks whose top two posteriors tie; their label is the earliest tied class.
    ties: pd.Index = field(default_factory=lambda: pd.Index([], name="task"))
    #: Gold answers the method was given (clamped or used for skills).
    gold_used: int = 0
    #: Gold answers held out to measure the result.
    gold_held_out: int = 0
    #: Accuracy of :attr:`labels` on the held-out gold tasks (NaN when none).
    gold_accuracy: float = float("nan")
    #: Label rows dropped by the duplicate policy.
    superseded: int = 0
    #: Anything else the method estimates, e.g. GLAD's task difficulty.
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tasks(self) -> int:
        return len(self.labels)

    def confidence(self) -> pd.Series:
        """Return the posterior of the chosen label per task."""
        if self.posteriors.empty:
            return pd.Series([], index=self.posteriors.index, name="confidence", dtype=float)
        return self.posteriors.max(axis=1).rename("confidence")


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[..., dict[str, Any]]
    #: "clamp", "skills" or None: how the method uses gold answers.
    gold: str | None
    description: str


METHODS: dict[str, Method] = {}
DEFAULT_METHOD = "dawid_skene"


def _register(name: str, gold: str | None, description: str
              ) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    def decorate(run: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        METHODS[name] = Method(name, run, gold, description)
        return run
    return decorate


@contextmanager
def _quiet_crowdkit() -> Iterator[None]:
    """Silence the pandas deprecation warnings crowd-kit 1.4.2 raises on pandas 3."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"crowdkit\.")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"crowdkit\.")
        yield


def _posteriors(probas: pd.DataFrame, table: LabelTable) -> pd.DataFrame:
    """Return crowd-kit probabilities over every class and task, in our order."""
    codes = table.encode()
    frame = probas.reindex(index=codes.tasks, columns=list(table.classes), fill_value=0.0)
    frame = frame.astype(float).fillna(0.0)
    frame.index.name, frame.columns.name = "task", "label"
    return frame


def _skills(values: pd.Series | np.ndarray, index: Any) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=pd.Index(index, name="worker"),
                     name="skill")


def _vote(table: LabelTable, skills: pd.Series | None = None) -> pd.DataFrame:
    """Return (weighted) majority-vote shares per task, as crowd-kit's MajorityVote."""
    from crowdkit.aggregation import MajorityVote

    data = table.frame[["task", "worker", "label"]]
    if skills is None:
        with _quiet_crowdkit():
            return _posteriors(MajorityVote().fit_predict_proba(data), table)
    weight = data["worker"].map(skills).fillna(0.0).to_numpy(dtype=float)
    total = pd.Series(weight).groupby(data["task"].to_numpy()).transform("sum").to_numpy()
    weightless = total <= 0
    # Where every voter on a task has weight 0, crowd-kit divides 0 by 0 and fails; count
    # those votes at equal weight instead (a visible tie or plain majority, not a guess).
    parts = []
    with _quiet_crowdkit():
        if (~weightless).any():
            parts.append(MajorityVote().fit_predict_proba(data[~weightless], skills))
        if weightless.any():
            parts.append(MajorityVote().fit_predict_proba(data[weightless]))
    probas = pd.concat(parts).fillna(0.0) if len(parts) > 1 else parts[0]
    return _posteriors(probas, table)


def _accuracy_by_worker(table: LabelTable, reference: pd.Series) -> pd.Series:
    frame = table.frame
    truth = frame["task"].map(reference)
    known = truth.notna()
    hits = (frame.loc[known, "label"].to_numpy() == truth[known].to_numpy()).astype(float)
    accuracy = pd.Series(hits).groupby(frame.loc[known, "worker"].to_numpy(), sort=False).mean()
    return accuracy.rename_axis("worker").rename("skill")


# --- the methods -------------------------------------------------------------------------
# Each takes the prepared table, the gold it may use and the caller's options, and returns
# the fields of AggregationResult it knows.


@_register("majority_vote", None, "the most frequent label; ties to the earliest class")
def _majority_vote(table: LabelTable, gold: pd.Series, **options: Any) -> dict[str, Any]:
    _no_options("majority_vote", options)
    posteriors = _vote(table)
    labels = ds.most_probable(posteriors)
    return dict(posteriors=posteriors, labels=labels,
                worker_skills=_accuracy_by_worker(table, labels))


@_register("wawa", None, "majority vote weighted by each worker's agreement with it")
def _wawa(table: LabelTable, gold: pd.Series, **options: Any) -> dict[str, Any]:
    _no_options("wawa", options)
    # Wawa.fit is MajorityVote then accuracy against it; done here with our tie rule so the
    # skills do not depend on row order. Wawa.predict (broken on scikit-learn >= 1.6) is
    # the weighted vote below.
    majority = ds.most_probable(_vote(table))
    skills = _accuracy_by_worker(table, majority)
    posteriors = _vote(table, skills)
    return dict(posteriors=posteriors, labels=ds.most_probable(posteriors),
                worker_skills=skills)


@_register("zero_based_skill", None, "skills learnt by gradient steps from 1/K")
def _zero_based_skill(table: LabelTable, gold: pd.Series, **options: Any) -> dict[str, Any]:
    from crowdkit.aggregation import ZeroBasedSkill

    model = ZeroBasedSkill(**options)
    with _quiet_crowdkit():
        model.fit(table.frame[["task", "worker", "label"]])
    skills = model.skills_.rename_axis("worker").rename("skill")
    posteriors = _vote(table, skills)  # what ZeroBasedSkill.predict does
    return dict(posteriors=posteriors, labels=ds.most_probable(posteriors),
                worker_skills=skills, iterations=int(model.n_iter))


@_register("gold_majority_vote", "skills", "majority vote weighted by accuracy on gold")
def _gold_majority_vote(table: LabelTable, gold: pd.Series, *,
                        default_skill: float | None = None, **options: Any) -> dict[str, Any]:
    """Weights are accuracy on the gold tasks a worker answered.

    A worker who answered no usable gold task gets ``default_skill``, by default the mean
    skill of those who did; with no usable gold at all every weight is equal (a plain
    majority vote). Both cases are counted in ``extras``.
    """
    _no_options("gold_majority_vote", options)
    skills = _accuracy_by_worker(table, gold)
    workers = table.encode().workers
    missing = workers.difference(skills.index)
    if default_skill is None:
        default_skill = float(skills.mean()) if len(skills) else 1.0
    skills = pd.concat([skills, pd.Series(default_skill, index=missing)]).reindex(workers)
    skills = skills.rename_axis("worker").rename("skill")
    posteriors = _vote(table, skills)
    return dict(posteriors=posteriors, labels=ds.most_probable(posteriors),
                worker_skills=skills,
                extras={"workers_without_gold": int(len(missing)),
                        "default_skill": default_skill})


@_register("dawid_skene", "clamp", "per-worker confusion matrices by EM")
def _dawid_skene(table: LabelTable, gold: pd.Series, *, n_iter: int = 100, tol: float = 1e-5,
                 stop: str = "likelihood", engine: str = "numpy", device: str | None = None
                 ) -> dict[str, Any]:
    """Dawid-Skene; ``engine`` is "numpy", "torch" or "crowdkit" (the reference)."""
    if engine == "crowdkit":
        return _dawid_skene_crowdkit(table, gold, n_iter=n_iter, tol=tol, stop=stop)
    if engine not in ("numpy", "torch"):
        raise ValueError(f"unknown engine {engine!r}; use 'numpy', 'torch' or 'crowdkit'")
    fit = ds.fit_table(table, gold, n_iter=n_iter, tol=tol, stop=stop, engine=engine,
                       device=device)
    codes = table.encode()
    posteriors = ds.posterior_frame(fit.posteriors, codes.tasks, table.classes)
    diagonal = np.einsum("wkk->wk", fit.confusions) if len(codes.workers) else np.zeros((0, 1))
    return dict(
        posteriors=posteriors, labels=ds.most_probable(posteriors),
        confusions=ds.confusion_frame(fit.confusions, codes.workers, table.classes),
        priors=pd.Series(fit.priors, index=pd.Index(table.classes, name="label"), name="prior"),
        worker_skills=_skills(diagonal @ fit.priors if len(codes.workers) else [],
                              codes.workers),
        iterations=fit.iterations, converged=fit.converged, stop=fit.stop, trace=fit.trace)


def _dawid_skene_crowdkit(table: LabelTable, gold: pd.Series, *, n_iter: int, tol: float,
                          stop: str) -> dict[str, Any]:
    from crowdkit.aggregation import DawidSkene

    if stop != "crowdkit":
        raise ValueError("crowd-kit's own DawidSkene only stops on its own quantity: "
                         "pass stop='crowdkit' with engine='crowdkit'")
    model = DawidSkene(n_iter=n_iter, tol=tol)
    with _quiet_crowdkit():
        model.fit(table.frame[["task", "worker", "label"]], gold if len(gold) else None)
    posteriors = _posteriors(model.probas_, table)
    posteriors = posteriors.div(posteriors.sum(axis=1), axis=0)  # undo crowd-kit's 1e-10 floor
    errors = model.errors_.reindex(columns=list(table.classes), fill_value=0.0)
    priors = model.priors_.reindex(list(table.classes), fill_value=0.0)
    return dict(posteriors=posteriors, labels=ds.most_probable(posteriors), confusions=errors,
                priors=priors.rename_axis("label").rename("prior"),
                iterations=len(model.loss_history_),
                converged=_converged(model.loss_history_, tol), stop="crowdkit",
                trace=tuple(model.loss_history_))


@_register("one_coin_dawid_skene", None, "Dawid-Skene with one accuracy per worker")
def _one_coin(table: LabelTable, gold: pd.Series, **options: Any) -> dict[str, Any]:
    from crowdkit.aggregation import OneCoinDawidSkene

    model = OneCoinDawidSkene(**options)
    with _quiet_crowdkit():
        model.fit(table.frame[["task", "worker", "label"]])
    posteriors = _posteriors(model.probas_, table)
    posteriors = posteriors.div(posteriors.sum(axis=1), axis=0)
    return dict(posteriors=posteriors, labels=ds.most_probable(posteriors),
                worker_skills=model.skills_.rename_axis("worker").rename("skill"),
                priors=model.priors_.reindex(list(table.classes), fill_value=0.0)
                .rename_axis("label").rename("prior"),
                iterations=len(model.loss_history_),
                converged=_converged(model.loss_history_, model.tol), stop="crowdkit",
                trace=tuple(model.loss_history_))


@_register("glad", None, "worker expertise and task difficulty by EM (slow)")
def _glad(table: LabelTable, gold: pd.Series, **options: Any) -> dict[str, Any]:
    from crowdkit.aggregation import GLAD

    model = GLAD(**options)
    with _quiet_crowdkit():
        model.fit(table.frame[["task", "worker", "label"]])
    posteriors = _posteriors(model.probas_, table)
    return dict(posteriors=posteriors, labels=ds.most_probable(posteriors),
                worker_skills=model.alphas_.rename_axis("worker").rename("skill"),
                iterations=len(model.loss_history_),
                converged=_converged(model.loss_history_, model.tol), stop="crowdkit",
                trace=tuple(model.loss_history_),
                extras={"task_difficulty": model.betas_.rename_axis("task")
                        .rename("difficulty")})


@_register("mace", None, "spammer detection (Hovy et al. 2013)")
def _mace(table: LabelTable, gold: pd.Series, **options: Any) -> dict[str, Any]:
    from crowdkit.aggregation import MACE

    model = MACE(**options)
    data = table.frame[["task", "worker", "label"]]
    with _quiet_crowdkit():
        model.fit(data)
    posteriors = _posteriors(model.probas_, table)
    workers = pd.unique(data["worker"])  # MACE's arrays follow pd.factorize(worker)
    label_order = pd.unique(data["label"])
    thetas = pd.DataFrame(model.thetas_, index=pd.Index(workers, name="worker"),
                          columns=pd.Index(label_order, name="label"))
    return dict(posteriors=posteriors, labels=ds.most_probable(posteriors),
                worker_skills=_skills(model.spamming_[:, 1], workers),
                iterations=int(model.n_iter),
                extras={"spam_label_distribution": thetas.reindex(
                    columns=list(table.classes), fill_value=0.0)})


def _converged(trace: Sequence[float], tol: float) -> bool:
    """Whether a crowd-kit loss history ended because the gain fell below ``tol``."""
    if len(trace) == 0:
        return False
    previous = trace[-2] if len(trace) > 1 else -np.inf
    return bool(trace[-1] - previous < tol)


def _no_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise TypeError(f"{name} takes no options; got {', '.join(sorted(options))}")


# --- gold --------------------------------------------------------------------------------


def split_gold(gold: pd.Series, holdout: float, seed: int | str = 0
               ) -> tuple[pd.Series, pd.Series]:
    """Split gold answers into (used by the method, held out to measure).

    A task is held out when a hash of ``seed`` and its id falls below ``holdout``, so the
    split does not depend on row order and a task stays on its side as gold grows.
    """
    if not 0.0 <= holdout <= 1.0:
        raise ValueError(f"gold_holdout must be between 0 and 1, not {holdout!r}")
    if len(gold) == 0 or holdout == 0.0:
        return gold, gold.iloc[:0]
    if holdout == 1.0:
        return gold.iloc[:0], gold
    salt = str(seed).encode()
    draws = np.array([
        int.from_bytes(hashlib.blake2b(salt + b"\0" + str(task).encode(), digest_size=8)
                       .digest(), "big") / 2.0**64
        for task in gold.index])
    held = draws < holdout
    return gold[~held], gold[held]


def accuracy(labels: pd.Series, gold: pd.Series) -> float:
    """Return the share of gold tasks (that have a label) whose label equals the gold one."""
    common = gold.index.intersection(labels.index)
    if len(common) == 0:
        return float("nan")
    return float((labels.loc[common].to_numpy() == gold.loc[common].to_numpy()).mean())


# --- the entry point -----------------------------------------------------------------------


def aggregate(
    labels: pd.DataFrame | LabelTable,
    method: str = DEFAULT_METHOD,
    *,
    classes: Sequence[Any] | None = None,
    gold: pd.DataFrame | pd.Series | None = None,
    gold_holdout: float = 0.2,
    seed: int | str = 0,
    duplicates: str = "last",
    **options: Any,
) -> AggregationResult:
    """Aggregate a task, worker, label table into one label per task.

    ``classes`` are the project's classes (default: the labels seen, sorted); ``gold`` a
    ``task,label`` frame or a Series by task; ``gold_holdout`` the share of gold held out to
    measure (see :func:`split_gold`); ``duplicates`` the policy of
    :func:`aggregation.table.prepare_labels`; other keyword arguments go to the method
    (e.g. ``stop="crowdkit"``, ``engine="torch"``, ``n_iter``). Raise
    :class:`aggregation.table.AggregationInputError` on bad input and ``KeyError`` for an
    unknown method.
    """
    if method not in METHODS:
        raise KeyError(f"unknown aggregation method {method!r}; known: {', '.join(METHODS)}")
    chosen = METHODS[method]
    if isinstance(labels, LabelTable):
        table = labels
        if classes is not None and tuple(classes) != table.classes:
            table = prepare_labels(table.frame, classes, duplicates=duplicates)
    else:
        table = prepare_labels(labels, classes, duplicates=duplicates)
    all_gold = prepare_gold(gold, table.classes)
    used, held = split_gold(all_gold, gold_holdout, seed)
    given = used if chosen.gold else used.iloc[:0]

    if table.empty:
        empty_index = pd.Index([], name="task")
        return AggregationResult(
            method=method, classes=table.classes,
            labels=pd.Series([], index=empty_index, name="label", dtype=object),
            posteriors=pd.DataFrame(np.zeros((0, len(table.classes))), index=empty_index,
                                    columns=pd.Index(list(table.classes), name="label")),
            gold_held_out=0, superseded=table.superseded)

    fields = chosen.run(table, given, **options)
    result_labels = fields.pop("labels").rename("label")
    result_labels.index.name = "task"
    held_here = held[held.index.isin(result_labels.index)]
    return AggregationResult(
        method=method, classes=table.classes, labels=result_labels,
        ties=ds.tied_tasks(fields["posteriors"]),
        gold_used=int(given.index.isin(result_labels.index).sum()),
        gold_held_out=len(held_here), gold_accuracy=accuracy(result_labels, held_here),
        superseded=table.superseded, **fields)
