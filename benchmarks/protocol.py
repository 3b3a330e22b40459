"""The head-to-head protocol's fine-tune (docs/head-to-head.md), the one every benchmark that
compares pruned models after fine-tuning runs, and the per-process state of the workers that run
it through :func:`autoprune.sweep.run_tasks`.

The fine-tune: BN statistics recalibrated on :data:`BN_BATCHES` seeded batches, the test accuracy,
a seeded fine-tune (SGD, lr :data:`FT_LR`, cosine schedule, distillation from the dense model when
a teacher is given), the test accuracy again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from autoprune.apply import recalibrate_pruned
from autoprune.data import Splits
from autoprune.finetune import FinetuneConfig, finetune
from autoprune.training import evaluate

BN_BATCHES = 20  # BN statistics recalibrated on 20 seeded batches of 128 before every fine-tune
FT_LR = 0.01

S = TypeVar("S")
_STATE: dict[tuple, Any] = {}


@dataclass
class Tuned:
    """A pruned model after the protocol's fine-tune, with its test accuracy before and after."""

    model: nn.Module
    test_bn: float  # after BN recalibration, before fine-tuning
    test_ft: float
    seconds: float  # the fine-tune's
    best_val: float
    best_epoch: int


def protocol_finetune(pruned: nn.Module, splits: Splits, epochs: int, seed: int, teacher: nn.Module | None = None,
                      device: str = "cpu", ft_splits: Splits | None = None) -> Tuned:
    """Recalibrate ``pruned``'s BN on ``splits``, fine-tune it ``epochs`` epochs on ``ft_splits``
    (default ``splits``; a trimmed copy for smoke runs) with ``seed``, and score it on the test split."""
    pruned = pruned.to(device)
    recalibrate_pruned(pruned, splits, BN_BATCHES, seed)
    before = evaluate(pruned, splits.test())
    start = time.perf_counter()
    torch.manual_seed(seed)
    cfg = FinetuneConfig(epochs=epochs, lr=FT_LR, seed=seed, device=device)
    result = finetune(pruned, ft_splits or splits, cfg, teacher, progress=False)
    seconds = time.perf_counter() - start
    return Tuned(result.model, before, evaluate(result.model, splits.test()), seconds, result.best_val,
                 result.best_epoch)


def per_process(setup: Callable[..., S], *args: Any) -> S:
    """``setup(*args)``, made once per process and reused: a worker's data, dense model and
    channel ranking, loaded by its first job (jobs reach workers through ``run_tasks``)."""
    key = (setup.__module__, setup.__qualname__, args)
    if key not in _STATE:
        _STATE[key] = setup(*args)
    return _STATE[key]
