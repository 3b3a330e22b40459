"""Episode rewards, kept apart from the environment (AMC section 3.4)."""

from __future__ import annotations

import math
from collections.abc import Callable

from autoprune.budget import Budget
from autoprune.errors import ConfigError
from autoprune.registry import Registry

Reward = Callable[[float, float, Budget], float]  # (score, cost, budget) -> reward

# AMC's log(FLOPs) is read in millionths of the dense cost, so it means the same whether the cost
# is in ms (where log(0.2) < 0 would flip the sign) or in MACs.
_AMC_SCALE = 1e6


def accuracy_reward(score: float, cost: float, budget: Budget) -> float:
    """The score under a guaranteed budget (the default: the projection already meets the budget)."""
    return score


def amc_flops_reward(score: float, cost: float, budget: Budget) -> float:
    """AMC's resource-aware reward ``-error * log(cost)``, the cost in millionths of the dense cost."""
    return -(1.0 - score) * math.log(max(_AMC_SCALE * cost / budget.dense, 1.0 + 1e-9))


def create_penalty_reward(weight: float = 1.0) -> Reward:
    """Soft budgets: ``score - weight * max(0, cost / budget - 1)``; the search then runs
    without projection (over-budget candidates are tried, penalised, and never chosen as best)."""

    def penalty_reward(score: float, cost: float, budget: Budget) -> float:
        return score - weight * max(0.0, cost / budget.value - 1.0)

    return penalty_reward


REWARDS: Registry[Reward] = Registry("reward")
REWARDS.add("accuracy", lambda: accuracy_reward)
REWARDS.add("amc", lambda: amc_flops_reward)
REWARDS.add("penalty", create_penalty_reward)
SOFT_BUDGET_REWARDS = frozenset({"penalty"})  # rewards that need candidates over the budget


def create_reward(name: str) -> Reward:
    """A reward function by name: ``accuracy``, ``amc`` or ``penalty``."""
    try:
        return REWARDS.create(name)
    except ConfigError:
        raise ConfigError(f"unknown reward {name!r}; known: {', '.join(REWARDS.names())}") from None
