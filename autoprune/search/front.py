"""A front: one budget-conditioned search, the best policy per budget, ``front.csv`` and ``front.png``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from autoprune.atomic import write_text_atomic
from autoprune.budget import Budget, file_label


@dataclass(frozen=True)
class FrontPoint:
    """The best candidate found for one budget of a front."""

    label: str                  # the budget as the user wrote it (e.g. "30%")
    budget: float               # in the budget's metric
    fraction: float             # of the dense cost
    episode: int | None         # None: no feasible candidate at this budget
    score: float | None         # first-stage score (accuracy unless --score says otherwise)
    finetuned: float | None     # second-stage score, when re-ranked
    cost: float | None          # predicted, in the budget's metric
    uniform_score: float | None  # the uniform rule at the same budget, for reference
    uniform_cost: float | None
    policy: str | None          # policies/<label>.json

    @property
    def found(self) -> bool:
        return self.episode is not None


def policy_file(label: str) -> str:
    """``"30%"`` -> ``policies/30pct.json``."""
    return f"policies/{file_label(label)}.json"


def episodes_at(history: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    """The episodes played at ``budget`` (every episode when the history records no budgets)."""
    if "budget" not in history or history["budget"].isna().all():
        return history
    return history[history["budget"].map(budget.matches)]


def write_front(out: Path, points: list[FrontPoint], metric_unit: str, dense_cost: float,
                dense_score: float | None) -> None:
    """``front.csv`` (one row per budget) and ``front.png`` (score against predicted cost, the
    uniform rule and the dense model for reference)."""
    write_text_atomic(out / "front.csv", pd.DataFrame([asdict(p) for p in points]).to_csv(index=False))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [p for p in points if p.found]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot([p.cost for p in found], [p.score for p in found], "o-", label="searched (best per budget)")
    uniform = [p for p in points if p.uniform_score is not None]
    if uniform:
        ax.plot([p.uniform_cost for p in uniform], [p.uniform_score for p in uniform], "s--", alpha=0.7,
                label="uniform ratio")
    if dense_score is not None:
        ax.plot([dense_cost], [dense_score], "k*", markersize=10, label="dense")
    for p in points:
        ax.axvline(p.budget, color="grey", lw=0.5, alpha=0.5)
    ax.set_xlabel(f"predicted cost ({metric_unit})")
    ax.set_ylabel("validation score (first stage)")
    ax.set_title("one budget-conditioned search: best policy per budget", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "front.png", dpi=110)
    plt.close(fig)
