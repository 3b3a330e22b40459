"""One-shot vs gradual vs iterative pruning at the same fine-tuning budget, and one-shot magnitude
sparsity vs IMP, on the shipped ResNet-20 (Fashion-MNIST).

Structured: the knapsack policy the head-to-head found for 30 % of ResNet-20's latency
(``results/head_to_head/.../knapsack/search/best_policy.json``); every mode gets ``--epochs``
epochs in all (default 15, so that K = 3 and K = 5 split them evenly) on the same training subset,
with distillation from the dense model: one-shot (apply, then fine-tune), gradual (masks grow over
the first half), iterative K = 3 and K = 5. Unstructured, 90 % of the weights: one-shot (the
polynomial schedule of ``--sparsity``) vs IMP in 3 rounds rewinding to the trained weights (the
shipped model has no early checkpoint). Test accuracy on the full 10k test set; ``--seeds``
fine-tuning seeds. Resumes: finished rows are kept in ``runs.csv``.

Usage: python benchmarks/iterative.py [--epochs 15] [--images 6000] [--seeds 0 1] [--workers 1] [--name iterative_resnet20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import pandas as pd
from common import ROOT, result_dir, trimmed

from autoprune.atomic import write_text_atomic
from autoprune.checkpoint import shipped_weights
from autoprune.data import load_splits
from autoprune.finetune import FinetuneConfig
from autoprune.model_source import ModelSource
from autoprune.workflow import FinetuneMode, apply_stage, finetune_stage

POLICY = ROOT / "results/head_to_head/runs/resnet20/30pct/knapsack/search/best_policy.json"


def modes(policy: str, epochs: int) -> dict[str, FinetuneMode]:
    """The structured and unstructured modes compared, each spending ``epochs`` epochs."""
    return {
        "one-shot": FinetuneMode(),
        "gradual": FinetuneMode(gradual_policy=policy),
        "iterative-3": FinetuneMode(iterative_policy=policy, steps=3, epochs_per_step=epochs // 3),
        "iterative-5": FinetuneMode(iterative_policy=policy, steps=5, epochs_per_step=epochs // 5),
        "sparsity-90": FinetuneMode(sparsity=0.9),
        "imp-90-3rounds": FinetuneMode(sparsity=0.9, rounds=3, epochs_per_step=epochs // 3),
    }


def run_one(name: str, seed: int, args: argparse.Namespace, applied: str) -> dict:
    """One (mode, seed) fine-tune from scratch or from its own folder; its row."""
    splits = trimmed(load_splits("fashion-mnist"), args.images)
    dense = str(shipped_weights("resnet20"))
    mode = modes(str(POLICY), args.epochs)[name]
    cfg = FinetuneConfig(epochs=args.epochs, seed=seed, augment=None, val_size=2000, device=args.device)
    start = time.perf_counter()
    source = applied if name == "one-shot" else dense
    folder = ROOT / "runs" / args.name / f"{name}-seed{seed}"
    if folder.exists() and mode.name not in ("iterative", "imp"):
        shutil.rmtree(folder)  # a plain/gradual/sparsity run does not resume: restart it
    summary = finetune_stage(source, splits, cfg, folder, mode, teacher_weights=dense,
                             distill=mode.sparsity is None, progress=False)
    return {"mode": name, "seed": seed, "epochs": args.epochs, "images": args.images,
            "test_acc": summary["test_acc"], "seconds": round(time.perf_counter() - start, 1),
            "weight_sparsity": (summary.get("sparsity") or {}).get("weight_sparsity")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--images", type=int, default=6000, help="training images every mode fine-tunes on")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--name", default="iterative_resnet20")
    parser.add_argument("--device", default="cpu", help="where the fine-tunes run (cuda on a lent GPU)")
    parser.add_argument("--workers", type=int, default=1, help="fine-tunes run at once (processes)")
    args = parser.parse_args()
    out = result_dir(args.name)
    runs_csv = out / "runs.csv"
    rows = pd.read_csv(runs_csv).to_dict("records") if runs_csv.is_file() else []
    applied = ROOT / "runs" / args.name / "apply"
    if not (applied / "model.pt").is_file():
        splits = trimmed(load_splits("fashion-mnist"), args.images)
        apply_stage(POLICY, ModelSource("resnet20", weights=str(shipped_weights("resnet20"))), splits, applied)
    jobs = [(name, seed) for seed in args.seeds for name in modes(str(POLICY), args.epochs)
            if not any(r["mode"] == name and r["seed"] == seed for r in rows)]
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    with ProcessPoolExecutor(max(1, args.workers), mp_context=context) as pool:
        futures = [pool.submit(run_one, name, seed, args, str(applied / "model.pt")) for name, seed in jobs]
        for future in as_completed(futures):
            row = future.result()
            rows.append(row)  # written as each job ends: a stopped run keeps what finished
            write_text_atomic(runs_csv, pd.DataFrame(rows).to_csv(index=False))
            print(f"{row['mode']} seed {row['seed']}: test {row['test_acc']:.4f}", flush=True)
    frame = pd.DataFrame(rows)
    table = frame.groupby("mode", sort=False)["test_acc"].agg(["mean", "std", "count"]).round(4)
    write_text_atomic(out / "summary.md", "# Iterative pruning, ResNet-20, 30 % latency policy\n\n"
                      + "```\n" + table.to_string() + "\n```\n")
    print(table)


if __name__ == "__main__":
    main()
