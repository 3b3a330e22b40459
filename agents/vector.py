"""Several episodes of an SB3 agent at once, their candidates scored together on a worker pool.

The environments step in this process (cheap: a few arithmetic operations per step); when
episodes finish (in lockstep: every episode has one step per group), their candidates go to the
scorer's ``score_many`` as one batch (worker processes or Ray actors, see
:mod:`autoprune.parallel`) and rewards are filled in before the agent sees them. The agent's
history depends on the number of environments, never on the number of workers.
"""

from __future__ import annotations

import gymnasium as gym
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from autoprune.envs import RESULT_KEY, PruningEnv


class _Deferred(gym.Wrapper):
    """Every episode is played with its scoring deferred (see :meth:`PruningEnv.complete`)."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        return self.env.reset(seed=seed, options={**(options or {}), "defer": True})


class PooledVecEnv(DummyVecEnv):
    """``n`` copies of ``env`` (see :meth:`PruningEnv.clone`) whose finished candidates are scored
    in one batch by ``env.evaluator.score_many``."""

    def __init__(self, env: PruningEnv, n: int) -> None:
        copies = [env, *(env.clone() for _ in range(n - 1))]
        super().__init__([lambda e=e: _Deferred(e) for e in copies])
        self.score_many = env.evaluator.score_many

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = super().step_wait()
        finished = [i for i, info in enumerate(infos) if RESULT_KEY in info]
        if finished:
            pending = [infos[i][RESULT_KEY] for i in finished]
            for i, result, scored in zip(finished, pending, self.score_many([p.kept for p in pending])):
                infos[i][RESULT_KEY] = self.envs[i].unwrapped.complete(result, scored.score, scored.seconds)
                rewards[i] = infos[i][RESULT_KEY].reward
        return obs, rewards, dones, infos
