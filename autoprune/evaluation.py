"""Scoring a pruning candidate during search: mask, recalibrate BN, measure validation accuracy."""

from __future__ import annotations

import math
import time
from typing import Mapping

import torch

from autoprune.analysis.groups import ModelAnalysis
from autoprune.data.batches import DataSplits
from autoprune.pruning.masked import MaskedPruner
from autoprune.training import evaluate, recalibrate_bn


class CandidateEvaluator:
    """``evaluator(kept) -> accuracy`` on a fixed validation subset, after EagleEye BN recalibration.

    The validation images come from the held-out split (never the test set); the recalibration
    batches are a fixed slice of the training split, so the same candidate always gets the same score.
    """

    def __init__(self, analysis: ModelAnalysis, ranking: Mapping[str, torch.Tensor], splits: DataSplits,
                 val_size: int = 2000, bn_batches: int = 5, batch_size: int = 128) -> None:
        self.pruner = MaskedPruner(analysis, ranking)
        self.model = analysis.model
        n_bn = bn_batches * batch_size
        self.bn_data = [(splits.x_train[i:i + batch_size], splits.y_train[i:i + batch_size])
                        for i in range(0, min(n_bn, len(splits.x_train)), batch_size)]
        self.val_data = list(splits.val(batch_size=500, limit=val_size))
        self.bn_batches = bn_batches
        self.seconds = 0.0  # total scoring time, for the search's time split
        self.calls = 0

    def __call__(self, kept: Mapping[str, int]) -> float:
        """Validation accuracy of the model pruned to ``kept`` channels per group (NaN on failure)."""
        start = time.perf_counter()
        try:
            with self.pruner.applied(kept):
                recalibrate_bn(self.model, self.bn_data, self.bn_batches)
                acc = evaluate(self.model, self.val_data)
        except (RuntimeError, ValueError):
            acc = math.nan  # recorded and skipped by the search
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return acc

    def dense_accuracy(self) -> float:
        """Validation accuracy of the unpruned model (no recalibration)."""
        return evaluate(self.model, self.val_data)
