"""How well Thompson sampling's additive model ranks a real model's candidates it has not seen.

Reads the README main job's searches in ``results/main_job_searchers/runs/`` (ResNet-20, 50 %
latency, first-stage scores), fits the searcher's own model (``AdditiveModel``, posterior mean)
on all searches but one and ranks the held-out search's candidates: Spearman correlation with
their scores over all of them and within their top quarter, and the held-out search's best score
against the scores of the five candidates the model ranks highest.

Writes ``results/main_job_searchers/additive_model_fit.csv`` and prints it.

Usage: python benchmarks/studies/additive_model_fit.py
"""

from __future__ import annotations

import json

import _path  # noqa: F401  (benchmarks/ on the import path)
import numpy as np
import pandas as pd
from common import ROOT

from autoprune.agents.thompson import AdditiveModel
from autoprune.atomic import write_text_atomic
from autoprune.search import read_history

FOLDER = ROOT / "results" / "main_job_searchers"


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(pd.Series(a).corr(pd.Series(b), method="spearman")), 3)


def main() -> None:
    runs = {p.name: read_history(p / "history.csv") for p in sorted((FOLDER / "runs").iterdir())}
    archs = {name: [json.loads(k) for k in h["kept"]] for name, h in runs.items()}
    levels: dict[str, set[int]] = {}
    for arch in (a for group in archs.values() for a in group):
        for name, width in arch.items():
            levels.setdefault(name, set()).add(int(width))
    model = AdditiveModel({name: sorted(widths) for name, widths in levels.items()})
    rows = []
    for held in runs:
        train = [a for name in runs if name != held for a in archs[name]]
        y = np.concatenate([runs[name]["score"].to_numpy(float) for name in runs if name != held])
        mean, _ = model.draw(model.features(train), y, 1.0, np.random.default_rng(0))
        predicted = model.features(archs[held]) @ mean
        scores = runs[held]["score"].to_numpy(float)
        top = scores >= np.quantile(scores, 0.75)
        rows.append({"held_out": held, "candidates": len(scores),
                     "spearman_all": _spearman(predicted, scores),
                     "spearman_top_quarter": _spearman(predicted[top], scores[top]),
                     "best_score": float(scores.max()),
                     "scores_of_model_top5": " ".join(f"{s:.3f}" for s in scores[np.argsort(-predicted)[:5]])})
    table = pd.DataFrame(rows)
    write_text_atomic(FOLDER / "additive_model_fit.csv", table.to_csv(index=False))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
