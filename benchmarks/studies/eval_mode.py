"""Scoring one candidate, masked vs physical: seconds per candidate and accuracy, on the
best candidate of the DDPG search benchmark (ResNet-20, 50 % latency). Writes results/eval_mode/.
"""

from __future__ import annotations

import json
import time

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import torch
from common import ROOT, result_dir

from autoprune.analysis import analyse_model
from autoprune.atomic import write_json_atomic
from autoprune.checkpoint import load_model, shipped_weights
from autoprune.data import load_splits
from autoprune.evaluation import CandidateEvaluator
from autoprune.pruning import rank_channels
from autoprune.search import read_history


def main() -> None:
    out = result_dir("eval_mode")
    splits = load_splits()
    model, _ = load_model(shipped_weights("resnet20"))
    analysis = analyse_model(model, torch.randn(1, 1, 28, 28))
    ranking = rank_channels(analysis)
    history = read_history(ROOT / "results/search_resnet20/amc-ddpg/history.csv")
    kept = json.loads(history.loc[history["score"].idxmax(), "kept"])
    result = {"kept": kept}
    for mode in ("masked", "physical"):
        evaluator = CandidateEvaluator(analysis, ranking, splits, mode=mode)
        evaluator(kept)  # warm-up
        start = time.perf_counter()
        accuracy = [evaluator(kept) for _ in range(5)][0]
        result[mode] = {"seconds_per_candidate": (time.perf_counter() - start) / 5, "val_acc": accuracy}
    write_json_atomic(out / "summary.json", result)
    print(result)


if __name__ == "__main__":
    main()
