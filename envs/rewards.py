"""Episode rewards, kept apart from the environment (AMC section 3.4)."""

from __future__ import annotations

import math
from typing import Callable

from autoprune.errors import ConfigError

Reward = Callable[[float, float, float], float]  # (accuracy, cost, budget) -> reward


def accuracy_reward(accuracy: float, cost: float, budget: float) -> float:
    """Accuracy under a guaranteed budget (the default: the wall already enforces the budget)."""
    return accuracy


def amc_flops_reward(accuracy: float, cost: float, budget: float) -> float:
    """AMC's resource-aware reward: ``-error * log(cost)`` (cost in the budget's unit, > 1)."""
    return -(1.0 - accuracy) * math.log(max(cost, 1.0 + 1e-9))


def make_penalty_reward(weight: float = 1.0) -> Reward:
    """Soft budgets: ``accuracy - weight * max(0, cost / budget - 1)``."""

    def penalty_reward(accuracy: float, cost: float, budget: float) -> float:
        return accuracy - weight * max(0.0, cost / budget - 1.0)

    return penalty_reward


REWARDS: dict[str, Callable[[], Reward]] = {
    "accuracy": lambda: accuracy_reward,
    "amc": lambda: amc_flops_reward,
    "penalty": make_penalty_reward,
}


def make_reward(name: str) -> Reward:
    """A reward function by name: ``accuracy``, ``amc`` or ``penalty``."""
    if name not in REWARDS:
        raise ConfigError(f"unknown reward {name!r}; known: {', '.join(REWARDS)}")
    return REWARDS[name]()
