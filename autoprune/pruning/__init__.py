"""Structured pruning: channel importance, ratio -> channels kept, masked and physical application."""

from autoprune.pruning.importance import (
                                          IMPORTANCES,
                                          BNScaleImportance,
                                          Importance,
                                          MagnitudeImportance,
                                          TaylorImportance,
                                          channel_scores,
                                          create_importance,
                                          rank_channels,
)
from autoprune.pruning.masked import MaskedPruner
from autoprune.pruning.physical import prune_physically
from autoprune.pruning.ratios import architecture_for, channels_kept

__all__ = ["IMPORTANCES", "BNScaleImportance", "Importance", "MagnitudeImportance", "MaskedPruner",
           "TaylorImportance", "architecture_for", "channels_kept", "create_importance",
           "prune_physically", "rank_channels", "channel_scores"]
