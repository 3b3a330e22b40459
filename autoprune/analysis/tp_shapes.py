"""Channel sizes of splits and concatenations, as the traced forward saw them, for Torch-Pruning's graph.

Torch-Pruning reads a split's sizes from the autograd node, looking for ``_saved_split_sizes`` or
``_saved_self_sizes``; current torch saves an even split (``chunk``, ``split(x, 16)``) as
``_saved_split_size`` and ``_saved_self_sym_sizes``, so it falls back to guessing the sizes from
the consumers. A concatenation's sizes are always guessed (its autograd node keeps none), and the
guess fails when a slice of a split feeds it, or when it feeds a split: the graph then maps
channels to the wrong layers, or to none. Here the trace records every ``torch.cat`` along the
channel axis of a feature map as it runs, and the shape pass takes the sizes the forward really had.
(A chunked tensor still needs every slice to lose as many channels; the prunability check keeps
such a group whole.)
"""

from __future__ import annotations

from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch.overrides import TorchFunctionMode
from torch_pruning.dependency import index_mapping, shape_infer
from torch_pruning.dependency.index_mapping import _ConcatIndexMapping, _SplitIndexMapping

from autoprune.analysis.transposed_linear import is_transposed_linear

CATS = (torch.cat, torch.concat, torch.concatenate)


class _CatSizes(TorchFunctionMode):
    """Records, by the output's autograd node, the channel sizes of each concatenation along dim 1."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: dict[Any, list[int]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in CATS and isinstance(out, torch.Tensor) and out.grad_fn is not None:
            tensors = args[0] if args else kwargs.get("tensors", ())
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            # dim 1 is the channel axis of a feature map (N, C, H, W) or of features (N, C); of a
            # sequence (N, T, E) or (N, C, L) it may be the tokens: left to Torch-Pruning's own rules
            if out.dim() in (2, 4) and dim % out.dim() == 1:
                self.sizes[out.grad_fn] = [int(t.shape[1]) for t in tensors]
        return out


def _even_split_sizes(grad_fn: object, outputs: int, features_last: bool = False) -> tuple[list[int], int] | None:
    """The sizes of an even split along dim 1, or along the features of a token sequence when
    ``features_last`` (the last slice takes the remainder), and the axis split; else None."""
    size, dims, dim = (getattr(grad_fn, name, None) for name in ("_saved_split_size", "_saved_self_sym_sizes",
                                                                 "_saved_dim"))
    if size is None or dims is None or len(dims) < 2:
        return None
    axis = len(dims) - 1 if features_last and len(dims) == 3 else 1
    if dim is None or dim % len(dims) != axis:
        return None
    total, size = int(dims[axis]), int(size)
    sizes = [min(size, total - size * i) for i in range((total + size - 1) // size)]
    return (sizes, axis) if len(sizes) == outputs and all(s > 0 for s in sizes) else None


def _offsets(sizes: list[int]) -> list[int]:
    return [sum(sizes[:i]) for i in range(len(sizes) + 1)]


_original_trace = tp.DependencyGraph._trace
_original_shapes = shape_infer.init_shape_information
_original_concat = index_mapping.update_concat_index_mapping
_original_split = index_mapping.update_split_index_mapping


def _trace(self: tp.DependencyGraph, *args: Any, **kwargs: Any) -> Any:
    with _CatSizes() as seen:
        result = _original_trace(self, *args, **kwargs)
    self.autoprune_cat_sizes = seen.sizes
    return result


def init_shape_information(graph: tp.DependencyGraph) -> None:
    """Torch-Pruning's shape pass, then every even split's sizes as its autograd node records them."""
    _original_shapes(graph)
    for node in graph.module2node.values():
        if node.type != tp.ops.OPTYPE.SPLIT:
            continue
        found = _even_split_sizes(node.grad_fn, len(node.outputs), _splits_linear_features(node))
        if found is not None:
            sizes, axis = found
            node.module.split_sizes, node.module.offsets = sizes, _offsets(sizes)
            node.module.autoprune_features_last = axis != 1  # mapped by update_split_index_mapping below


def _splits_linear_features(node: Any) -> bool:
    """Whether a split node cuts the features of a linear layer's output on tokens, ``(N, T, C)``
    split along C (GPT-2's fused query/key/value): its channels, as the linear layer produces them."""
    producer = node.inputs[0].module if len(node.inputs) == 1 else None
    return isinstance(producer, nn.Linear) or is_transposed_linear(producer)


def update_split_index_mapping(graph: tp.DependencyGraph, split_node: Any) -> None:
    """Torch-Pruning's split mapping, which follows dim 1 only, also for a split of a linear layer's
    features on tokens (the last dim of ``(N, T, C)``)."""
    if not getattr(split_node.module, "autoprune_features_last", False):
        return _original_split(graph, split_node)
    if split_node.enable_index_mapping:
        _map_slices(split_node, split_node.outputs, 0, _SplitIndexMapping, outward_reverse=False)
    return None


def update_concat_index_mapping(graph: tp.DependencyGraph, cat_node: Any) -> None:
    """Torch-Pruning's concatenation mapping (redone after every prune), starting from the sizes the
    traced forward had when recorded."""
    sizes = getattr(graph, "autoprune_cat_sizes", {}).get(cat_node.grad_fn)
    if cat_node.type != tp.ops.OPTYPE.CONCAT or sizes is None or len(sizes) != len(cat_node.inputs):
        try:
            return _original_concat(graph, cat_node)
        except TypeError:  # an input whose channels it cannot tell (None in its sum): no mapping, as it intends
            return None
    if cat_node.module.concat_sizes is None:  # first seen: as traced; later (after a prune) as Torch-Pruning kept them
        cat_node.module.concat_sizes = list(sizes)
    cat_node.module.offsets = _offsets(list(cat_node.module.concat_sizes))
    if cat_node.enable_index_mapping:
        _map_slices(cat_node, cat_node.inputs, 1, _ConcatIndexMapping, outward_reverse=True)
    return None


def _map_slices(node: Any, parts: list[Any], slot: int, mapping: type, outward_reverse: bool) -> None:
    """Torch-Pruning's offset mapping for each slice ``i`` of ``node`` (a split's outputs, a
    concatenation's inputs), at ``node.module.offsets[i:i + 2]``: on the node's first dependency on
    the slice (``reverse=outward_reverse``), then on the slice's first dependency on the node."""
    offsets = node.module.offsets
    for outward in (True, False):
        done: list[Any] = []
        for i, part in enumerate(parts):
            for dep in (node.dependencies if outward else part.dependencies):
                if any(dep is d for d in done):
                    continue
                if dep.target == (part if outward else node):
                    dep.index_mapping[slot] = mapping(offset=offsets[i:i + 2],
                                                      reverse=outward_reverse if outward else not outward_reverse)
                    done.append(dep)
                    break


if tp.DependencyGraph._trace is not _trace:
    tp.DependencyGraph._trace = _trace
    shape_infer.init_shape_information = init_shape_information
    index_mapping.update_concat_index_mapping = update_concat_index_mapping
    index_mapping.update_split_index_mapping = update_split_index_mapping
