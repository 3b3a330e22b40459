"""The ``CostModel`` interface: one method, architecture -> :class:`Cost`."""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from autoprune.analysis.architecture import Architecture, layer_channels
from autoprune.analysis.layers import LayerSpec
from autoprune.errors import AutopruneError, ConfigError
from autoprune.records import CostModelRecord


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


def checked_cost(cost_model: CostModel, kept: Mapping[str, int]) -> Cost:
    """``cost_model.cost(kept)``, refused in one line naming the model unless it is a :class:`Cost`
    of finite, non-negative numbers (a plug-in's inf or NaN must not reach a policy file)."""
    name = getattr(cost_model, "name", type(cost_model).__name__)
    try:
        cost = cost_model.cost(kept)
    except AutopruneError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plug-in's bug: one line naming it
        raise ConfigError(f"cost model {name!r} raised {type(exc).__name__}: {str(exc)[:200]}; fix the plug-in") from None
    if not isinstance(cost, Cost):
        raise ConfigError(f"cost model {name!r} returned {type(cost).__name__}, not a Cost; fix the plug-in")
    for field in ("flops", "params", "latency_ms"):
        value = getattr(cost, field)
        ok = value is None and field == "latency_ms" or (
            isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0)
        if not ok:
            raise ConfigError(f"cost model {name!r} returned {field}={value!r}; costs must be finite, "
                              f"non-negative numbers; fix the plug-in")
    return cost


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

    def measured_dense(self) -> float | None:
        """The unpruned model's measured ``metric`` when this model holds a measurement of it (a
        budget given as a share is then a share of it); None: shares of :meth:`dense_cost`."""
        return None

    def describe(self) -> CostModelRecord:
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
