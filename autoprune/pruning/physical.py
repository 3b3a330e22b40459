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
        if g.step > 1 and not g.interleaved:  # whole norm groups removed: each keeps its size, not their count
            for name in g.members:
                norm = model.get_submodule(name)
                if isinstance(norm, nn.GroupNorm):
                    norm.num_groups = norm.num_channels // g.step
    return model
