"""Dynamic pruning: one model whose width is switched at run time to fit the current budget.

:class:`DynamicModel` holds the dense weights once, with every group's channels sorted by
importance (:mod:`autoprune.dynamic.reorder`), and runs a variant by slicing the leading channels
of each group (slimmable networks, Yu et al. 2019). BN statistics are kept per variant (switchable
BN) and copied in place on a switch, so switching creates no parameters and no buffers.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from autoprune.analysis import ModelAnalysis
from autoprune.dynamic.reorder import SLICEABLE, GroupSpan, is_depthwise, reorder_channels
from autoprune.errors import ConfigError
from autoprune.pruning.physical import prune_physically
from autoprune.training import recalibrate_bn

Index = slice | torch.Tensor | None  # the active channels of one dimension (None: all)


def check_widths(variants: Mapping[str, Mapping[str, int]], channels: Mapping[str, int]) -> None:
    """Every width a whole number of channels in ``[1, the group's channels]`` of a known group."""
    for label, kept in variants.items():
        if not isinstance(kept, Mapping):
            raise ConfigError(f"variant {label!r} must map group names to channels kept")
        for group, n in kept.items():
            if group not in channels:
                raise ConfigError(f"variant {label!r} names group {group!r}, which the model does not have")
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= channels[group]:
                raise ConfigError(f"variant {label!r} keeps {n!r} channels of group {group!r}; it has "
                                  f"{channels[group]}, so keep a whole number from 1 to {channels[group]}")


class DynamicModel(nn.Module):
    """Several widths of one model, one set of weights.

    Args:
        analysis: the dense model's analysis (its groups).
        ranking: channel ranking per group, least important first (as for pruning).
        variants: label (e.g. ``"40%"``) -> channels kept per group; must be nested (see
            :func:`autoprune.dynamic.nest_variants`).
        latency_ms: measured or predicted latency per label, for :meth:`set_latency_ms`.
    """

    def __init__(self, analysis: ModelAnalysis, ranking: Mapping[str, torch.Tensor],
                 variants: Mapping[str, Mapping[str, int]], latency_ms: Mapping[str, float] | None = None) -> None:
        super().__init__()
        reordered, self._spans = reorder_channels(analysis, ranking)
        self._analysis = dataclasses.replace(reordered, model=None)  # groups and example input, no second model
        self.net = reordered.model
        channels = {g.name: g.channels for g in analysis.groups}
        check_widths(variants, channels)
        self.variants = {label: {g: int(kept.get(g, c)) for g, c in channels.items()} for label, kept in variants.items()}
        check_nested(self.variants)
        self.latency_ms = dict(latency_ms or {})
        self.active: str | None = None
        self._plans: dict[str, dict[str, tuple[Index, Index]]] = {}
        self._sliced = {n: m for n, m in self.net.named_modules() if type(m) in SLICEABLE}
        for m in self._sliced.values():
            m.__class__ = _DYNAMIC[type(m)]
            m._dyn = (None, None)
        self._bns = {n: m for n, m in self._sliced.items() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        self.bn_stats: dict[str, dict[str, torch.Tensor]] = {}  # label -> BN buffers for that width
        self._dense_bn = self._bn_buffers()

    # -- switching --------------------------------------------------------------------------
    def set_variant(self, label: str | None, statistics: bool = True) -> DynamicModel:
        """Run the variant ``label`` from now on (None: the dense model); ``statistics``: load its BN
        statistics too (joint training switches widths without, BN then uses batch statistics)."""
        if label is not None and label not in self.variants:
            raise ConfigError(f"no variant {label!r}; the model has {', '.join(self.variants)}")
        plan = self._plan(label) if label is not None else {}
        for name, m in self._sliced.items():
            m._dyn = plan.get(name, (None, None))
        stats = self.bn_stats.get(label, self._dense_bn) if label is not None else self._dense_bn
        with torch.no_grad():
            for key, value in stats.items() if statistics else ():
                self._buffer(key).copy_(value)
        self.active = label
        return self

    def set_budget(self, budget: str) -> DynamicModel:
        """Run the variant made for ``budget`` (its label, e.g. ``"40%"``)."""
        return self.set_variant(budget)

    def set_latency_ms(self, ms: float) -> DynamicModel:
        """Run the largest variant whose latency fits ``ms`` (on the device its latency was measured on)."""
        fitting = [(lat, label) for label, lat in self.latency_ms.items() if lat <= ms]
        if not fitting:
            fastest = min(self.latency_ms.values(), default=float("nan"))
            raise ConfigError(f"no variant runs within {ms:g} ms (the fastest takes {fastest:.4g} ms)")
        return self.set_variant(max(fitting)[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # -- BN statistics per width ------------------------------------------------------------
    def recalibrate(self, batches: Iterable, max_batches: int = 20) -> None:
        """Re-estimate BN statistics for every variant on the same batches and keep them per variant."""
        batches = list(batches)
        active = self.active
        for label in self.variants:
            self.set_variant(label)
            recalibrate_bn(self.net, batches, max_batches)
            self.bn_stats[label] = {k: v.clone() for k, v in self._bn_buffers().items()}
        self.set_variant(active)

    def _bn_buffers(self) -> dict[str, torch.Tensor]:
        return {f"{n}.{b}": getattr(m, b).detach().clone() for n, m in self._bns.items()
                for b in ("running_mean", "running_var") if getattr(m, b, None) is not None}

    def _buffer(self, key: str) -> torch.Tensor:
        module, attr = key.rsplit(".", 1)
        return getattr(self._bns[module], attr)

    # -- variants as separate models --------------------------------------------------------
    def pruned(self, label: str) -> nn.Module:
        """The variant ``label`` as a physically pruned model (same weights, same outputs)."""
        active = self.active
        self.set_variant(label)
        model = self._pruned_copy(self.variants[label])
        self.set_variant(active)
        return model

    def pruned_widths(self, kept: Mapping[str, int]) -> nn.Module:
        """Any architecture of the space as a physically pruned model with these weights (its BN
        statistics: the buffers as they are; recalibrate them)."""
        channels = {g.name: g.channels for g in self._analysis.groups}
        check_widths({"widths": kept}, channels)
        return self._pruned_copy({g: int(kept.get(g, c)) for g, c in channels.items()})

    def _pruned_copy(self, kept: Mapping[str, int]) -> nn.Module:
        model = copy.deepcopy(self.net)  # the whole net (its slicing plan dropped below), then cut
        for m in model.modules():
            if hasattr(m, "_dyn"):
                del m._dyn
                m.__class__ = next(b for b in _DYNAMIC if type(m) is _DYNAMIC[b])
        channels = {g.name: g.channels for g in self._analysis.groups}
        last_first = {g: torch.arange(c - 1, -1, -1) for g, c in channels.items()}  # already sorted
        analysis = dataclasses.replace(self._analysis, model=model)
        with torch.enable_grad():  # Torch-Pruning traces with autograd
            return prune_physically(analysis, last_first, kept, inplace=True).eval()

    def set_widths(self, kept: Mapping[str, int]) -> DynamicModel:
        """Run any architecture of the space, ``kept`` channels per group (its leading, most important
        ones; groups not named stay whole). BN statistics are not switched: recalibrate them (a
        supernet's candidates are scored that way)."""
        channels = {g.name: g.channels for g in self._analysis.groups}
        check_widths({"widths": kept}, channels)
        plan = self._plan_for({g: int(kept.get(g, c)) for g, c in channels.items()})
        for name, m in self._sliced.items():
            m._dyn = plan.get(name, (None, None))
        self.active = None
        return self

    def _plan(self, label: str) -> dict[str, tuple[Index, Index]]:
        if label not in self._plans:  # built once per variant; later switches only look it up
            self._plans[label] = self._plan_for(self.variants[label])
        return self._plans[label]

    def _plan_for(self, kept: Mapping[str, int]) -> dict[str, tuple[Index, Index]]:
        plan = {}
        for name, m in self._sliced.items():
            spans = self._spans.get(name)
            if spans is None:
                continue
            out_size = m.weight.shape[0] if m.weight is not None else m.num_features
            out = _active(out_size, spans.out, kept)
            inp = _active(m.weight.shape[1], spans.inp, kept) if isinstance(m, (nn.Conv2d, nn.Linear)) \
                and not is_depthwise(m) else None
            if out is not None or inp is not None:
                plan[name] = (out, inp)
        return plan


def check_nested(variants: Mapping[str, Mapping[str, int]]) -> None:
    """Every pair of variants is nested: one keeps at least as many channels as the other in every group."""
    labels = list(variants)
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            ka, kb = variants[a], variants[b]
            if not (all(ka[g] >= kb[g] for g in ka) or all(ka[g] <= kb[g] for g in ka)):
                raise ConfigError(f"variants {a!r} and {b!r} are not nested (each keeps more channels than the "
                                  f"other somewhere); nest them first (autoprune.dynamic.nest_variants)")


def _active(size: int, spans: list[GroupSpan], kept: Mapping[str, int]) -> Index:
    """The active positions of a dimension of ``size`` whose groups keep ``kept`` channels."""
    mask = torch.ones(size, dtype=torch.bool)
    for s in spans:
        mask[list(s.positions[kept[s.group] * s.per_channel:])] = False
    if bool(mask.all()):
        return None
    idx = mask.nonzero().flatten()
    return slice(0, len(idx)) if torch.equal(idx, torch.arange(len(idx))) else idx


class _DynamicConv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, inp = self._dyn
        if out is None and inp is None:
            return super().forward(x)
        w, b = self.weight, self.bias
        if out is not None:
            w, b = w[out], None if b is None else b[out]
        if is_depthwise(self):
            return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, w.shape[0])
        if inp is not None:
            w = w[:, inp]
        return self._conv_forward(x, w, b)


class _DynamicLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, inp = self._dyn
        w, b = self.weight, self.bias
        if out is not None:
            w, b = w[out], None if b is None else b[out]
        if inp is not None:
            w = w[:, inp]
        return F.linear(x, w, b)


class _SlicedBatchNorm:
    """BatchNorm over the active channels (running statistics updated in place)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._dyn[0]
        if out is None:
            return super().forward(x)  # type: ignore[misc]
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_stats = not self.training or self.track_running_stats
        mean = self.running_mean[out] if use_stats and self.running_mean is not None else None
        var = self.running_var[out] if use_stats and self.running_var is not None else None
        y = F.batch_norm(x, mean, var, None if self.weight is None else self.weight[out],
                         None if self.bias is None else self.bias[out],
                         self.training or mean is None, factor, self.eps)
        if isinstance(out, torch.Tensor) and self.training and mean is not None:  # a gather copied them
            with torch.no_grad():
                self.running_mean.index_copy_(0, out, mean)
                self.running_var.index_copy_(0, out, var)
        return y


class _DynamicBatchNorm1d(_SlicedBatchNorm, nn.BatchNorm1d):
    pass


class _DynamicBatchNorm2d(_SlicedBatchNorm, nn.BatchNorm2d):
    pass


_DYNAMIC: dict[type, type] = {nn.Conv2d: _DynamicConv2d, nn.Linear: _DynamicLinear,
                              nn.BatchNorm1d: _DynamicBatchNorm1d, nn.BatchNorm2d: _DynamicBatchNorm2d}
