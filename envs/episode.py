"""What one finished episode produced: the value that travels from the environment to searchers,
the history and the search's best."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RESULT_KEY = "result"  # the key of the final step's Gymnasium ``info`` that holds the EpisodeResult


@dataclass(frozen=True)
class EpisodeResult:
    """One scored candidate: channels kept (and proposed, before projection), its cost and score."""

    kept: dict[str, int]
    proposed: dict[str, int]
    ratios: dict[str, float]
    cost: float                 # in the budget's metric
    latency_ms: float | None    # None when the cost model predicts no latency
    flops: int
    params: int
    score: float                # the candidate's score (accuracy unless the search names another); NaN on failure
    reward: float
    feasible: bool
    score_seconds: float = 0.0  # time spent scoring the candidate
    env_seconds: float = 0.0    # time in the environment itself, scoring excluded
    source: str | None = None   # who proposed it (a searcher, or ``seed:<rule>``)
    budget: float | None = None  # the episode's budget (in the budget's metric), when several are searched

    @staticmethod
    def of(info: Mapping[str, Any]) -> EpisodeResult:
        """The result in a final step's ``info``."""
        return info[RESULT_KEY]

    def tagged(self, source: str) -> EpisodeResult:
        """The same result credited to ``source``."""
        return dataclasses.replace(self, source=source)
