"""Applying a policy: the dense model physically pruned to the policy's channels, plus its record,
and batch-norm recalibration of a pruned model (the one rule every stage and benchmark uses)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from autoprune.analysis.groups import ModelAnalysis
from autoprune.data.batches import Splits
from autoprune.evaluation import search_bn_batches
from autoprune.policy import PruningPolicy
from autoprune.pruning.importance import Importance, rank_channels
from autoprune.pruning.physical import prune_physically
from autoprune.pruning.record import PruningRecord
from autoprune.training import recalibrate_bn


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


def recalibrate_pruned(model: nn.Module, splits: Splits, bn_batches: int, seed: int | None = None) -> nn.Module:
    """Recalibrate a pruned model's BN statistics: on the search's fixed batches (``seed`` None: the
    score the search measured is reproduced), or on ``bn_batches`` shuffled batches of 128 drawn with
    ``seed`` (before a fine-tune, as the benchmarks' protocol does)."""
    batches = search_bn_batches(splits, bn_batches) if seed is None else splits.train(128, shuffle=True, seed=seed)
    recalibrate_bn(model, batches, bn_batches)
    return model


def apply_and_recalibrate(analysis: ModelAnalysis, policy: PruningPolicy, splits: Splits, bn_batches: int,
                          importance: str | Importance | None = None, seed: int | None = None
                          ) -> tuple[nn.Module, PruningRecord]:
    """:func:`apply_policy` (channels ranked on the leading training batches) then
    :func:`recalibrate_pruned`: a policy as a deployable pruned model, before fine-tuning."""
    pruned, record = apply_policy(analysis, policy, importance, splits.train(64, shuffle=False))
    return recalibrate_pruned(pruned, splits, bn_batches, seed), record
