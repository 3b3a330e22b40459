"""Pruning modes side by side on the guide's MLPs: unstructured (one-shot per-layer and global,
gradual, iterative, lottery ticket with rewinding and its random re-initialisation control) and
structured (neurons removed for real: magnitude, sensitivity-guided, searched) at sparsities of
50 / 80 / 90 / 95 / 98 %, with accuracy, size and ONNX Runtime latency.

Per (model, seed): the dense model trains ``--dense-epochs`` (Adam lr 1e-3, batch 128, no
augmentation) from a seeded init, keeping the weights after ``--rewind-steps`` steps (the early
iterate lottery tickets rewind to). Every mode then spends the same ``--epochs`` epochs of training
(same optimiser, batch and data order):

- ``oneshot-layer`` / ``oneshot-global``: the sparsity at once (each layer's, or all weights
  ranked together), then ``--epochs`` epochs with the masks fixed;
- ``gradual``: TF-MOT's polynomial schedule 0 -> sparsity (power 3, masks every 100 steps) over
  the first half of the epochs, then fixed;
- ``iterative``: ``--rounds`` cuts to the IMP schedule's sparsities, each followed by an equal share
  of the epochs, from the trained weights (no rewinding);
- ``lottery``: the same rounds, each rewinding the surviving weights to the early iterate before
  training (iterative magnitude pruning with rewinding); ``reinit``: the lottery's final masks on a
  fresh random initialisation, trained as its last round is (Frankle & Carbin's control);
- ``struct-magnitude``: Torch-Pruning's global magnitude pruning of whole neurons sized to the
  same weight count; ``struct-sensitivity``: the widths whose summed accuracy drop in the tool's
  sensitivity sweep is least within that count; ``struct-searched``: ``prune_to_budget`` (the
  default searcher, ``--search-episodes`` episodes, FLOPs = weights for an MLP). Each is
  fine-tuned ``--epochs`` epochs; at a count no width reaches the row says so.

Every row: test accuracy (10k images), non-zero weights, file size raw and gzipped (a stripped
state dict), sparse storage (bitmask + non-zero values; CSR) and the widths. One row per (model,
seed, sparsity, mode) in ``runs.csv``, written as each job ends; a rerun skips finished rows (and
reuses trained dense models from ``--work``). ``--retime`` then times every distinct architecture
alone with ONNX Runtime (1 thread, batch 1 and 256; zeros do not speed up a dense kernel, so an
unstructured model runs as its dense shape) into ``retimed.csv``, which the summary joins.

Usage: python benchmarks/pruning_modes.py [--models seed_mlp mlp] [--seeds 0 1 2] [--workers 1]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import ROOT, output_dir
from torch import nn

from autoprune.analysis import analyse_model
from autoprune.atomic import write_text_atomic
from autoprune.costs import create_cost_model
from autoprune.data import load_splits
from autoprune.errors import AutopruneError
from autoprune.finetune.iterative import imp_schedule, magnitude_masks, prunable_weights
from autoprune.finetune.schedule import PolynomialDecay
from autoprune.finetune.unstructured import sparsity_report
from autoprune.latency import LatencySettings, measure_onnx_latency
from autoprune.models import create_model
from autoprune.onnx_export import to_onnx_bytes
from autoprune.pruning import rank_channels
from autoprune.pruning.global_magnitude import global_magnitude_kept
from autoprune.pruning.physical import prune_physically
from autoprune.sensitivity import sensitivity_sweep
from autoprune.workflow.python_api import prune_to_budget

UNSTRUCTURED = ("oneshot-layer", "oneshot-global", "gradual", "iterative", "lottery", "reinit")
STRUCTURED = ("struct-magnitude", "struct-sensitivity", "struct-searched")
MODES = UNSTRUCTURED + STRUCTURED
SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.98)
BATCH, LR = 128, 1e-3


# ---- data and training ------------------------------------------------------------------------

_DATA: dict[tuple, dict[str, torch.Tensor]] = {}  # per process: read once, shared by its jobs


def load_data(name: str, images: int | None) -> dict[str, torch.Tensor]:
    """The splits as tensors (``images``: the first N training images only, for quick runs)."""
    if (name, images) not in _DATA:
        s = load_splits(name)
        n = images or len(s.x_train)
        _DATA[(name, images)] = {"x_train": s.x_train[:n], "y_train": s.y_train[:n], "x_val": s.x_val,
                                 "y_val": s.y_val, "x_test": s.x_test, "y_test": s.y_test}
    return _DATA[(name, images)]


def train(model: nn.Module, data: dict, epochs: float, seed: int, masks: dict | None = None,
          hook=None, stop_after: int | None = None) -> int:
    """Adam (lr 1e-3), batch 128, cross-entropy, ``epochs`` (a fraction allowed) over the training
    split in an order fixed by ``seed``; masked weights are kept at zero after every step;
    ``hook(step)`` may re-mask. Returns the steps taken."""
    x, y = data["x_train"], data["y_train"]
    per_epoch = math.ceil(len(x) / BATCH)
    total = stop_after if stop_after is not None else int(round(epochs * per_epoch))
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(seed)
    weights = prunable_weights(model)
    model.train()
    step = 0
    while step < total:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH):
            if step >= total:
                break
            if hook is not None:
                masks = hook(step) or masks
            idx = order[start:start + BATCH]
            optimiser.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimiser.step()
            if masks:
                with torch.no_grad():
                    for name, mask in masks.items():
                        weights[name].mul_(mask)
            step += 1
    return step


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float(sum((model(x[i:i + 2000]).argmax(1) == y[i:i + 2000]).sum() for i in range(0, len(x), 2000)) / len(x))


def dense_model(name: str, seed: int, data: dict, epochs: int, rewind_steps: int, work: Path) -> tuple[dict, dict]:
    """The trained dense weights and the early iterate (both cached in ``work``)."""
    path = work / f"{name}-seed{seed}-dense.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return saved["trained"], saved["early"]
    torch.manual_seed(seed)
    model = create_model(name)
    train(model, data, 0, seed, stop_after=rewind_steps)
    early = copy.deepcopy(model.state_dict())
    torch.manual_seed(seed)
    model = create_model(name)
    train(model, data, epochs, seed)
    work.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"trained": model.state_dict(), "early": early}, tmp)
    tmp.replace(path)
    return model.state_dict(), early


# ---- the modes --------------------------------------------------------------------------------

def _model(name: str, state: dict) -> nn.Module:
    model = create_model(name)
    model.load_state_dict(state)
    return model


def unstructured(mode: str, name: str, sparsity: float, seed: int, data: dict, trained: dict, early: dict,
                 epochs: float, rounds: int) -> nn.Module:
    """The model after ``mode`` at ``sparsity``, its zeros applied (stripped)."""
    model = _model(name, trained)
    weights = prunable_weights(model)
    ones = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    if mode in ("oneshot-layer", "oneshot-global"):
        masks = magnitude_masks(weights, ones, sparsity, "layer" if mode == "oneshot-layer" else "global")
        _apply(weights, masks)
        train(model, data, epochs, seed, masks=_float(masks))
    elif mode == "gradual":
        per_epoch = math.ceil(len(data["x_train"]) / BATCH)
        schedule = PolynomialDecay(0.0, sparsity, 0, max(1, int(epochs * per_epoch / 2)), power=3, frequency=100)
        state = {"masks": None}

        def hook(step: int):
            if schedule.should_update(step) or step == schedule.end_step:
                state["masks"] = _float(magnitude_masks(weights, ones, schedule.value(step), "layer"))
                _apply(weights, state["masks"])
            return state["masks"]
        train(model, data, epochs, seed, hook=hook)
        _apply(weights, _float(magnitude_masks(weights, ones, sparsity, "layer")))  # the final step's target
    elif mode in ("iterative", "lottery", "reinit"):
        masks, targets = ones, imp_schedule(sparsity, rounds)
        for i, target in enumerate(targets):
            masks = magnitude_masks(weights, masks, target, "layer")  # from the weights the last round trained
            if mode == "reinit" and i == len(targets) - 1:  # the ticket's masks on a fresh initialisation
                torch.manual_seed(10_000 + seed)
                model.load_state_dict(create_model(name).state_dict())
            elif mode != "iterative":  # rewind the survivors to the early iterate
                model.load_state_dict(early)
            _apply(weights, masks)
            train(model, data, epochs / rounds, seed, masks=_float(masks))
    else:
        raise ValueError(mode)
    return model


def _float(masks: dict) -> dict:
    return {n: m.float() for n, m in masks.items()}


@torch.no_grad()
def _apply(weights: dict, masks: dict) -> None:
    for n, m in masks.items():
        weights[n].mul_(m.to(weights[n].dtype))


def structured(mode: str, name: str, sparsity: float, seed: int, data: dict, trained: dict, epochs: float,
               episodes: int, work: Path) -> tuple[nn.Module | None, str]:
    """Whole neurons removed so that the weights (= MACs for an MLP) fit ``1 - sparsity`` of dense;
    None and the reason when no width reaches it."""
    model = _model(name, trained).eval()
    example = data["x_train"][:1]
    analysis = analyse_model(model, example)
    dense_weights = sum(s.macs() for s in analysis.layers)
    limit = (1 - sparsity) * dense_weights

    cost_model = create_cost_model("flops", analysis)

    def weights_of(kept: dict[str, int]) -> int:
        return cost_model.cost(kept).flops

    ranking = rank_channels(analysis, "l1")
    if mode == "struct-magnitude":
        kept = None
        for ratio in np.linspace(0.0, 0.995, 200):
            candidate = global_magnitude_kept(analysis, float(ratio), 0.995, 1)
            if weights_of(candidate) <= limit:
                kept = candidate
                break
    elif mode == "struct-sensitivity":
        kept = _sensitivity_widths(analysis, ranking, data, limit, weights_of)
    else:
        try:
            result = prune_to_budget(model, example, (data["x_train"][:5000], data["y_train"][:5000]),
                                     (data["x_val"], data["y_val"]), budget=f"{100 * (1 - sparsity):.6g}%",
                                     cost_model="flops", episodes=episodes, seed=seed, round_to=1, max_ratio=0.995,
                                     out=work / f"search-{name}-{seed}-{sparsity}", progress=False, resume=True)
        except AutopruneError as exc:
            return None, str(exc)
        kept = {g: int(n) for g, n in result.record.kept.items()}
    if kept is None or weights_of(kept) > limit:
        return None, "no width reaches this weight count"
    pruned = prune_physically(analysis, ranking, kept)
    train(pruned, data, epochs, seed)
    return pruned, ""


def _sensitivity_widths(analysis, ranking, data: dict, limit: float, weights_of) -> dict[str, int] | None:
    """Per group, the accuracy at each width (the tool's sensitivity sweep, one group cut at a time);
    then the widths within ``limit`` whose summed drops are least (exhaustive over the sweep's grid)."""
    ratios = [0.0, 0.25, 0.5, 0.75, 0.875, 0.9375, 0.97, 0.985, 0.995]
    x, y = data["x_val"][:2000], data["y_val"][:2000]

    def score(kept):
        return accuracy(prune_physically(analysis, ranking, kept), x, y)
    frame = sensitivity_sweep(analysis, score, ratios, 1, progress=False)
    options = {g: sorted(set(zip(rows["kept"].astype(int), rows["score"].astype(float))))
               for g, rows in frame.groupby("group", sort=False)}
    best, best_loss = None, math.inf
    for combo in itertools.product(*options.values()):
        kept = {g: k for g, (k, _) in zip(options, combo)}
        loss = sum(-a for _, a in combo)
        if loss < best_loss and weights_of(kept) <= limit:
            best, best_loss = kept, loss
    return best


# ---- what every row reports -------------------------------------------------------------------

def storage(model: nn.Module) -> dict[str, int]:
    """Bytes: the state dict raw and gzipped (the tool's sparsity report); the weights as bitmask +
    non-zero values and as CSR."""
    report = sparsity_report(model)
    weights = [m.weight.detach() for m in model.modules() if isinstance(m, nn.Linear)]
    nnz, others = report["nonzero_weights"], report["params"] - report["weights"]
    bitmask = sum(math.ceil(w.numel() / 8) for w in weights) + 4 * (nnz + others)
    csr = sum(4 * (w.shape[0] + 1) for w in weights) + 8 * nnz + 4 * others
    return {"nonzero_weights": nnz, "bytes": report["bytes"], "gzip_bytes": report["gzip_bytes"],
            "bitmask_bytes": bitmask, "csr_bytes": csr}


def run_job(job: tuple, args: argparse.Namespace) -> dict:
    """One row: (model, seed, sparsity, mode), or a reference at sparsity 0: ``dense`` (as trained)
    or ``continued`` (trained the modes' extra epochs without pruning)."""
    torch.set_num_threads(1)
    name, seed, sparsity, mode = job
    data = load_data(args.data, args.images)
    work = Path(args.work)
    trained, early = dense_model(name, seed, data, args.dense_epochs, args.rewind_steps, work)
    start = time.perf_counter()
    torch.manual_seed(seed)
    note = ""
    if mode == "dense":
        model = _model(name, trained)
    elif mode == "continued":  # the control: the same extra epochs, nothing pruned
        model = _model(name, trained)
        train(model, data, args.epochs, seed)
    elif mode in UNSTRUCTURED:
        model = unstructured(mode, name, sparsity, seed, data, trained, early, args.epochs, args.rounds)
    else:
        model, note = structured(mode, name, sparsity, seed, data, trained, args.epochs, args.search_episodes, work)
    row = {"model": name, "seed": seed, "sparsity": sparsity, "mode": mode,
           "epochs": 0 if mode == "dense" else args.epochs,
           "seconds": round(time.perf_counter() - start, 1)}
    if model is None:
        return {**row, "test_acc": None, "note": note}
    sizes = storage(model)
    dense_weights = sum(m.weight.numel() for m in create_model(name).modules() if isinstance(m, nn.Linear))
    return {**row, "test_acc": round(accuracy(model, data["x_test"], data["y_test"]), 4),
            "weight_share": round(sizes["nonzero_weights"] / dense_weights, 4), **sizes,
            "widths": json.dumps([m.out_features for m in model.modules() if isinstance(m, nn.Linear)][:-1]),
            "note": note}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["seed_mlp", "mlp"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sparsities", type=float, nargs="+", default=list(SPARSITIES))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--dense-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=float, default=4, help="training epochs every mode spends after the dense run")
    parser.add_argument("--rounds", type=int, default=4, help="cuts of the iterative and lottery modes")
    parser.add_argument("--rewind-steps", type=int, default=200, help="the early iterate tickets rewind to (steps)")
    parser.add_argument("--search-episodes", type=int, default=60)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--images", type=int, help="train on the first N images only (quick checks)")
    parser.add_argument("--workers", type=int, default=1, help="jobs run at once (processes)")
    parser.add_argument("--name", default="pruning_modes")
    parser.add_argument("--out", help="results folder (default: results/<name>)")
    parser.add_argument("--retime", action="store_true",
                        help="time every row's architecture again here, one at a time, round-robin (the runs "
                             "time theirs beside the other jobs)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "pruning_modes"), help="dense models and searches")
    args = parser.parse_args(argv)
    out = output_dir(args.out, args.name)
    path = out / "runs.csv"
    rows = pd.read_csv(path).to_dict("records") if path.is_file() else []
    if args.retime:
        write_text_atomic(out / "retimed.csv", retime(pd.DataFrame(rows)).to_csv(index=False))
        write_text_atomic(out / "summary.md", summary(pd.DataFrame(rows), out))
        return
    done = {(r["model"], int(r["seed"]), float(r["sparsity"]), r["mode"]) for r in rows}
    jobs = [(m, s, 0.0, ref) for m in args.models for s in args.seeds for ref in ("dense", "continued")]
    jobs += [(m, s, sp, mode) for m in args.models for s in args.seeds for sp in args.sparsities for mode in args.modes]
    jobs = [j for j in jobs if j not in done]
    for m, s in {(j[0], j[1]) for j in jobs}:  # dense models first, once each (the jobs share them)
        dense_model(m, s, load_data(args.data, args.images), args.dense_epochs, args.rewind_steps, Path(args.work))
    started = time.perf_counter()

    def finished(row: dict) -> None:
        rows.append(row)  # written as each job ends: a stopped run keeps what finished
        write_text_atomic(path, pd.DataFrame(rows).to_csv(index=False))
        print(f"{row['model']} seed {row['seed']} {row['mode']} {row['sparsity']:.0%}: test {row['test_acc']}",
              flush=True)
    if args.workers <= 1:
        for job in jobs:
            finished(run_job(job, args))
    else:
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in as_completed([pool.submit(run_job, job, args) for job in jobs]):
                finished(future.result())
    print(f"{len(jobs)} jobs in {time.perf_counter() - started:.0f} s", flush=True)
    write_text_atomic(out / "summary.md", summary(pd.DataFrame(rows), out))


def retime(frame: pd.DataFrame, passes: int = 5) -> pd.DataFrame:
    """ONNX Runtime latency (1 thread; batch 1 and 256) of every distinct architecture in ``frame``,
    timed here one model at a time and round-robin across them (zeros do not change a dense kernel's
    time, so an architecture is its model and widths)."""
    archs = frame.dropna(subset=["widths"])[["model", "widths"]].drop_duplicates().to_dict("records")
    models = []
    for a in archs:
        torch.manual_seed(0)
        model = create_model(a["model"])
        example = torch.zeros(1, *getattr(model, "input_shape", (1, 28, 28)))
        analysis = analyse_model(model.eval(), example)
        kept = dict(zip(analysis.group_names, json.loads(a["widths"])))
        models.append((prune_physically(analysis, rank_channels(analysis, "l1"), kept).eval(), example))
    out = []
    for batch in (1, 256):
        times = {i: [] for i in range(len(models))}
        for _ in range(passes):
            for i, (m, example) in enumerate(models):
                settings = LatencySettings(threads=1, batch_size=batch)
                times[i].append(measure_onnx_latency(to_onnx_bytes(m, example), tuple(example.shape[1:]), settings))
        for i, a in enumerate(archs):
            out.append({**a, "batch": batch, "latency_ms": round(min(times[i]), 4)})
    return pd.DataFrame(out)


def summary(frame: pd.DataFrame, out: Path) -> str:
    """Test accuracy (mean ± sd over seeds) per model, mode and sparsity; sizes at each, and the
    latency of ``out/retimed.csv`` when it is there."""
    timed = out / "retimed.csv"
    if timed.is_file():
        times = pd.read_csv(timed).pivot_table(index=["model", "widths"], columns="batch", values="latency_ms")
        times.columns = [f"latency_b{b}_ms" for b in times.columns]
        frame = frame.merge(times.reset_index(), on=["model", "widths"], how="left")
    lines = ["# Pruning modes: test accuracy (%), mean ± sd over seeds\n"]
    for model, rows in frame.groupby("model", sort=False):
        def ms(mode: str, rows: pd.DataFrame = rows) -> str:
            acc = rows[rows["mode"] == mode]["test_acc"] * 100
            return f"{acc.mean():.2f} ± {acc.std(ddof=0):.2f}"
        pruned = rows[rows["sparsity"] > 0]
        levels = sorted(pruned["sparsity"].unique())
        lines += [f"## {model}: dense {ms('dense')}; trained the same extra epochs unpruned {ms('continued')}\n",
                  "| mode | " + " | ".join(f"{s:.0%}" for s in levels) + " |", "|---|" + "---|" * len(levels)]
        for mode in [m for m in MODES if m in set(rows["mode"])]:
            cells = []
            for s in levels:
                acc = rows[(rows["mode"] == mode) & (rows["sparsity"] == s)]["test_acc"].dropna() * 100
                cells.append(f"{acc.mean():.2f} ± {acc.std(ddof=0):.2f}" if len(acc) else "–")
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        lines.append("")
        cols = [c for c in ("weight_share", "gzip_bytes", "bitmask_bytes", "csr_bytes", "latency_b1_ms",
                            "latency_b256_ms") if c in rows]
        order = {m: i for i, m in enumerate(("dense", "continued", *MODES))}
        table = rows.groupby(["mode", "sparsity"])[cols].mean().reset_index()
        table = table.astype({c: int for c in cols if c.endswith("bytes")}).round(4)
        table = table.sort_values(["sparsity", "mode"], key=lambda c: c.map(order) if c.name == "mode" else c)
        lines += ["Sizes (bytes) and latency (ms, ONNX Runtime, 1 thread), mean over seeds:\n", "```",
                  table.to_string(index=False), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
