"""In-memory tensor splits and a batch iterator (faster than DataLoader for small images on CPU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch


class Batches:
    """Iterates ``(x, y)`` mini-batches over in-memory tensors, optionally shuffled and augmented."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128, shuffle: bool = False,
                 augment: bool = False, seed: int = 0, limit: int | None = None) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        self.x, self.y = (x[:limit], y[:limit]) if limit else (x, y)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.x[idx]
            yield (random_crop_flip(x, self.generator) if self.augment else x), self.y[idx]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Standard light augmentation: pad-and-crop by up to ``pad`` pixels, then a random horizontal flip."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    out = padded[:, :, dy:dy + h, dx:dx + w]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@dataclass
class DataSplits:
    """Train (fine-tuning), validation (search scoring, held out of training) and test (report only)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])

    def train(self, batch_size: int = 128, shuffle: bool = True, augment: bool = False,
              seed: int = 0, limit: int | None = None) -> Batches:
        """Batches over the training split."""
        return Batches(self.x_train, self.y_train, batch_size, shuffle, augment, seed, limit)

    def val(self, batch_size: int = 500, limit: int | None = None) -> Batches:
        """Batches over the validation split (used to score candidates during search)."""
        return Batches(self.x_val, self.y_val, batch_size, limit=limit)

    def test(self, batch_size: int = 500, limit: int | None = None) -> Batches:
        """Batches over the test split (final reports only, never search)."""
        return Batches(self.x_test, self.y_test, batch_size, limit=limit)
