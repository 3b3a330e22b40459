"""Masked pruning: fast, reversible candidate evaluation without copying the model.

Forward hooks zero the removed channels at the output of every layer that produces them (convs,
linears and their norms). Downstream layers then see zeros, which is exactly what physical removal
computes, so masked and physical models give the same outputs for the same policy. Channels are
dimension 1 of a conv's or batch norm's output and the last dimension of a linear layer's or layer
norm's (a ``Linear`` on tokens, ``(batch, tokens, features)``); a layer norm is recomputed over
the kept features only, as the physically pruned one normalises. An ``nn.MultiheadAttention``'s
embedding channels are masked in its weights instead (the query, key, value and output rows
zeroed), and its fused inference kernels are switched off while masks are applied (they would
skip the hooks of the layers around it).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from autoprune.analysis.groups import ModelAnalysis
from autoprune.analysis.transposed_linear import is_transposed_linear


class MaskedPruner:
    """Applies and removes channel masks on ``analysis.model``; also snapshots BN statistics.

    Usage::

        pruner = MaskedPruner(analysis, ranking)
        with pruner.applied(kept):       # kept: group name -> channels kept
            recalibrate_bn(model, ...)   # BN stats are restored on exit
            acc = evaluate(model, ...)
    """

    def __init__(self, analysis: ModelAnalysis, ranking: Mapping[str, torch.Tensor],
                 restore_bn: bool = True) -> None:
        self.analysis = analysis
        self.ranking = ranking
        self.restore_bn = restore_bn  # False when training with masks (gradual pruning) keeps the statistics
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._bn_state: dict[str, torch.Tensor] | None = None
        self._members = {g.name: self._out_members(g.name) for g in analysis.groups}
        self._params = {g.name: self._param_members(g.name) for g in analysis.groups}
        self._saved_params: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._fastpath: bool | None = None  # the fused-attention setting while masks are applied

    def _out_members(self, group: str) -> dict[str, torch.Tensor]:
        """Modules whose output channels belong to ``group`` (producers and their norms), each with
        the indices of its output channels for every channel of the group, one row per channel (a
        slice of a wider output when a concatenation splits it over several groups; one index in
        each slice of a fused projection, see ``PrunableGroup.fold``)."""
        tp_group = self.analysis.tp_group(group)
        graph = self.analysis.graph
        members: dict[str, torch.Tensor] = {}
        modules = dict(self.analysis.model.named_modules())
        for item in tp_group:
            dep, idxs = item
            name = graph._module2name.get(dep.target.module)
            if isinstance(modules.get(name), nn.MultiheadAttention):  # masked in its weights (_param_members)
                continue
            if name in modules and graph.is_out_channel_pruning_fn(dep.handler) and name not in members:
                members[name] = _by_channel(idxs, getattr(item, "root_idxs", None))
        return members

    def _param_members(self, group: str) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
        """Parameters used directly in forward that the group indexes (a class token, a layer
        scale): each with its channel dimension and its index for every channel of the group."""
        dims = {id(p): dim for p, dim in self.analysis.graph.unwrapped_parameters}
        found, seen = [], set()
        for dep, idxs in self.analysis.tp_group(group):
            param = dep.target.module
            index = torch.as_tensor([int(i) for i in idxs], dtype=torch.long)
            if isinstance(param, torch.Tensor) and id(param) in dims:
                found.append((param, dims[id(param)], index))
            elif isinstance(param, nn.MultiheadAttention) and id(param) not in seen:
                seen.add(id(param))
                found.extend(_attention_rows(param, index))
        return found

    def apply(self, kept: Mapping[str, int]) -> None:
        """Mask every group down to ``kept[group]`` channels (its most important ones)."""
        self.remove()
        removed: dict[str, list[torch.Tensor]] = {}
        for g in self.analysis.groups:
            n_keep = int(kept.get(g.name, g.channels))
            if n_keep >= g.channels:
                continue
            dropped = self.ranking[g.name][: g.channels - n_keep]
            for member, index in self._members[g.name].items():
                removed.setdefault(member, []).append(index[dropped].reshape(-1))
            for param, dim, index in self._params[g.name]:  # zeroed in place, restored by remove()
                self._saved_params.append((param, param.data.clone()))
                param.data.index_fill_(dim, index[dropped].to(param.device), 0.0)
        model = self.analysis.model
        if self._fastpath is None:
            self._fastpath = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
        for name, parts in removed.items():
            module = model.get_submodule(name)
            hook = _layer_norm_hook if _exact_layer_norm(module) else _mask_hook
            self._handles.append(module.register_forward_hook(hook(torch.cat(parts), _channel_dim(module))))
        if self.restore_bn:
            self._bn_state = {k: v.clone() for k, v in model.state_dict().items() if "running_" in k
                              or "num_batches_tracked" in k}

    def remove(self) -> None:
        """Remove every mask and restore the BN statistics saved at :meth:`apply` (if ``restore_bn``)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._fastpath is not None:
            torch.backends.mha.set_fastpath_enabled(self._fastpath)
            self._fastpath = None
        for param, saved in reversed(self._saved_params):
            param.data.copy_(saved)
        self._saved_params.clear()
        if self._bn_state is not None:
            self.analysis.model.load_state_dict(self._bn_state, strict=False)
            self._bn_state = None

    def applied(self, kept: Mapping[str, int]) -> _Applied:
        """Context manager: masks applied inside, removed (and BN restored) on exit."""
        return _Applied(self, kept)


