"""Data sets: Fashion-MNIST from IDX files, synthetic data for tests, and a light batcher."""

from autoprune.data.batches import Batches, DataSplits
from autoprune.data.fashion_mnist import ENV_VAR, fashion_mnist_splits, find_fashion_mnist, read_idx
from autoprune.data.synthetic import synthetic_splits

__all__ = ["Batches", "DataSplits", "ENV_VAR", "fashion_mnist_splits", "find_fashion_mnist",
           "read_idx", "synthetic_splits", "load_splits"]


def load_splits(name: str = "fashion-mnist", data_dir: str | None = None, **kwargs) -> DataSplits:
    """Load a data set by name: ``fashion-mnist`` (IDX files, from ``data_dir`` when given) or ``synthetic``.

    ``data_dir`` is the CLI's ``--data-dir``; synthetic data has no files and ignores it.
    """
    from autoprune.errors import ConfigError

    if name == "fashion-mnist":
        return fashion_mnist_splits(**({"path": data_dir} if data_dir else {}), **kwargs)
    if name == "synthetic":
        return synthetic_splits(**kwargs)
    raise ConfigError(f"unknown data set {name!r}; known: fashion-mnist, synthetic")
