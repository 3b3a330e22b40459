"""Two-stage scoring: the most promising candidates of a search, ranked again after a short fine-tune.

The first stage (BN recalibration + validation accuracy, every episode) is cheap but weak at
aggressive budgets, where every candidate scores near chance. The second stage fine-tunes each
of the ``top`` first-stage candidates (distinct architectures; the seed rules' always among them)
for a fixed number of steps on a fixed slice of the training data and scores it again; the best
policy is the best candidate by this second score (EagleEye's filter-then-fine-tune, NetAdapt's
short-term fine-tune).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import pandas as pd

from autoprune.search.history import top_candidates

Scorer = Callable[[Mapping[str, int], int], float]  # (kept, steps) -> second-stage score


def rerank_candidates(history: pd.DataFrame, score: Scorer, top: int, steps: int,
                      allowed: set[int] | None = None) -> pd.DataFrame:
    """Columns: episode, source, score (first stage), finetuned (second stage), best first.

    ``allowed``: episodes that may be chosen (e.g. those measured within budget); None = all.
    """
    pool = top_candidates(history if allowed is None else history[history["episode"].isin(allowed)], top)
    cols = [c for c in ("episode", "source", "score") if c in pool]
    frame = pool[cols].reset_index(drop=True)
    frame["finetuned"] = [score(json.loads(k), steps) for k in pool["kept"]]
    return frame.sort_values(["finetuned", "score", "episode"], ascending=[False, False, True],
                             na_position="last").reset_index(drop=True)
