"""Benchmark: labels saved by dynamic overlap against fixed overlap, at equal accuracy.

A simulated crowd, seeded: tasks with a known true class (3 classes), workers whose accuracy
is drawn between 0.55 and 0.95 (a wrong answer is any other class), each task's labels
drawn in advance from distinct workers, so every strategy reads the same labels in the same
order. Aggregation is ``aggregation.aggregate`` with Dawid-Skene, as in the service.

(a) fixed overlap k, for k from the redundancy to the maximum: every task gets k labels;
(b) dynamic overlap, as ``coordinator.quality.overlap.plan_overlap`` does it: every task
    starts with the redundancy; after each aggregation, tasks below the target confidence
    with fewer than the maximum get one more label; confident ones stop.

The baseline is the largest fixed k whose accuracy dynamic equals or beats. ``ratio`` =
dynamic's labels / that baseline's labels (below 1: labels saved at equal or better accuracy).

    python bench/overlap.py            # 20,000 tasks
    python bench/overlap.py --quick    # 1,000 tasks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from common import expect, print_summary  # noqa: E402

from aggregation import aggregate  # noqa: E402
from coordinator.quality.overlap import TaskState, plan_overlap  # noqa: E402

BENCH = "overlap"
CLASSES = ("positive", "negative", "neutral")
REDUNDANCY, MAX_OVERLAP, TARGET = 3, 7, 0.95


def simulate(tasks: int, workers: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the truth per task, and per task its MAX_OVERLAP (worker, answer) labels in order."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, len(CLASSES), tasks)
    skill = rng.uniform(0.55, 0.95, workers)
    who = np.argsort(rng.random((tasks, workers)), axis=1)[:, :MAX_OVERLAP]  # distinct workers
    right = rng.random((tasks, MAX_OVERLAP)) < skill[who]
    wrong = (truth[:, None] + rng.integers(1, len(CLASSES), (tasks, MAX_OVERLAP))) % len(CLASSES)
    answer = np.where(right, truth[:, None], wrong)
    return truth, who, answer


def frame(who: np.ndarray, answer: np.ndarray, depth: np.ndarray) -> pd.DataFrame:
    """Return the first ``depth[t]`` labels of each task t as a task, worker, label frame."""
    mask = np.arange(MAX_OVERLAP)[None, :] < depth[:, None]
    task = np.broadcast_to(np.arange(len(depth))[:, None], mask.shape)[mask]
    return pd.DataFrame({"task": task, "worker": who[mask],
                         "label": np.asarray(CLASSES, dtype=object)[answer[mask]]})


def score(labels: pd.DataFrame, truth: np.ndarray) -> tuple[float, pd.DataFrame]:
    result = aggregate(labels, "dawid_skene", classes=list(CLASSES))
    found = result.labels.reindex(range(len(truth))).map(CLASSES.index).to_numpy()
    return float((found == truth).mean()), result.posteriors


def dynamic(truth: np.ndarray, who: np.ndarray, answer: np.ndarray) -> tuple[float, int, int]:
    """Return accuracy, labels used and aggregation rounds of dynamic overlap."""
    depth = np.full(len(truth), REDUNDANCY)
    rounds = 0
    while True:
        rounds += 1
        accuracy, posteriors = score(frame(who, answer, depth), truth)
        confidence = posteriors.max(axis=1).reindex(range(len(truth))).to_numpy()
        plan = plan_overlap((TaskState(t, confidence[t], int(depth[t]), int(depth[t]), 0)
                             for t in range(len(truth))), TARGET, MAX_OVERLAP, REDUNDANCY)
        if not plan.extra:
            return accuracy, int(depth.sum()), rounds
        depth[plan.extra] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 tasks instead of 20,000")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    tasks = 1_000 if args.quick else 20_000
    truth, who, answer = simulate(tasks, 60, args.seed)
    print(f"{tasks:,} tasks, 60 workers (accuracy 0.55-0.95), {len(CLASSES)} classes; "
          f"target confidence {TARGET}, redundancy {REDUNDANCY}, maximum overlap {MAX_OVERLAP}")
    print(f"{'strategy':<22}{'labels':>10}{'labels/task':>13}{'accuracy':>10}")
    fixed = {}
    for k in range(REDUNDANCY, MAX_OVERLAP + 1):
        accuracy, _ = score(frame(who, answer, np.full(tasks, k)), truth)
        fixed[k] = (accuracy, tasks * k)
        print(f"{'fixed k=' + str(k):<22}{tasks * k:>10,}{k:>13.2f}{accuracy:>10.4f}")
    accuracy, used, rounds = dynamic(truth, who, answer)
    print(f"{'dynamic (' + str(rounds) + ' rounds)':<22}{used:>10,}{used / tasks:>13.2f}"
          f"{accuracy:>10.4f}")
    matched = [k for k, (a, _) in fixed.items() if a <= accuracy]
    expect(bool(matched), "dynamic overlap is less accurate than every fixed overlap")
    baseline = max(matched)
    saved = 1 - used / fixed[baseline][1]
    print(f"baseline: fixed k={baseline} ({fixed[baseline][0]:.4f}); dynamic saves "
          f"{saved:.1%} of its labels at equal or better accuracy")
    expect(used <= fixed[baseline][1], "dynamic overlap used more labels than its baseline")
    print_summary({"bench": BENCH, "ratio": round(used / fixed[baseline][1], 4),
                   "labels_saved": round(saved, 4), "tasks": tasks, "dynamic_labels": used,
                   "dynamic_accuracy": round(accuracy, 4), "baseline_k": baseline,
                   "baseline_labels": fixed[baseline][1],
                   "baseline_accuracy": round(fixed[baseline][0], 4)})


if __name__ == "__main__":
    main()
