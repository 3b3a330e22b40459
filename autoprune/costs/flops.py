"""The analytic FLOPs/params cost model (what most pruning papers budget on)."""

from __future__ import annotations

from collections.abc import Sequence

from autoprune.analysis.architecture import Architecture
from autoprune.analysis.layers import LayerSpec
from autoprune.costs.base import Cost, CostModel, analytic_counts


class FlopsCostModel(CostModel):
    """MACs and weights of the Conv/Linear layers and attention's matmuls, plus ``fixed_macs``: the
    work an independent count finds elsewhere (a Conv1d, attention's matmuls, a module's second call), at its dense value.

    The fixed part keeps a FLOPs budget honest on any model: the count covers every MAC, and work
    the layers do not price is never taken as pruned (a conservative bound: pruning can only lower it).
    """

    name = "flops"
    metric = "flops"

    def __init__(self, layers: Sequence[LayerSpec], fixed_macs: int = 0, fixed_parts: str = "") -> None:
        super().__init__(layers)
        self.fixed_macs, self.fixed_parts = int(fixed_macs), fixed_parts  # parts: what the fixed work is

    def cost(self, arch: Architecture) -> Cost:
        flops, params = analytic_counts(self.layers, arch)
        return Cost(flops=flops + self.fixed_macs, params=params)
