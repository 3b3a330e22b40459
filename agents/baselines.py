"""The baselines behind the searcher interface: random search (EagleEye), and the one-shot rules
(uniform ratio, Torch-Pruning global magnitude sized to the budget, a latency-aware knapsack)."""

from __future__ import annotations

import abc

import numpy as np

from autoprune.agents.base import Searcher, batch_size, play_batch
from autoprune.envs.pruning_env import PruningEnv
from autoprune.errors import ConfigError
from autoprune.pruning.global_magnitude import global_magnitude_kept, size_global_magnitude
from autoprune.pruning.importance import channel_scores
from autoprune.pruning.knapsack import knapsack_allocation


class RandomSearcher(Searcher):
    """Uniformly random actions; with BN recalibration this is EagleEye's search (Li et al. 2020)."""

    name = "random"

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        step = batch_size(env)
        for first in range(start_episode, episodes, step):
            plays = []
            for e in range(first, min(first + step, episodes)):
                rng = np.random.default_rng([self.seed, e])  # per-episode stream: resumable, reproducible
                plays.append((lambda t, rng=rng: float(rng.uniform(-1, 1)), self.seed + e))
            for result in play_batch(self, env, plays):
                on_episode(result)


class UniformSearcher(Searcher):
    """The same ratio for every group: the smallest one that meets the budget (one candidate)."""

    name = "uniform"

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        if start_episode >= 1:
            return
        action = self.smallest_action(env)
        on_episode(self.play(env, lambda t: action, exact=True))

    @staticmethod
    def smallest_action(env: PruningEnv, iters: int = 40) -> float:
        """Bisection on one shared action (hence one ratio) against the cost model.

        Works on the float32 action through the env's own mapping, so rounding to whole
        channels is exactly what the episode will do.
        """
        def fits(a: float) -> bool:
            a32 = float(np.float32(a))
            kept = {g.name: env.wall.clip(t, {}, env.width_for(a32, t), enforce=False)
                    for t, g in enumerate(env.groups)}
            return env.wall.cost_of(kept) <= env.budget.value

        lo, hi = -1.0, 1.0
        if fits(lo):
            return lo
        for _ in range(iters):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if fits(mid) else (mid, hi)
        return float(np.float32(hi)) if fits(float(np.float32(hi))) else 1.0


class ModelRuleSearcher(Searcher):
    """A one-shot rule that reads the model's weights: one candidate, played in the first episode."""

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        if start_episode >= 1:
            return
        if getattr(env, "analysis", None) is None:
            raise ConfigError(f"the {self.name} searcher needs the model: build the PruningEnv with "
                              f"analysis=<ModelAnalysis>")
        kept, exact = self.widths(env)
        on_episode(self.play_widths(env, kept, exact))

    @abc.abstractmethod
    def widths(self, env: PruningEnv) -> tuple[dict[str, int], bool]:
        """The rule's widths, and whether they are scored as made (True) or projected."""


class GlobalMagnitudeSearcher(ModelRuleSearcher):
    """Torch-Pruning's global magnitude pruning sized to the budget (one candidate, no search).

    The layer allocation comes from the weights alone: every channel is ranked on one scale and
    the smallest global share removed whose architecture meets the budget is searched for.
    Parameters: ``p`` (norm; 1 matches the default ``l1`` channel ranking). When no global
    ratio meets the budget (Torch-Pruning caps each group at the max ratio and skips groups
    whose rounded cut would break it), its narrowest allocation is projected onto the budget.
    """

    name = "global-magnitude"
    accepts = frozenset({"p"})

    def widths(self, env: PruningEnv) -> tuple[dict[str, int], bool]:
        def fits(kept: dict[str, int]) -> bool:
            return env.wall.fits(self._clipped(env, kept))

        p = int(self.params.get("p", 1))
        try:
            _, kept = size_global_magnitude(env.analysis, fits, max(env.max_ratio), env.round_to, p)
            return self._clipped(env, kept), True
        except ValueError:  # no global ratio meets the budget: its narrowest allocation, projected
            kept = global_magnitude_kept(env.analysis, max(env.max_ratio), max(env.max_ratio), env.round_to, p)
            return self._clipped(env, kept), False

    @staticmethod
    def _clipped(env: PruningEnv, kept: dict[str, int]) -> dict[str, int]:
        """Widths within the env's per-group bounds (what the episode will apply)."""
        return {g.name: env.wall.clip(t, {}, kept[g.name], enforce=False) for t, g in enumerate(env.groups)}


class KnapsackSearcher(ModelRuleSearcher):
    """HALP-style latency-aware knapsack: channels kept by importance per unit of predicted cost.

    One candidate, no search: from the narrowest allowed widths, the channel step that buys the
    most importance per unit of cost is added while the budget holds (any cost model).
    Parameters: ``importance`` (a data-free criterion: ``l1`` (default), ``l2``, ``bn_scale``).
    """

    name = "knapsack"
    accepts = frozenset({"importance"})

    def widths(self, env: PruningEnv) -> tuple[dict[str, int], bool]:
        scores = channel_scores(env.analysis, str(self.params.get("importance", "l1")))
        names = [g.name for g in env.groups]
        kept = knapsack_allocation({n: scores[n] for n in names}, env.wall.choices, env.wall.cost_of, env.budget)
        return kept, True
