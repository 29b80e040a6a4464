"""Benchmark: how well the model's feedback finds consensus errors, and what relabelling gains.

A generated multilingual corpus with known truth (three classes; Latin, Cyrillic, Arabic,
Chinese and Devanagari text; each class marked by its own words in every script, among
shared filler words, and some items carrying a misleading word of another class) is
labelled by a simulated crowd with known noisy workers (most good, some mediocre, some
spammers), three labels per item. Then, in one process:

1. Dawid-Skene consensus (``aggregation``) with posteriors; its errors against the truth
   are the consensus errors the feedback should find;
2. the training job's cross-fit (``training.crossfit``, on ``--device``) with the posteriors
   as soft targets gives every item an out-of-fold prediction;
3. the service's confident-learning rule (``coordinator.feedback.services.confident_flags``)
   flags items; precision and recall of the flags against the consensus errors are
   reported, beside the base error rate (the precision of flagging at random);
4. one relabelling round: each flagged item gets two more labels from a fresh set of workers
   drawn like the first, Dawid-Skene runs again, accuracy before and after is reported,
   beside relabelling as many items chosen at random.

The ratio is the flags' precision over the base error rate (how many times better than
random the flags pick consensus errors). ``--throughput 100000,1000000`` also times the
cross-fit alone (5 folds, featurisation included) at those sizes on the device.

    python bench/feedback.py                    # 20,000 items, CPU (or --device cuda)
    python bench/feedback.py --quick            # 5,000 items, 3 folds, seconds
    python bench/feedback.py --device cuda --throughput 100000,1000000
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "bench"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from common import expect, print_summary  # noqa: E402

from aggregation import aggregate  # noqa: E402
from coordinator.feedback.services import confident_flags  # noqa: E402
from training.crossfit import Settings, cross_fit, resolve_device  # noqa: E402

BENCH = "feedback"
CLASSES = ("positive", "negative", "neutral")
OVERLAP = 3
EXTRA_LABELS = 2
#: Alphabets to make words from, per script.
SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyzäöüéñ",
    "cyrillic": "абвгдежзийклмнопрстуфхцчшщыэюя",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "chinese": "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年",
    "devanagari": "कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह",
}
#: Workers of each kind: (share, lowest accuracy, highest accuracy).
WORKER_KINDS = ((0.6, 0.80, 0.95), (0.3, 0.55, 0.70), (0.1, 0.0, 0.0))  # last: spammers


@dataclass(frozen=True)
class Corpus:
    texts: list[str]
    truth: np.ndarray


def _words(rng: np.random.Generator, alphabet: str, count: int, length: tuple[int, int]
           ) -> list[str]:
    letters = np.array(list(alphabet))
    return ["".join(rng.choice(letters, size=rng.integers(*length))) for _ in range(count)]


def make_corpus(items: int, seed: int) -> Corpus:
    """Return texts and true classes: class words among filler, some misleading words."""
    rng = np.random.default_rng(seed)
    vocab = {}
    for script, alphabet in SCRIPTS.items():
        short = (1, 3) if script == "chinese" else (3, 7)
        vocab[script] = {"filler": _words(rng, alphabet, 300, short),
                         **{c: _words(rng, alphabet, 12, short) for c in CLASSES}}
    scripts = list(SCRIPTS)
    truth = rng.choice(len(CLASSES), size=items, p=[0.45, 0.35, 0.2])
    script_of = rng.integers(0, len(scripts), size=items)
    lengths = rng.integers(6, 14, size=items)
    markers = rng.integers(1, 3, size=items)
    misleading = rng.random(items) < 0.15
    texts = []
    for i in range(items):
        words = vocab[scripts[script_of[i]]]
        chosen = list(rng.choice(words["filler"], size=lengths[i]))
        chosen += list(rng.choice(words[CLASSES[truth[i]]], size=markers[i]))
        if misleading[i]:
            other = CLASSES[(truth[i] + rng.integers(1, len(CLASSES))) % len(CLASSES)]
            chosen.append(rng.choice(words[other]))
        rng.shuffle(chosen)
        texts.append(" ".join(chosen))
    return Corpus(texts, truth)


def make_workers(count: int, rng: np.random.Generator) -> np.ndarray:
    """Return each worker's accuracy; a spammer (accuracy 0 here) answers uniformly."""
    kinds = rng.choice(len(WORKER_KINDS), size=count, p=[k[0] for k in WORKER_KINDS])
    low = np.array([k[1] for k in WORKER_KINDS])[kinds]
    high = np.array([k[2] for k in WORKER_KINDS])[kinds]
    return np.where(high > 0, rng.uniform(low, np.maximum(high, low)), -1.0)


