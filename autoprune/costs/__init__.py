"""Hardware cost models: architecture (channels kept per group) -> latency / FLOPs / params."""

from autoprune.costs.base import Cost, CostModel, LatencyCostModel, analytic_counts, checked_cost
from autoprune.costs.flops import FlopsCostModel
from autoprune.costs.lut import LatencyTable, LookupTableCostModel
from autoprune.costs.measured import MeasuredLatencyCostModel
from autoprune.costs.profiling import profile_latency_table
from autoprune.costs.registry import (
           COST_MODELS,
           create_cost_model,
           list_cost_models,
           register_cost_model,
)
from autoprune.costs.roofline import (
           DEVICE_PROFILES,
           DeviceProfile,
           RooflineCostModel,
           load_device_profile,
)

__all__ = ["COST_MODELS", "Cost", "CostModel", "checked_cost", "DEVICE_PROFILES", "DeviceProfile", "FlopsCostModel",
           "LatencyCostModel", "LatencyTable", "LookupTableCostModel", "MeasuredLatencyCostModel", "RooflineCostModel",
           "analytic_counts", "create_cost_model", "list_cost_models", "load_device_profile",
           "profile_latency_table", "register_cost_model"]
