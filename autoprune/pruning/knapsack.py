"""Latency-aware knapsack allocation (HALP, Shen et al. 2022): importance bought per unit of cost.

Starting from the narrowest allowed widths, channels are added one allowed width at a time to the group
whose next step buys the most importance per unit of predicted cost, while the budget holds.
Importance scores are the criterion's per-channel scores (Torch-Pruning normalises them by the
group mean, so groups compare on one scale). Works with any cost model: only steps that keep the
architecture within budget are taken, so the result fits whether or not the cost is monotone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch

from autoprune.pruning.widths import WidthChoices

if TYPE_CHECKING:  # only its ``fits`` is used: no import of the budget module at run time
    from autoprune.budget import Budget

Arch = dict[str, int]


def knapsack_allocation(scores: Mapping[str, torch.Tensor], choices: WidthChoices,
                        cost: Callable[[Arch], float], budget: Budget) -> Arch:
    """Greedy importance-per-cost allocation from every group's narrowest allowed width (must fit)
    up to its widest, one allowed width at a time.

    Args:
        scores: per group, one score per channel (higher = keep).
        choices: the widths each group may take.
        cost: architecture -> cost in the budget's unit.
    """
    order = {n: torch.sort(s.float(), descending=True).values.tolist() for n, s in scores.items()}
    kept = {n: choices.lowest(n) for n in scores}
    current = cost(kept)
    open_groups: list[str] = [n for n in kept if kept[n] < choices.highest(n)]
    while open_groups:
        best, best_rate, best_cost = None, -float("inf"), current
        for name in list(open_groups):
            wider = choices.wider(name, kept[name])
            trial_cost = cost({**kept, name: wider})
            if not budget.fits(trial_cost):
                open_groups.remove(name)  # its next step no longer fits
                continue
            value = sum(order[name][kept[name]:wider])
            extra = trial_cost - current
            rate = float("inf") if extra <= 0 else value / extra
            if rate > best_rate:
                best, best_rate, best_cost = name, rate, trial_cost
        if best is None:
            break
        kept[best] = choices.wider(best, kept[best])
        current = best_cost
        if kept[best] >= choices.highest(best):
            open_groups.remove(best)
    return kept
