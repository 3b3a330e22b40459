"""The incumbent: a search's best feasible architecture so far, by the mean of its scores.

A noisy score asked again for the same architecture is averaged (:class:`ArchStats`), so one
lucky draw does not win; when the best's own mean falls below another's, the best is chosen
again from the history. Restored from ``history.csv`` when a search resumes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from autoprune.analysis.architecture import architecture_key
from autoprune.budget import Budget
from autoprune.envs import EpisodeResult
from autoprune.search.front import episodes_at
from autoprune.search.history import ArchStats, Candidate, arch_stats, first_scored


class Incumbent:
    """Tracks the best candidate by mean score; ``on_change`` is called whenever it changes."""

    def __init__(self, history: Callable[[], pd.DataFrame], on_change: Callable[[Candidate], None],
                 front_budget: Budget | None = None) -> None:
        """``history``: the episodes so far (to choose again from); ``front_budget``: in a search of
        several budgets, the one whose candidates compete (the others' are the front's)."""
        self.best: Candidate | None = None
        self._history, self._on_change, self._budget = history, on_change, front_budget
        self._stats: dict[str, ArchStats] = {}

    def consider(self, episode: int, result: EpisodeResult) -> None:
        """Count one finished episode; the best changes when its architecture's mean is higher."""
        score = result.score
        if math.isnan(score) or not result.feasible or \
                (self._budget is not None and not self._budget.matches(result.budget)):
            return
        key = architecture_key(result.kept)
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = ArchStats(dict(result.kept), [float(score)], episode)
        else:
            stats.add(score)
        if self.best is not None and self.best.key == key:  # the best's own mean moved
            self.best.score = stats.mean
            if stats.count > 1 and stats.mean < max(s.mean for s in self._stats.values()):
                self.restore(self._history())
                self._on_change(self.best)
            return
        if self.best is None or stats.mean > self.best.score:
            self.best = Candidate.from_result(stats.first, result)
            self.best.score, self.best.key = stats.mean, key
            self._on_change(self.best)

    def restore(self, history: pd.DataFrame) -> None:
        """The best architecture by mean score in ``history`` (its first episode), and the scores so far."""
        if self._budget is not None:
            history = episodes_at(history, self._budget)
        self._stats = stats = arch_stats(history)
        if stats:
            self.best = first_scored(history, max(stats, key=lambda k: (stats[k].mean, -stats[k].first)), stats)

    def choose(self, candidate: Candidate) -> None:
        """Make ``candidate`` the best (a later stage chose it: refinement, verification, re-ranking)."""
        self.best = candidate
        self._on_change(candidate)
