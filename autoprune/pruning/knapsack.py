"""Latency-aware knapsack allocation (HALP, Shen et al. 2022): importance bought per unit of cost.

Starting from the narrowest allowed widths, channels are added one step at a time to the group
whose next step buys the most importance per unit of predicted cost, while the budget holds.
Importance scores are the criterion's per-channel scores (Torch-Pruning normalises them by the
group mean, so groups compare on one scale). Works with any cost model: only steps that keep the
architecture within budget are taken, so the result fits whether or not the cost is monotone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from autoprune.budget import Budget

Arch = dict[str, int]


def knapsack_allocation(scores: Mapping[str, torch.Tensor], start: Arch, widest: Arch,
                        steps: Mapping[str, int], cost: Callable[[Arch], float], budget: Budget) -> Arch:
    """Greedy importance-per-cost allocation from ``start`` (must fit) up to ``widest``.

    Args:
        scores: per group, one score per channel (higher = keep).
        start, widest: narrowest and widest widths per group.
        steps: channels added at a time per group (the rounding step).
        cost: architecture -> cost in the budget's unit.
    """
    order = {n: torch.sort(s.float(), descending=True).values.tolist() for n, s in scores.items()}
    kept, current = dict(start), cost(start)
    open_groups: list[str] = [n for n in kept if kept[n] < widest[n]]
    while open_groups:
        best, best_rate, best_cost = None, -float("inf"), current
        for name in list(open_groups):
            wider = min(kept[name] + steps[name], widest[name])
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
        kept[best] = min(kept[best] + steps[best], widest[best])
        current = best_cost
        if kept[best] >= widest[best]:
            open_groups.remove(best)
    return kept
