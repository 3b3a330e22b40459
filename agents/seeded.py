"""A search that starts from the strong points: one-shot baselines first, then the searcher.

The first episodes play the seed rules (uniform, Torch-Pruning global magnitude, knapsack), so a
search's best candidate is never worse, by its own score, than the one-liners it competes with.
"""

from __future__ import annotations

from typing import Any

from autoprune.agents.base import EpisodeHook, Searcher
from autoprune.agents.baselines import GlobalMagnitudeSearcher, KnapsackSearcher, UniformSearcher
from autoprune.envs.episode import EpisodeResult
from autoprune.errors import ConfigError

SEED_RULES: dict[str, type[Searcher]] = {"uniform": UniformSearcher, "global-magnitude": GlobalMagnitudeSearcher,
                                          "knapsack": KnapsackSearcher}
DEFAULT_SEEDS = ("uniform", "global-magnitude", "knapsack")


class SeededSearcher(Searcher):
    """Plays ``seeds`` (one episode each, at every budget of a front), then ``inner`` for the
    remaining episodes.

    ``history.csv`` names each episode's ``source`` (``seed:uniform``, …, or the searcher).
    """

    def __init__(self, inner: Searcher, seeds: tuple[str, ...] = DEFAULT_SEEDS, seed_env: Any = None) -> None:
        unknown = [s for s in seeds if s not in SEED_RULES]
        if unknown:
            raise ConfigError(f"unknown seed {unknown[0]!r}; known: {', '.join(SEED_RULES)}")
        super().__init__(inner.seed)
        self.inner, self.seeds = inner, tuple(seeds)
        self.seed_env = seed_env  # a single env for the seeds when ``inner`` runs a vector of them
        self.name = inner.name

    def warm_start(self, scored: list[tuple[dict[str, int], float]]) -> None:
        self.inner.warm_start(scored)

    def check(self) -> None:
        self.inner.check()

    @property
    def model(self) -> Any:
        return getattr(self.inner, "model", None)

    def _plays(self, env: Any) -> list[tuple[int, str]]:
        """(budget index, rule) of every seed episode, in order."""
        return [(b, s) for b in range(len(getattr(env, "budgets", [None]))) for s in self.seeds]

    def resume_point(self, state_dir, done: int) -> int:
        """Seed episodes are one-shot; beyond them, the inner searcher's saved state decides."""
        k = len(self._plays(self.seed_env)) if self.seed_env is not None else len(self.seeds)
        return done if done <= k else k + self.inner.resume_point(state_dir, done - k)

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        seed_env = self.seed_env or env
        plays = self._plays(seed_env)
        k = min(len(plays), episodes)
        several = len(plays) > len(self.seeds)
        for i in range(start_episode, k):
            budget, name = plays[i]
            if several:
                seed_env.pin_budget(budget)
            SEED_RULES[name](seed=self.seed).run(seed_env, 1, _tagged(on_episode, f"seed:{name}"))
        if several:
            seed_env.pin_budget(None)
        self.inner.run(env, episodes - k, _tagged(on_episode, self.inner.name), max(0, start_episode - k), state_dir)


def _tagged(on_episode: EpisodeHook, source: str) -> EpisodeHook:
    def hook(result: EpisodeResult) -> None:
        on_episode(result.tagged(source))
    return hook
