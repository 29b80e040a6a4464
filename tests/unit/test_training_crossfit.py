"""Cross-fitting: one out-of-fold prediction per item, reproducible, soft targets, devices."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from tests import training_data
from training.__main__ import main
from training.crossfit import DeviceError, Settings, cross_fit, fold_of_items, resolve_device
from training.dataset import DatasetError, read_dataset
from training.job import train
from training.model import soft_target_loss

FAST = Settings(folds=3, epochs=4, seed=1, dim=16, buckets=2**12, batch_size=16)


def test_fold_deal_is_balanced_and_seeded():
    fold = fold_of_items(10, 3, seed=5)
    assert sorted(np.bincount(fold).tolist()) == [3, 3, 4]
    assert fold.tolist() == fold_of_items(10, 3, seed=5).tolist()
    assert fold.tolist() != fold_of_items(10, 3, seed=6).tolist()


def test_every_item_gets_exactly_one_out_of_fold_prediction(tmp_path):
    folder = training_data.write(tmp_path / "data", training_data.items(60))
    manifest = train(folder, tmp_path / "out", device="cpu", settings=FAST)
    lines = [json.loads(line) for line in
             gzip.decompress((tmp_path / "out" / "predictions.jsonl.gz").read_bytes())
             .decode().splitlines()]
    dataset = read_dataset(folder)
    assert sorted(line["id"] for line in lines) == sorted(dataset.ids.tolist())
    assert {line["fold"] for line in lines} == {0, 1, 2}
    for line in lines:
        assert abs(sum(line["p"]) - 1) < 1e-4
        assert line["label"] == training_data.CLASSES[int(np.argmax(line["p"]))]
    assert manifest["items"] == 60
    assert manifest["dataset"]["content_hash"] == dataset.manifest["content_hash"]
    model = torch.load(tmp_path / "out" / "model.pt")
    assert len(model["folds"]) == 3 and model["classes"] == training_data.CLASSES
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics["per_class"]) == set(training_data.CLASSES)
    assert metrics["gold_items"] == 12
    assert metrics["by_split"]["train"]["items"] + metrics["by_split"]["validation"]["items"] \
        + metrics["by_split"]["test"]["items"] == 60


def test_the_class_markers_are_learnt_out_of_fold(tmp_path):
    records = training_data.items(300, seed=3)
    dataset = read_dataset(training_data.write(tmp_path / "data", records))
    settings = Settings(folds=3, epochs=8, seed=0, dim=16, buckets=2**14, batch_size=16)
    fit = cross_fit(dataset.texts, dataset.posteriors, settings, torch.device("cpu"))
    accuracy = (fit.probabilities.argmax(axis=1) == dataset.labels).mean()
    assert accuracy > 0.9, accuracy


def test_same_seed_same_predictions_other_seed_other_ones(tmp_path):
    dataset = read_dataset(training_data.write(tmp_path / "data", training_data.items(40)))
    first = cross_fit(dataset.texts, dataset.posteriors, FAST, torch.device("cpu"))
    again = cross_fit(dataset.texts, dataset.posteriors, FAST, torch.device("cpu"))
    other = cross_fit(dataset.texts, dataset.posteriors,
                      Settings(**{**FAST.as_dict(), "ngrams": FAST.ngrams, "seed": 2}),
                      torch.device("cpu"))
    assert np.array_equal(first.probabilities, again.probabilities)
    assert np.array_equal(first.fold, again.fold)
    assert not np.array_equal(first.probabilities, other.probabilities)


def test_soft_target_loss_weighs_posteriors():
    logits = torch.tensor([[2.0, 0.0]])
    hard = soft_target_loss(logits, torch.tensor([[1.0, 0.0]]))
    soft = soft_target_loss(logits, torch.tensor([[0.6, 0.4]]))
    log_p = torch.log_softmax(logits, dim=1)
    assert torch.isclose(hard, -log_p[0, 0])
    assert torch.isclose(soft, -(0.6 * log_p[0, 0] + 0.4 * log_p[0, 1]))
    assert soft > hard  # an unsure target pulls less towards the confident prediction


def test_cuda_without_cuda_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="--device cuda was requested but torch sees no CUDA"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")
    folder = training_data.write(tmp_path / "data", training_data.items(10))
    assert main(["--dataset", str(folder), "--out", str(tmp_path / "out"),
                 "--device", "cuda"]) == 2
    assert "no CUDA" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before reading or writing anything


def test_empty_dataset_and_too_few_items_are_refused(tmp_path, capsys):
    empty = training_data.write(tmp_path / "empty", [])
    with pytest.raises(DatasetError, match="no items"):
        read_dataset(empty)
    assert main(["--dataset", str(empty), "--out", str(tmp_path / "out"),
                 "--device", "cpu"]) == 2
    assert "no items" in capsys.readouterr().err
    two = training_data.write(tmp_path / "two", training_data.items(2))
    with pytest.raises(ValueError, match="cannot be dealt into 5 folds"):
        train(two, tmp_path / "out", device="cpu")


def test_batch_sizes_are_worked_out_on_the_host(tmp_path, monkeypatch):
    from training import features

    dataset = read_dataset(training_data.write(tmp_path / "data", training_data.items(40)))
    real_batch = features.Features.batch
    given = []

    def watching(self, items, total=None):
        grams, offsets = real_batch(self, items, total)
        given.append((total, len(grams)))
        return grams, offsets

    monkeypatch.setattr(features.Features, "batch", watching)
    cross_fit(dataset.texts, dataset.posteriors, FAST, torch.device("cpu"))
    assert given and all(isinstance(total, int) and total == size for total, size in given)


def test_the_callers_random_state_is_left_alone(tmp_path):
    dataset = read_dataset(training_data.write(tmp_path / "data", training_data.items(20)))
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    first = cross_fit(dataset.texts, dataset.posteriors, FAST, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(99)  # another global state changes nothing either
    again = cross_fit(dataset.texts, dataset.posteriors, FAST, torch.device("cpu"))
    assert np.array_equal(first.probabilities, again.probabilities)


def test_bfloat16_only_where_the_gpu_computes_it(monkeypatch):
    import contextlib

    from training import crossfit

    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "device", lambda _device: contextlib.nullcontext())
    asked = []

    def supported(including_emulation=True):
        asked.append(including_emulation)
        return including_emulation  # as on a Turing GPU: bfloat16 only emulated

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert crossfit._amp(cuda, True) == (torch.float16, True) and asked == [False]
    assert crossfit._amp(cuda, False) == (None, False)
    assert crossfit._amp(torch.device("cpu"), True) == (None, False)

    def older_torch():  # no including_emulation argument: the capability decides
        return True

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", older_torch)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _device: (7, 5))
    assert crossfit._amp(cuda, True) == (torch.float16, True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _device: (9, 0))
    assert crossfit._amp(cuda, True) == (torch.bfloat16, False)


def test_the_dataset_hash_is_checked_before_training(tmp_path, monkeypatch):
    import training.job

    folder = training_data.write(tmp_path / "data", training_data.items(20))
    monkeypatch.setattr(training.job, "cross_fit", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(DatasetError, match="changed after export"):
        train(folder, tmp_path / "out", device="cpu", settings=FAST, content_hash="f" * 64)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cross_fit_on_cuda_agrees_with_the_cpu(tmp_path):
    from training.features import featurise

    records = training_data.items(300, seed=3)
    dataset = read_dataset(training_data.write(tmp_path / "data", records))
    settings = Settings(folds=3, epochs=4, seed=0, dim=16, buckets=2**14, batch_size=16)
    cpu = cross_fit(dataset.texts, dataset.posteriors, settings, torch.device("cpu"))
    gpu = cross_fit(dataset.texts, dataset.posteriors, settings, torch.device("cuda"))
    expected = "bfloat16" if torch.cuda.get_device_capability()[0] >= 8 else "float16"
    assert gpu.device.startswith("cuda") and gpu.amp_dtype == expected
    assert all(v.device.type == "cpu" for model in gpu.models for v in model.values())
    assert np.array_equal(gpu.fold, cpu.fold)
    assert np.abs(gpu.probabilities - cpu.probabilities).max() < 0.05
    assert (gpu.probabilities.argmax(1) == cpu.probabilities.argmax(1)).mean() > 0.97
    # With its size given, a batch is gathered without waiting for the GPU.
    features = featurise(dataset.texts, torch.device("cuda"), buckets=2**14)
    items = np.arange(0, 300, 3)
    sizes = features.sizes(items, len(items)).tolist()
    on_device = torch.from_numpy(items).to("cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        grams, offsets = features.batch(on_device, sizes[0])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(grams) == sizes[0] and len(offsets) == len(items)
