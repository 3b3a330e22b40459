"""AMC's action wall, generalised to any cost model (the budget itself is :mod:`autoprune.budget`).

Before group ``t`` is decided, the wall finds the most channels it may keep such that, even if
every later group is pruned as hard as its bounds allow, the model still meets the budget.
Clipping each action to that wall makes every finished episode feasible by construction.
Measured latency is not monotone in channels (on AVX-512, a 16-channel stem cut to 8 runs 5 %
slower: it leaves ONNX Runtime's 16-wide blocked layout), so the wall never assumes it: every
width it returns has been checked against the budget (see :meth:`BudgetWall.clip`).
"""

from __future__ import annotations

import math
import numbers

from autoprune.analysis.groups import PrunableGroup
from autoprune.budget import Budget
from autoprune.costs.base import Cost, CostModel
from autoprune.errors import ConfigError
from autoprune.pruning.ratios import channels_kept


def checked_cost(cost_model: CostModel, kept: dict[str, int]) -> Cost:
    """``cost_model.cost(kept)``, refused in one line naming the model unless it is a :class:`Cost`
    of finite, non-negative numbers (a plug-in's inf or NaN must not reach a policy file)."""
    cost = cost_model.cost(kept)
    name = getattr(cost_model, "name", type(cost_model).__name__)
    if not isinstance(cost, Cost):
        raise ConfigError(f"cost model {name!r} returned {type(cost).__name__}, not a Cost; fix the plug-in")
    for field in ("flops", "params", "latency_ms"):
        value = getattr(cost, field)
        ok = value is None and field == "latency_ms" or (
            isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0)
        if not ok:
            raise ConfigError(f"cost model {name!r} returned {field}={value!r}; costs must be finite, "
                              f"non-negative numbers; fix the plug-in")
    return cost


class BudgetWall:
    """Most channels group ``t`` may keep so the budget stays reachable (binary search on the cost)."""

    def __init__(self, groups: list[PrunableGroup], cost_model: CostModel, budget: Budget,
                 min_ratio: list[float], max_ratio: list[float], round_to: int = 1) -> None:
        self.groups, self.cost_model, self.budget = groups, cost_model, budget
        self.round_to = round_to
        self.min_keep = [channels_kept(g.channels, hi, round_to) for g, hi in zip(groups, max_ratio)]
        self.max_keep = [channels_kept(g.channels, lo, round_to) for g, lo in zip(groups, min_ratio)]
        self.step = [max(1, round_to) if g.channels >= round_to else 1 for g in groups]

    def cost_of(self, kept: dict[str, int]) -> float:
        return checked_cost(self.cost_model, kept).value(self.budget.metric)

    def fits(self, kept: dict[str, int]) -> bool:
        """Whether the architecture ``kept`` meets the budget under the cost model."""
        return self.budget.fits(self.cost_of(kept))

    def smallest_cost(self) -> float:
        """Cost with every group pruned to its upper ratio bound."""
        return self.cost_of({g.name: k for g, k in zip(self.groups, self.min_keep)})

    def check_reachable(self) -> None:
        """Raise a one-line error when even the hardest pruning allowed misses the budget."""
        smallest = self.smallest_cost()
        if not self.budget.fits(smallest):
            raise ConfigError(
                f"budget {self.budget.value:.6g} {self.budget.metric} cannot be met: the smallest "
                f"reachable cost with the ratio bounds is {smallest:.6g} "
                f"({smallest / self.budget.dense:.1%} of dense); raise the budget or the max ratio")

    def worst_case(self, t: int, decided: dict[str, int]) -> float:
        """Cost if groups ``t..`` were all pruned to their upper ratio bound."""
        arch = dict(decided)
        for g, k in zip(self.groups[t:], self.min_keep[t:]):
            arch[g.name] = k
        return self.cost_of(arch)

    def clip(self, t: int, decided: dict[str, int], requested: int, enforce: bool = True) -> int:
        """The width group ``t`` gets for ``requested``: within its bounds and, if ``enforce``, feasible.

        Feasible means the budget is still met with every later group at its smallest width. The
        request itself when it fits; else the wall's :meth:`limit`, or (for a non-monotone cost,
        when the limit lies above the request) the next narrower width that fits. The smallest
        width always fits (by induction from :meth:`check_reachable`), so every finished episode
        meets the budget whether or not the cost is monotone.
        """
        kept = int(min(max(requested, self.min_keep[t]), self.max_keep[t]))
        if not enforce:
            return kept
        arch = {**decided, **{g.name: k for g, k in zip(self.groups[t + 1:], self.min_keep[t + 1:])}}
        name, lo, step = self.groups[t].name, self.min_keep[t], self.step[t]

        def fits(k: int) -> bool:
            arch[name] = k
            return self.fits(arch)

        if fits(kept):
            return kept
        limit = self.limit(t, decided)
        if limit < kept:
            return limit
        while kept > lo and not fits(kept):  # non-monotone cost: a wider width fits, this one not
            kept = max(lo, kept - step)
        return kept

    def limit(self, t: int, decided: dict[str, int]) -> int:
        """Most channels group ``t`` may keep given the ``decided`` earlier groups.

        Bisection between the smallest width (feasible) and the largest: exact for a monotone
        cost; otherwise a feasible width, perhaps not the largest one.
        """
        arch = dict(decided)
        for g, k in zip(self.groups[t + 1:], self.min_keep[t + 1:]):
            arch[g.name] = k
        name = self.groups[t].name
        lo, hi, step = self.min_keep[t], self.max_keep[t], self.step[t]

        def fits(k: int) -> bool:
            arch[name] = k
            return self.fits(arch)

        if fits(hi):
            return hi
        # Invariant: fits(lo) (guaranteed by induction from check_reachable); every move of
        # ``left`` lands on a width that fits, so the answer fits even for a non-monotone cost.
        n = (hi - lo) // step
        left, right = 0, n  # fits(lo + left*step), not fits(lo + right*step) unless right == n
        while right - left > 1:
            mid = (left + right) // 2
            if fits(lo + mid * step):
                left = mid
            else:
                right = mid
        return lo + left * step
