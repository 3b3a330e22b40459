"""Deprecated module name: the prunability check lives in :mod:`autoprune.pruning.prunability`."""

import warnings

from autoprune.pruning.prunability import *  # noqa: F403
from autoprune.pruning.prunability import check_prunable, keep_unprunable_whole, pruning_problem  # noqa: F401

warnings.warn("autoprune.pruning.verify is now autoprune.pruning.prunability", DeprecationWarning, stacklevel=2)
