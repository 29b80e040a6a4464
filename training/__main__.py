"""``python -m training --dataset D --out O [--device auto|cpu|cuda]``: the training job by hand.

Needs torch, NumPy and the standard library only, so it runs on a GPU machine that has
neither the service nor its database: copy the dataset folder there, run this, copy the
output folder back and import it (``coordinator feedback import``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from training.crossfit import DEVICES, DeviceError, Settings
from training.dataset import DatasetError
from training.features import DEFAULT_BUCKETS
from training.job import train


def _ngrams(value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in value.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"give sizes such as 1,2,3, not {value!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("n-gram sizes must be 1 or more")
    return sizes


def parser() -> argparse.ArgumentParser:
    defaults = Settings()
    p = argparse.ArgumentParser(
        prog="python -m training",
        description="Cross-fit a character n-gram classifier on an exported consensus run "
                    "and write out-of-fold predictions, metrics and the model.")
    p.add_argument("--dataset", required=True, help="dataset folder (coordinator export)")
    p.add_argument("--out", required=True, help="folder for the outputs")
    p.add_argument("--device", default="auto",
                   help=f"one of {', '.join(DEVICES)} or cuda:N (default auto: the GPU when "
                        "torch sees one); cuda on a machine without one is an error")
    p.add_argument("--folds", type=int, default=defaults.folds)
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--dim", type=int, default=defaults.dim, help="embedding width")
    p.add_argument("--buckets", type=int, default=DEFAULT_BUCKETS, help="hash buckets")
    p.add_argument("--ngrams", type=_ngrams, default=defaults.ngrams,
                   help="character n-gram sizes (default 1,2,3)")
    p.add_argument("--batch-size", type=int, default=0, help="0: chosen from the item count")
    p.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    p.add_argument("--dense-learning-rate", type=float, default=defaults.dense_learning_rate)
    p.add_argument("--no-amp", action="store_true", help="full precision on CUDA")
    return p


class TerminalProgress:
    """Fold, epoch, loss and speed on one rewritten line when stderr is a terminal; else one
    line per fold."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()

    def __call__(self, fold: int, folds: int, epoch: int, epochs: int, loss: float,
                 speed: float) -> None:
        line = (f"fold {fold}/{folds}  epoch {epoch}/{epochs}  loss {loss:.4f}  "
                f"{speed:,.0f} item-epochs/s  {time.monotonic() - self.started:.1f} s")
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K" + ("\n" if epoch == epochs and
                                                         fold == folds else ""))
        elif epoch == epochs:
            self.stream.write(line + "\n")
        self.stream.flush()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings(folds=args.folds, epochs=args.epochs, seed=args.seed, dim=args.dim,
                        buckets=args.buckets, ngrams=args.ngrams, batch_size=args.batch_size,
                        learning_rate=args.learning_rate,
                        dense_learning_rate=args.dense_learning_rate, amp=not args.no_amp)
    try:
        manifest = train(args.dataset, args.out, device=args.device, settings=settings,
                         progress=TerminalProgress())
    except (DeviceError, DatasetError, ValueError) as exc:
        print(f"python -m training: error: {exc}", file=sys.stderr)
        return 2
    run, metrics = manifest["run"], manifest["metrics"]
    print(json.dumps({"out": args.out, "items": manifest["items"], "device": run["device"],
                      "device_name": run["device_name"], "amp_dtype": run["amp_dtype"],
                      "item_epochs_per_s": round(run["item_epochs_per_s"]),
                      "total_s": round(run["timings"]["total_s"], 3),
                      "accuracy_consensus": metrics["accuracy_consensus"],
                      "accuracy_gold": metrics["accuracy_gold"]}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
