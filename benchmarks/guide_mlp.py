"""The pruning guide's own run, reproduced: the Keras MLP 784-128-64-10 (built-in ``seed_mlp``) trained
on Fashion-MNIST, then pruned unstructured on TF-MOT's ``PolynomialDecay(0 -> 50 %, begin_step 2000,
end_step 10000, frequency 100)`` while training at batch 32, then stripped.

Per seed, through the CLI: ``autoprune train`` (5 epochs, Adam lr 1e-3 as Keras' default, no
weight decay, no augmentation), ``autoprune finetune --sparsity 0.5 ...`` (the same optimiser; the
schedule above; 6 epochs, because 5 epochs of the 55,000-image training split at batch 32 are 8,595
steps, short of ``end_step`` 10,000, and autoprune refuses a schedule that cannot finish; the
guide's 5 epochs of 60,000 images end at step 9,375, at 49.98 %), the same 6 epochs without pruning
(the control: the pruned model trains 6 epochs more than the dense one), and ``autoprune export`` of both (ONNX Runtime latency, 1 thread, batch 1). Each
finished seed appends one row to ``results/guide_mlp/runs.csv`` (rerunning skips it): test accuracy
dense and pruned, sparsity per layer, file size raw and gzipped (TF-MOT's measure), latency.

Usage: python benchmarks/guide_mlp.py [--seeds 0 1 2] [--work runs/guide_mlp]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from common import ROOT, result_dir

from autoprune.atomic import write_text_atomic
from autoprune.checkpoint import load_model

KERAS = ["--optimizer", "adamw", "--lr", "0.001", "--weight-decay", "0", "--batch-size", "32", "--no-augment"]
SCHEDULE = ["--sparsity", "0.5", "--begin-step", "2000", "--end-step", "10000", "--frequency", "100",
            "--power", "3", "--initial", "0"]


def autoprune(*args: str) -> None:
    """Run one CLI command (quiet); stop the benchmark with its message if it fails."""
    done = subprocess.run([sys.executable, "-m", "autoprune.cli.main", "-q", *args], cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"autoprune {' '.join(args)} failed (exit {done.returncode})")


def sizes(checkpoint: Path) -> dict[str, int]:
    """The weights' size raw and gzipped (a state dict as ``torch.save`` writes it)."""
    model, _ = load_model(checkpoint)
    path = checkpoint.with_suffix(".weights")
    torch.save(model.state_dict(), path)
    raw = path.read_bytes()
    path.unlink()
    return {"bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, compresslevel=9))}


def layer_sparsity(checkpoint: Path) -> dict[str, float]:
    """Share of zero weights per Linear layer."""
    model, _ = load_model(checkpoint)
    return {name: round(float((m.weight == 0).float().mean()), 4) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear)}


