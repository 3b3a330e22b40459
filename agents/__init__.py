"""``autoprune.agents``: SB3 agents (AMC-DDPG, TD3, SAC, PPO) and baseline searchers, by name.

Every searcher is registered in one :class:`~autoprune.registry.Registry`, ``SEARCHERS``, whose
factories take ``(seed, preset, overrides, preset_file)``; plug-in searchers register under the
``autoprune.searchers`` entry-point group the same way.
"""

from __future__ import annotations

from autoprune.agents.aging_evolution import AgingEvolution
from autoprune.agents.amc import AMCDDPG, AMCSAC, AMCTD3, AMCMixin
from autoprune.agents.base import Searcher
from autoprune.agents.baselines import (
    GlobalMagnitudeSearcher,
    KnapsackSearcher,
    RandomSearcher,
    UniformSearcher,
)
from autoprune.agents.evolution import CMAESSearcher
from autoprune.agents.noise import DecayingTruncatedNormalNoise
from autoprune.agents.presets_io import AgentParams, ParamValue, load_preset, parse_overrides
from autoprune.agents.reinforce import ReinforceSearcher
from autoprune.agents.sb3 import ALGORITHMS, SB3Searcher
from autoprune.agents.seeded import DEFAULT_SEEDS, SEED_RULES, SeededSearcher
from autoprune.agents.thompson import RoarSearcher, ThompsonSearcher
from autoprune.errors import ConfigError
from autoprune.registry import Registry

SEARCHERS: Registry[Searcher] = Registry("agent", entry_point_group="autoprune.searchers")
ONE_SHOT = frozenset(SEED_RULES)  # one candidate from a rule, no search: never seeded
ALIASES = {"ddpg": "amc-ddpg", "tp-global": "global-magnitude"}
WARM_STARTED = frozenset({AgingEvolution.name, ReinforceSearcher.name, ThompsonSearcher.name})  # start from an earlier search's scores


def _baseline(cls: type[Searcher]):
    """The factory of a searcher without presets: only the parameters it ``accepts``."""
    def make(seed: int, preset: str, overrides: AgentParams | None, preset_file: str | None) -> Searcher:
        unknown = sorted(set(overrides or {}) - cls.accepts)
        if unknown:
            takes = ", ".join(sorted(cls.accepts)) or "none"
            raise ConfigError(f"the {cls.name} searcher has no parameter {unknown[0]!r} (it takes: {takes})")
        return cls(seed=seed, **(overrides or {}))
    return make


def _sb3(algo: str):
    """The factory of an SB3 agent: its preset plus the overrides."""
    def make(seed: int, preset: str, overrides: AgentParams | None, preset_file: str | None) -> Searcher:
        return SB3Searcher(algo, seed=seed, **load_preset(algo, preset, overrides, preset_file))
    return make


for _cls in (RandomSearcher, UniformSearcher, GlobalMagnitudeSearcher, KnapsackSearcher, CMAESSearcher,
             AgingEvolution, ReinforceSearcher, ThompsonSearcher, RoarSearcher):
    SEARCHERS.add(_cls.name, _baseline(_cls))
for _algo in ALGORITHMS:
    SEARCHERS.add(_algo, _sb3(_algo))


def list_searchers() -> list[str]:
    """Agent and baseline names accepted by :func:`create_searcher`."""
    return sorted([*SEARCHERS.names(), *ALIASES])


def create_searcher(name: str, seed: int = 0, preset: str = "default", overrides: AgentParams | None = None,
                  preset_file: str | None = None, seeds: tuple[str, ...] = ()) -> Searcher:
    """A searcher by name, its hyper-parameters from ``preset`` plus ``overrides``.

    ``seeds``: one-shot rules played first (see :class:`SeededSearcher`); ignored by one-shot rules.
    """
    searcher = _make(ALIASES.get(name, name), seed, preset, overrides, preset_file)
    if seeds and searcher.name not in ONE_SHOT:
        return SeededSearcher(searcher, tuple(seeds))
    return searcher


def _make(name: str, seed: int, preset: str, overrides: AgentParams | None, preset_file: str | None) -> Searcher:
    return SEARCHERS.get(name)(seed, preset, overrides, preset_file)


__all__ = ["ALGORITHMS", "AMCDDPG", "AgingEvolution", "AMCMixin", "AMCSAC", "AMCTD3", "AgentParams", "CMAESSearcher", "DEFAULT_SEEDS",
           "ParamValue", "DecayingTruncatedNormalNoise", "GlobalMagnitudeSearcher", "KnapsackSearcher", "ONE_SHOT",
           "RandomSearcher", "ReinforceSearcher", "SB3Searcher", "SEED_RULES", "Searcher", "SeededSearcher", "ThompsonSearcher",
           "UniformSearcher",
           "SEARCHERS", "WARM_STARTED", "list_searchers", "load_preset", "create_searcher", "parse_overrides"]
