"""Off-policy SB3 agents with AMC's episode handling (He et al. 2018).

:class:`AMCMixin` adds AMC's settings to stable-baselines3's DDPG, TD3 and SAC:
* separate actor / critic learning rates (AMC: 1e-4 / 1e-3);
* truncated-normal exploration around the actor's action, decaying per episode (DDPG/TD3);
* the episode's reward minus a moving-average baseline (AMC's reward normalisation), on the last
  step only (default) or broadcast to every step as AMC's ``amc_search.py`` does
  (``broadcast_reward``; on our toy problem with a known optimum broadcasting made the actor
  collapse to "keep everything", so it is off by default). Bootstrapping uses discount 1.
* optionally (``reward_scale``) that credit divided by the rewards' moving spread, so the critic
  sees differences of order one whether scores differ by points or by hundredths.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3 import DDPG, SAC, TD3

from autoprune.agents.noise import DecayingTruncatedNormalNoise


class AMCMixin:
    """Mixed into an SB3 off-policy algorithm (before it in the bases)."""

    def __init__(self, *args: Any, critic_learning_rate: float | None = None, broadcast_reward: bool = False,
                 reward_baseline: bool = True, baseline_decay: float = 0.95, reward_scale: bool = False,
                 **kwargs: Any) -> None:
        self.critic_learning_rate = critic_learning_rate
        self.broadcast_reward = broadcast_reward
        self.reward_baseline = reward_baseline
        self.baseline_decay = baseline_decay
        self.reward_scale = reward_scale  # credit over the moving spread of rewards: a scale-free signal
        self.baseline: float | None = None
        self.spread: float | None = None
        self._episode_steps = 0
        super().__init__(*args, **kwargs)

    def _update_learning_rate(self, optimizers) -> None:
        super()._update_learning_rate(optimizers)
        if self.critic_learning_rate is not None:
            for group in self.critic.optimizer.param_groups:
                group["lr"] = self.critic_learning_rate

    def _sample_action(self, learning_starts: int, action_noise=None, n_envs: int = 1):
        if self.num_timesteps < learning_starts or not isinstance(action_noise, DecayingTruncatedNormalNoise):
            return super()._sample_action(learning_starts, action_noise, n_envs)
        unscaled, _ = self.predict(self._last_obs, deterministic=True)
        scaled = action_noise.sample_around(self.policy.scale_action(unscaled)).astype(np.float32)
        return self.policy.unscale_action(scaled), scaled

    def _store_transition(self, replay_buffer, buffer_action, new_obs, reward, dones, infos) -> None:
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        self._episode_steps += 1
        if not np.any(dones):
            return
        size = replay_buffer.buffer_size
        steps = min(self._episode_steps, size) if self.broadcast_reward else 1
        for env_idx in np.flatnonzero(dones):  # vector envs run in lockstep: all finish together
            final = float(reward[env_idx])
            previous = final if self.baseline is None else self.baseline
            self.baseline = final if self.baseline is None else \
                self.baseline_decay * self.baseline + (1 - self.baseline_decay) * final
            credit = final - self.baseline if self.reward_baseline else final
            if self.reward_scale:  # moving mean absolute deviation, so credit is O(1) whatever the score's range
                deviation = abs(final - previous)
                self.spread = deviation if self.spread is None else \
                    self.baseline_decay * self.spread + (1 - self.baseline_decay) * deviation
                credit = credit / max(self.spread, 1e-8)
            for k in range(1, steps + 1):
                replay_buffer.rewards[(replay_buffer.pos - k) % size, env_idx] = credit
        self._episode_steps = 0


class AMCDDPG(AMCMixin, DDPG):
    """DDPG with AMC's settings (the default agent)."""


class AMCTD3(AMCMixin, TD3):
    """TD3 (twin critics, delayed policy updates, target smoothing) with AMC's episode handling."""


class AMCSAC(AMCMixin, SAC):
    """SAC with AMC's episode handling (exploration from the entropy term)."""
