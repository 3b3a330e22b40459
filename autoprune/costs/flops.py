"""The analytic FLOPs/params cost model (what most pruning papers budget on)."""

from __future__ import annotations

from autoprune.analysis.architecture import Architecture
from autoprune.costs.base import Cost, CostModel, analytic_counts


class FlopsCostModel(CostModel):
    """MACs and weights of the Conv/Linear layers; no latency."""

    name = "flops"
    metric = "flops"

    def cost(self, arch: Architecture) -> Cost:
        flops, params = analytic_counts(self.layers, arch)
        return Cost(flops=flops, params=params)
