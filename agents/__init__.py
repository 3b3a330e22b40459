"""``autoprune.agents``: SB3 agents (AMC-DDPG, TD3, SAC, PPO) and baseline searchers, by name."""

from __future__ import annotations

from typing import Any

from autoprune.agents.amc import AMCDDPG, AMCSAC, AMCTD3, AMCMixin
from autoprune.agents.noise import DecayingTruncatedNormalNoise
from autoprune.agents.presets_io import load_preset, parse_overrides
from autoprune.agents.searchers import (
    ALGORITHMS,
    RandomSearcher,
    SB3Searcher,
    Searcher,
    UniformSearcher,
)

from autoprune.errors import ConfigError

BASELINES = {"random": RandomSearcher, "uniform": UniformSearcher}
ALIASES = {"ddpg": "amc-ddpg"}


def list_searchers() -> list[str]:
    """Agent and baseline names accepted by :func:`make_searcher`."""
    return sorted([*ALGORITHMS, *BASELINES, *ALIASES])


def make_searcher(name: str, seed: int = 0, preset: str = "default", overrides: dict[str, Any] | None = None,
                  preset_file: str | None = None) -> Searcher:
    """A searcher by name, its hyper-parameters from ``preset`` plus ``overrides``."""
    name = ALIASES.get(name, name)
    if name in BASELINES:
        return BASELINES[name](seed=seed)
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown agent {name!r}; known: {', '.join(list_searchers())}")
    return SB3Searcher(name, seed=seed, **load_preset(name, preset, overrides, preset_file))


__all__ = ["ALGORITHMS", "AMCDDPG", "AMCMixin", "AMCSAC", "AMCTD3", "BASELINES",
           "DecayingTruncatedNormalNoise", "RandomSearcher", "SB3Searcher", "Searcher", "UniformSearcher",
           "list_searchers", "load_preset", "make_searcher", "parse_overrides"]
