"""CMA-ES over whole ratio profiles (the ``cmaes`` package), behind the searcher interface.

Each candidate is one vector of actions, one per group, played as an episode (the environment
projects it onto the budget); CMA-ES minimises minus the episode's reward. Resume replays the
recorded rewards through a fresh optimiser with the same seed, so no optimiser state is pickled
and a resumed search continues exactly where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from cmaes import CMA

from autoprune.agents.base import Searcher, batch_size, play_batch
from autoprune.agents.state import read_state
from autoprune.atomic import write_json_atomic
from autoprune.errors import ConfigError


class CMAESSearcher(Searcher):
    """Covariance-matrix adaptation (Hansen 2016) of the per-group actions in [-1, 1].

    Parameters: ``sigma`` (initial step, default 0.4), ``population`` (default: CMA-ES's
    4 + 3 ln(groups)), ``mean`` (initial action for every group, default 0: mid-range ratios).
    """

    name = "cmaes"
    accepts = frozenset({"sigma", "population", "mean"})

    def check(self) -> None:
        self._settings()

    def _settings(self) -> tuple[float, float, int | None]:
        sigma, mean = float(self.params.get("sigma", 0.4)), float(self.params.get("mean", 0.0))
        population = self.params.get("population")
        if not (0 < sigma <= 2 and -1 <= mean <= 1) or (population is not None and int(population) < 2):
            raise ConfigError("cmaes needs 0 < sigma <= 2, -1 <= mean <= 1 and population >= 2")
        return sigma, mean, None if population is None else int(population)

    def _optimizer(self, dims: int) -> CMA:
        sigma, mean, population = self._settings()
        bounds = np.tile([-1.0, 1.0], (dims, 1))
        return CMA(mean=np.full(dims, mean), sigma=sigma, bounds=bounds, seed=self.seed, population_size=population)

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        opt = self._optimizer(len(env.groups))
        rewards = _load(state_dir, start_episode)
        parallel = batch_size(env) > 1
        first = 0
        while first < episodes:  # one generation at a time: ask, play (scored together), tell
            xs = [opt.ask() for _ in range(min(opt.population_size, episodes - first))]
            new = [j for j in range(len(xs)) if first + j >= start_episode]
            plays = [(lambda t, x=xs[j]: float(x[t]), self.seed + first + j) for j in new]
            for result in (play_batch(self, env, plays) if parallel else
                           (self.play(env, actions, seed=seed) for actions, seed in plays)):
                rewards.append(result.reward)
                if state_dir:
                    _save(state_dir, rewards)
                on_episode(result)
            if len(xs) == opt.population_size:
                opt.tell([(x, -rewards[first + j]) for j, x in enumerate(xs)])
            first += len(xs)


def _load(state_dir: Path | None, start: int) -> list[float]:
    """The rewards of the first ``start`` episodes, recorded in ``state_dir`` (to replay on resume)."""
    if start == 0:
        return []

    def parse(path: Path) -> tuple[list[float], int]:
        rewards = [float(r) for r in json.loads(path.read_text())["rewards"]]
        return rewards[:start], len(rewards)

    return read_state(state_dir, "cmaes.json", "CMA-ES", start, parse)


def _save(state_dir: Path, rewards: list[float]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(state_dir / "cmaes.json", {"rewards": rewards})
