"""Hashed character n-grams, computed with torch operations on the training device.

The classifier reads characters, not words, so it works in every script without a tokenizer
or downloaded vocabulary: Arabic, Chinese and Devanagari text give n-grams as Latin does.
The host does only one cheap step: lower-case the texts and lay their Unicode code points
out in one flat int32 array, each text bracketed by two marker code points (so n-grams at
its start and end differ from those inside it). The rest runs where the tensors live: for
each n, a polynomial hash over n consecutive code points, windows that cross from one item
to the next dropped, the hash folded into ``buckets`` embedding rows.

The result is ragged: ``grams`` holds every item's bucket ids one item after the other,
``starts`` and ``lengths`` say where each item's run lies. :meth:`Features.batch` gathers a
batch's runs as ``EmbeddingBag`` takes them (a flat input and per-bag offsets). The lengths
are also kept on the host (``host_lengths``), so a caller can work out each batch's size
there and the GPU never has to stop to tell it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: Code points that bracket each text; control characters that real text does not use.
BEGIN, END = 0x02, 0x03
#: The polynomial hash: modulus (a Mersenne prime below 2**31, so a product by a base
#: below 2**21 stays far inside int64) and base.
MODULUS = 2**31 - 1
BASE = 1_000_003
#: Odd multiplier that scatters the hash before it is folded into the buckets.
SCATTER = 0x9E3779B1
DEFAULT_NGRAMS = (1, 2, 3)
DEFAULT_BUCKETS = 2**18


def code_points(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return the lower-cased code points of every text, bracketed, flat; and their lengths."""
    lowered = [text.lower() for text in texts]
    joined = "".join(f"\x02{text}\x03" for text in lowered)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype="<u4").astype(np.int32)
    lengths = np.fromiter((len(text) + 2 for text in lowered), dtype=np.int64,
                          count=len(lowered))
    return codes, lengths


@dataclass(frozen=True)
class Features:
    """Every item's hashed n-grams, ragged, on one device."""

    grams: torch.Tensor
    starts: torch.Tensor
    lengths: torch.Tensor
    #: ``lengths`` on the host (int64), for sizes known before the device computes them
    host_lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def sizes(self, items: np.ndarray, batch: int) -> np.ndarray:
        """Return the n-gram count of each run of ``batch`` items of ``items`` (host indices)."""
        if len(items) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.add.reduceat(self.host_lengths[items], np.arange(0, len(items), batch))

    def batch(self, items: torch.Tensor, total: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (input, offsets) for ``EmbeddingBag`` of the items ``items`` (on device).

        ``total`` is the items' n-gram count (:meth:`sizes`); without it the count is read
        back from the device, which on a GPU waits for all the work queued before.
        """
        lengths = self.lengths[items]
        ends = torch.cumsum(lengths, 0)
        offsets = ends - lengths
        if total is None:
            total = int(ends[-1]) if len(items) else 0
        shift = torch.repeat_interleave(self.starts[items] - offsets, lengths,
                                        output_size=total)
        positions = shift + torch.arange(total, device=shift.device)
        return self.grams[positions], offsets


def featurise(texts: Sequence[str], device: torch.device | str = "cpu", *,
              ngrams: Sequence[int] = DEFAULT_NGRAMS, buckets: int = DEFAULT_BUCKETS
              ) -> Features:
    """Hash the character n-grams of ``texts`` into ``buckets`` ids, on ``device``."""
    if not ngrams or any(n < 1 for n in ngrams):
        raise ValueError(f"ngrams must be sizes of 1 or more, got {list(ngrams)}")
    if buckets < 1 or buckets >= MODULUS:
        raise ValueError(f"buckets must be between 1 and {MODULUS - 1}, got {buckets}")
    codes_np, lengths_np = code_points(texts)
    device = torch.device(device)
    codes = torch.from_numpy(codes_np).to(device, non_blocking=True).to(torch.int64)
    lengths = torch.from_numpy(lengths_np).to(device)
    count = len(lengths_np)
    item = torch.repeat_interleave(torch.arange(count, device=device), lengths,
                                   output_size=len(codes_np))
    total = len(codes_np)
    ngrams = sorted(set(int(n) for n in ngrams))
    # One column per n: column j of row p is the n-gram of size ngrams[j] starting at p, or
    # -1 when it runs past the item (or past the end). Row-major order keeps every item's
    # n-grams together and in text order.
    table = torch.full((total, len(ngrams)), -1, dtype=torch.int64, device=device)
    for column, n in enumerate(ngrams):
        windows = total - n + 1
        if windows <= 0:
            continue
        hashed = torch.full((windows,), n, dtype=torch.int64, device=device)
        for k in range(n):
            hashed = (hashed * BASE + codes[k:k + windows]) % MODULUS
        bucket = (hashed * SCATTER) % MODULUS % buckets
        inside = item[:windows] == item[n - 1:]
        table[:windows, column] = torch.where(inside, bucket, -1)
    flat = table.reshape(-1)
    keep = flat >= 0
    grams = flat[keep]
    per_item = torch.bincount(item.repeat_interleave(len(ngrams))[keep], minlength=count)
    starts = torch.cumsum(per_item, 0) - per_item
    return Features(grams, starts, per_item, per_item.cpu().numpy().astype(np.int64))
