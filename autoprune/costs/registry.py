"""Cost models by name; installed packages add theirs through the ``autoprune.cost_models`` entry points.

A factory takes the model analysis plus keyword options and returns a :class:`CostModel`::

    # in a user's pyproject.toml
    [project.entry-points."autoprune.cost_models"]
    my-npu = "my_pkg.cost:make_npu_cost_model"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autoprune.analysis.groups import ModelAnalysis
from autoprune.costs.base import CostModel
from autoprune.costs.coverage import coverage
from autoprune.costs.flops import FlopsCostModel
from autoprune.costs.lut import LookupTableCostModel
from autoprune.costs.measured import MeasuredLatencyCostModel
from autoprune.costs.roofline import RooflineCostModel
from autoprune.errors import ConfigError
from autoprune.latency import LatencySettings
from autoprune.registry import Registry

COST_MODELS: Registry[CostModel] = Registry("cost model", entry_point_group="autoprune.cost_models")


def register_cost_model(name: str) -> Callable:
    """Decorator registering a factory ``(analysis, **options) -> CostModel`` under ``name``."""
    return COST_MODELS.register(name)


@register_cost_model("flops")
def _flops(analysis: ModelAnalysis, **_: Any) -> CostModel:
    found = coverage(analysis)
    return FlopsCostModel(analysis.layers, max(0, found.total_macs - found.counted_macs), found.describe())


@register_cost_model("ort-measured")
def _ort(analysis: ModelAnalysis, threads: int = 1, batch_size: int = 1, provider: str = "CPUExecutionProvider",
         **_: Any) -> CostModel:
    return MeasuredLatencyCostModel(analysis, LatencySettings("onnxruntime", batch_size, threads, provider=provider))


@register_cost_model("torch-measured")
def _torch(analysis: ModelAnalysis, threads: int = 1, batch_size: int = 1, **_: Any) -> CostModel:
    return MeasuredLatencyCostModel(analysis, LatencySettings("torch", batch_size, threads))


@register_cost_model("lut")
def _lut(analysis: ModelAnalysis, table: str | None = None, **_: Any) -> CostModel:
    if not table:
        raise ConfigError("the lut cost model needs a table: pass --table FILE (made by 'autoprune profile')")
    return LookupTableCostModel(analysis, table)


@register_cost_model("roofline")
def _roofline(analysis: ModelAnalysis, hardware_profile: str = "cortex-a76", **_: Any) -> CostModel:
    return RooflineCostModel(analysis, hardware_profile)


def create_cost_model(name: str, analysis: ModelAnalysis, **options: Any) -> CostModel:
    """Build the cost model registered as ``name`` for ``analysis``'s model."""
    model = COST_MODELS.get(name)(analysis, **options)
    if not isinstance(model, CostModel):
        raise ConfigError(f"cost model {name!r} returned {type(model).__name__}, not a CostModel")
    return model


def list_cost_models() -> list[str]:
    """Registered names, plug-ins included."""
    return COST_MODELS.names()
