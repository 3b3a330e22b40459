"""Foundation checks on the shipped ResNet-20: groups, masked == physical, real speed-up,
and the cost of preparing one candidate (masked apply+restore vs deepcopy+physical prune).

Writes results/foundation/: groups.csv, summary.json.
"""

from __future__ import annotations

import copy
import statistics

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import torch
from common import result_dir

from autoprune.analysis import analyse_model, group_features
from autoprune.atomic import write_json_atomic
from autoprune.checkpoint import load_model, shipped_weights
from autoprune.data import load_splits
from autoprune.latency import LatencySettings, measure_latency, median_ms
from autoprune.pruning import MaskedPruner, architecture_for, prune_physically, rank_channels
from autoprune.training import evaluate


def main() -> None:
    out = result_dir("foundation")
    torch.set_num_threads(1)
    model, payload = load_model(shipped_weights("resnet20"), "resnet20")
    splits = load_splits()
    analysis = analyse_model(model, torch.randn(1, 1, 28, 28))
    features = group_features(analysis)
    features.insert(1, "kind_name", [g.kind for g in analysis.groups])
    features["producers"] = [", ".join(g.producers) for g in analysis.groups]
    features.to_csv(out / "groups.csv")

    ranking = rank_channels(analysis, "l1")
    kept = architecture_for(analysis.groups, {g.name: 0.5 for g in analysis.groups})
    pruned = prune_physically(analysis, ranking, kept).eval()
    x = splits.x_test[:1000]
    with torch.no_grad():
        with MaskedPruner(analysis, ranking).applied(kept):
            masked_out = model(x)
        diff = (masked_out - pruned(x)).abs().max().item()

    settings = LatencySettings("onnxruntime", batch_size=1, threads=1, warmup=50, repeats=500)
    dense_ms = [measure_latency(model, (1, 28, 28), settings) for _ in range(5)]
    pruned_ms = [measure_latency(pruned, (1, 28, 28), settings) for _ in range(5)]

    pruner = MaskedPruner(analysis, ranking)
    masked_prep = median_ms(lambda: (pruner.apply(kept), pruner.remove()), 0, 50)
    physical_prep = median_ms(lambda: prune_physically(analysis, ranking, kept), 0, 10)
    deepcopy_only = median_ms(lambda: copy.deepcopy(model), 0, 20)

    summary = {
        "model": "resnet20", "weights_test_acc": payload.meta.get("test_acc"),
        "groups": len(analysis.groups), "residual_groups": [g.name for g in analysis.groups if g.kind == "residual"],
        "uniform_50pct": {
            "max_abs_diff_masked_vs_physical_1000_test_images": diff,
            "test_acc_without_finetuning": evaluate(pruned, splits.test()),
            "params_dense": sum(p.numel() for p in model.parameters()),
            "params_pruned": sum(p.numel() for p in pruned.parameters()),
            "ort_ms_dense_median_of_5": statistics.median(dense_ms), "ort_ms_dense_runs": dense_ms,
            "ort_ms_pruned_median_of_5": statistics.median(pruned_ms), "ort_ms_pruned_runs": pruned_ms,
            "speedup": statistics.median(dense_ms) / statistics.median(pruned_ms),
        },
        "candidate_preparation_ms": {
            "masked_apply_plus_restore": masked_prep, "deepcopy_plus_physical_prune": physical_prep,
            "of_which_deepcopy": deepcopy_only, "ratio": physical_prep / masked_prep,
        },
        "latency_settings": settings.__dict__,
    }
    write_json_atomic(out / "summary.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
