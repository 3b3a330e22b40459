"""Channel reordering: the most important channels of every group first, the function unchanged.

After :func:`reorder_channels`, keeping the first ``k`` channels of a group is keeping its ``k``
most important ones, so variants of any widths share one set of weights and nest (each smaller
variant keeps a subset of every larger one's channels): the basis of slimmable networks.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from autoprune.analysis import ModelAnalysis
from autoprune.errors import ConfigError
from autoprune.outputs import flat_outputs

SLICEABLE = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)  # exactly these types, not subclasses


@dataclass(frozen=True)
class GroupSpan:
    """Where group ``group`` sits in one module's channels: ``positions`` (ascending), of which the
    first ``per_channel * k`` are active when the group keeps ``k`` channels."""

    group: str
    positions: tuple[int, ...]
    per_channel: int  # positions per channel (> 1 where a flatten feeds a linear layer)


@dataclass
class ModuleSpans:
    """The groups a module's output and input channels belong to."""

    out: list[GroupSpan]
    inp: list[GroupSpan]


def reorder_channels(analysis: ModelAnalysis, ranking: Mapping[str, torch.Tensor]
                     ) -> tuple[ModelAnalysis, dict[str, ModuleSpans]]:
    """A copy of ``analysis.model`` with every group's channels sorted by importance (most
    important first), as an analysis of the same groups, and where each group sits in each
    sliceable module. The copy computes exactly what the original does."""
    model = copy.deepcopy(analysis.model).eval()
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=analysis.example_input, verbose=False,
                                                      output_transform=flat_outputs)
    names = {m: n for n, m in model.named_modules()}
    spans: dict[str, ModuleSpans] = {n: ModuleSpans([], []) for n, m in model.named_modules() if type(m) in SLICEABLE}
    for g in analysis.groups:
        order = [int(i) for i in reversed(ranking[g.name].tolist())]  # ranking: least important first
        root = model.get_submodule(g.name)
        group = graph.get_pruning_group(root, graph.get_pruner_of_module(root).prune_out_channels, order)
        done: set[tuple[str, int]] = set()
        for dep, idxs in group:
            module = dep.target.module
            name = names.get(module)
            if name is None or not isinstance(module, nn.Module) or not list(module.parameters(recurse=False)) \
                    and not isinstance(module, nn.modules.batchnorm._BatchNorm):
                continue
            if type(module) not in SLICEABLE:
                raise ConfigError(f"dynamic width does not support {type(module).__name__} ({name}) in group "
                                  f"{g.name}; exclude the group (--exclude) or use separate pruned models")
            out = graph.is_out_channel_pruning_fn(dep.handler) or is_depthwise(module)
            dim = 0 if out else 1
            if (name, dim) in done:
                continue
            done.add((name, dim))
            mapped = [int(i) for i in idxs]
            _permute(module, dim, mapped)
            span = GroupSpan(g.name, tuple(sorted(mapped)), len(mapped) // g.channels)
            (spans[name].out if out else spans[name].inp).append(span)
    return dataclasses.replace(analysis, model=model, graph=graph), spans


def is_depthwise(module: nn.Module) -> bool:
    """A depthwise conv: its input and output channels are the same channels."""
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


@torch.no_grad()
def _permute(module: nn.Module, dim: int, mapped: list[int]) -> None:
    """Move the channels at ``mapped`` (in that order) to the ascending positions they occupy."""
    positions = torch.tensor(sorted(mapped))
    source = torch.tensor(mapped)
    tensors = [module.weight] if dim == 1 else [t for t in (
        getattr(module, "weight", None), getattr(module, "bias", None),
        getattr(module, "running_mean", None), getattr(module, "running_var", None)) if t is not None]
    for t in tensors:
        t.index_copy_(dim, positions, t.index_select(dim, source))
