"""Tiny multilingual datasets in the export format, for the training tests."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from training.dataset import build_manifest, compress, encode_items, split_of, write_dataset

CLASSES = ["positive", "negative"]
#: Words that mark each class, in Latin, Arabic, Chinese and Devanagari script.
MARKERS = {
    "positive": ["gut", "bien", "جيد", "很好", "अच्छा"],
    "negative": ["schlecht", "mal", "سيء", "很差", "बुरा"],
}
FILLER = ["der", "la", "في", "我们", "और", "produit", "المنتج", "产品", "उत्पाद"]


def items(count: int, *, seed: int = 0, project_id: int = 1) -> list[dict]:
    """Return ``count`` items whose text carries its class's marker word among filler."""
    rng = random.Random(seed)
    result = []
    for i in range(count):
        label = CLASSES[i % 2]
        words = [rng.choice(FILLER) for _ in range(4)] + [rng.choice(MARKERS[label])]
        rng.shuffle(words)
        p = rng.uniform(0.7, 1.0)
        posterior = [p, 1 - p] if label == "positive" else [1 - p, p]
        result.append({"id": 100 + i, "external_id": f"t{i}", "text": " ".join(words),
                       "features": None, "label": label, "posterior": posterior,
                       "gold": label if i % 5 == 0 else None,
                       "split": split_of(project_id, 100 + i)})
    return result


def write(folder: Path, records: list[dict], *, project_id: int = 1) -> Path:
    """Write ``records`` as a dataset folder with a correct manifest."""
    raw = encode_items(records)
    manifest = build_manifest(project_id=project_id, project_name="test", consensus_run_id=7,
                              guideline_version=1, classes=CLASSES, items=records,
                              content_hash=hashlib.sha256(raw).hexdigest(),
                              created_at="2026-11-23T00:00:00+00:00")
    return write_dataset(folder, manifest, compress(raw))
