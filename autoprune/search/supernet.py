"""The supernet scorer of a search: architectures sampled near the searched budgets, and the
supernet trained (or loaded from its folder, or resumed) before the search starts.

See :mod:`autoprune.dynamic.supernet` for the training and the scoring; this module adds what
needs the search's budget projection (sampling architectures that meet a budget).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoprune.analysis import ModelAnalysis
from autoprune.budget import Budget
from autoprune.costs.base import CostModel, checked_cost
from autoprune.data import Splits
from autoprune.dynamic.model import DynamicModel
from autoprune.dynamic.supernet import SupernetSettings, read_supernet, settings_key, train_supernet
from autoprune.envs.budget import BudgetWall
from autoprune.envs.projection import BudgetProjection
from autoprune.pruning.widths import WidthChoices

Arch = dict[str, int]


class ArchitectureSampler:
    """Architectures near the searched budgets: a random proposal (every group one of its allowed
    widths, equally likely) projected onto a budget drawn from ``[low, high]`` of the dense cost."""

    def __init__(self, analysis: ModelAnalysis, cost_model: CostModel, choices: WidthChoices, low: float,
                 high: float) -> None:
        self.groups, self.cost_model, self.choices = analysis.groups, cost_model, choices
        self.metric = cost_model.metric
        self.whole = Budget.from_spec(cost_model, 1.0)  # shares are of what budgets take as dense
        narrowest = checked_cost(cost_model, self.narrowest()).value(self.metric) / self.whole.dense
        self.low, self.high = max(low, narrowest), max(high, narrowest)

    def widest(self) -> Arch:
        return {g.name: self.choices.highest(g.name) for g in self.groups}

    def narrowest(self) -> Arch:
        return {g.name: self.choices.lowest(g.name) for g in self.groups}

    def sample(self, rng: np.random.Generator) -> Arch:
        fraction = float(rng.uniform(self.low, self.high))
        budget = replace(self.whole, value=fraction * self.whole.dense)
        n = len(self.groups)
        wall = BudgetWall(self.groups, self.cost_model, budget, [0.0] * n, [0.99] * n, choices=self.choices)
        proposal = {g.name: self.choices.pick(g.name, float(rng.uniform())) for g in self.groups}
        return BudgetProjection(wall).project(proposal)


def budget_range(fractions: list[float], settings: SupernetSettings) -> tuple[float, float]:
    """The budgets sampled architectures are projected onto: the settings' range, widened to cover
    every budget searched (so one supernet serves a whole front)."""
    return min(settings.budget_low, *fractions), max(settings.budget_high, *fractions)


def prepare_supernet(analysis: ModelAnalysis, ranking: dict[str, torch.Tensor], splits: Splits,
                     cost_model: CostModel, choices: WidthChoices, settings: SupernetSettings,
                     fractions: list[float], folder: str | Path, teacher: nn.Module, device: str | None = None,
                     progress: bool = True) -> DynamicModel:
    """The trained supernet for this model, space and settings: loaded from ``folder`` when it is
    there and finished, else trained into it (resuming a partial one)."""
    settings.check()
    low, high = budget_range(fractions, settings)
    trained = SupernetSettings(**{**settings.__dict__, "budget_low": low, "budget_high": high})
    supernet = DynamicModel(analysis, ranking, {})
    key = settings_key(analysis.model, trained, choices)
    payload = read_supernet(folder)
    if payload is not None and payload.get("key") == key and payload.get("epoch") == trained.epochs:
        supernet.net.load_state_dict(payload["state_dict"])
        return supernet.eval()
    sampler = ArchitectureSampler(analysis, cost_model, choices, low, high)
    train_supernet(supernet, sampler.widest(), sampler.narrowest(), sampler.sample,
                   lambda epoch: splits.train(trained.batch_size, shuffle=True, seed=trained.seed * 1000 + epoch),
                   trained, teacher, folder, key, device, progress)
    return supernet.cpu().eval()
