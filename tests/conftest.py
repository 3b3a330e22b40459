"""Tiny CPU models and synthetic data shared by the tests."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings
from torch import nn

from autoprune.analysis import analyse_model
from autoprune.data import synthetic_splits

# Property tests: a small profile in the default run, the thorough one in CI's second pass
# (HYPOTHESIS_PROFILE=thorough, see .ci/run).
settings.register_profile("default", max_examples=30)
settings.register_profile("thorough", max_examples=150)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Under pytest-xdist every core runs its own test process: one torch thread each, not one per core
# in each (oversubscribed cores make the run slower than a single process).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


class TinyResNet(nn.Module):
    """Stem, one residual block, one depthwise stage, classifier: every coupling kind in ~5k params."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.conv_a = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.conv_b = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8))
        self.expand = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.project = nn.Sequential(nn.Conv2d(16, 12, 1, bias=False), nn.BatchNorm2d(12), nn.ReLU())
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.conv_b(self.conv_a(x)))
        x = self.project(self.dw(self.expand(x)))
        return self.fc(x.mean((2, 3)))


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BN layers non-trivial statistics and affine parameters, so masking mistakes show."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


@pytest.fixture
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return randomise_bn(TinyResNet())


@pytest.fixture
def tiny_analysis(tiny_model):
    return analyse_model(tiny_model, torch.randn(1, 1, 28, 28))


@pytest.fixture(scope="session")
def splits():
    return synthetic_splits(n_train=256, n_val=128, n_test=128, seed=0)


def one_line(capsys) -> str:
    """What a command printed to stderr, asserted to be one line and no traceback (how every
    refusal of bad input reads)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def tiny_search(budget: str = "50%", finish: bool = False) -> list[str]:
    """The command-line settings of a search that takes seconds: the MLP on synthetic data, a FLOPs
    budget, 64 validation samples; ``finish``: with the finishing stages (re-ranking, verification)."""
    args = ["--model", "mlp", "--data", "synthetic", "--cost-model", "flops", "--budget", budget,
            "--val-size", "64", "--bn-batches", "1"]
    return args if finish else [*args, "--rerank-top", "0", "--verify-top", "0"]
