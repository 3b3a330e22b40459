"""Check, before any search time is spent, that every group really prunes as the analysis says.

Torch-Pruning infers couplings from the traced graph; a custom layer it does not understand (a
reshape of the channel axis, a hand-written op) can make it remove other channels than asked or
break the forward pass. One trial cut of every group on a copy catches both, and names the layer.
"""

from __future__ import annotations

import torch
from torch import nn

from autoprune.analysis.groups import ModelAnalysis
from autoprune.errors import AnalysisError
from autoprune.pruning.physical import prune_physically
from autoprune.pruning.ratios import channels_kept


def check_prunable(analysis: ModelAnalysis) -> None:
    """Raise :class:`AnalysisError` naming the first group (and layer) that does not prune cleanly."""
    half = {g.name: channels_kept(g.channels, 0.5) for g in analysis.groups}
    if _problem(analysis, half) is None:
        return
    for g in analysis.groups:  # find the culprit: one group at a time
        problem = _problem(analysis, {g.name: half[g.name]})
        if problem:
            raise AnalysisError(f"group {g.name!r} cannot be pruned reliably: {problem}; exclude it "
                                f"(--exclude {g.name}) or replace the custom layer next to it")
    raise AnalysisError("pruning all groups together breaks the model although each group prunes "
                        "alone; exclude groups one by one (--exclude) to find the pair")


def _problem(analysis: ModelAnalysis, kept: dict[str, int]) -> str | None:
    """What goes wrong when the groups in ``kept`` are cut to those counts (None: nothing)."""
    # every other channel: contiguous blocks can hide a wrong coupling (e.g. a reshaped channel axis)
    ranking = {g.name: torch.cat([torch.arange(0, g.channels, 2), torch.arange(1, g.channels, 2)])
               for g in analysis.groups}
    try:
        model = prune_physically(analysis, ranking, kept)
    except Exception as exc:  # Torch-Pruning failing on an unknown op
        return f"Torch-Pruning failed ({type(exc).__name__}: {str(exc)[:120]})"
    for g in analysis.groups:
        want = kept.get(g.name, g.channels)
        for name in g.producers:
            got = _out_channels(model.get_submodule(name))
            if got != want:
                return f"asked to keep {want} of {g.channels} channels, layer {name!r} kept {got}"
    try:
        with torch.no_grad():
            model.eval()(analysis.example_input)
    except Exception as exc:
        return f"the pruned model fails to run ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def _out_channels(module: nn.Module) -> int | None:
    if isinstance(module, nn.Conv2d):
        return module.out_channels
    if isinstance(module, nn.Linear):
        return module.out_features
    return None