def run_seed(seed: int, work: Path) -> dict:
    dense, pruned, control = work / f"dense-{seed}", work / f"pruned-{seed}", work / f"continued-{seed}"
    if not (dense / "model.pt").is_file():
        autoprune("train", "--model", "seed_mlp", "--data", "fashion-mnist", "--epochs", "5", "--seed", str(seed),
                  *KERAS, "--out", str(dense), "--overwrite")
    if not (pruned / "model.pt").is_file():
        autoprune("finetune", str(dense / "model.pt"), "--data", "fashion-mnist", "--epochs", "6", "--ft-seed",
                  str(seed), *KERAS, *SCHEDULE, "--out", str(pruned), "--overwrite")
    if not (control / "model.pt").is_file():
        autoprune("finetune", str(dense / "model.pt"), "--data", "fashion-mnist", "--epochs", "6", "--ft-seed",
                  str(seed), *KERAS, "--out", str(control), "--overwrite")
    for name in ("dense", "pruned"):
        autoprune("export", str(work / f"{name}-{seed}" / "model.pt"), "--out", str(work / f"{name}-{seed}-export"),
                  "--overwrite")
    train = json.loads((dense / "train.json").read_text())
    tuned = json.loads((pruned / "finetune.json").read_text())
    latency = {n: json.loads((work / f"{n}-{seed}-export" / "export.json").read_text())["latency_ms"]
               for n in ("dense", "pruned")}
    size_d, size_p = sizes(dense / "model.pt"), sizes(pruned / "model.pt")
    continued = json.loads((control / "finetune.json").read_text())
    return {"seed": seed, "dense_test_acc": train["test_acc"], "pruned_test_acc": tuned["test_acc"],
            "continued_test_acc": continued["test_acc"],
            "weight_sparsity": tuned["sparsity"]["weight_sparsity"],
            "layer_sparsity": json.dumps(layer_sparsity(pruned / "model.pt")),
            "dense_bytes": size_d["bytes"], "dense_gzip_bytes": size_d["gzip_bytes"],
            "pruned_bytes": size_p["bytes"], "pruned_gzip_bytes": size_p["gzip_bytes"],
            "dense_latency_ms": latency["dense"], "pruned_latency_ms": latency["pruned"],
            "train_s": train["train_seconds"], "finetune_s": tuned["seconds"]}


def summary(rows: pd.DataFrame) -> str:
    """The table over seeds (mean and standard deviation)."""
    def ms(col: str, scale: float = 1.0, digits: int = 2) -> str:
        values = rows[col] * scale
        return f"{values.mean():.{digits}f} ± {values.std(ddof=0):.{digits}f}"

    lines = ["| | dense | pruned (50 %, stripped) |", "|---|---|---|",
             f"| test accuracy (%) | {ms('dense_test_acc', 100)} (5 epochs; {ms('continued_test_acc', 100)} after "
             f"the same 6 more epochs unpruned) | {ms('pruned_test_acc', 100)} |",
             f"| weight sparsity | 0 | {ms('weight_sparsity', 1, 3)} |",
             f"| weights file, raw (kB) | {ms('dense_bytes', 1e-3, 1)} | {ms('pruned_bytes', 1e-3, 1)} |",
             f"| weights file, gzip (kB) | {ms('dense_gzip_bytes', 1e-3, 1)} | {ms('pruned_gzip_bytes', 1e-3, 1)} |",
             f"| ONNX Runtime latency, batch 1 (ms) | {ms('dense_latency_ms', 1, 4)} | {ms('pruned_latency_ms', 1, 4)} |"]
    drop = (rows["continued_test_acc"] - rows["pruned_test_acc"]) * 100
    ratio = rows["dense_gzip_bytes"] / rows["pruned_gzip_bytes"]
    lines += ["", f"Seeds: {', '.join(map(str, rows['seed']))}. Accuracy lost by pruning, against the unpruned control: {drop.mean():.2f} ± "
              f"{drop.std(ddof=0):.2f} points; gzip size {ratio.mean():.2f}x smaller; per-layer sparsity "
              f"(seed {rows['seed'].iloc[0]}): {rows['layer_sparsity'].iloc[0]}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", default=str(ROOT / "runs" / "guide_mlp"), help="run folders (not published)")
    args = parser.parse_args()
    out = result_dir("guide_mlp")
    path = out / "runs.csv"
    rows = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    for seed in args.seeds:
        if not rows.empty and seed in set(rows["seed"]):
            continue
        row = run_seed(seed, Path(args.work))
        rows = pd.concat([rows, pd.DataFrame([row])], ignore_index=True)
        write_text_atomic(path, rows.to_csv(index=False))
        print(f"seed {seed}: test {row['dense_test_acc']:.4f} dense, {row['pruned_test_acc']:.4f} pruned; gzip "
              f"{row['dense_gzip_bytes']} -> {row['pruned_gzip_bytes']} bytes", flush=True)
    write_text_atomic(out / "summary.md", summary(rows))
    print(summary(rows))


if __name__ == "__main__":
    main()
