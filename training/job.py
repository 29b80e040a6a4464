"""One training run: read a dataset folder, cross-fit, evaluate, write the outputs folder."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

from training.crossfit import Progress, Settings, cross_fit, resolve_device
from training.dataset import read_dataset
from training.metrics import evaluate
from training.outputs import write_outputs


def train(dataset_folder: str | Path, out_folder: str | Path, *, device: str = "auto",
          settings: Settings | None = None, progress: Progress | None = None,
          content_hash: str | None = None) -> dict[str, Any]:
    """Train on the dataset in ``dataset_folder``, write to ``out_folder``; return the manifest.

    Raise DeviceError for a device that cannot be used (checked before anything is read),
    DatasetError for a dataset that cannot be trained on or whose content hash is not
    ``content_hash`` (when given; checked before training), ValueError for bad settings.
    """
    settings = settings or Settings()
    chosen = resolve_device(device)
    started = time.perf_counter()
    dataset = read_dataset(dataset_folder, content_hash=content_hash)
    read_seconds = time.perf_counter() - started
    settings.check(len(dataset))
    fit = cross_fit(dataset.texts, dataset.posteriors, settings, chosen, progress=progress)
    metrics = evaluate(dataset.classes, fit.probabilities, dataset.labels, dataset.posteriors,
                       dataset.gold, dataset.split)
    timings = {"read_s": read_seconds, **fit.timings}
    run = {
        "device": fit.device,
        "device_name": _device_name(chosen),
        "amp_dtype": fit.amp_dtype,
        "batch_size": fit.batch_size,
        "item_epochs": fit.item_epochs,
        "item_epochs_per_s": fit.item_epochs_per_second,
        "timings": timings,
        "torch": _torch_version(),
        "host": platform.node(),
    }
    metrics = {**metrics, "run": run}
    return write_outputs(out_folder, dataset_manifest=dataset.manifest, ids=dataset.ids,
                         fold=fit.fold, probabilities=fit.probabilities, metrics=metrics,
                         settings=settings.as_dict(), run=run, models=fit.models)


def _device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def _torch_version() -> str:
    import torch

    return torch.__version__