def crowd_labels(tasks: np.ndarray, truth: np.ndarray, workers: np.ndarray, first_worker: int,
                 per_task: int, rng: np.random.Generator) -> pd.DataFrame:
    """Return ``per_task`` labels for each task in ``tasks`` from distinct random workers."""
    K = len(CLASSES)
    rows_task = np.repeat(tasks, per_task)
    picks = np.argsort(rng.random((len(tasks), len(workers))), axis=1)[:, :per_task].ravel()
    accuracy = workers[picks]
    right = np.where(accuracy < 0, rng.random(len(picks)) < 1 / K,
                     rng.random(len(picks)) < accuracy)
    wrong = (truth[rows_task] + rng.integers(1, K, size=len(picks))) % K
    spam = rng.integers(0, K, size=len(picks))
    answer = np.where(accuracy < 0, spam, np.where(right, truth[rows_task], wrong))
    return pd.DataFrame({"task": rows_task, "worker": picks + first_worker,
                         "label": np.asarray(CLASSES, dtype=object)[answer]})


def consensus(labels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return Dawid-Skene's class position and posteriors per task, in task order."""
    result = aggregate(labels, "dawid_skene", classes=list(CLASSES))
    posteriors = result.posteriors.sort_index()
    return posteriors.to_numpy().argmax(axis=1), posteriors.to_numpy(dtype=np.float32)


def measure_quality(items: int, workers: int, settings: Settings, device: torch.device,
                    seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    corpus = make_corpus(items, seed)
    tasks = np.arange(items)
    first_crowd = make_workers(workers, rng)
    labels = crowd_labels(tasks, corpus.truth, first_crowd, 0, OVERLAP, rng)
    started = time.perf_counter()
    before, posteriors = consensus(labels)
    ds_seconds = time.perf_counter() - started
    errors = before != corpus.truth
    fit = cross_fit(corpus.texts, posteriors, settings, device)
    model_accuracy = float((fit.probabilities.argmax(axis=1) == corpus.truth).mean())
    _, flagged, _ = confident_flags(fit.probabilities.astype(np.float64), before)
    hits = int((flagged & errors).sum())
    precision = hits / flagged.sum() if flagged.sum() else float("nan")
    recall = hits / errors.sum() if errors.sum() else float("nan")
    # one relabelling round: the flagged items, then as many random items, from fresh workers
    fresh = make_workers(workers, rng)

    def relabelled(chosen: np.ndarray) -> float:
        extra = crowd_labels(chosen, corpus.truth, fresh, workers, EXTRA_LABELS, rng)
        after, _ = consensus(pd.concat([labels, extra], ignore_index=True))
        return float((after == corpus.truth).mean())

    flagged_ids = np.flatnonzero(flagged)
    random_ids = rng.choice(items, size=len(flagged_ids), replace=False)
    return {
        "items": items, "workers": workers, "labels": len(labels),
        "consensus_accuracy": float((~errors).mean()), "consensus_errors": int(errors.sum()),
        "model_accuracy_truth": model_accuracy, "flagged": int(flagged.sum()),
        "flag_precision": precision, "flag_recall": recall,
        "base_error_rate": float(errors.mean()),
        "accuracy_after_flagged": relabelled(flagged_ids) if len(flagged_ids) else
        float((~errors).mean()),
        "accuracy_after_random": relabelled(random_ids) if len(random_ids) else
        float((~errors).mean()),
        "ds_seconds": ds_seconds, "fit": fit,
    }


def measure_throughput(items: int, settings: Settings, device: torch.device, seed: int
                       ) -> dict:
    corpus = make_corpus(items, seed)
    targets = np.full((items, len(CLASSES)), 0.05, dtype=np.float32)
    targets[np.arange(items), corpus.truth] = 0.9
    fit = cross_fit(corpus.texts, targets, settings, device)
    expect(len(fit.probabilities) == items, "every item needs an out-of-fold prediction")
    return {"items": items, "fit": fit,
            "accuracy_truth": float((fit.probabilities.argmax(axis=1) == corpus.truth).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 items, 3 folds: seconds")
    parser.add_argument("--items", type=int, help="corpus size (default 20,000; quick 5,000)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--throughput", default="",
                        help="also time the cross-fit alone at these sizes, e.g. 100000,1000000")
    args = parser.parse_args()
    device = resolve_device(args.device)
    items = args.items or (5_000 if args.quick else 20_000)
    settings = Settings(folds=3 if args.quick else args.folds,
                        epochs=args.epochs, seed=args.seed)
    workers = max(20, items // 100)
    quality = measure_quality(items, workers, settings, device, args.seed)
    fit = quality.pop("fit")
    print(f"feedback on a generated corpus: {items:,} items in {len(SCRIPTS)} scripts, "
          f"{workers} workers, {OVERLAP} labels each; device {fit.device}"
          f"{' (' + fit.amp_dtype + ')' if fit.amp_dtype else ''}, {settings.folds} folds x "
          f"{settings.epochs} epochs")
    rows = [
        ("consensus accuracy (Dawid-Skene)", f"{quality['consensus_accuracy']:.4f}"),
        ("consensus errors", f"{quality['consensus_errors']:,}"),
        ("model accuracy vs truth (out of fold)", f"{quality['model_accuracy_truth']:.4f}"),
        ("items flagged", f"{quality['flagged']:,}"),
        ("flag precision (share that are errors)", f"{quality['flag_precision']:.4f}"),
        ("flag recall (errors flagged)", f"{quality['flag_recall']:.4f}"),
        ("base error rate (random flag precision)", f"{quality['base_error_rate']:.4f}"),
        ("accuracy after relabelling the flagged", f"{quality['accuracy_after_flagged']:.4f}"),
        ("accuracy after relabelling random items", f"{quality['accuracy_after_random']:.4f}"),
        ("cross-fit time s (featurise+train+predict)", f"{fit.timings['total_s']:.2f}"),
        ("training item-epochs per second", f"{fit.item_epochs_per_second:,.0f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>12}")
    throughput = []
    sizes = [int(s) for s in args.throughput.split(",") if s.strip()]
    if sizes:
        print(f"\ncross-fit alone, {args.folds} folds x {args.epochs} epochs, on {fit.device}:")
        print(f"{'items':>10} {'featurise s':>12} {'train s':>9} {'predict s':>10} "
              f"{'total s':>8} {'item-epochs/s':>14} {'accuracy':>9}")
        for size in sizes:
            big = measure_throughput(size, Settings(folds=args.folds, epochs=args.epochs,
                                                    seed=args.seed), device, args.seed)
            t = big["fit"].timings
            print(f"{size:>10,} {t['featurise_s']:>12.2f} {t['train_s']:>9.2f} "
                  f"{t['predict_s']:>10.2f} {t['total_s']:>8.2f} "
                  f"{big['fit'].item_epochs_per_second:>14,.0f} {big['accuracy_truth']:>9.4f}")
            throughput.append({"items": size, "total_s": round(t["total_s"], 3),
                               "featurise_s": round(t["featurise_s"], 3),
                               "item_epochs_per_s": round(big["fit"].item_epochs_per_second)})
    ratio = quality["flag_precision"] / quality["base_error_rate"] \
        if quality["base_error_rate"] else float("nan")
    print_summary({
        "bench": BENCH, "ratio": round(ratio, 3), "items": items, "device": fit.device,
        "flag_precision": round(quality["flag_precision"], 4),
        "flag_recall": round(quality["flag_recall"], 4),
        "base_error_rate": round(quality["base_error_rate"], 4),
        "accuracy_before": round(quality["consensus_accuracy"], 4),
        "accuracy_after": round(quality["accuracy_after_flagged"], 4),
        "accuracy_after_random": round(quality["accuracy_after_random"], 4),
        "item_epochs_per_s": round(fit.item_epochs_per_second),
        "throughput": throughput,
    })


if __name__ == "__main__":
    main()
