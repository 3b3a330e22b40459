"""Hugging Face's ``Conv1D`` (GPT-2's layer: a Linear whose weight is stored transposed, ``(in, out)``)
as a layer Torch-Pruning can follow, prune and root groups at.

Torch-Pruning does not know the class: it would trace it as an element-wise op and leave its
weight whole. Every dependency graph built while autoprune runs registers the pruner below for
each such class found in the model (found by its shape: a module named ``Conv1D`` with ``nf``
output features and a 2-d weight of ``(in, nf)``, so the core needs no ``transformers`` import).
"""

from __future__ import annotations

from typing import Any

import torch_pruning as tp
from torch import nn


def is_transposed_linear(m: nn.Module) -> bool:
    """A ``Conv1D``: ``x @ weight + bias`` with ``weight`` of shape ``(in, nf)``."""
    weight = getattr(m, "weight", None)
    return (type(m).__name__ == "Conv1D" and isinstance(getattr(m, "nf", None), int)
            and isinstance(weight, nn.Parameter) and weight.dim() == 2 and weight.shape[1] == m.nf)


def out_features(m: nn.Module) -> int:
    return int(m.nf)


def in_features(m: nn.Module) -> int:
    return int(m.weight.shape[0])


class TransposedLinearPruner(tp.pruner.function.BasePruningFunc):
    """Removes output features (weight columns, bias entries, ``nf``) or input features (weight rows, ``nx``)."""

    def prune_out_channels(self, layer: nn.Module, idxs: list) -> nn.Module:
        keep = sorted(set(range(layer.nf)) - set(idxs))
        layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 1)
        if getattr(layer, "bias", None) is not None:
            layer.bias = self._prune_parameter_and_grad(layer.bias, keep, 0)
        layer.nf = len(keep)
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: list) -> nn.Module:
        keep = sorted(set(range(in_features(layer))) - set(idxs))
        layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 0)
        if isinstance(getattr(layer, "nx", None), int):
            layer.nx = len(keep)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return out_features(layer)

    def get_in_channels(self, layer: nn.Module) -> int:
        return in_features(layer)


class _LinearView(nn.Linear):
    """A ``Conv1D`` shown to Torch-Pruning's importance criteria as the transposed layer it is (its
    parameters shared, not copied): they read a transposed layer's weight as ``(in, out)``."""

    def __init__(self, layer: nn.Module) -> None:
        nn.Module.__init__(self)
        self.weight, self.bias, self.transposed = layer.weight, getattr(layer, "bias", None), True


class _Dependency:
    """A dependency as Torch-Pruning's importance criteria read it, on a :class:`_LinearView`."""

    def __init__(self, view: nn.Linear, out: bool) -> None:
        fn = tp.pruner.function.prune_linear_out_channels if out else tp.pruner.function.prune_linear_in_channels
        self.layer, self.pruning_fn, self.handler = view, fn, fn
        self.target = type("Target", (), {"module": view})()


class _Item(tuple):
    root_idxs: list | None = None


def linear_view(group: tp.Group) -> Any:
    """``group`` with each ``Conv1D`` seen as a transposed Linear, so Torch-Pruning's importance
    criteria (which skip layers they do not know) score its channels; ``group`` itself when it has none."""
    if not any(is_transposed_linear(dep.target.module) for dep, _ in group):
        return group
    items, views = [], {}
    for item in group:
        dep, idxs = item
        module = dep.target.module
        if is_transposed_linear(module):
            view = views.setdefault(id(module), _LinearView(module))
            out = isinstance(dep.handler.__self__, TransposedLinearPruner) and \
                dep.handler.__func__ is TransposedLinearPruner.prune_out_channels
            new = _Item((_Dependency(view, out), list(idxs)))
        else:
            new = _Item((dep, idxs))
        new.root_idxs = item.root_idxs
        items.append(new)
    return items


def transposed_linear_types(model: nn.Module) -> list[type]:
    """The ``Conv1D`` classes in ``model``."""
    return list(dict.fromkeys(type(m) for m in model.modules() if is_transposed_linear(m)))


_original_build = tp.DependencyGraph.build_dependency


def _build_dependency(self: tp.DependencyGraph, model: nn.Module, *args: Any, **kwargs: Any) -> tp.DependencyGraph:
    found = transposed_linear_types(model)
    if found:
        pruners = dict(kwargs.get("customized_pruners") or {})
        for kind in found:
            pruners.setdefault(kind, TransposedLinearPruner())
        kwargs["customized_pruners"] = pruners
    return _original_build(self, model, *args, **kwargs)


if tp.DependencyGraph.build_dependency is not _build_dependency:
    tp.DependencyGraph.build_dependency = _build_dependency
