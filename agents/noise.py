"""AMC's exploration: truncated-normal noise around the actor's action, sigma decaying per episode."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.noise import ActionNoise


class DecayingTruncatedNormalNoise(ActionNoise):
    """Samples ``a' ~ N(a, sigma)`` truncated to ``[-1, 1]``; ``sigma *= decay`` after each episode.

    Decay starts after ``warmup_episodes`` (AMC: sigma 0.5, decay 0.95). Used through
    :meth:`sample_around`, since SB3's additive ``__call__`` cannot truncate around the action.
    """

    def __init__(self, sigma: float = 0.5, decay: float = 0.95, warmup_episodes: int = 0,
                 min_sigma: float = 0.0, seed: int | None = None) -> None:
        super().__init__()
        self.initial_sigma, self.decay, self.warmup, self.min_sigma = sigma, decay, warmup_episodes, min_sigma
        self.episodes = 0
        self.rng = np.random.default_rng(seed)

    @property
    def sigma(self) -> float:
        return max(self.min_sigma, self.initial_sigma * self.decay ** max(0, self.episodes - self.warmup))

    def sample_around(self, mu: np.ndarray) -> np.ndarray:
        """Truncated-normal samples around ``mu`` within [-1, 1] (rejection sampling, then clip)."""
        out = np.array(mu, dtype=np.float64, copy=True)
        if self.sigma <= 0:
            return out
        for idx in np.ndindex(out.shape):
            for _ in range(100):
                x = self.rng.normal(out[idx], self.sigma)
                if -1.0 <= x <= 1.0:
                    break
            out[idx] = np.clip(x, -1.0, 1.0)
        return out

    def __call__(self) -> np.ndarray:
        return self.rng.normal(0.0, self.sigma, size=1)

    def reset(self, indices=None) -> None:
        """Called by SB3 at the end of every episode (once per finished env with vector envs)."""
        self.episodes += 1
