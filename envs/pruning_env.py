"""The channel-pruning environment (AMC's MDP as a Gymnasium env)."""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from autoprune.analysis.groups import ModelAnalysis, PrunableGroup
from autoprune.budget import Budget
from autoprune.costs.base import CostModel
from autoprune.envs.budget import BudgetWall, checked_cost
from autoprune.envs.episode import RESULT_KEY, EpisodeResult
from autoprune.envs.observation import OBS_NAMES, observation, static_features
from autoprune.envs.projection import BudgetProjection
from autoprune.envs.rewards import SOFT_BUDGET_REWARDS, Reward, create_reward
from autoprune.errors import ConfigError
from autoprune.pruning.ratios import DEFAULT_MAX_RATIO, group_kept
from autoprune.pruning.widths import WidthChoices

Evaluator = Callable[[Mapping[str, int]], float]
BUDGET_RULES = ("project", "wall")


class PruningEnv(gym.Env):
    """Pick a pruning ratio for each prunable channel group of a model, one group per step.

    ## Description
    An episode walks the model's prunable groups in network order (AMC, He et al. 2018). At each
    step the agent proposes how much of the current group to prune. Every finished episode meets
    the budget under the cost model, by one of two rules (``budget_rule``):

    * ``"project"`` (default): the whole proposal is projected onto the budget at the end
      (:class:`~autoprune.envs.projection.BudgetProjection`): every group moves by the same share
      towards its bound, then leftover budget is filled. No position in the network is favoured,
      and a finished candidate uses at least ``fill`` (95 %) of the budget unless the bounds forbid it
      (``fill=0``: a feasible proposal is kept as it is).
    * ``"wall"``: AMC's action wall: each action is clipped so the budget stays reachable whatever
      later groups do (:class:`~autoprune.envs.budget.BudgetWall`); late groups absorb overspend.

    At the end, the candidate is scored by ``evaluator`` (in autoprune: the pruned candidate,
    batch-norm recalibration, validation accuracy).

    ## Action Space
    ``Box(-1, 1, (1,), float32)``: mapped linearly to a ratio in ``[min_ratio, max_ratio]`` of the
    current group, then rounded to whole channels (a multiple of ``round_to``); with listed widths
    (``choices``, e.g. 1/4, 2/4, 3/4, 4/4 of the group), each width takes an equal share of
    ``[-1, 1]``. Clipped at once (``wall``) or projected with the rest of the proposal at the end
    (``project``), always onto widths the space allows.

    ## Observation Space
    ``Box(0, 1, (13,), float32)``, every entry scaled to [0, 1]:

    | Num | Observation      | Meaning                                                     |
    |-----|------------------|-------------------------------------------------------------|
    | 0   | index            | position of the group in the network                        |
    | 1   | kind             | conv / depthwise-feeding / linear / residual, as code / 3   |
    | 2   | channels         | output channels of the group (over the widest group)        |
    | 3   | in_channels      | input channels of the group's first layer                   |
    | 4   | kernel           | kernel size                                                 |
    | 5   | stride           | stride                                                      |
    | 6   | fmap             | output feature-map area                                     |
    | 7   | cost_share       | share of the model's FLOPs the group touches                |
    | 8   | reduced          | cost removed so far, over the dense cost                    |
    | 9   | remaining        | FLOPs share of the groups still to decide                   |
    | 10  | previous_action  | ratio of the previous step (as proposed, or as clipped: wall) |
    | 11  | budget           | budget over the dense cost                                  |
    | 12  | slack            | budget headroom if all undecided groups took their max ratio |

    ## Rewards
    0 on every step but the last; then ``reward(score, cost, budget)`` from
    :mod:`autoprune.envs.rewards` (default: validation accuracy). A candidate whose score is NaN
    (failed forward pass) gets reward 0 and a ``score`` of NaN.

    ## Episode End
    Terminates after the last group. Never truncates. ``reset(options={"exact": True})`` keeps a
    feasible proposal as it is (no fill): one-shot baselines are scored as their rule made them.

    ## Arguments
    ``groups``, ``features`` (from :func:`autoprune.analysis.group_features`), ``cost_model``,
    ``budget``, ``evaluator`` (kept channels -> score), ``min_ratio``/``max_ratio`` (a float
    or a group -> float mapping), ``round_to``, ``reward`` (name or callable)
    ``budget_rule`` (``project`` or ``wall``), ``enforce_budget`` (False = soft budget: no
    projection or clipping; default: False for the ``penalty`` reward, else True) and, optionally,
    ``analysis`` (the model behind the groups, needed by the ``global-magnitude`` searcher).
    ``budgets``: several budgets for one budget-conditioned search (a front): each episode draws
    one from ``budget_seed`` and its episode number (``episode_index``, so a resumed search draws
    the same), shown in the observation; ``pin_budget(i)`` fixes one. ``choices``: the widths each
    group may take (:class:`~autoprune.pruning.widths.WidthChoices`; default: the ratio bounds' grid).

    ``info["result"]`` at the end holds the :class:`~autoprune.envs.episode.EpisodeResult`: kept
    channels, ratios, cost (predicted, in the budget's metric), latency, FLOPs, params, score,
    reward, feasibility, the widths proposed before projection, the episode's budget, and its
    scoring and environment time.

    ## Version History
    * v0: initial version; ``budget_rule="project"`` added (default), the wall kept as ``"wall"``;
      ``choices`` (listed widths) added.
    """

    metadata = {"render_modes": []}

    def __init__(self, groups: list[PrunableGroup], features: pd.DataFrame, cost_model: CostModel,
                 budget: Budget, evaluator: Evaluator, min_ratio: float | Mapping[str, float] = 0.0,
                 max_ratio: float | Mapping[str, float] = DEFAULT_MAX_RATIO, round_to: int = 1,
                 reward: str | Reward = "accuracy", enforce_budget: bool | None = None,
                 analysis: ModelAnalysis | None = None, budget_rule: str = "project",
                 budgets: Sequence[Budget] | None = None, budget_seed: int = 0,
                 choices: WidthChoices | None = None, fill: float = 0.95) -> None:
        super().__init__()
        self.analysis = analysis  # the model the groups come from, for searchers that read weights
        self.groups, self.cost_model, self.budget, self.evaluator = groups, cost_model, budget, evaluator
        if enforce_budget is None:  # soft-budget rewards need over-budget candidates to penalise
            enforce_budget = not (isinstance(reward, str) and reward in SOFT_BUDGET_REWARDS)
        self.round_to, self.enforce_budget = round_to, enforce_budget
        self.reward_fn = create_reward(reward) if isinstance(reward, str) else reward
        self.min_ratio = _per_group(min_ratio, groups, "min_ratio")
        self.max_ratio = _per_group(max_ratio, groups, "max_ratio")
        self.choices = choices or WidthChoices.grid(groups, self.min_ratio, self.max_ratio, round_to)
        if not 0.0 <= fill <= 1.0:
            raise ConfigError(f"fill must be a share of the budget in [0, 1], got {fill}")
        self.fill = fill
        if budget_rule not in BUDGET_RULES:
            raise ConfigError(f"unknown budget rule {budget_rule!r}; use one of {', '.join(BUDGET_RULES)}")
        self.budget_rule = budget_rule
        self.budgets = list(budgets) if budgets else [budget]  # several: one is drawn per episode
        self.budget_seed, self.episode_index, self._pinned = budget_seed, 0, None
        self._rules: dict[int, tuple[BudgetWall, BudgetProjection]] = {}
        for i in range(len(self.budgets)):
            self._use_budget(i)
            if enforce_budget:
                self._check_reachable(analysis)
        self._use_budget(0)
        self.static = static_features(features.loc[[g.name for g in groups]])
        flops = features.loc[[g.name for g in groups], "flops"].to_numpy(float)
        self.remaining_share = (flops[::-1].cumsum()[::-1] - flops) / max(flops.sum(), 1.0)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (len(OBS_NAMES),), np.float32)
        self._episode_env_seconds = 0.0  # time in the env itself this episode, scoring excluded
        self._t, self._kept, self._prev, self._exact = 0, {}, 0.0, False

    def _obs(self) -> np.ndarray:
        if self._t >= len(self.groups):
            return np.zeros(self.observation_space.shape, np.float32)
        dense = self.budget.dense
        reduced = 1.0 - self.wall.cost_of(self._kept) / dense
        slack = (self.budget.value - self.wall.worst_case(self._t, self._kept)) / dense
        return observation(self.static[self._t], reduced, self.remaining_share[self._t], self._prev,
                           self.budget.fraction, slack)

    def _use_budget(self, i: int) -> None:
        self.budget_index, self.budget = i, self.budgets[i]
        self.wall, self.projection = self.rules(i)

    def complete(self, result: EpisodeResult, score: float, seconds: float) -> EpisodeResult:
        """An episode played with ``reset(options={"defer": True})``, once its candidate is scored
        (in a batch, by parallel workers): the score, its time and the reward under its budget."""
        budget = next((b for b in self.budgets if b.matches(result.budget)), self.budget)
        reward = 0.0 if math.isnan(score) else float(self.reward_fn(score, result.cost, budget))
        return dataclasses.replace(result, score=float(score), reward=reward, score_seconds=seconds)

    def clone(self) -> PruningEnv:
        """Another environment over the same groups, cost model, budgets and scorer (shared, read
        only) with its own episode state: several episodes played at once in one process."""
        other = copy.copy(self)
        other._np_random = None
        other.reset()
        other.episode_index = self.episode_index
        return other

    def pin_budget(self, i: int | None) -> None:
        """Use budget ``i`` for every episode from now on (None: draw one per episode again)."""
        self._pinned = i
        if i is not None:
            self._use_budget(i)

    def upcoming_budget(self, ahead: int = 0) -> int:
        """The index of the budget the episode ``ahead`` resets from now will use (drawn from its
        number, so known before it is played)."""
        if len(self.budgets) == 1 or self._pinned is not None:
            return self.budget_index
        return int(np.random.default_rng([self.budget_seed, self.episode_index + ahead]).integers(len(self.budgets)))

    def rules(self, i: int) -> tuple[BudgetWall, BudgetProjection]:
        """Budget ``i``'s wall and projection (made once per budget)."""
        if i not in self._rules:
            wall = BudgetWall(self.groups, self.cost_model, self.budgets[i], self.min_ratio, self.max_ratio,
                              self.round_to, self.choices)
            self._rules[i] = (wall, BudgetProjection(wall, fill_target=self.fill))
        return self._rules[i]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if len(self.budgets) > 1 and self._pinned is None:  # a function of the episode number: resumable
            self._use_budget(self.upcoming_budget())
        self.episode_index += 1
        self._t, self._kept, self._prev, self._episode_env_seconds = 0, {}, 0.0, 0.0
        self._exact = bool((options or {}).get("exact", False))
        self._defer = bool((options or {}).get("defer", False))  # scored later, in a batch (see complete)
        return self._obs(), {}

    def ratio_for(self, action: float, t: int) -> float:
        """The ratio an action in [-1, 1] asks for at step ``t`` (before rounding and clipping)."""
        a = float(np.clip(action, -1.0, 1.0))
        return self.min_ratio[t] + (a + 1.0) / 2.0 * (self.max_ratio[t] - self.min_ratio[t])

    def _check_reachable(self, analysis: ModelAnalysis | None) -> None:
        """The wall's refusal of an unreachable budget, naming the groups the analysis kept whole
        (their layers cannot shrink, which is often why)."""
        try:
            self.wall.check_reachable()
        except ConfigError as exc:
            whole = analysis.kept_whole if analysis is not None else {}
            if not whole:
                raise
            name, why = next(iter(whole.items()))
            more = f" and {len(whole) - 1} more" if len(whole) > 1 else ""
            raise ConfigError(f"{exc}; {len(whole)} group(s) are kept whole ({name!r}: {why}{more}; see autoprune "
                              f"analyse)") from None

    def width_for(self, action: float, t: int) -> int:
        """The width an action in [-1, 1] asks for at step ``t``: on a grid, the ratio it maps to,
        rounded to whole channels; for listed widths, one of them, each an equal share of [-1, 1]."""
        if self.choices.listed:  # -1 asks for the widest, +1 for the narrowest, as on the grid
            return self.choices.pick(self.groups[t].name, (1.0 - float(np.clip(action, -1.0, 1.0))) / 2.0)
        return group_kept(self.groups[t], self.ratio_for(action, t), self.round_to)

    def action_for(self, t: int, kept: int) -> float:
        """An action that asks for ``kept`` channels of group ``t`` (the inverse of :meth:`width_for`)."""
        if self.choices.listed:
            return 1.0 - 2.0 * self.choices.share_of(self.groups[t].name, kept)
        span = self.max_ratio[t] - self.min_ratio[t]
        if span <= 0:
            return 0.0
        ratio = 1.0 - kept / self.groups[t].channels
        return float(np.clip(2.0 * (ratio - self.min_ratio[t]) / span - 1.0, -1.0, 1.0))

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        start = time.perf_counter()
        t, g = self._t, self.groups[self._t]
        kept = self.width_for(float(np.asarray(action).reshape(-1)[0]), t)
        kept = self.wall.clip(t, self._kept, kept, self.enforce_budget and self.budget_rule == "wall")
        self._kept[g.name] = kept
        self._prev = 1.0 - kept / g.channels
        self._t += 1
        if self._t < len(self.groups):
            obs = self._obs()
            self._episode_env_seconds += time.perf_counter() - start
            return obs, 0.0, False, False, {}
        result = self._finish()
        env_seconds = self._episode_env_seconds + time.perf_counter() - start - result.score_seconds
        result = dataclasses.replace(result, env_seconds=env_seconds)
        return self._obs(), result.reward, True, False, {RESULT_KEY: result}

    def _finish(self) -> EpisodeResult:
        proposed = dict(self._kept)
        if self.enforce_budget and self.budget_rule == "project":
            self._kept = self.projection.project(proposed, exact=self._exact)
        cost = checked_cost(self.cost_model, self._kept)
        value = cost.value(self.budget.metric)
        s0 = time.perf_counter()
        score = math.nan if self._defer else float(self.evaluator(dict(self._kept)))
        score_seconds = time.perf_counter() - s0
        reward = 0.0 if math.isnan(score) else float(self.reward_fn(score, value, self.budget))
        return EpisodeResult(
            kept=dict(self._kept), proposed=proposed,
            ratios={g.name: 1.0 - self._kept[g.name] / g.channels for g in self.groups},
            cost=value, latency_ms=cost.latency_ms, flops=cost.flops, params=cost.params, score=score,
            reward=reward, feasible=self.budget.fits(value), score_seconds=score_seconds, budget=self.budget.value)


def _per_group(value: float | Mapping[str, float], groups: list[PrunableGroup], what: str) -> list[float]:
    values = [float(value.get(g.name, 0.0 if what == "min_ratio" else DEFAULT_MAX_RATIO)) if isinstance(value, Mapping)
              else float(value) for g in groups]
    if any(not 0.0 <= v < 1.0 for v in values):
        raise ConfigError(f"{what} must be in [0, 1), got {value}")
    return values
