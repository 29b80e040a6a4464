"""How the out-of-fold predictions compare with the consensus and with gold answers."""

from __future__ import annotations

from typing import Any

import numpy as np

from training.dataset import SPLITS


def _share(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if len(hits) else None


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def evaluate(classes: tuple[str, ...], probabilities: np.ndarray, consensus: np.ndarray,
             posteriors: np.ndarray, gold: np.ndarray, split: np.ndarray) -> dict[str, Any]:
    """Return accuracy against consensus and gold, overall, per split and per class.

    ``consensus`` and ``gold`` are class positions (gold -1: none); per class, precision and
    recall are against the consensus label, ``accuracy_gold`` over the class's gold items.
    ``soft_log_loss`` is the cross-entropy of the predictions against the posteriors.
    """
    predicted = probabilities.argmax(axis=1)
    has_gold = gold >= 0
    clipped = np.clip(probabilities, 1e-12, 1.0)
    report: dict[str, Any] = {
        "items": int(len(predicted)),
        "accuracy_consensus": _share(predicted == consensus),
        "gold_items": int(has_gold.sum()),
        "accuracy_gold": _share(predicted[has_gold] == gold[has_gold]),
        "consensus_accuracy_gold": _share(consensus[has_gold] == gold[has_gold]),
        "soft_log_loss": float(-(posteriors * np.log(clipped)).sum(axis=1).mean())
        if len(predicted) else None,
        "mean_self_confidence": _share(probabilities[np.arange(len(predicted)), consensus]),
    }
    report["by_split"] = {}
    for position, name in enumerate(SPLITS):
        chosen = split == position
        golden = chosen & has_gold
        report["by_split"][name] = {
            "items": int(chosen.sum()),
            "accuracy_consensus": _share(predicted[chosen] == consensus[chosen]),
            "accuracy_gold": _share(predicted[golden] == gold[golden]),
        }
    report["per_class"] = {}
    for position, name in enumerate(classes):
        support = int((consensus == position).sum())
        chosen = int((predicted == position).sum())
        right = int(((predicted == position) & (consensus == position)).sum())
        precision, recall = _ratio(right, chosen), _ratio(right, support)
        f1 = (2 * precision * recall / (precision + recall)
              if precision and recall else (0.0 if support or chosen else None))
        golden = gold == position
        report["per_class"][name] = {
            "support": support, "predicted": chosen, "precision": precision,
            "recall": recall, "f1": f1, "gold_items": int(golden.sum()),
            "accuracy_gold": _share(predicted[golden] == position),
        }
    return report
