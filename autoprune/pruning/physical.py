"""Physical pruning: channels really removed with Torch-Pruning, so the model is smaller and faster."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping

import torch
import torch_pruning as tp
from torch import nn

from autoprune.analysis.groups import ModelAnalysis, head_attributes
from autoprune.outputs import flat_outputs


def prune_physically(analysis: ModelAnalysis, ranking: Mapping[str, torch.Tensor], kept: Mapping[str, int],
                     inplace: bool = False) -> nn.Module:
    """Return ``analysis.model`` (a copy unless ``inplace``) with each group cut to ``kept[group]`` channels.

    The removed channels are the least important ones of ``ranking``, the same ones
    :class:`~autoprune.pruning.MaskedPruner` masks.
    """
    model = analysis.model if inplace else copy.deepcopy(analysis.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=analysis.example_input,
                                                      verbose=False, output_transform=flat_outputs)
    head_sizes = {m: m.head_dim for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    for g in analysis.groups:
        n_remove = g.channels - int(kept.get(g.name, g.channels))
        if n_remove <= 0:
            continue
        root = model.get_submodule(g.name)
        idxs = sorted(int(i) for i in ranking[g.name][:n_remove])
        group = graph.get_pruning_group(root, graph.get_pruner_of_module(root).prune_out_channels, idxs)
        group.prune(record_history=False)
        for name in g.heads:  # whole heads removed: the attention module runs fewer of them
            attention = model.get_submodule(name)
            count, _ = head_attributes(attention)
            setattr(attention, count, int(kept[g.name]) // g.step)
            if isinstance(getattr(attention, "all_head_size", None), int):
                attention.all_head_size = int(kept[g.name])
            if g.fold > 1 and getattr(attention, "split_size", None) == g.channels:  # GPT-2 splits its fused q/k/v so
                attention.split_size = int(kept[g.name])
        if g.step > 1 and not g.interleaved:  # whole norm groups removed: each keeps its size, not their count
            for name in g.members:
                norm = model.get_submodule(name)
                if isinstance(norm, nn.GroupNorm):
                    norm.num_groups = norm.num_channels // g.step
    for attention, size in head_sizes.items():
        _keep_temperature(attention, size)
    return model


@torch.no_grad()
def _keep_temperature(m: nn.MultiheadAttention, head_size: int) -> None:
    """Scale the queries of an ``nn.MultiheadAttention`` whose heads shrank from ``head_size``: it divides
    the dot products by the square root of the new head size, and the scores must stay those of the
    unpruned heads over the kept channels (what masking the removed channels computes)."""
    if m.head_dim == head_size:
        return
    scale = (m.head_dim / head_size) ** 0.5
    m.in_proj_weight[:m.embed_dim].mul_(scale)
    if m.in_proj_bias is not None:
        m.in_proj_bias[:m.embed_dim].mul_(scale)
