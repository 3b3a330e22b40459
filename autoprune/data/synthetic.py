"""Synthetic, learnable image data for tests: each class is a fixed random template plus noise."""

from __future__ import annotations

import torch

from autoprune.data.batches import DataSplits
from autoprune.data.streams import StreamSplits
from autoprune.inputs import InputSpec, rows


def synthetic_splits(n_train: int = 512, n_val: int = 256, n_test: int = 256, num_classes: int = 10,
                     shape: tuple[int, ...] = (1, 28, 28), noise: float = 0.5,
                     seed: int = 0) -> DataSplits:
    """Class-template images with Gaussian noise; a small net learns them in a few steps."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(num_classes, *shape, generator=g)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, num_classes, (n,), generator=g)
        return templates[y] + noise * torch.randn(n, *shape, generator=g), y

    (xt, yt), (xv, yv), (xs, ys) = make(n_train), make(n_val), make(n_test)
    return DataSplits(xt, yt, xv, yv, xs, ys, num_classes)


class _SpecSamples(torch.utils.data.Dataset):
    """``n`` random samples of an :class:`InputSpec`'s inputs with random labels."""

    def __init__(self, spec: InputSpec, n: int, num_classes: int, seed: int) -> None:
        self.inputs = spec.example(n, random=True, seed=seed)
        self.labels = torch.randint(0, num_classes, (n,), generator=torch.Generator().manual_seed(seed + 1))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple:
        one = rows(self.inputs, i, i + 1)
        if isinstance(one, dict):
            return {k: v[0] for k, v in one.items()}, self.labels[i]
        return (tuple(v[0] for v in one) if isinstance(one, tuple) else one[0]), self.labels[i]


def synthetic_input_splits(spec: InputSpec, n_train: int = 256, n_val: int = 128, n_test: int = 128,
                           num_classes: int = 2, seed: int = 0) -> StreamSplits:
    """Random inputs of ``spec`` with random labels: for models of several inputs run on random
    weights (tests, demos); nothing in them is learnable."""
    return StreamSplits(_SpecSamples(spec, n_train, num_classes, seed), _SpecSamples(spec, n_val, num_classes, seed + 2),
                        _SpecSamples(spec, n_test, num_classes, seed + 4), num_classes=num_classes, input_shape=spec)
