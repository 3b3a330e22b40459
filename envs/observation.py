"""AMC's layer embedding for a group, normalised to [0, 1] (He et al. 2018, section 3.2)."""

from __future__ import annotations

import numpy as np
import pandas as pd

STATIC = ["index", "kind", "channels", "in_channels", "kernel", "stride", "fmap", "cost_share"]
DYNAMIC = ["reduced", "remaining", "previous_action", "budget", "slack"]
OBS_NAMES = STATIC + DYNAMIC


def static_features(features: pd.DataFrame) -> np.ndarray:
    """Rows of ``group_features`` scaled to [0, 1] per column; ``cost_share`` = the group's FLOPs share."""
    f = features.astype(float)
    out = np.zeros((len(f), len(STATIC)), dtype=np.float64)
    n = max(len(f) - 1, 1)
    out[:, 0] = f["index"] / n
    out[:, 1] = f["kind"] / 3.0
    for j, col in enumerate(["channels", "in_channels", "kernel", "stride", "fmap"], start=2):
        out[:, j] = f[col] / max(f[col].max(), 1.0)
    out[:, 7] = f["flops"] / max(f["flops"].sum(), 1.0)
    return out


def observation(static_row: np.ndarray, reduced: float, remaining: float, previous_action: float,
                budget_fraction: float, slack: float) -> np.ndarray:
    """Static features + cost removed so far, cost share still to decide, last ratio, budget, slack.

    ``slack`` is the headroom under the budget if every undecided group were pruned to its bound:
    0 means the action wall will force every later group to its maximum ratio.
    """
    dyn = np.array([reduced, remaining, previous_action, budget_fraction, slack])
    return np.clip(np.concatenate([static_row, dyn]), 0.0, 1.0).astype(np.float32)
