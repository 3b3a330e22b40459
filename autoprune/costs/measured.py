"""Measured latency: the candidate is physically pruned and timed (ONNX Runtime or torch), cached."""

from __future__ import annotations

import torch

from autoprune.analysis.architecture import Architecture
from autoprune.analysis.groups import ModelAnalysis
from autoprune.costs.base import LatencyCostModel
from autoprune.latency import LatencySettings, measure_latency
from autoprune.pruning.physical import prune_physically


class MeasuredLatencyCostModel(LatencyCostModel):
    """Ground truth, slow (~0.3-1 s per new architecture): verification and fidelity checks.

    Which channels are removed does not change latency, so channels are dropped by index.
    """

    name = "measured"

    def __init__(self, analysis: ModelAnalysis, settings: LatencySettings = LatencySettings()) -> None:
        super().__init__(analysis.layers)
        self.analysis = analysis
        self.settings = settings
        self.name = f"{settings.backend}-measured"
        self._ranking = {g.name: _reverse_index(g.channels) for g in analysis.groups}
        self._cache: dict[tuple, float] = {}

    def latency(self, arch: Architecture) -> float:
        """Measured latency (ms) of the physically pruned ``arch``, measured once per architecture."""
        key = tuple(int(arch.get(g.name, g.channels)) for g in self.analysis.groups)
        if key not in self._cache:
            model = prune_physically(self.analysis, self._ranking, arch)
            shape = tuple(self.analysis.example_input.shape[1:])
            self._cache[key] = measure_latency(model, shape, self.settings)
        return self._cache[key]

    def describe(self) -> dict:
        return {**super().describe(), **self.settings.__dict__}


def _reverse_index(n: int) -> torch.Tensor:
    return torch.arange(n - 1, -1, -1)
