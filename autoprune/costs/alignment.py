"""Channel-block alignment tolls: a width off a SIMD block costs more inside a whole model.

ONNX Runtime's x86 CPU provider runs convolutions in a blocked layout (NCHWc: 8 channels a block
with AVX2, 16 with AVX-512) only where channel counts are multiples of the block; a group whose
width is not one falls back to plain kernels and makes its neighbours reorder their tensors. A
layer profiled alone never pays its neighbours' reorders, so whole-model calibration learns one
non-negative toll (ms) per group and block size. Measured on an AVX-512 machine, cutting
MobileNetV2-small's 16-channel stem to 8 makes the whole model 5 % *slower*: latency is not
monotone in channels, and a faithful table must not be either.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoprune.analysis.architecture import Architecture
from autoprune.analysis.layers import LayerSpec

BLOCKS = (8, 16)  # NCHWc block sizes of ONNX Runtime's x86 kernels (AVX2, AVX-512)


def group_widths(layers: list[LayerSpec], arch: Architecture) -> dict[str, int]:
    """Channels each group keeps under ``arch`` (dense where ``arch`` does not name it)."""
    dense: dict[str, int] = {}
    for spec in layers:
        if spec.out_group is not None and not spec.out_slices:  # a split output is not one group's width
            dense.setdefault(spec.out_group, spec.out_channels)
    return {g: int(arch.get(g, c)) for g, c in dense.items()}


def alignment_keys(layers: list[LayerSpec]) -> list[tuple[str, int]]:
    """Every ``(group, block)`` pair a toll may be learned for."""
    return [(g, b) for g in group_widths(layers, {}) for b in BLOCKS]


def misaligned(layers: list[LayerSpec], arch: Architecture, keys: list[tuple[str, int]]) -> list[float]:
    """1.0 for each ``(group, block)`` of ``keys`` whose width is not a multiple of the block, else 0.0."""
    widths = group_widths(layers, arch)
    return [float(widths[g] % b != 0) for g, b in keys]


def alignment_toll(tolls: Mapping[str, Mapping[str, float]], layers: list[LayerSpec], arch: Architecture) -> float:
    """Sum of the tolls (ms) ``arch`` pays; ``tolls`` maps group -> {block size as text: ms}."""
    if not tolls:
        return 0.0
    widths = group_widths(layers, arch)
    return sum(ms for g, per_block in tolls.items() if g in widths
               for b, ms in per_block.items() if widths[g] % int(b) != 0)
