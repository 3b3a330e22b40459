"""The pruning record: which original channels each group lost, so a pruned model can be rebuilt.

A pruned checkpoint stores the dense model's name plus this record; loading rebuilds the dense
architecture, removes exactly the recorded channels (Torch-Pruning) and then loads the weights.
No code is pickled, and the same record re-applied to *other* weights of the same model (e.g.
early weights for lottery-ticket rewinding) picks the very same channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from autoprune.analysis.groups import ModelAnalysis
from autoprune.errors import ConfigError
from autoprune.pruning.physical import prune_physically


@dataclass
class PruningRecord:
    """Per group: its original width and the original channel indices removed."""

    channels: dict[str, int]
    removed: dict[str, list[int]]
    exclude: list[str] = field(default_factory=list)

    @classmethod
    def from_ranking(cls, analysis: ModelAnalysis, ranking: Mapping[str, torch.Tensor],
                     kept: Mapping[str, int], exclude: list[str] | None = None) -> PruningRecord:
        """The record of pruning ``analysis``'s groups to ``kept`` channels, least important first."""
        removed = {}
        for g in analysis.groups:
            n_remove = g.channels - int(kept.get(g.name, g.channels))
            removed[g.name] = sorted(int(i) for i in ranking[g.name][:max(n_remove, 0)])
        return cls({g.name: g.channels for g in analysis.groups}, removed, list(exclude or []))

    @property
    def kept(self) -> dict[str, int]:
        """Channels kept per group."""
        return {name: n - len(self.removed.get(name, [])) for name, n in self.channels.items()}

    def ranking(self) -> dict[str, torch.Tensor]:
        """A ranking that puts the recorded channels first, for :func:`prune_physically`."""
        out = {}
        for name, n in self.channels.items():
            gone = self.removed.get(name, [])
            rest = sorted(set(range(n)) - set(gone))
            out[name] = torch.tensor(list(gone) + rest, dtype=torch.long)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"channels": dict(self.channels), "removed": {k: list(v) for k, v in self.removed.items()},
                "exclude": list(self.exclude)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "checkpoint") -> PruningRecord:
        """Validate a stored record (types, index ranges) and build it."""
        if not isinstance(data, dict) or not isinstance(data.get("channels"), dict) \
                or not isinstance(data.get("removed"), dict):
            raise ConfigError(f"{source}: the pruning record needs 'channels' and 'removed' mappings")
        channels, removed = data["channels"], data["removed"]
        for name, n in channels.items():
            gone = removed.get(name, [])
            if not isinstance(n, int) or isinstance(n, bool) or n < 1 or not isinstance(gone, list) \
                    or not all(isinstance(i, int) and 0 <= i < n for i in gone) \
                    or len(set(gone)) != len(gone) or len(gone) >= n:
                raise ConfigError(f"{source}: the pruning record of group {name!r} is malformed "
                                  f"(channel indices must be distinct, in range, and leave one)")
        exclude = data.get("exclude", [])
        if not isinstance(exclude, list) or not all(isinstance(e, str) for e in exclude):
            raise ConfigError(f"{source}: 'exclude' in the pruning record must be a list of module names")
        return cls(dict(channels), {k: list(v) for k, v in removed.items()}, list(exclude))


def rebuild_pruned(analysis: ModelAnalysis, record: PruningRecord, source: str = "checkpoint") -> nn.Module:
    """``analysis.model`` (dense) with the recorded channels removed; the dense model is untouched."""
    widths = {g.name: g.channels for g in analysis.groups}
    if widths != record.channels:
        diff = sorted(set(widths.items()) ^ set(record.channels.items()))
        raise ConfigError(f"{source}: its pruning record does not match this model's groups (first "
                          f"difference: group {diff[0][0]!r}); rebuild it from the model it was pruned from")
    for g in analysis.groups:  # a group pruned in units (norm groups, convolution groups) loses whole units only
        gone = set(record.removed.get(g.name, []))
        if g.step > 1 and any(len(gone & set(unit.tolist())) not in (0, g.step) for unit in g.units()):
            raise ConfigError(f"{source}: its pruning record removes part of a unit of group {g.name!r} (its "
                              f"channels go {g.step} at a time); rebuild it from the model it was pruned from")
    return prune_physically(analysis, record.ranking(), record.kept)
