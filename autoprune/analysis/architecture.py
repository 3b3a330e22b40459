"""An architecture is the number of channels kept per group: what a cost model prices."""

from __future__ import annotations

from typing import Mapping

from autoprune.analysis.layers import LayerSpec

Architecture = Mapping[str, int]  # group name -> channels kept


def layer_channels(layer: LayerSpec, arch: Architecture) -> tuple[int, int]:
    """``(c_in, c_out)`` of ``layer`` under ``arch`` (groups absent from ``arch`` stay dense)."""
    c_in = arch.get(layer.in_group, layer.in_channels) if layer.in_group else layer.in_channels
    c_out = arch.get(layer.out_group, layer.out_channels) if layer.out_group else layer.out_channels
    return int(c_in), int(c_out)
