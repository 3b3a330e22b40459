"""``autoprune.envs``: the Gymnasium environment in which an agent picks per-group pruning ratios."""

from autoprune.envs.budget import Budget, BudgetWall
from autoprune.envs.pruning_env import PruningEnv
from autoprune.envs.rewards import REWARDS, make_reward
from gymnasium.envs.registration import register, registry

ENV_ID = "autoprune/ChannelPruning-v0"
if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="autoprune.envs.pruning_env:PruningEnv")

__all__ = ["ENV_ID", "REWARDS", "Budget", "BudgetWall", "PruningEnv", "make_reward"]
