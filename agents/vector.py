"""Several episodes of an SB3 agent at once, their candidates scored together on a worker pool.

The environments step in this process (cheap: a few arithmetic operations per step); when
episodes finish (in lockstep: every episode has one step per group), their candidates go to the
scorer's ``score_many`` as one batch (worker processes or Ray actors, see
:mod:`autoprune.parallel`) and rewards are filled in before the agent sees them. The agent's
history depends on the number of environments, never on the number of workers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from autoprune.envs import RESULT_KEY, PruningEnv

DEFER = {"defer": True}  # every episode's candidate is scored later, in the batch


class PooledVecEnv(DummyVecEnv):
    """``n`` copies of ``env`` (see :meth:`PruningEnv.clone`) whose finished candidates are scored
    in one batch by ``env.evaluator.score_many``."""

    def __init__(self, env: PruningEnv, n: int) -> None:
        copies = [env, *(env.clone() for _ in range(n - 1))]
        super().__init__([lambda e=e: e for e in copies])
        self.score_many = env.evaluator.score_many

    def reset(self) -> VecEnvObs:
        self.set_options(DEFER)
        return super().reset()

    def step_wait(self) -> VecEnvStepReturn:
        finished: list[int] = []
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, info = env.step(self.actions[i])
            self.buf_rews[i], self.buf_dones[i] = reward, terminated or truncated
            self.buf_infos[i] = {**info, "TimeLimit.truncated": truncated and not terminated}
            if self.buf_dones[i]:
                self.buf_infos[i]["terminal_observation"] = obs
                finished.append(i)
                obs, self.reset_infos[i] = env.reset(options=DEFER)
            self._save_obs(i, obs)
        if finished:
            pending = [self.buf_infos[i][RESULT_KEY] for i in finished]
            for i, result, scored in zip(finished, pending, self.score_many([p.kept for p in pending])):
                done = self.envs[i].unwrapped.complete(result, scored.score, scored.seconds)
                self.buf_infos[i][RESULT_KEY], self.buf_rews[i] = done, done.reward
        infos: list[dict[str, Any]] = [dict(info) for info in self.buf_infos]
        return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), infos
