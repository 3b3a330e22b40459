"""Applying a policy: the dense model physically pruned to the policy's channels, plus its record."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from autoprune.analysis.groups import ModelAnalysis
from autoprune.policy import PruningPolicy
from autoprune.pruning.importance import Importance, rank_channels
from autoprune.pruning.physical import prune_physically
from autoprune.pruning.record import PruningRecord


def apply_policy(analysis: ModelAnalysis, policy: PruningPolicy, importance: str | Importance | None = None,
                 batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
                 exclude: list[str] | None = None) -> tuple[nn.Module, PruningRecord]:
    """Prune a copy of ``analysis.model`` to ``policy``; returns ``(pruned model, record)``.

    The policy is checked against the model first (fingerprint and group names), so a policy
    found for another model is refused with a one-line :class:`~autoprune.errors.PolicyError`.
    Channels are ranked with the policy's importance criterion unless ``importance`` is given.

    Args:
        batches: training batches, needed only by data-driven criteria (Taylor).
        exclude: the module names excluded at analysis, stored in the record for reloading
            (default: the policy's own ``exclude``).
    """
    policy.validate_for(analysis)
    ranking = rank_channels(analysis, importance or policy.importance, batches)
    kept = policy.architecture(analysis)
    record = PruningRecord.from_ranking(analysis, ranking, kept, policy.exclude if exclude is None else exclude)
    return prune_physically(analysis, ranking, kept), record
