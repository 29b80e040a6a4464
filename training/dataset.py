"""The exported dataset: a manifest and gzip-compressed JSON lines, written and read here.

One definition serves both sides: the service writes a consensus run with
:func:`write_dataset` (``coordinator export``) and the training job reads it back with
:func:`read_dataset`. Standard library and NumPy only, so neither side pulls in the other's
stack.

A dataset is a folder (or an object-store prefix) holding:

- ``manifest.json``: format, project, consensus run, guideline version, classes, counts per
  split and class, how the split was made, and ``content_hash``: the SHA-256 of the
  *uncompressed* items file, so recompressing changes nothing and any edit is caught;
- ``items.jsonl.gz``: one JSON object per line: ``id`` (the task id), ``external_id``,
  ``text`` (the payload's text, else its canonical JSON), ``features`` (a numeric list when
  the payload has one), ``label`` (the consensus), ``posterior`` (in the manifest's class
  order), ``gold`` (or null) and ``split``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DATASET_FORMAT = "coordinator.dataset/1"
MANIFEST = "manifest.json"
ITEMS = "items.jsonl.gz"
SPLITS = ("train", "validation", "test")
#: Shares of items in the validation and test splits; the rest is train.
SPLIT_SHARES = {"validation": 0.1, "test": 0.1}


class DatasetError(ValueError):
    """Raised when a dataset cannot be trained on: bad manifest, wrong hash, no items."""


def split_of(project_id: int, item_id: int) -> str:
    """Return the split of an item: a hash of project and item, so it never depends on order.

    The same task stays in the same split in every export of the project.
    """
    digest = hashlib.sha256(f"{project_id}:{item_id}".encode()).digest()
    share = int.from_bytes(digest[:8], "big") / 2**64
    if share < SPLIT_SHARES["test"]:
        return "test"
    if share < SPLIT_SHARES["test"] + SPLIT_SHARES["validation"]:
        return "validation"
    return "train"


def item_text(payload: Mapping[str, Any]) -> str:
    """Return what the classifier reads of a task payload: its text, else its canonical JSON."""
    text = payload.get("text")
    if isinstance(text, str):
        return text
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def item_features(payload: Mapping[str, Any]) -> list[float] | None:
    """Return the payload's numeric ``features`` list, or None when it has none."""
    features = payload.get("features")
    if isinstance(features, list) and features and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in features):
        return [float(v) for v in features]
    return None


def encode_items(items: Iterable[Mapping[str, Any]]) -> bytes:
    """Return the uncompressed JSON lines of ``items`` (each already a complete record)."""
    out = io.StringIO()
    for item in items:
        out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
    return out.getvalue().encode("utf-8")


def compress(data: bytes) -> bytes:
    """Gzip ``data`` with a fixed timestamp, so the same items give the same bytes."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def build_manifest(*, project_id: int, project_name: str, consensus_run_id: int,
                   guideline_version: int | None, classes: list[str], items: list[dict],
                   content_hash: str, created_at: str) -> dict[str, Any]:
    """Return the manifest of ``items`` (records as :func:`encode_items` writes them)."""
    splits = dict.fromkeys(SPLITS, 0)
    by_class = dict.fromkeys(classes, 0)
    gold = 0
    for item in items:
        splits[item["split"]] += 1
        by_class[item["label"]] += 1
        gold += item["gold"] is not None
    return {
        "format": DATASET_FORMAT,
        "project": {"id": project_id, "name": project_name},
        "consensus_run_id": consensus_run_id,
        "guideline_version": guideline_version,
        "classes": list(classes),
        "counts": {"items": len(items), "splits": splits, "classes": by_class, "gold": gold},
        "split": {"method": "sha256(project_id:item_id)", **SPLIT_SHARES},
        "files": {"items": ITEMS},
        "content_hash": content_hash,
        "created_at": created_at,
    }


def write_dataset(folder: str | Path, manifest: Mapping[str, Any], items_gz: bytes) -> Path:
    """Write a dataset to a local folder: the items first, the manifest last."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ITEMS).write_bytes(items_gz)
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                   encoding="utf-8")
    return folder


