"""Torch-Pruning's global magnitude pruning, sized to a budget: the classic one-shot baseline.

Torch-Pruning's ``MagnitudePruner(global_pruning=True)`` ranks every channel of every group on one
scale (group-mean-normalised Lp norms) and removes the lowest ``pruning_ratio`` share, so the
layer allocation follows the weights. :func:`size_global_magnitude` finds the smallest such ratio
whose pruned architecture meets a budget under a cost model.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import torch_pruning as tp

from autoprune.analysis.groups import ModelAnalysis
from autoprune.analysis.layers import ROOTS, out_width
from autoprune.analysis.transposed_linear import (
    transposed_linear_types,
)
from autoprune.outputs import flat_outputs
from autoprune.pruning.importance import GroupMagnitude
from autoprune.pruning.ratios import DEFAULT_MAX_RATIO


def global_magnitude_kept(analysis: ModelAnalysis, ratio: float, max_ratio: float = DEFAULT_MAX_RATIO, round_to: int = 1,
                          p: int = 1) -> dict[str, int]:
    """Channels kept per group after Torch-Pruning's global magnitude pruning at ``ratio``.

    Runs the pruner on a copy of the model; ``max_ratio`` caps any one group's share removed,
    ``p`` is the norm (1 matches the ``l1`` channel ranking, so the same channels go).
    """
    model = copy.deepcopy(analysis.model)
    names = {n for n, _ in model.named_modules()}
    ignored = [model.get_submodule(n) for n in _fixed_roots(analysis) if n in names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MagnitudePruner(
            model, analysis.example_input, importance=GroupMagnitude(p=p),
            global_pruning=True, pruning_ratio=float(ratio), max_pruning_ratio=float(max_ratio),
            ignored_layers=ignored, round_to=round_to if round_to > 1 else None,
            root_module_types=[*ROOTS, *transposed_linear_types(model)], output_transform=flat_outputs)
        if ratio > 0:
            pruner.step()
    # Torch-Pruning thins a GroupNorm's groups evenly; autoprune removes them whole: the same count, rounded down
    return {g.name: max(g.step, out_width(model.get_submodule(g.name)) // g.fold // g.step * g.step)
            for g in analysis.groups}


def size_global_magnitude(analysis: ModelAnalysis, fits: Callable[[dict[str, int]], bool], max_ratio: float = DEFAULT_MAX_RATIO,
                          round_to: int = 1, p: int = 1, grid: int = 40,
                          iters: int = 8) -> tuple[float, dict[str, int]]:
    """The smallest global ratio whose architecture ``fits`` (the budget), and that architecture.

    Cost is not monotone in the global ratio: Torch-Pruning skips a group whose rounded cut would
    break ``max_ratio``, so at high ratios small groups stay whole. Hence a grid scan for the
    first ratio that fits, then bisection between it and the grid point before it.

    Raises:
        ValueError: when no ratio on the grid fits.
    """
    lo, found = 0.0, None
    for ratio in [i / grid for i in range(grid)]:
        kept = global_magnitude_kept(analysis, ratio, max_ratio, round_to, p)
        if fits(kept):
            found = (ratio, kept)
            break
        lo = ratio
    if found is None:
        raise ValueError("Torch-Pruning's global magnitude pruning meets the budget at no global ratio")
    hi, kept_hi = found
    for _ in range(iters if hi > 0 else 0):
        mid = (lo + hi) / 2
        kept = global_magnitude_kept(analysis, mid, max_ratio, round_to, p)
        if fits(kept):
            hi, kept_hi = mid, kept
        else:
            lo = mid
    return hi, kept_hi


def _fixed_roots(analysis: ModelAnalysis) -> list[str]:
    """Layers whose output channels no group prunes (output layers, excluded, kept whole)."""
    touched = {n for g in analysis.groups for n in g.producers}
    return [layer.name for layer in analysis.layers if layer.name not in touched and layer.kind != "attention"]
