"""An architecture is the number of channels kept per group: what a cost model prices."""

from __future__ import annotations

import json
from collections.abc import Mapping

from autoprune.analysis.layers import LayerSpec

Architecture = Mapping[str, int]  # group name -> channels kept


def architecture_key(arch: Architecture | str) -> str:
    """One text per architecture, whatever the order of its groups (a mapping, or the JSON a
    history row holds): how searches tell candidates apart and pool their scores."""
    return json.dumps(json.loads(arch) if isinstance(arch, str) else dict(arch), sort_keys=True)


def layer_channels(layer: LayerSpec, arch: Architecture) -> tuple[int, int]:
    """``(c_in, c_out)`` of ``layer`` under ``arch`` (groups absent from ``arch`` stay dense).

    An input fed by several groups (``torch.cat``) loses each group's removed channels, times the
    features each channel feeds (a flatten before a Linear); inputs no group feeds stay.
    """
    if layer.out_slices:
        c_out = layer.out_channels - sum(channels - arch.get(group, channels) for group, channels in layer.out_slices)
    else:
        c_out = arch.get(layer.out_group, layer.out_channels) if layer.out_group else layer.out_channels
    if layer.kind == "depthwise" and layer.out_group:
        c_in = c_out
    elif layer.in_slices:
        c_in = layer.in_channels - sum(width * (channels - arch.get(group, channels)) // channels
                                       for group, channels, width in layer.in_slices)
    else:
        c_in = arch.get(layer.in_group, layer.in_channels) if layer.in_group else layer.in_channels
    return int(c_in), int(c_out)
