"""Synthetic, learnable image data for tests: each class is a fixed random template plus noise."""

from __future__ import annotations

import torch

from autoprune.data.batches import DataSplits


def synthetic_splits(n_train: int = 512, n_val: int = 256, n_test: int = 256, num_classes: int = 10,
                     shape: tuple[int, int, int] = (1, 28, 28), noise: float = 0.5,
                     seed: int = 0) -> DataSplits:
    """Class-template images with Gaussian noise; a small net learns them in a few steps."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(num_classes, *shape, generator=g)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, num_classes, (n,), generator=g)
        return templates[y] + noise * torch.randn(n, *shape, generator=g), y

    (xt, yt), (xv, yv), (xs, ys) = make(n_train), make(n_val), make(n_test)
    return DataSplits(xt, yt, xv, yv, xs, ys, num_classes)
