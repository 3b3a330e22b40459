"""Layer sensitivity analysis: accuracy when one group at a time is pruned by each ratio (Li et al. 2017).

Every other group stays dense; each candidate is BN-recalibrated and scored on validation images
by the same :class:`~autoprune.evaluation.CandidateEvaluator` the search uses, so the sweep shows
which groups the search can cut deeply and which it must spare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from autoprune.analysis.groups import ModelAnalysis
from autoprune.atomic import atomic_path
from autoprune.progress import bar_disabled
from autoprune.pruning.ratios import group_kept

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def sensitivity_sweep(analysis: ModelAnalysis, score: Callable[[Mapping[str, int]], float],
                      ratios: Sequence[float] = DEFAULT_RATIOS, round_to: int = 1,
                      progress: bool = True) -> pd.DataFrame:
    """One row per (group, ratio): channels kept, score, and the drop from the dense score.

    Args:
        score: channels kept per group -> score (a ``CandidateEvaluator``: accuracy unless told otherwise).
    """
    dense_kept = {g.name: g.channels for g in analysis.groups}
    dense = score(dense_kept)
    rows = []
    bar = tqdm(total=len(analysis.groups) * len(ratios), desc="sensitivity", disable=bar_disabled(progress))
    for g in analysis.groups:
        scored = {g.channels: dense}  # ratios that round to the same width are scored once
        for r in ratios:
            kept = group_kept(g, r, round_to)
            if kept not in scored:
                scored[kept] = score({**dense_kept, g.name: kept})
            acc = scored[kept]
            rows.append({"group": g.name, "kind": g.kind, "channels": g.channels, "ratio": r,
                         "kept": kept, "score": acc, "drop": dense - acc})
            bar.update()
    bar.close()
    frame = pd.DataFrame(rows)
    frame.attrs["dense_score"] = dense
    return frame


def plot_sensitivity(frame: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Score vs ratio, one line per group, with the dense score as a dashed line (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.get_cmap("tab10").colors
    styles, markers = ["-", "--", ":", "-."], "osD^v<>ph*"
    for i, (name, rows) in enumerate(frame.groupby("group", sort=False)):  # no two lines look alike
        ax.plot(rows["ratio"], rows["score"], color=colours[i % 10], ls=styles[(i // 10) % 4],
                marker=markers[(i // 40) % len(markers)], ms=3, label=name)
    if "dense_score" in frame.attrs:
        ax.axhline(frame.attrs["dense_score"], color="k", ls="--", lw=1, label="dense")
    ax.set_xlabel("pruning ratio of the group (others dense)")
    ax.set_ylabel("validation score (accuracy unless --score; after BN recalibration)")
    ax.set_title(title or "per-group sensitivity")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return Path(path)
