"""Splits over a user's ``torch.utils.data`` Datasets or DataLoaders: batches are streamed, never
held in memory together (only the fixed validation and BN slices the search scores on are kept).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

from autoprune.data.batches import Augment, augmented, parse_augment
from autoprune.errors import ConfigError
from autoprune.inputs import (
    InputSpec,
    ModelInput,
    Signature,
    batch_len,
    check_tensors,
    rows,
    signature_of,
)

Source = Dataset | DataLoader


class StreamBatches:
    """``(x, y)`` batches of one split: a Dataset batched here (seeded shuffle), or a DataLoader as
    given for training; read in order (``shuffle=False``: the fixed scoring and BN slices), a
    DataLoader over a map-style Dataset is re-read in index order with its own batch size,
    collate function and workers, so its own shuffling cannot change a candidate's score."""

    def __init__(self, source: Source, batch_size: int, shuffle: bool, augment: Augment, seed: int,
                 limit: int | None, name: str) -> None:
        self.source, self.batch_size, self.shuffle = source, batch_size, shuffle
        self.augment, self.seed, self.limit, self.name = augment, seed, limit, name

    def _loader(self) -> DataLoader:
        source = self.source
        if isinstance(source, DataLoader):
            if self.shuffle or isinstance(source.dataset, IterableDataset):
                return source
            data = source.dataset
            if self.limit and self.limit < len(data):
                data = Subset(data, range(self.limit))
            return DataLoader(data, batch_size=source.batch_size or self.batch_size, shuffle=False,
                              collate_fn=source.collate_fn, num_workers=source.num_workers)
        data = source
        if self.limit and not isinstance(data, IterableDataset) and self.limit < len(data):
            data = Subset(data, range(self.limit))  # a fixed, leading slice: the same every time
        shuffle = self.shuffle and not isinstance(data, IterableDataset)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle,
                          generator=torch.Generator().manual_seed(self.seed) if shuffle else None)

    def __len__(self) -> int:
        loader = self._loader()
        try:
            n = len(loader)
        except TypeError:
            raise ConfigError(f"the {self.name} data has no length (an IterableDataset without __len__); "
                              f"give it __len__ so epochs and schedules can be planned") from None
        if self.limit:
            bs = loader.batch_size or self.batch_size
            n = min(n, math.ceil(self.limit / bs))
        return n

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Any]]:
        generator = torch.Generator().manual_seed(self.seed)
        seen = 0
        for batch in self._loader():
            x, y = _pair(batch, self.name)
            if self.limit:
                if seen >= self.limit:
                    return
                x, y = rows(x, self.limit - seen), y[:self.limit - seen] if hasattr(y, "__getitem__") else y
            seen += batch_len(x)
            yield augmented(x, self.augment, generator), y


LABEL_KEYS = ("labels", "label")  # the target's key in a batch given as one dict (Hugging Face's convention)


def _pair(batch: Any, name: str) -> tuple[ModelInput, Any]:
    """``(inputs, target)`` of one batch: ``(x, y)`` with ``x`` a tensor, a tuple of tensors (passed
    positionally) or a dict of tensors (passed as keywords); or one dict holding the inputs and a
    ``labels`` entry."""
    if isinstance(batch, dict):
        key = next((k for k in LABEL_KEYS if k in batch), None)
        if key is None:
            raise ConfigError(f"the {name} data yields dicts without a 'labels' entry (keys: {', '.join(map(str, batch))}); "
                              f"add the targets under 'labels', or yield (inputs, target) pairs")
        x, y = {k: v for k, v in batch.items() if k != key}, batch[key]
    elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
        x, y = batch[0], batch[1]
    else:
        raise ConfigError(f"the {name} data must yield (input, target) pairs, got {type(batch).__name__}; "
                          f"return (x, y) from your Dataset's __getitem__")
    check_tensors(x, f"the {name} data's inputs")
    return (tuple(x) if isinstance(x, list) else x), y


class StreamSplits:
    """The :class:`~autoprune.data.batches.Splits` of Datasets or DataLoaders (train, val, optional test).

    Without a test split, reports use the validation split and say so (``has_test``).
    """

    def __init__(self, train: Source, val: Source, test: Source | None = None, num_classes: int | None = None,
                 augment: Augment | str | None = None, input_shape: Signature | None = None) -> None:
        for name, source in (("train", train), ("val", val), ("test", test)):
            if source is not None and not isinstance(source, (Dataset, DataLoader)):
                raise ConfigError(f"the {name} data must be a torch Dataset or DataLoader, got {type(source).__name__}")
        self.sources = {"train": train, "val": val, "test": test if test is not None else val}
        self.has_test = test is not None
        self.augment: Augment = parse_augment(augment) or ()
        self._classes = num_classes if num_classes is not None else _declared_classes(train)
        self._shape = input_shape if isinstance(input_shape, InputSpec) or not input_shape else tuple(input_shape)

    @property
    def num_classes(self) -> int | None:
        """Classes the data declares, else 1 + the largest integer label of the validation split
        (None for targets that are not class indices)."""
        if self._classes is None:
            top = -1
            for _, y in self.val():
                if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point():
                    return None
                top = max(top, int(y.max()))
            self._classes = top + 1 if top >= 0 else None
        return self._classes

    @property
    def input_shape(self) -> Signature:
        """One input's shape (or several inputs' :class:`~autoprune.inputs.InputSpec`), from the first
        validation sample (or as given)."""
        if self._shape is None:
            x, _ = next(iter(self.val(batch_size=1, limit=1)))
            self._shape = signature_of(x)
        return self._shape

    def train(self, batch_size: int = 128, shuffle: bool = True, augment: Augment | bool | None = False,
              seed: int = 0, limit: int | None = None) -> StreamBatches:
        """Batches over the training split (``augment=None``: the data's default)."""
        ops = self.augment if augment is None else (parse_augment(augment) or ())
        return StreamBatches(self.sources["train"], batch_size, shuffle, ops, seed, limit, "train")

    def val(self, batch_size: int = 500, limit: int | None = None) -> StreamBatches:
        """Batches over the validation split, in order (the search scores on its leading ``limit``)."""
        return StreamBatches(self.sources["val"], batch_size, False, (), 0, limit, "val")

    def test(self, batch_size: int = 500, limit: int | None = None) -> StreamBatches:
        """Batches over the test split (the validation split when none was given)."""
        return StreamBatches(self.sources["test"], batch_size, False, (), 0, limit, "test")

    def val_length(self) -> int | None:
        """Samples in the validation split, when it says."""
        source = self.sources["val"]
        data = source.dataset if isinstance(source, DataLoader) else source
        try:
            return len(data)
        except TypeError:
            return None


def _declared_classes(source: Source) -> int | None:
    """Classes a data set declares: ``num_classes`` or ``classes`` (torchvision's convention)."""
    data = source.dataset if isinstance(source, DataLoader) else source
    while isinstance(data, Subset):
        data = data.dataset
    if isinstance(getattr(data, "num_classes", None), int):
        return data.num_classes
    classes = getattr(data, "classes", None)
    return len(classes) if isinstance(classes, (list, tuple)) and classes else None
