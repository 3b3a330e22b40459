"""AMC's action wall, generalised to any cost model (the budget itself is :mod:`autoprune.budget`).

Before group ``t`` is decided, the wall finds the most channels it may keep such that, even if
every later group is pruned as hard as its bounds allow, the model still meets the budget.
Clipping each action to that wall makes every finished episode feasible by construction.
Measured latency is not monotone in channels (on AVX-512, a 16-channel stem cut to 8 runs 5 %
slower: it leaves ONNX Runtime's 16-wide blocked layout), so the wall never assumes it: every
width it returns has been checked against the budget (see :meth:`BudgetWall.clip`).
"""

from __future__ import annotations

from autoprune.analysis.groups import PrunableGroup
from autoprune.budget import Budget
from autoprune.costs.base import CostModel, checked_cost
from autoprune.errors import ConfigError
from autoprune.pruning.widths import WidthChoices


class BudgetWall:
    """Most channels group ``t`` may keep so the budget stays reachable (binary search on the cost).

    Widths come from ``choices`` (the search space; default: the ratio bounds' grid of multiples of
    ``round_to``), so every width the wall returns is one the space allows.
    """

    def __init__(self, groups: list[PrunableGroup], cost_model: CostModel, budget: Budget,
                 min_ratio: list[float], max_ratio: list[float], round_to: int = 1,
                 choices: WidthChoices | None = None) -> None:
        self.groups, self.cost_model, self.budget = groups, cost_model, budget
        self.round_to, self.ratio_bounds = round_to, (min_ratio, max_ratio)
        self.choices = choices or WidthChoices.grid(groups, min_ratio, max_ratio, round_to)
        self.min_keep = [self.choices.lowest(g.name) for g in groups]
        self.max_keep = [self.choices.highest(g.name) for g in groups]

    def cost_of(self, kept: dict[str, int]) -> float:
        return checked_cost(self.cost_model, kept).value(self.budget.metric)

    def fits(self, kept: dict[str, int]) -> bool:
        """Whether the architecture ``kept`` meets the budget under the cost model."""
        return self.budget.fits(self.cost_of(kept))

    def smallest_cost(self) -> float:
        """Cost with every group at its narrowest allowed width."""
        return self.cost_of({g.name: k for g, k in zip(self.groups, self.min_keep)})

    def check_reachable(self) -> None:
        """Raise a one-line error when even the hardest pruning allowed misses the budget, naming
        what ``--round-to 1`` would reach when channels are kept in larger multiples."""
        smallest = self.smallest_cost()
        if self.budget.fits(smallest):
            return
        hint = ""
        if self.round_to > 1:
            fine = WidthChoices.grid(self.groups, *self.ratio_bounds, 1)
            finest = self.cost_of({g.name: fine.lowest(g.name) for g in self.groups})
            hint = (f", or keep channels in smaller multiples (--round-to {self.round_to} now; --round-to 1 reaches "
                    f"{finest / self.budget.dense:.1%} of dense)")
        raise ConfigError(
            f"budget {self.budget.value:.6g} {self.budget.metric} cannot be met: the smallest "
            f"reachable cost with the ratio bounds is {smallest:.6g} "
            f"({smallest / self.budget.dense:.1%} of dense); raise the budget or the max ratio{hint}")

    def worst_case(self, t: int, decided: dict[str, int]) -> float:
        """Cost if groups ``t..`` were all at their narrowest allowed width."""
        arch = dict(decided)
        for g, k in zip(self.groups[t:], self.min_keep[t:]):
            arch[g.name] = k
        return self.cost_of(arch)

    def clip(self, t: int, decided: dict[str, int], requested: int, enforce: bool = True) -> int:
        """The width group ``t`` gets for ``requested``: an allowed width and, if ``enforce``, feasible.

        Feasible means the budget is still met with every later group at its smallest width. The
        request itself when it fits; else the wall's :meth:`limit`, or (for a non-monotone cost,
        when the limit lies above the request) the next narrower width that fits. The smallest
        width always fits (by induction from :meth:`check_reachable`), so every finished episode
        meets the budget whether or not the cost is monotone.
        """
        name = self.groups[t].name
        kept = self.choices.snap(name, min(max(requested, self.min_keep[t]), self.max_keep[t]))
        if not enforce:
            return kept
        arch = {**decided, **{g.name: k for g, k in zip(self.groups[t + 1:], self.min_keep[t + 1:])}}
        lo = self.min_keep[t]

        def fits(k: int) -> bool:
            arch[name] = k
            return self.fits(arch)

        if fits(kept):
            return kept
        limit = self.limit(t, decided)
        if limit < kept:
            return limit
        while kept > lo and not fits(kept):  # non-monotone cost: a wider width fits, this one not
            kept = self.choices.narrower(name, kept)
        return kept

    def limit(self, t: int, decided: dict[str, int]) -> int:
        """Most channels group ``t`` may keep given the ``decided`` earlier groups.

        Bisection over the allowed widths between the smallest (feasible) and the largest: exact
        for a monotone cost; otherwise a feasible width, perhaps not the largest one.
        """
        arch = dict(decided)
        for g, k in zip(self.groups[t + 1:], self.min_keep[t + 1:]):
            arch[g.name] = k
        name = self.groups[t].name
        levels = self.choices.levels[name]

        def fits(k: int) -> bool:
            arch[name] = k
            return self.fits(arch)

        if fits(levels[-1]):
            return levels[-1]
        # Invariant: fits(levels[left]) (levels[0] fits by induction from check_reachable); every
        # move of ``left`` lands on a width that fits, so the answer fits even for a non-monotone cost.
        left, right = 0, len(levels) - 1
        while right - left > 1:
            mid = (left + right) // 2
            if fits(levels[mid]):
                left = mid
            else:
                right = mid
        return levels[left]
