"""Fashion-MNIST from its IDX files (Debian's ``dataset-fashion-mnist`` package or any folder)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from autoprune.data.batches import DataSplits
from autoprune.errors import DataError

ENV_VAR = "AUTOPRUNE_FASHION_MNIST"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
}
MEAN, STD = 0.2860, 0.3530
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}; re-install the data set") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number); point to the original files")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[data[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{path} is truncated ({len(data)} bytes, expected {expected}); re-install it")
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(dims)


def _locate(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def find_fashion_mnist(path: str | Path | None = None) -> dict[str, Path]:
    """Locate the four IDX files: explicit ``path``, else ``$AUTOPRUNE_FASHION_MNIST``, else Debian's folder."""
    folder = Path(path or os.environ.get(ENV_VAR) or DEBIAN_DIR)
    found = {key: _locate(folder, stem) for key, stem in FILES.items()}
    missing = [FILES[k] for k, v in found.items() if v is None]
    if missing:
        raise DataError(
            f"Fashion-MNIST not found in {folder} (missing {', '.join(missing)}); install it with "
            f"'apt-get install dataset-fashion-mnist', or pass --data-dir / set {ENV_VAR} to a folder "
            f"holding the IDX files"
        )
    return found  # type: ignore[return-value]


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - MEAN) / STD


def fashion_mnist_splits(path: str | Path | None = None, val_size: int = 5000, seed: int = 0) -> DataSplits:
    """Fashion-MNIST as normalised tensors: 60k train split into (60k - val_size) train / val_size val."""
    files = find_fashion_mnist(path)
    x_train, y_train = read_idx(files["train_x"]), read_idx(files["train_y"])
    x_test, y_test = read_idx(files["test_x"]), read_idx(files["test_y"])
    if not 0 < val_size < len(x_train):
        raise DataError(f"val_size must be in (0, {len(x_train)}), got {val_size}")
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:val_size], order[val_size:]
    xt, yt = _to_tensor(x_train), torch.from_numpy(y_train.astype(np.int64))
    return DataSplits(
        xt[train_idx], yt[train_idx], xt[val_idx], yt[val_idx],
        _to_tensor(x_test), torch.from_numpy(y_test.astype(np.int64)), num_classes=10,
    )
