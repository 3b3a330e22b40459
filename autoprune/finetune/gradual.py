"""Gradual channel pruning during fine-tuning: ratios rise on a polynomial-decay schedule, then stick.

The structured counterpart of TF-MOT's ``prune_low_magnitude`` + ``strip_pruning``: channel masks
(forward hooks) grow from ``initial_fraction`` of each group's final ratio to the final ratio
between ``begin_step`` and ``end_step``; :meth:`GradualChannelPruning.finalize` then removes the
masked channels for real, which gives exactly the masked model's outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from autoprune.analysis.groups import ModelAnalysis
from autoprune.finetune.schedule import PolynomialDecay
from autoprune.pruning.importance import Importance, rank_channels
from autoprune.pruning.masked import MaskedPruner
from autoprune.pruning.physical import prune_physically
from autoprune.pruning.ratios import group_kept
from autoprune.pruning.record import PruningRecord


class GradualChannelPruning:
    """Step hook for :func:`~autoprune.finetune.finetune` that prunes ``analysis.model`` gradually."""

    def __init__(self, analysis: ModelAnalysis, final_ratios: Mapping[str, float], begin_step: int,
                 end_step: int, power: float = 3.0, frequency: int = 100, initial_fraction: float = 0.0,
                 importance: str | Importance = "l1", round_to: int = 1,
                 batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
                 exclude: list[str] | None = None) -> None:
        self.analysis, self.importance, self.round_to, self.batches = analysis, importance, round_to, batches
        self.exclude = list(exclude or [])  # the analysis' exclusions, kept in the pruning record
        self.schedules = {g.name: PolynomialDecay(initial_fraction * float(final_ratios.get(g.name, 0.0)),
                                                  float(final_ratios.get(g.name, 0.0)), begin_step, end_step,
                                                  power, frequency) for g in analysis.groups}
        self.end_step = end_step
        self.kept = {g.name: g.channels for g in analysis.groups}
        self.ranking = rank_channels(analysis, importance, batches)
        self.pruner = MaskedPruner(analysis, self.ranking, restore_bn=False)
        self.updates = 0

    def on_step(self, step: int) -> None:
        """Recompute masks when the schedule says so (pruned channels stay pruned)."""
        first = next(iter(self.schedules.values()))
        if not first.should_update(step):
            return
        kept = {g.name: min(self.kept[g.name], group_kept(g, self.schedules[g.name].value(step), self.round_to))
                for g in self.analysis.groups}
        fresh = rank_channels(self.analysis, self.importance, self.batches)
        self.ranking = {name: _keep_removed_first(self.ranking[name], fresh[name],
                                                  self.analysis.group(name).channels - self.kept[name])
                        for name in fresh}
        self.pruner.ranking = self.ranking
        self.kept = kept
        self.pruner.apply(kept)
        self.updates += 1

    def done(self, step: int) -> bool:
        """Whether every group has reached its final ratio."""
        return step >= self.end_step

    def finalize(self) -> tuple[nn.Module, PruningRecord]:
        """Remove the masks and the masked channels for real; returns ``(pruned model, record)``."""
        self.pruner.remove()
        self.analysis.model.cpu()  # traced with the analysis' CPU example input, wherever it trained
        record = PruningRecord.from_ranking(self.analysis, self.ranking, self.kept, self.exclude)
        return prune_physically(self.analysis, self.ranking, self.kept), record


def _keep_removed_first(previous: torch.Tensor, fresh: torch.Tensor, n_removed: int) -> torch.Tensor:
    """``fresh`` ranking, except the ``n_removed`` channels already pruned stay at the front."""
    removed = previous[:n_removed].tolist()
    gone = set(removed)
    return torch.tensor(removed + [int(i) for i in fresh.tolist() if int(i) not in gone], dtype=torch.long)
