"""Checks on the real data set and the shipped weights (``-m slow``; skipped without the data)."""

import re
from pathlib import Path

import pytest
import torch

from autoprune.checkpoint import load_model, shipped_weights
from autoprune.data import find_fashion_mnist, load_splits
from autoprune.errors import DataError
from autoprune.training import evaluate

ROOT = Path(__file__).resolve().parents[1]


def have_data() -> bool:
    try:
        find_fashion_mnist()
        return True
    except DataError:
        return False


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command.strip() in (ROOT / ".ci/run").read_text()


def test_shipped_weights_load_safely():
    path = shipped_weights("resnet20")
    assert path is not None and path.stat().st_size < 2_000_000
    model, payload = load_model(path)
    assert payload.model == "resnet20" and payload.meta["test_acc"] > 0.9


@pytest.mark.slow
@pytest.mark.skipif(not have_data(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_shipped_resnet20_reaches_its_recorded_test_accuracy():
    model, payload = load_model(shipped_weights("resnet20"))
    splits = load_splits()
    assert splits.x_train.shape == (55000, 1, 28, 28) and splits.x_test.shape == (10000, 1, 28, 28)
    torch.set_num_threads(2)
    assert evaluate(model, splits.test()) == pytest.approx(payload.meta["test_acc"], abs=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(not have_data(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_shipped_vit_tiny_reaches_88_percent_and_its_recorded_test_accuracy():
    model, payload = load_model(shipped_weights("vit_tiny"))
    torch.set_num_threads(2)
    accuracy = evaluate(model, load_splits().test())
    assert accuracy >= 0.88 and accuracy == pytest.approx(payload.meta["test_acc"], abs=1e-4)
