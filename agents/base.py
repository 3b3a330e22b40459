"""The searcher interface: one candidate per episode of a :class:`~autoprune.envs.PruningEnv`.

A searcher runs ``episodes`` episodes and calls ``on_episode(result)`` after each one; with
``state_dir`` it saves what it needs to resume. Helpers here play an episode from actions or
widths and score a batch of episodes together (on parallel workers, when the scorer has them).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from autoprune.envs.episode import EpisodeResult
from autoprune.envs.pruning_env import PruningEnv

EpisodeHook = Callable[[EpisodeResult], None]


class Searcher(abc.ABC):
    """Proposes one candidate per episode."""

    name = "searcher"
    accepts: frozenset[str] = frozenset()  # parameters a baseline takes (SB3 agents: their preset's)

    def __init__(self, seed: int = 0, **params: Any) -> None:
        self.seed, self.params = seed, params
        self.warm: list[tuple[dict[str, int], float]] = []  # an earlier search's scored architectures (warm start)

    def warm_start(self, scored: list[tuple[dict[str, int], float]]) -> None:
        """Start from an earlier search's ``(widths kept, reward)`` (searchers that can; see ``WARM_STARTED``)."""
        self.warm = list(scored)

    def check(self) -> None:
        """Refuse bad parameters in one line (a ConfigError) before any model, data or table is
        loaded; a search calls it when its settings are validated. Nothing to check by default."""
        return None

    @abc.abstractmethod
    def run(self, env: PruningEnv, episodes: int, on_episode: EpisodeHook, start_episode: int = 0,
            state_dir: Path | None = None) -> None:
        """Run episodes ``start_episode .. episodes - 1``."""

    def resume_point(self, state_dir: Path | None, done: int) -> int:
        """The episode a resume continues from, given ``done`` episodes in the history: ``done`` for
        searchers whose every episode is reproducible on its own (random streams per episode)."""
        return done

    def play(self, env: PruningEnv, actions: Callable[[int], float], seed: int | None = None,
             exact: bool = False, defer: bool = False) -> EpisodeResult:
        """One episode with ``actions(step) -> action`` (:func:`play_episode`)."""
        return play_episode(env, actions, seed, exact, defer)

    def play_widths(self, env: PruningEnv, kept: dict[str, int], exact: bool = True) -> EpisodeResult:
        """One episode proposing the widths ``kept`` (one-shot rules: scored as made when they fit)."""
        return self.play(env, widths_actions(env, kept), exact=exact)


def play_episode(env: PruningEnv, actions: Callable[[int], float], seed: int | None = None,
                 exact: bool = False, defer: bool = False) -> EpisodeResult:
    """One episode with ``actions(step) -> action``; returns its result.

    ``exact``: a feasible proposal is scored as it is (one-shot baselines), not filled up.
    """
    env.reset(seed=seed, options={"exact": exact, "defer": defer})
    t, done, info = 0, False, {}
    while not done:
        _, _, done, _, info = env.step(np.array([actions(t)], np.float32))
        t += 1
    return EpisodeResult.of(info)


def widths_actions(env: PruningEnv, kept: dict[str, int]) -> Callable[[int], float]:
    """The actions that propose the widths ``kept``, step by step."""
    actions = [env.action_for(t, kept[g.name]) for t, g in enumerate(env.groups)]
    return lambda t: actions[t]


def play_batch(searcher: Searcher, env: PruningEnv, plays: list[tuple[Callable[[int], float], int]]
               ) -> list[EpisodeResult]:
    """Episodes ``(actions, seed)`` played in order, their candidates scored together (in parallel
    when the environment's scorer has ``score_many``), results in the order played."""
    many = getattr(env.evaluator, "score_many", None)
    if many is None:
        return [searcher.play(env, actions, seed=seed) for actions, seed in plays]
    pending = [searcher.play(env, actions, seed=seed, defer=True) for actions, seed in plays]
    scored = many([p.kept for p in pending])
    return [env.complete(p, s.score, s.seconds) for p, s in zip(pending, scored)]


QUEUED_PER_WORKER = 4  # a worker done early takes the next candidate instead of idling until the batch ends


def batch_size(env: PruningEnv) -> int:
    """Candidates to score at once: a few per worker of a pooled scorer (1: one at a time, here)."""
    if not hasattr(env.evaluator, "score_many"):
        return 1
    return QUEUED_PER_WORKER * max(1, int(getattr(env.evaluator, "parallel", 1)))
