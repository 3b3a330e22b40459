import gzip
import struct

import numpy as np
import pytest
import torch

from autoprune.data import (
    ENV_VAR,
    fashion_mnist_splits,
    find_fashion_mnist,
    read_idx,
    synthetic_splits,
)
from autoprune.data.fashion_mnist import FILES
from autoprune.errors import DataError


def write_idx(path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def fake_fashion_mnist(folder, n_train=100, n_test=20):
    rng = np.random.default_rng(0)
    write_idx(folder / (FILES["train_x"] + ".gz"), rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(folder / (FILES["train_y"] + ".gz"), rng.integers(0, 10, (n_train,)))
    write_idx(folder / FILES["test_x"], rng.integers(0, 256, (n_test, 28, 28)), gz=False)
    write_idx(folder / FILES["test_y"], rng.integers(0, 10, (n_test,)), gz=False)


def test_read_idx_roundtrip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    arr = np.zeros((4, 4), np.uint8)
    write_idx(tmp_path / "t", arr, gz=False)
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "t")


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        find_fashion_mnist(tmp_path)


def test_splits_from_env_var_are_disjoint_and_normalised(tmp_path, monkeypatch):
    fake_fashion_mnist(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    s = fashion_mnist_splits(val_size=30)
    assert s.x_train.shape == (70, 1, 28, 28) and s.x_val.shape == (30, 1, 28, 28)
    assert s.x_test.shape == (20, 1, 28, 28) and s.y_train.dtype == torch.int64
    def rows(x):
        return {tuple(r.flatten().tolist()[:20]) for r in x}
    assert not rows(s.x_train) & rows(s.x_val)
    with pytest.raises(DataError, match="val_size"):
        fashion_mnist_splits(val_size=100)


def test_batches_cover_split_once_and_augment_keeps_shape(splits):
    seen = sum(len(y) for _, y in splits.train(batch_size=50, augment=True))
    assert seen == len(splits.y_train)
    x, _ = next(iter(splits.train(batch_size=16, augment=True)))
    assert x.shape == (16, 1, 28, 28)


def test_synthetic_is_deterministic():
    a, b = synthetic_splits(seed=3), synthetic_splits(seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
