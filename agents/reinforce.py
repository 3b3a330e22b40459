"""A categorical controller over the allowed widths, trained by REINFORCE with a moving baseline.

One independent categorical choice per group (the NAS controllers' rule, Zoph & Le 2017, without
the recurrent network): each episode samples a width per group, the environment fills the
proposal up to the budget, and the logits of the widths scored (after projection: what the
reward belongs to) move by ``learning_rate * advantage * grad log p``. The advantage is the reward
minus a moving average, over the rewards' moving spread, so the step is the same whether scores
differ by points or by hundredths. Every episode's widths and reward are appended to
``agent/reinforce.jsonl``; a resume replays them and continues exactly.
"""

from __future__ import annotations

import math

import numpy as np

from autoprune.agents.base import Searcher
from autoprune.agents.state import append_log, replay_log
from autoprune.envs.pruning_env import PruningEnv
from autoprune.errors import ConfigError

STATE = "reinforce.jsonl"


class CategoricalController:
    """The controller's parameters: logits per group over its allowed widths, the reward baseline."""

    def __init__(self, levels: dict[str, tuple[int, ...]], learning_rate: float, decay: float) -> None:
        self.levels, self.learning_rate, self.decay = levels, learning_rate, decay
        self.logits = {name: np.zeros(len(widths)) for name, widths in levels.items()}
        self.baseline: float | None = None
        self.spread = 0.0

    def sample(self, rng: np.random.Generator) -> dict[str, int]:
        """A width per group, each drawn from its softmax."""
        return {name: int(self.levels[name][rng.choice(len(z), p=_softmax(z))]) for name, z in self.logits.items()}

    def update(self, kept: dict[str, int], reward: float) -> None:
        """One REINFORCE step toward (or away from) the widths scored, by the normalised advantage."""
        if not math.isfinite(reward):
            return
        if self.baseline is None:
            self.baseline = reward
            return
        advantage = reward - self.baseline
        self.spread = self.decay * self.spread + (1 - self.decay) * abs(advantage) if self.spread else abs(advantage)
        self.baseline = self.decay * self.baseline + (1 - self.decay) * reward
        if self.spread <= 0:
            return
        step = self.learning_rate * advantage / self.spread
        for name, z in self.logits.items():
            widths = self.levels[name]
            chosen = min(range(len(widths)), key=lambda i: abs(widths[i] - kept[name]))
            grad = -_softmax(z)
            grad[chosen] += 1.0  # d log p(chosen) / d logits
            z += step * grad


class ReinforceSearcher(Searcher):
    """REINFORCE over a factorized categorical policy (one choice of allowed width per group).

    Parameters: ``learning_rate`` (default 0.1, in units of the rewards' moving spread),
    ``baseline_decay`` (default 0.9).
    """

    name = "reinforce"
    accepts = frozenset({"learning_rate", "baseline_decay"})

    def check(self) -> None:
        self._rates()

    def _rates(self) -> tuple[float, float]:
        lr, decay = self.params.get("learning_rate", 0.1), self.params.get("baseline_decay", 0.9)
        if not (isinstance(lr, (int, float)) and 0 < lr <= 10 and isinstance(decay, (int, float)) and 0 <= decay < 1):
            raise ConfigError("reinforce needs 0 < learning_rate <= 10 and 0 <= baseline_decay < 1")
        return float(lr), float(decay)

    def _controller(self, env: PruningEnv) -> CategoricalController:
        return CategoricalController(env.choices.levels, *self._rates())

    def run(self, env, episodes, on_episode, start_episode=0, state_dir=None) -> None:
        controller = self._controller(env)
        for kept, reward in self.warm:  # a warm start: an earlier search's architectures that fit this budget
            if env.wall.fits(kept):
                controller.update(kept, reward)
        for kept, reward in replay_log(state_dir, STATE, self.name, start_episode):
            controller.update(kept, reward)
        for episode in range(start_episode, episodes):
            proposal = controller.sample(np.random.default_rng([self.seed, episode]))
            result = self.play_widths(env, proposal, exact=False)  # filled up to the budget
            controller.update(result.kept, result.reward)
            if state_dir:
                append_log(state_dir, STATE, result.kept, result.reward)
            on_episode(result)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()