class _Applied:
    def __init__(self, pruner: MaskedPruner, kept: Mapping[str, int]) -> None:
        self.pruner, self.kept = pruner, kept

    def __enter__(self) -> MaskedPruner:
        self.pruner.apply(self.kept)
        return self.pruner

    def __exit__(self, *exc) -> None:
        self.pruner.remove()


def _by_channel(idxs: list, roots: list | None) -> torch.Tensor:
    """A member's output indices as rows, one per channel of the group (its root index): a single
    column unless the member holds several slices of each channel."""
    index = torch.as_tensor([int(i) for i in idxs], dtype=torch.long)
    if roots is None or len(roots) != len(index) or len(set(roots)) in (0, len(index)):
        return index.view(-1, 1)
    order = sorted(range(len(index)), key=lambda k: (int(roots[k]), int(index[k])))
    return index[order].view(len(set(roots)), -1)


def _attention_rows(m: nn.MultiheadAttention, index: torch.Tensor) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
    """The rows an embedding channel owns in ``m``: its query, key and value projection rows (and
    biases) and its output projection row (and bias); zeroed, they remove the channel from every
    head's dot products and from the output, as the physically pruned module computes."""
    e = m.embed_dim
    rows = [(m.in_proj_weight, 0, index + k * e) for k in range(3)]
    if m.in_proj_bias is not None:
        rows += [(m.in_proj_bias, 0, index + k * e) for k in range(3)]
    rows.append((m.out_proj.weight, 0, index))
    if m.out_proj.bias is not None:
        rows.append((m.out_proj.bias, 0, index))
    return rows


def _channel_dim(module: nn.Module) -> int:
    """Where a module's output keeps its channels: last for linear layers, layer norms and embeddings."""
    return -1 if isinstance(module, (nn.Linear, nn.LayerNorm, nn.Embedding)) or is_transposed_linear(module) else 1


def _exact_layer_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1


def _mask_hook(removed: torch.Tensor, dim: int = 1):
    """A forward hook zeroing output channels ``removed`` (the mask is built once per width)."""
    masks: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def hook(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        axis = dim % output.dim()
        key = (axis, output.shape[axis], output.device)  # the model may run on a GPU
        if key not in masks:
            mask = torch.ones(output.shape[axis], device=output.device)
            mask[removed.to(output.device)] = 0.0
            masks[key] = mask
        shape = [1] * output.dim()
        shape[axis] = -1
        return output * masks[key].view(shape)
    return hook


def _layer_norm_hook(removed: torch.Tensor, dim: int = -1):
    """A forward hook recomputing a layer norm over its kept features (mean and variance of those
    only, as the physically pruned norm computes them), the removed ones zero."""
    kept: dict[tuple[int, torch.device], torch.Tensor] = {}  # built once per width, as the masks are

    def hook(module: nn.LayerNorm, inputs, output: torch.Tensor) -> torch.Tensor:
        x, width = inputs[0], module.normalized_shape[-1]
        # a channels-first norm (ConvNeXt's: (N, C, H, W), normalised over C) is handled channels-last
        axis = -1 if x.shape[-1] == width else (1 if x.dim() > 2 and x.shape[1] == width else None)
        if axis is None:
            raise ValueError(f"layer norm over {width} features on an input of shape {tuple(x.shape)}")
        x, output = x.movedim(axis, -1), output.movedim(axis, -1)
        key = (x.shape[-1], x.device)
        if key not in kept:
            kept[key] = torch.ones(x.shape[-1], dtype=torch.bool, device=x.device)
            kept[key][removed.to(x.device)] = False
        keep = kept[key]
        weight = None if module.weight is None else module.weight[keep]
        bias = None if module.bias is None else module.bias[keep]
        out = torch.zeros_like(output)
        out[..., keep] = torch.nn.functional.layer_norm(x[..., keep], (int(keep.sum()),), weight, bias, module.eps)
        return out.movedim(-1, axis)
    return hook
