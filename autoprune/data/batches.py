"""In-memory tensor splits and a batch iterator (faster than DataLoader for small images on CPU).

Every kind of data (these tensors, a user's Datasets or DataLoaders, an image folder) offers the
:class:`Splits` interface; scoring, fine-tuning and training only use that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from autoprune.errors import ConfigError

AUGMENTATIONS = ("crop", "flip")  # pad-and-crop by 2 pixels; horizontal flip (images only)
Augment = tuple[str, ...]


def parse_augment(text: str | Sequence[str] | bool | None) -> Augment | None:
    """``"crop,flip"`` / ``"none"`` / a list / a bool -> the ops to apply (None: the data's default)."""
    if text is None:
        return None
    if isinstance(text, bool):
        return AUGMENTATIONS if text else ()
    ops = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if ops == ["none"]:
        return ()
    bad = [o for o in ops if o not in AUGMENTATIONS]
    if bad:
        raise ConfigError(f"--augment {bad[0]!r} is not known; use crop, flip, crop,flip or none")
    return tuple(dict.fromkeys(ops))


class Splits(Protocol):
    """Train (fine-tuning), validation (search scoring) and test (reports) batches of one data set.

    ``augment`` is the data's default augmentation (ops of :data:`AUGMENTATIONS`), used when a
    caller passes ``augment=None``.
    """

    num_classes: int | None
    augment: Augment

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    def train(self, batch_size: int = 128, shuffle: bool = True, augment: Augment | bool | None = None,
              seed: int = 0, limit: int | None = None) -> Iterable[tuple[torch.Tensor, Any]]: ...

    def val(self, batch_size: int = 500, limit: int | None = None) -> Iterable[tuple[torch.Tensor, Any]]: ...

    def test(self, batch_size: int = 500, limit: int | None = None) -> Iterable[tuple[torch.Tensor, Any]]: ...

    def val_length(self) -> int | None: ...


class Batches:
    """Iterates ``(x, y)`` mini-batches over in-memory tensors, optionally shuffled and augmented."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128, shuffle: bool = False,
                 augment: Augment | bool = (), seed: int = 0, limit: int | None = None) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        self.x, self.y = (x[:limit], y[:limit]) if limit else (x, y)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.augment = parse_augment(augment) or ()
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield augmented(self.x[idx], self.augment, self.generator), self.y[idx]


def augmented(x: torch.Tensor, ops: Augment, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """``x`` with the light augmentations ``ops``: pad-and-crop by up to ``pad`` pixels, a random
    horizontal flip. Only images (N, C, H, W) are augmented; other inputs pass unchanged."""
    if not ops or not isinstance(x, torch.Tensor) or x.dim() != 4:
        return x
    n, _, h, w = x.shape
    if "crop" in ops:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
        x = padded[:, :, dy:dy + h, dx:dx + w]
    if "flip" in ops:
        flip = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


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
    augment: Augment = AUGMENTATIONS  # the default for these images (Fashion-MNIST: flips keep labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])

    def train(self, batch_size: int = 128, shuffle: bool = True, augment: Augment | bool | None = False,
              seed: int = 0, limit: int | None = None) -> Batches:
        """Batches over the training split (``augment=None``: the data's default)."""
        return Batches(self.x_train, self.y_train, batch_size, shuffle,
                       self.augment if augment is None else augment, seed, limit)

    def val(self, batch_size: int = 500, limit: int | None = None) -> Batches:
        """Batches over the validation split (used to score candidates during search)."""
        return Batches(self.x_val, self.y_val, batch_size, limit=limit)

    def test(self, batch_size: int = 500, limit: int | None = None) -> Batches:
        """Batches over the test split (final reports only, never search)."""
        return Batches(self.x_test, self.y_test, batch_size, limit=limit)

    def val_length(self) -> int | None:
        """Images in the validation split."""
        return len(self.x_val)
