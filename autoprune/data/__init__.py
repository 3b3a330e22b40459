"""Data sets: Fashion-MNIST from IDX files, synthetic data for tests, an image folder, a user's
Datasets or DataLoaders by reference; all offer the :class:`Splits` interface."""

from __future__ import annotations

from autoprune.data.batches import AUGMENTATIONS, Batches, DataSplits, Splits, parse_augment
from autoprune.data.fashion_mnist import ENV_VAR, fashion_mnist_splits, find_fashion_mnist, read_idx
from autoprune.data.streams import StreamSplits
from autoprune.data.synthetic import synthetic_input_splits, synthetic_splits
from autoprune.inputs import InputSpec, Signature

__all__ = ["AUGMENTATIONS", "Batches", "DataSplits", "ENV_VAR", "Splits", "StreamSplits", "fashion_mnist_splits",
           "find_fashion_mnist", "read_idx", "synthetic_splits", "load_splits", "parse_augment", "BUILTIN_DATA"]

BUILTIN_DATA = ("fashion-mnist", "synthetic")


def load_splits(name: str = "fashion-mnist", data_dir: str | None = None, augment: str | None = None,
                input_shape: Signature | None = None, **kwargs) -> Splits:
    """Load a data set by name or reference.

    ``fashion-mnist`` (IDX files, from ``data_dir`` when given), ``synthetic``, ``imagefolder:DIR``
    (``DIR/train/<class>/*.png``, ``DIR/val/...``), or ``path/to/file.py:factory`` /
    ``package.module:factory``: a function returning ``(train, val)`` or ``(train, val, test)``
    Datasets or DataLoaders. ``augment`` (``crop,flip`` / ``none``) overrides the data's default:
    on for the built-ins, off for data by reference unless the factory declares
    ``factory.augment = "crop,flip"``. ``input_shape`` resizes image folders;
    synthetic data follows it (several inputs: random ones of their spec, two classes).
    """
    from autoprune.errors import ConfigError
    from autoprune.references import is_reference, resolve

    ops = parse_augment(augment)
    if isinstance(input_shape, InputSpec):
        if name == "synthetic":
            return synthetic_input_splits(input_shape, **kwargs)
        input_shape = None  # several inputs: nothing to resize
    if name == "fashion-mnist":
        splits = fashion_mnist_splits(**({"path": data_dir} if data_dir else {}), **kwargs)
    elif name == "synthetic":
        if input_shape and "shape" not in kwargs:  # inputs of the model's shape (images, vectors, sequences)
            kwargs["shape"] = tuple(input_shape)
        splits = synthetic_splits(**kwargs)
    elif name.startswith("imagefolder:"):
        from autoprune.data.image_folder import image_folder_splits

        size = tuple(input_shape[-2:]) if input_shape and len(input_shape) == 3 else None
        splits = image_folder_splits(name.split(":", 1)[1], size)
    elif is_reference(name):
        splits = _from_factory(name, resolve(name, "data factory", "--data"))
    else:
        raise ConfigError(f"unknown data set {name!r}; use fashion-mnist, synthetic, imagefolder:DIR or "
                          f"path/to/file.py:factory")
    if ops is not None:
        splits.augment = ops
    return splits


def _from_factory(name: str, factory) -> Splits:
    from autoprune.errors import ConfigError

    try:
        made = factory()
    except Exception as exc:  # noqa: BLE001 - user code, one line
        raise ConfigError(f"--data {name}: the factory raised {type(exc).__name__}: {exc}") from None
    if isinstance(made, (DataSplits, StreamSplits)):
        return made
    if not isinstance(made, (tuple, list)) or len(made) not in (2, 3):
        raise ConfigError(f"--data {name}: the factory must return (train, val) or (train, val, test) "
                          f"Datasets or DataLoaders, got {type(made).__name__}")
    return StreamSplits(*made, augment=getattr(factory, "augment", None))
