"""The classifier: a bag of hashed character n-grams, then one linear layer; soft-target loss."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class NgramClassifier(nn.Module):
    """fastText's shape: mean of the item's n-gram embeddings, then a linear layer to classes.

    The embedding table is large (one row per hash bucket) and each batch touches few rows,
    so its gradient is sparse: only those rows are sent to the optimiser.
    """

    def __init__(self, buckets: int, dim: int, classes: int) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(buckets, dim, mode="mean", sparse=True)
        self.out = nn.Linear(dim, classes)
        nn.init.uniform_(self.bag.weight, -1.0 / dim, 1.0 / dim)

    def forward(self, grams: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.out(self.bag(grams, offsets))


def soft_target_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Return the mean cross-entropy of ``logits`` against probability rows ``targets``.

    With one-hot targets this is the usual loss; with the consensus posteriors an item the
    crowd was unsure of pulls the model less firmly towards its label. Computed in float32
    whatever the autocast dtype.
    """
    return F.cross_entropy(logits.float(), targets.float())
