"""K-fold cross-fitting: every item is predicted by a model that never saw it.

The items are dealt into ``folds`` folds by a seeded permutation. For each fold a fresh model
is trained on the other folds, with the consensus posteriors as soft targets, and then
predicts the fold it left out; so every item gets exactly one out-of-fold prediction, and
a confident disagreement with the crowd is the model's own view, not a memory of the label.

Everything random (the fold deal, each model's initial weights, each epoch's batch order)
comes from ``seed``, through generators of its own: the calling process's global random
state is left as it was. On the CPU a repeat on the same machine with the same number of
threads gives the same probabilities bit for bit. On CUDA the sparse SGD update adds each
batch's gradient rows into the embedding table with atomic additions, whose order (and so
the float rounding) varies between runs: there a repeat agrees to rounding, not bit for bit.

Mixed precision on CUDA is narrow. The forward pass runs under autocast, which computes the
linear layer in bfloat16 where the GPU supports it natively (else float16, with a gradient
scaler); ``embedding_bag`` is not among the operations autocast casts, so the embedding
lookup and mean, the bulk of the work, stay float32 on float32 weights, and the loss is
float32. The batch sizes are worked out on the host, so the training loop never waits for
the GPU to report one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from training.features import DEFAULT_BUCKETS, DEFAULT_NGRAMS, Features, featurise
from training.model import NgramClassifier, soft_target_loss

DEVICES = ("auto", "cpu", "cuda")


class DeviceError(RuntimeError):
    """Raised when the requested device cannot be used (``cuda`` on a machine without)."""


def resolve_device(name: str) -> torch.device:
    """Return the torch device for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` takes the GPU when torch sees one. Raise DeviceError for ``cuda`` when torch has
    no CUDA (a CPU-only build, or no GPU visible) and for unknown names: falling back to the
    CPU silently would turn a 15-second job into a 15-minute one.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = torch.__version__ + ("" if torch.version.cuda else ", built without CUDA")
            raise DeviceError(
                f"--device {name} was requested but torch sees no CUDA GPU (torch {build}); "
                "install a CUDA build of torch on a machine with a GPU, or use --device cpu "
                "or --device auto")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise DeviceError(f"{name!r} is not a device name; use cuda or cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: there are {torch.cuda.device_count()} "
                              "CUDA device(s), numbered from 0")
        return device
    raise DeviceError(f"unknown device {name!r}; use one of {', '.join(DEVICES)} (or cuda:N)")


@dataclass(frozen=True)
class Settings:
    """How to train; every value is written to the run's outputs."""

    folds: int = 5
    epochs: int = 5
    seed: int = 0
    #: embedding width
    dim: int = 32
    buckets: int = DEFAULT_BUCKETS
    ngrams: tuple[int, ...] = DEFAULT_NGRAMS
    #: items per step; 0 picks one from the number of items (32 to 4096)
    batch_size: int = 0
    #: the embedding's starting SGD rate per item; it falls linearly to 0
    learning_rate: float = 0.5
    #: the linear layer's starting Adam rate
    dense_learning_rate: float = 0.05
    #: mixed precision on CUDA (ignored on the CPU)
    amp: bool = True

    def check(self, items: int) -> None:
        """Raise ValueError naming the setting that cannot work for ``items`` items."""
        if items == 0:
            raise ValueError("there are no items to train on")
        if self.folds < 2:
            raise ValueError(f"folds must be 2 or more, got {self.folds}")
        if items < self.folds:
            raise ValueError(f"{items} item(s) cannot be dealt into {self.folds} folds; "
                             "use fewer folds or more items")
        if self.epochs < 1:
            raise ValueError(f"epochs must be 1 or more, got {self.epochs}")
        if self.dim < 1 or self.batch_size < 0 or not (self.learning_rate > 0
                                                       and self.dense_learning_rate > 0):
            raise ValueError("dim must be 1 or more, batch_size 0 or more, learning rates > 0")

    def batch_for(self, train_items: int) -> int:
        if self.batch_size:
            return self.batch_size
        return int(min(4096, max(32, train_items // 64)))

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["ngrams"] = list(self.ngrams)
        return values


def fold_of_items(items: int, folds: int, seed: int) -> np.ndarray:
    """Return each item's fold: a seeded permutation dealt round-robin, sizes differing by 1."""
    order = np.random.default_rng(seed).permutation(items)
    fold = np.empty(items, dtype=np.int64)
    fold[order] = np.arange(items) % folds
    return fold


@dataclass
class CrossFit:
    """What cross-fitting produced."""

    #: out-of-fold class probabilities, shape (items, classes)
    probabilities: np.ndarray
    #: the fold each item was held out in
    fold: np.ndarray
    #: each fold's trained weights (on the CPU)
    models: list[dict[str, torch.Tensor]]
    device: str
    #: the autocast dtype on CUDA, or None
    amp_dtype: str | None
    batch_size: int
    #: items seen in training, summed over epochs and folds
    item_epochs: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def item_epochs_per_second(self) -> float:
        seconds = self.timings.get("train_s", 0.0)
        return self.item_epochs / seconds if seconds > 0 else float("nan")


#: progress(fold, folds, epoch, epochs, mean loss of the epoch, item-epochs per second so far)
Progress = Callable[[int, int, int, int, float, float], None]


def _native_bf16(device: torch.device) -> bool:
    """Return whether the GPU computes bfloat16 itself (not emulated through float32)."""
    with torch.cuda.device(device):
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # an older torch without the argument counts emulation in
            return torch.cuda.get_device_capability(device)[0] >= 8  # Ampere on: native


def _amp(device: torch.device, wanted: bool) -> tuple[torch.dtype | None, bool]:
    """Return the autocast dtype (None: full precision) and whether to scale gradients."""
    if device.type != "cuda" or not wanted:
        return None, False
    if _native_bf16(device):
        return torch.bfloat16, False
    return torch.float16, True


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cross_fit(texts: list[str], targets: np.ndarray, settings: Settings,
              device: torch.device, *, progress: Progress | None = None) -> CrossFit:
    """Featurise ``texts`` on ``device`` and cross-fit; ``targets`` are probability rows."""
    items, classes = targets.shape
    settings.check(items)
    started = time.perf_counter()
    features = featurise(texts, device, ngrams=settings.ngrams, buckets=settings.buckets)
    _sync(device)
    featurised = time.perf_counter()
    fold = fold_of_items(items, settings.folds, settings.seed)
    soft = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32)).to(device)
    probabilities = torch.zeros((items, classes), dtype=torch.float32, device=device)
    amp_dtype, scale = _amp(device, settings.amp)
    models: list[dict[str, torch.Tensor]] = []
    item_epochs = 0
    train_seconds = predict_seconds = 0.0
    batch = settings.batch_for(items - items // settings.folds)
    for k in range(settings.folds):
        tick = time.perf_counter()
        # Item indices stay on the host (NumPy) until a batch's are sent to the device.
        train = np.flatnonzero(fold != k)
        held_out = np.flatnonzero(fold == k)
        model = _train_fold(features, soft, train, settings, device, k, batch, amp_dtype,
                            scale, progress, item_epochs, train_seconds)
        item_epochs += len(train) * settings.epochs
        _sync(device)
        tock = time.perf_counter()
        train_seconds += tock - tick
        probabilities[torch.from_numpy(held_out).to(device)] = _predict(
            model, features, held_out, batch * 4, amp_dtype)
        # Half precision halves the model file; the weights lose nothing that matters.
        models.append({name: value.detach().to("cpu", torch.float16) for name, value in
                       model.state_dict().items()})
        _sync(device)
        predict_seconds += time.perf_counter() - tock
    result = probabilities.cpu().numpy()
    finished = time.perf_counter()
    return CrossFit(
        probabilities=result, fold=fold, models=models, device=str(device),
        amp_dtype=str(amp_dtype).replace("torch.", "") if amp_dtype else None,
        batch_size=batch, item_epochs=item_epochs,
        timings={"featurise_s": featurised - started, "train_s": train_seconds,
                 "predict_s": predict_seconds, "total_s": finished - started})


def _train_fold(features: Features, soft: torch.Tensor, train: np.ndarray,
                settings: Settings, device: torch.device, k: int, batch: int,
                amp_dtype: torch.dtype | None, scale: bool, progress: Progress | None,
                done_before: int, seconds_before: float) -> NgramClassifier:
    """Train one fold's model on the items ``train`` (host indices)."""
    # The initial weights are drawn on the CPU from a seeded state inside fork_rng, which
    # puts the caller's global state back afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(settings.seed * 1009 + k)
        model = NgramClassifier(settings.buckets, settings.dim, soft.shape[1])
    model = model.to(device)
    order_generator = torch.Generator().manual_seed(settings.seed * 1013 + k)
    # Plain SGD takes the embedding's sparse gradient as it is and touches only the rows a
    # batch used (SparseAdam cost 3 to 10 times more per step on the CPU). The loss is a
    # batch mean, so a row's gradient is 1/batch of its items' own; its rate is multiplied
    # back, which gives fastText's per-item update. The small dense layer takes Adam. Both
    # rates fall linearly to zero over the run, as in fastText.
    sparse_rate = settings.learning_rate * batch
    sparse = torch.optim.SGD(list(model.bag.parameters()), lr=sparse_rate)
    dense = torch.optim.Adam(model.out.parameters(), lr=settings.dense_learning_rate)
    scaler = torch.amp.GradScaler("cuda") if scale else None
    steps = settings.epochs * -(-len(train) // batch)
    step = 0
    started = time.perf_counter()
    model.train()
    for epoch in range(settings.epochs):
        order_host = train[torch.randperm(len(train), generator=order_generator).numpy()]
        sizes = features.sizes(order_host, batch).tolist()
        order = torch.from_numpy(order_host).to(device)
        total = torch.zeros((), device=device)
        for number, start in enumerate(range(0, len(order), batch)):
            items = order[start:start + batch]
            grams, offsets = features.batch(items, sizes[number])
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                enabled=amp_dtype is not None):
                logits = model(grams, offsets)
            loss = soft_target_loss(logits, soft[items])
            remaining = 1.0 - step / steps
            sparse.param_groups[0]["lr"] = sparse_rate * remaining
            dense.param_groups[0]["lr"] = settings.dense_learning_rate * remaining
            step += 1
            sparse.zero_grad(set_to_none=True)
            dense.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(sparse)
                scaler.step(dense)
                scaler.update()
            else:
                loss.backward()
                sparse.step()
                dense.step()
            total += loss.detach() * len(items)
        if progress is not None:
            mean = float(total) / max(len(order), 1)
            seen = done_before + len(train) * (epoch + 1)
            elapsed = seconds_before + time.perf_counter() - started
            progress(k + 1, settings.folds, epoch + 1, settings.epochs, mean,
                     seen / elapsed if elapsed > 0 else float("nan"))
    return model


@torch.no_grad()
def _predict(model: NgramClassifier, features: Features, items: np.ndarray, batch: int,
             amp_dtype: torch.dtype | None) -> torch.Tensor:
    """Return class probabilities of ``items`` (host indices; float32, on the features' device)."""
    model.eval()
    parts = []
    sizes = features.sizes(items, batch).tolist()
    on_device = torch.from_numpy(items).to(features.grams.device)
    for number, start in enumerate(range(0, len(items), batch)):
        chosen = on_device[start:start + batch]
        grams, offsets = features.batch(chosen, sizes[number])
        with torch.autocast(features.grams.device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            logits = model(grams, offsets)
        parts.append(torch.softmax(logits.float(), dim=1))
    if not parts:
        return torch.zeros((0, model.out.out_features), device=features.grams.device)
    return torch.cat(parts)
