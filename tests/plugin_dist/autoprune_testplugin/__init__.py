"""A user's cost-model package, found by autoprune only through its entry point."""

from autoprune.analysis.architecture import Architecture
from autoprune.costs import Cost, CostModel, analytic_counts


class ChannelCountCostModel(CostModel):
    """Latency proportional to the channels kept: 1 microsecond per channel of every layer output."""

    name = "channel-count"

    def cost(self, arch: Architecture) -> Cost:
        flops, params = analytic_counts(self.layers, arch)
        channels = sum(arch.get(s.out_group, s.out_channels) if s.out_group else s.out_channels
                       for s in self.layers)
        return Cost(flops=flops, params=params, latency_ms=channels * 1e-3)


def make(analysis, **options):
    return ChannelCountCostModel(analysis.layers)
