"""Channel importance criteria behind one small interface, backed by Torch-Pruning's implementations.

An :class:`Importance` scores every channel of a Torch-Pruning group; higher means keep. Scores
are computed once on the dense model and turned into a ranking that masked and physical pruning
share, so both remove the very same channels.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable

import torch
import torch_pruning as tp
from torch import nn

from autoprune.analysis.transposed_linear import linear_view
from autoprune.inputs import call
from autoprune.outputs import scored_output
from autoprune.registry import Registry


class Importance(abc.ABC):
    """Scores the channels of a group (one float per channel, higher = more important)."""

    def prepare(self, model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None) -> None:  # noqa: B027
        """Optional set-up before scoring (e.g. accumulate gradients); the default does nothing."""

    @abc.abstractmethod
    def __call__(self, group: tp.Group) -> torch.Tensor:
        """Scores for the group's channels, shape ``(channels,)``."""


class _TPImportance(Importance):
    """Adapter over a Torch-Pruning importance object."""

    def __init__(self, impl: tp.importance.Importance) -> None:
        self.impl = impl

    def __call__(self, group: tp.Group) -> torch.Tensor:
        return self.impl(linear_view(group))


class GroupMagnitude(tp.importance.GroupMagnitudeImportance):
    """Torch-Pruning's group magnitude that also scores ``Conv1D`` layers (see ``linear_view``)."""

    def __call__(self, group: tp.Group) -> torch.Tensor | None:
        return super().__call__(linear_view(group))


class MagnitudeImportance(_TPImportance):
    """Lp norm of each channel's weights, summed over the coupled layers (Li et al. 2017 for p=1)."""

    def __init__(self, p: int = 1) -> None:
        super().__init__(tp.importance.GroupMagnitudeImportance(p=p, group_reduction="mean", normalizer="mean"))


class BNScaleImportance(_TPImportance):
    """|gamma| of the batch-norm layers in the group (network slimming, Liu et al. 2017)."""

    def __init__(self) -> None:
        super().__init__(tp.importance.BNScaleImportance())


class TaylorImportance(_TPImportance):
    """First-order Taylor estimate |w * dL/dw| (Molchanov et al. 2019); needs a few labelled batches."""

    def __init__(self, batches: int = 4) -> None:
        super().__init__(tp.importance.GroupTaylorImportance())
        self.batches = batches

    def prepare(self, model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None) -> None:
        if batches is None:
            raise ValueError("Taylor importance needs training batches to compute gradients")
        model.zero_grad(set_to_none=True)
        was_training = model.training
        model.eval()
        for i, (x, y) in enumerate(batches):
            if i >= self.batches:
                break
            nn.functional.cross_entropy(scored_output(call(model, x)), y).backward()
        model.train(was_training)


IMPORTANCES: Registry[Importance] = Registry("importance", entry_point_group="autoprune.importances")
IMPORTANCES.add("l1", lambda: MagnitudeImportance(p=1))
IMPORTANCES.add("l2", lambda: MagnitudeImportance(p=2))
IMPORTANCES.add("bn_scale", BNScaleImportance)
IMPORTANCES.add("taylor", TaylorImportance)


def create_importance(name_or_obj: str | Importance) -> Importance:
    """An importance by registry name (``l1``, ``l2``, ``bn_scale``, ``taylor``) or a user object."""
    return name_or_obj if isinstance(name_or_obj, Importance) else IMPORTANCES.create(name_or_obj)


def channel_scores(analysis, importance: str | Importance = "l1",
                   batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
    """Per group, one score per channel (higher = keep); zeros where the criterion gives no signal."""
    imp = create_importance(importance)
    imp.prepare(analysis.model, batches)
    scores = {}
    for g in analysis.groups:
        s = imp(analysis.tp_group(g.name))
        if s is not None and g.fold > 1 and s.numel() == g.channels * g.fold:  # by root channel: the first slice's
            s = s[:g.channels]
        if s is None or s.numel() != g.channels or not torch.isfinite(s).all():
            s = torch.zeros(g.channels)  # no usable signal: fall back to index order
        scores[g.name] = s.detach().float()
    analysis.model.zero_grad(set_to_none=True)
    return scores


def rank_channels(analysis, importance: str | Importance = "l1",
                  batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
    """Per group, channel indices ordered from least to most important (ties by index)."""
    return {name: _ranked(s, analysis.group(name))
            for name, s in channel_scores(analysis, importance, batches).items()}


def _ranked(scores: torch.Tensor, group) -> torch.Tensor:
    """Channel indices from least to most important; for a group pruned in units (see
    ``PrunableGroup.units``), whole units ordered by their summed score, so that any count a
    multiple of the unit size removes whole units."""
    if group.step <= 1:
        return torch.sort(scores, stable=True).indices
    units = group.units()
    return units[torch.sort(scores[units].sum(1), stable=True).indices].reshape(-1)
