"""User-facing errors: one clear line naming the problem and the fix (the CLI prints it, exits 2)."""

from __future__ import annotations


class AutopruneError(Exception):
    """Base class for every error the tool reports to a user as one line."""


class ConfigError(AutopruneError):
    """A setting, name or argument is invalid."""


class UserCodeError(ConfigError):
    """A user's function (``--score``, ``--loss``) raised or returned something unusable: the search
    stops with one line naming it, instead of recording every candidate as failed."""


class DataError(AutopruneError):
    """A data set cannot be found or read."""


class PolicyError(AutopruneError):
    """A policy file is malformed or does not match the model."""


class AnalysisError(AutopruneError):
    """The model cannot be analysed for pruning."""


class TrainingError(AutopruneError):
    """Training cannot go on (a non-finite loss); checkpoints saved before it are kept."""
