"""``autoprune.envs``: the Gymnasium environment in which an agent picks per-group pruning ratios."""

from gymnasium.envs.registration import register, registry

from autoprune.budget import Budget
from autoprune.envs.budget import BudgetWall
from autoprune.envs.episode import RESULT_KEY, EpisodeResult
from autoprune.envs.projection import BudgetProjection
from autoprune.envs.pruning_env import BUDGET_RULES, PruningEnv
from autoprune.envs.rewards import REWARDS, create_reward

ENV_ID = "autoprune/ChannelPruning-v0"
if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="autoprune.envs.pruning_env:PruningEnv")

__all__ = ["BUDGET_RULES", "ENV_ID", "RESULT_KEY", "REWARDS", "Budget", "BudgetProjection", "BudgetWall", "EpisodeResult",
           "PruningEnv", "create_reward"]
