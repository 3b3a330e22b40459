"""``autoprune.agents``: SB3 agents (AMC-DDPG, TD3, SAC, PPO) and baseline searchers, by name."""

from __future__ import annotations

from typing import Any

from autoprune.agents.amc import AMCDDPG, AMCSAC, AMCTD3, AMCMixin
from autoprune.agents.evolution import CMAESSearcher
from autoprune.agents.noise import DecayingTruncatedNormalNoise
from autoprune.agents.presets_io import load_preset, parse_overrides
from autoprune.agents.searchers import (
    ALGORITHMS,
    GlobalMagnitudeSearcher,
    KnapsackSearcher,
    RandomSearcher,
    SB3Searcher,
    Searcher,
    UniformSearcher,
)
from autoprune.agents.seeded import DEFAULT_SEEDS, SEED_RULES, SeededSearcher

from autoprune.errors import ConfigError

BASELINES = {"random": RandomSearcher, "uniform": UniformSearcher, "global-magnitude": GlobalMagnitudeSearcher,
             "knapsack": KnapsackSearcher, "cmaes": CMAESSearcher}
ONE_SHOT = frozenset(SEED_RULES)  # one candidate from a rule, no search: never seeded
ALIASES = {"ddpg": "amc-ddpg", "tp-global": "global-magnitude"}


def list_searchers() -> list[str]:
    """Agent and baseline names accepted by :func:`make_searcher`."""
    return sorted([*ALGORITHMS, *BASELINES, *ALIASES])


def make_searcher(name: str, seed: int = 0, preset: str = "default", overrides: dict[str, Any] | None = None,
                  preset_file: str | None = None, seeds: tuple[str, ...] = ()) -> Searcher:
    """A searcher by name, its hyper-parameters from ``preset`` plus ``overrides``.

    ``seeds``: one-shot rules played first (see :class:`SeededSearcher`); ignored by one-shot rules.
    """
    searcher = _make(ALIASES.get(name, name), seed, preset, overrides, preset_file)
    if seeds and searcher.name not in ONE_SHOT:
        return SeededSearcher(searcher, tuple(seeds))
    return searcher


def _make(name: str, seed: int, preset: str, overrides: dict[str, Any] | None, preset_file: str | None) -> Searcher:
    if name in BASELINES:
        cls = BASELINES[name]
        unknown = sorted(set(overrides or {}) - cls.accepts)
        if unknown:
            takes = ", ".join(sorted(cls.accepts)) or "none"
            raise ConfigError(f"the {name} searcher has no parameter {unknown[0]!r} (it takes: {takes})")
        return cls(seed=seed, **(overrides or {}))
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown agent {name!r}; known: {', '.join(list_searchers())}")
    return SB3Searcher(name, seed=seed, **load_preset(name, preset, overrides, preset_file))


__all__ = ["ALGORITHMS", "AMCDDPG", "AMCMixin", "AMCSAC", "AMCTD3", "BASELINES", "CMAESSearcher", "DEFAULT_SEEDS",
           "DecayingTruncatedNormalNoise", "GlobalMagnitudeSearcher", "KnapsackSearcher", "ONE_SHOT",
           "RandomSearcher", "SB3Searcher", "SEED_RULES", "Searcher", "SeededSearcher", "UniformSearcher",
           "list_searchers", "load_preset", "make_searcher", "parse_overrides"]
