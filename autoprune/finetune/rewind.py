"""Lottery-ticket rewinding (Frankle et al. 2019; Renda et al. 2020): the pruned structure, early weights."""

from __future__ import annotations

from torch import nn

from autoprune.analysis import analyse_model
from autoprune.pruning.record import PruningRecord, rebuild_pruned


def rewind(early: nn.Module, record: PruningRecord, example_input) -> nn.Module:
    """``early`` (dense weights saved early in training) cut to the channels ``record`` kept.

    The channels removed are those chosen on the *trained* model (the record), so the result has
    the pruned model's exact structure and the early weights of its surviving channels; it is then
    retrained instead of fine-tuned from the trained weights.
    """
    analysis = analyse_model(early, example_input, exclude=record.exclude)
    return rebuild_pruned(analysis, record, source="rewind checkpoint")
