"""Re-queries of the leaders (SMAC's intensification): Thompson sampling's and ROAR's, and the SB3
agents' through their environment.

A search returns the best architecture by mean score, so with a noisy score one lucky query of a
mediocre architecture wins (the winner's curse). Every ``intensify``-th episode therefore asks
again the leader by mean, among the ``top`` leaders the one with the fewest queries. The first
such episode repeats the best one to learn whether the score is noisy at all; a score whose
first five repeated queries all gave their first value is deterministic and never asked again
(one match is not enough: a score of few values, a table of three runs, matches by chance).

An SB3 agent walks its environment itself, so its re-queries are played inside the environment's
``reset`` (:class:`RacingEnv`): the agent never sees them and learns only from its own episodes
(PPO's rollouts and the off-policy agents' replay buffers hold only its own steps).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from autoprune.agents.base import play_episode, widths_actions
from autoprune.agents.presets_io import AgentParams
from autoprune.agents.state import Scored, append_log
from autoprune.analysis.architecture import architecture_key
from autoprune.envs.episode import EpisodeResult
from autoprune.envs.pruning_env import PruningEnv
from autoprune.errors import ConfigError
from autoprune.repeats import pooled_noise

Leaders = dict[str, tuple[dict[str, int], list[float]]]  # architecture key -> (widths, every score it got)


def leaders(known: list[Scored]) -> Leaders:
    """Each architecture asked: its widths and its scores (failed queries included as NaN)."""
    out: Leaders = {}
    for kept, reward in known:
        out.setdefault(architecture_key(kept), (kept, []))[1].append(reward)
    return out


def requery(means: Leaders, top: int) -> dict[str, int] | None:
    """The leader to ask again: the best by mean when no architecture was asked twice yet (to learn
    whether the score is noisy), else among the ``top`` best the least asked; None when the score is
    deterministic (:func:`~autoprune.repeats.pooled_noise`: enough repeated queries, all matching)."""
    finite = {key: (kept, [r for r in rewards if math.isfinite(r)]) for key, (kept, rewards) in means.items()}
    finite = {key: value for key, value in finite.items() if value[1]}
    if not finite or pooled_noise(rewards for _, rewards in finite.values()) == 0.0:
        return None
    repeated = any(len(rewards) > 1 for _, rewards in finite.values())
    ranked = sorted(finite.values(), key=lambda v: -float(np.mean(v[1])))[:top if repeated else 1]
    return min(ranked, key=lambda v: len(v[1]))[0]  # ties: the better mean (sorted is stable)


@dataclasses.dataclass(frozen=True)
class RaceSettings:
    """A re-query every ``intensify`` episodes (0: never) among the ``top`` leaders, from episode
    ``intensify_after`` on (the agent's own episodes before it)."""

    intensify: int = 0
    top: int = 3
    intensify_after: int = 20

    @classmethod
    def pop(cls, params: AgentParams) -> RaceSettings:
        """The settings among an agent's hyper-parameters, removed from ``params``."""
        out = cls(**{f.name: params.pop(f.name) for f in dataclasses.fields(cls) if f.name in params})
        if out.intensify < 0 or out.intensify == 1 or out.top < 1 or out.intensify_after < 2:
            raise ConfigError("re-queries need intensify 0 (none) or >= 2 (1 would leave the agent no episode), "
                              "top >= 1 and intensify_after >= 2")
        return out


class RacingEnv(gym.Wrapper):
    """``env`` with re-query episodes played inside ``reset``, before the agent's next episode.

    ``known``: the episodes before ``start`` (replayed from the log ``log`` on resume); every
    episode, the agent's and the re-queries, is appended to that log as it ends and waits in
    :meth:`take`, so that the agent's callback reports them all in the order played.
    """

    def __init__(self, env: PruningEnv, settings: RaceSettings, seed: int, known: list[Scored], start: int,
                 stop: int, log: tuple[Path, str] | None) -> None:
        super().__init__(env)
        if len(env.budgets) > 1:
            raise ConfigError("re-queries (intensify) need one budget; drop --budgets or intensify")
        self.settings, self.seed, self.known, self.episode, self.stop, self.log = \
            settings, seed, list(known), start, stop, log
        self._waiting: list[EpisodeResult] = []
        self.groups = env.groups  # what SB3 set-up reads off the environment

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            result = EpisodeResult.of(info)
            self._record(dict(result.kept), float(result.reward))
            self._waiting.append(result)
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        while self.episode < self.stop and (again := self._due()) is not None:
            result = play_episode(self.env, widths_actions(self.env, again), self.seed + self.episode)
            self._record(dict(result.kept), float(result.reward))
            self._waiting.append(result)
        return self.env.reset(seed=seed, options=options)

    def take(self) -> list[EpisodeResult]:
        """The episodes (the agent's and the re-queries) played since the last call, in order."""
        out, self._waiting = self._waiting, []
        return out

    def _due(self) -> dict[str, int] | None:
        s = self.settings
        if not s.intensify or self.episode < s.intensify_after or self.episode % s.intensify:
            return None
        return requery(leaders(self.known), s.top)

    def _record(self, kept: dict[str, int], reward: float) -> None:
        self.known.append((kept, reward))
        self.episode += 1
        if self.log is not None:
            append_log(*self.log, kept, reward)

