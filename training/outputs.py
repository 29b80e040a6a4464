"""What a training run leaves behind, and how the service reads its predictions back.

An output folder holds:

- ``manifest.json``: format, the dataset it came from (project, consensus run, guideline
  version, content hash), the classes, the settings, device and timings, the summary metrics
  and ``predictions_hash``, the SHA-256 of the uncompressed predictions;
- ``predictions.jsonl.gz``: per item ``id``, ``fold`` (where it was held out), ``label``
  (the most probable class) and ``p`` (out-of-fold probabilities in the manifest's order);
- ``metrics.json``: the full report of :func:`training.metrics.evaluate`;
- ``model.pt``: every fold's weights and what is needed to featurise new text.

Writing needs torch (for the model); reading predictions needs only NumPy and the standard
library, so the service imports this module without torch.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_FORMAT = "coordinator.predictions/1"
MANIFEST = "manifest.json"
PREDICTIONS = "predictions.jsonl.gz"
METRICS = "metrics.json"
MODEL = "model.pt"


class PredictionsError(ValueError):
    """Raised when training outputs are malformed or do not match their manifest."""


def encode_predictions(ids: np.ndarray, fold: np.ndarray, probabilities: np.ndarray,
                       classes: tuple[str, ...]) -> bytes:
    """Return the uncompressed JSON lines of the predictions (probabilities to 6 places)."""
    names = [json.dumps(name, ensure_ascii=False) for name in classes]
    best = probabilities.argmax(axis=1)
    out = io.StringIO()
    for item, k, top, row in zip(ids.tolist(), fold.tolist(), best.tolist(),
                                 np.round(probabilities, 6).tolist(), strict=True):
        out.write(f'{{"id":{item},"fold":{k},"label":{names[top]},"p":{json.dumps(row)}}}\n')
    return out.getvalue().encode("utf-8")


def write_outputs(folder: str | Path, *, dataset_manifest: dict[str, Any], ids: np.ndarray,
                  fold: np.ndarray, probabilities: np.ndarray, metrics: dict[str, Any],
                  settings: dict[str, Any], run: dict[str, Any], models: list[Any]
                  ) -> dict[str, Any]:
    """Write predictions, metrics, model and manifest (last) to ``folder``; return the manifest."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    classes = tuple(dataset_manifest["classes"])
    raw = encode_predictions(ids, fold, probabilities, classes)
    (folder / PREDICTIONS).write_bytes(gzip.compress(raw, compresslevel=6, mtime=0))
    (folder / METRICS).write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n",
                                  encoding="utf-8")
    torch.save({"format": OUTPUT_FORMAT, "classes": list(classes), "settings": settings,
                "folds": models}, folder / MODEL)
    manifest = {
        "format": OUTPUT_FORMAT,
        "dataset": {key: dataset_manifest.get(key) for key in
                    ("project", "consensus_run_id", "guideline_version", "content_hash")},
        "classes": list(classes),
        "items": int(len(ids)),
        "settings": settings,
        "run": run,
        "metrics": {key: metrics.get(key) for key in
                    ("accuracy_consensus", "accuracy_gold", "gold_items", "soft_log_loss")},
        "files": {"predictions": PREDICTIONS, "metrics": METRICS, "model": MODEL},
        "predictions_hash": hashlib.sha256(raw).hexdigest(),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                   encoding="utf-8")
    return manifest


def parse_manifest(data: bytes) -> dict[str, Any]:
    """Parse and check an output manifest; raise PredictionsError naming what is wrong."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictionsError(f"the output manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != OUTPUT_FORMAT:
        raise PredictionsError(f"the output manifest's format is not {OUTPUT_FORMAT!r}")
    classes = manifest.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)
            and len(set(classes)) == len(classes)):
        raise PredictionsError("the output manifest's classes must be distinct names")
    dataset = manifest.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("project"), dict):
        raise PredictionsError("the output manifest does not name its dataset and project")
    if not isinstance(manifest.get("predictions_hash"), str):
        raise PredictionsError("the output manifest has no predictions_hash")
    return manifest


@dataclass(frozen=True)
class Predictions:
    """Out-of-fold predictions as arrays, in file order."""

    classes: tuple[str, ...]
    ids: np.ndarray
    probabilities: np.ndarray
    #: SHA-256 of the uncompressed predictions file
    content_hash: str


def parse_predictions(data_gz: bytes, manifest: dict[str, Any]) -> Predictions:
    """Parse the compressed predictions, checking them against the manifest's hash."""
    try:
        raw = gzip.decompress(data_gz)
    except (OSError, EOFError) as exc:
        raise PredictionsError(f"the predictions are not a gzip file: {exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != manifest["predictions_hash"]:
        raise PredictionsError(f"the predictions' SHA-256 {digest} does not match the "
                               f"manifest's {manifest['predictions_hash']}")
    classes = tuple(manifest["classes"])
    ids: list[int] = []
    rows: list[list[float]] = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        try:
            item = json.loads(line)
            row = [float(p) for p in item["p"]]
            if len(row) != len(classes):
                raise ValueError(f"{len(row)} probabilities for {len(classes)} classes")
            ids.append(int(item["id"]))
            rows.append(row)
        except (ValueError, KeyError, TypeError) as exc:
            raise PredictionsError(f"predictions line {number}: {exc}") from None
    if len(set(ids)) != len(ids):
        raise PredictionsError("an item appears more than once in the predictions")
    probabilities = np.asarray(rows, dtype=np.float64).reshape(len(ids), len(classes))
    if len(ids) and ((probabilities < 0).any() or (probabilities > 1).any()):
        raise PredictionsError("every probability must lie between 0 and 1")
    return Predictions(classes, np.asarray(ids, dtype=np.int64), probabilities, digest)
