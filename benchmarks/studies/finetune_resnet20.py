"""Apply, fine-tune, export: the 50 %-latency ResNet-20 policy found by the search benchmark
becomes a real model. Reports test accuracy of the dense, pruned and fine-tuned models, and the
measured ONNX Runtime latency (1 thread, batch 1) of the exported model next to the budget.

Writes results/finetune_resnet20/: apply/, finetune/ (model.pt, finetune.json), export/ (model.onnx,
model.pt, policy.json, export.json), summary.json.
Usage: python benchmarks/studies/finetune_resnet20.py [--epochs 8] [--distill]
       [--policy results/search_resnet20/amc-ddpg/best_policy.json]
"""

from __future__ import annotations

import argparse

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import torch
from common import ROOT, result_dir

from autoprune.atomic import write_json_atomic
from autoprune.data import load_splits
from autoprune.finetune import FinetuneConfig
from autoprune.model_source import ModelSource
from autoprune.workflow import apply_stage, export_stage, finetune_stage


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", default="results/search_resnet20/amc-ddpg/best_policy.json",
                        help="relative to the repository root")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--distill", action="store_true")
    args = parser.parse_args()
    out = result_dir("finetune_resnet20")
    torch.set_num_threads(2)
    splits = load_splits("fashion-mnist")
    applied = apply_stage(ROOT / args.policy, ModelSource("resnet20"), splits, out / "apply")
    tuned = finetune_stage(out / "apply" / "model.pt", splits, FinetuneConfig(epochs=args.epochs, lr=args.lr),
                           out / "finetune", distill=args.distill)
    exported = export_stage(out / "finetune" / "model.pt", out / "export")
    summary = {"policy": args.policy, "epochs": args.epochs, "lr": args.lr, "distill": args.distill,
               "dense_test_acc": applied["dense_test_acc"], "pruned_test_acc_raw": applied["pruned_test_acc_raw"],
               "pruned_test_acc_bn": applied["pruned_test_acc_bn"], "finetuned_test_acc": tuned["test_acc"],
               "drop_points": round(100 * (applied["dense_test_acc"] - tuned["test_acc"]), 2),
               "finetune_seconds": tuned["seconds"], "params": [applied["dense_params"], applied["pruned_params"]],
               **{k: exported.get(k) for k in ("latency_ms", "dense_latency_ms", "budget_ms", "latency_over_budget",
                                               "within_budget_tolerance")}}
    write_json_atomic(out / "summary.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
