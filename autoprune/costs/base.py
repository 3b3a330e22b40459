"""The ``CostModel`` interface: one method, architecture -> :class:`Cost`."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from autoprune.analysis.architecture import Architecture, layer_channels
from autoprune.analysis.layers import LayerSpec


@dataclass(frozen=True)
class Cost:
    """What an architecture costs. ``latency_ms`` is None for models that do not predict time."""

    flops: int  # multiply-accumulates of Conv/Linear layers
    params: int
    latency_ms: float | None = None

    def value(self, metric: str) -> float:
        """The figure a budget is expressed in: ``latency_ms``, ``flops`` or ``params``."""
        v = getattr(self, metric)
        if v is None:
            raise ValueError(f"this cost has no {metric}")
        return float(v)


def analytic_counts(layers: list[LayerSpec], arch: Architecture) -> tuple[int, int]:
    """``(MACs, weights)`` of ``layers`` under ``arch``: exact, cheap, hardware-independent."""
    flops = params = 0
    for spec in layers:
        c_in, c_out = layer_channels(spec, arch)
        flops += spec.macs(c_in, c_out)
        params += spec.params(c_in, c_out)
    return flops, params


class CostModel(abc.ABC):
    """Prices an architecture (channels kept per group) on some hardware.

    Subclasses set ``metric`` (the figure budgets use: ``"latency_ms"`` or ``"flops"``) and
    ``name``, and implement :meth:`cost`. Costs need not be monotone in channels (measured latency
    is not): the budget projection and the wall only keep architectures they priced within budget.
    """

    name: str = "cost"
    metric: str = "latency_ms"

    def __init__(self, layers: list[LayerSpec]) -> None:
        self.layers = layers

    @abc.abstractmethod
    def cost(self, arch: Architecture) -> Cost:
        """The cost of ``arch`` (groups not named keep all their channels)."""

    def dense_cost(self) -> Cost:
        """The cost of the unpruned model."""
        return self.cost({})

    def describe(self) -> dict:
        """Settings that identify this cost model, recorded in policies and run folders."""
        return {"name": self.name, "metric": self.metric}


class LatencyCostModel(CostModel):
    """A cost model that predicts latency: implement :meth:`latency`; FLOPs/params come analytically."""

    metric = "latency_ms"

    @abc.abstractmethod
    def latency(self, arch: Architecture) -> float:
        """Latency (ms) of ``arch``."""

    def cost(self, arch: Architecture) -> Cost:
        flops, params = analytic_counts(self.layers, arch)
        return Cost(flops=flops, params=params, latency_ms=self.latency(arch))