@dataclass(frozen=True)
class Dataset:
    """A dataset in memory, items in file order."""

    manifest: dict[str, Any]
    classes: tuple[str, ...]
    #: task ids
    ids: np.ndarray
    texts: list[str]
    #: the consensus posterior per item, shape (items, classes), rows summing to 1
    posteriors: np.ndarray
    #: class position of the consensus label
    labels: np.ndarray
    #: class position of the gold answer, -1 where there is none
    gold: np.ndarray
    #: 0 train, 1 validation, 2 test (positions in SPLITS)
    split: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read and check a dataset manifest; raise DatasetError naming what is wrong."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: a dataset folder holds {MANIFEST} and "
                           f"{ITEMS} (written by `coordinator export`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != DATASET_FORMAT:
        raise DatasetError(f"{path}: format is not {DATASET_FORMAT!r}")
    classes = manifest.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2
            and all(isinstance(c, str) for c in classes) and len(set(classes)) == len(classes)):
        raise DatasetError(f"{path}: classes must list two or more distinct names")
    content_hash = manifest.get("content_hash")
    if not (isinstance(content_hash, str) and len(content_hash) == 64):
        raise DatasetError(f"{path}: content_hash must be a SHA-256 in hex")
    return manifest


def read_dataset(folder: str | Path, *, project_id: int | None = None,
                 content_hash: str | None = None) -> Dataset:
    """Read a dataset folder, checking its manifest, content hash and every line.

    Raise DatasetError when the manifest is missing or malformed, belongs to another project
    than ``project_id``, is not the export whose hash is ``content_hash`` (when given), the
    items' SHA-256 differs from the manifest's ``content_hash``, a line is malformed, or the
    dataset has no items.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if project_id is not None and manifest.get("project", {}).get("id") != project_id:
        raise DatasetError(f"the dataset belongs to project {manifest.get('project', {}).get('id')}"
                           f", not to project {project_id}")
    if content_hash is not None and manifest["content_hash"] != content_hash:
        raise DatasetError(f"the dataset's content hash is {manifest['content_hash']}, not "
                           f"{content_hash}: the dataset at this location changed after export")
    path = folder / ITEMS  # the fixed name: a manifest's "files" never chooses a path
    try:
        raw = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        raise DatasetError(f"{path} does not exist") from None
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path} is not a gzip file: {exc}") from None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != manifest["content_hash"]:
        raise DatasetError(f"{path}: content hash {actual} does not match the manifest's "
                           f"{manifest['content_hash']}; the items were changed or the "
                           "manifest belongs to another export")
    classes = tuple(manifest["classes"])
    position = {c: i for i, c in enumerate(classes)}
    split_position = {s: i for i, s in enumerate(SPLITS)}
    ids, texts, posteriors, labels, gold, split = [], [], [], [], [], []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        try:
            item = json.loads(line)
            posterior = [float(p) for p in item["posterior"]]
            if len(posterior) != len(classes):
                raise ValueError(f"posterior has {len(posterior)} values for "
                                 f"{len(classes)} classes")
            ids.append(int(item["id"]))
            texts.append(str(item["text"]))
            posteriors.append(posterior)
            labels.append(position[item["label"]])
            gold.append(-1 if item.get("gold") is None else position[item["gold"]])
            split.append(split_position[item["split"]])
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path} line {number}: {type(exc).__name__}: {exc}") from None
    if not ids:
        raise DatasetError(f"{path}: the dataset has no items; there is nothing to train on")
    expected = manifest.get("counts", {}).get("items")
    if expected != len(ids):
        raise DatasetError(f"{path}: the manifest counts {expected} items, the file holds "
                           f"{len(ids)}")
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{path}: an item id appears more than once")
    matrix = np.asarray(posteriors, dtype=np.float64).reshape(len(ids), len(classes))
    if (matrix < 0).any() or not np.allclose(matrix.sum(axis=1), 1.0, atol=1e-4):
        raise DatasetError(f"{path}: every posterior must be non-negative and sum to 1")
    return Dataset(manifest, classes, np.asarray(ids, dtype=np.int64), texts,
                   matrix.astype(np.float32), np.asarray(labels, dtype=np.int64),
                   np.asarray(gold, dtype=np.int64), np.asarray(split, dtype=np.int64))
