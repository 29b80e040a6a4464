"""The dataset format: manifest checks, content hash, splits."""

from __future__ import annotations

import gzip
import json

import pytest

from tests import training_data
from training.dataset import DatasetError, read_dataset, split_of


def test_a_written_dataset_reads_back(tmp_path):
    records = training_data.items(30)
    dataset = read_dataset(training_data.write(tmp_path, records), project_id=1)
    assert dataset.ids.tolist() == [r["id"] for r in records]
    assert dataset.texts[2] == records[2]["text"]
    assert dataset.posteriors.shape == (30, 2)
    assert (dataset.gold >= 0).sum() == 6
    counts = dataset.manifest["counts"]
    assert sum(counts["splits"].values()) == 30 and counts["classes"]["positive"] == 15


def test_split_is_a_function_of_project_and_item_only():
    splits = [split_of(1, i) for i in range(5000)]
    assert splits == [split_of(1, i) for i in range(5000)]
    share = {name: splits.count(name) / 5000 for name in ("train", "validation", "test")}
    assert 0.77 < share["train"] < 0.83 and 0.08 < share["test"] < 0.12
    assert [split_of(2, i) for i in range(50)] != splits[:50]


def test_changed_items_fail_the_hash_check(tmp_path):
    folder = training_data.write(tmp_path, training_data.items(10))
    path = folder / "items.jsonl.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    record = json.loads(lines[0])
    record["label"] = "negative" if record["label"] == "positive" else "positive"
    lines[0] = json.dumps(record)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(DatasetError, match="content hash .* does not match"):
        read_dataset(folder)


def test_manifest_for_another_project_or_malformed_is_refused(tmp_path):
    folder = training_data.write(tmp_path, training_data.items(10), project_id=3)
    with pytest.raises(DatasetError, match="belongs to project 3, not to project 1"):
        read_dataset(folder, project_id=1)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format": "other/9"}))
    with pytest.raises(DatasetError, match="format"):
        read_dataset(folder)
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "nowhere")


def test_the_manifest_does_not_choose_the_items_file(tmp_path):
    folder = training_data.write(tmp_path / "data", training_data.items(10))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {"items": "../../../etc/passwd"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert len(read_dataset(folder)) == 10


def test_an_expected_content_hash_is_checked_first(tmp_path):
    folder = training_data.write(tmp_path / "data", training_data.items(10))
    (folder / "items.jsonl.gz").write_bytes(b"not gzip")  # never read: the hash differs
    with pytest.raises(DatasetError, match="changed after export"):
        read_dataset(folder, content_hash="0" * 64)
