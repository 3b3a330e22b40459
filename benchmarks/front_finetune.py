"""Front and dynamic pruning after fine-tuning: the front benchmark's policies fine-tuned the same way.

Reads a finished ``benchmarks/front.py`` folder and fine-tunes, per seed:
(a) the best policy of the budget-conditioned search and of each separate search at every budget
    (an architecture both arms chose is fine-tuned once and counts for both);
(b) the nested family (``variants/dynamic.pt``) jointly, every width in every step (the sandwich
    rule with all five widths, in-place distillation from the widest, the widest distilled from
    the dense model), against each nested width fine-tuned on its own: equal total width-steps
    (one joint epoch trains five widths on every batch; five separate fine-tunes of the same
    epochs do the same number of forward and backward passes).
Every fine-tune: BN recalibration, ``--epochs`` epochs on the whole fine-tune split, SGD lr 0.01,
cosine schedule, distillation from the dense model (the head-to-head protocol's fine-tune, with
its epochs as an option).

Writes ``<front>/finetune/``: jobs.csv (one row per fine-tuned model and seed, appended as jobs
finish, so a rerun resumes), architectures.csv, compare_a.csv, compare_b.csv, sizes.json,
front_finetuned.png.

Usage: python benchmarks/front_finetune.py [--front results/front_resnet20] [--epochs 2] [--seeds 0,1]
       [--workers 1] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import functools
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from common import ROOT, trimmed
from protocol import BN_BATCHES, FT_LR, per_process, protocol_finetune

from autoprune.analysis import analyse_model
from autoprune.atomic import write_json_atomic, write_text_atomic
from autoprune.budget import Budget
from autoprune.checkpoint import load_or_create, shipped_weights
from autoprune.data import load_splits
from autoprune.dynamic import load_dynamic
from autoprune.dynamic.joint import joint_finetune
from autoprune.evaluation import search_bn_batches
from autoprune.finetune import FinetuneConfig
from autoprune.policy import PruningPolicy
from autoprune.pruning import rank_channels
from autoprune.pruning.physical import prune_physically
from autoprune.sweep import run_tasks
from autoprune.training import evaluate

JOINT = "joint"


@dataclass(frozen=True)
class Job:
    """A model to fine-tune: ``kept`` channel counts (JSON), or the joint family (``kept`` = JOINT)."""

    kept: str
    seed: int


def architectures(front: Path) -> pd.DataFrame:
    """One row per (arm, budget): the kept channel counts its policy or nested width asks for."""
    dense = load_or_create("resnet20", shipped_weights("resnet20"), require_weights=True).eval()
    analysis = analyse_model(dense, torch.zeros(1, 1, 28, 28))
    rows = []
    for path in sorted((front / "runs" / "conditioned" / "policies").glob("*.json")):
        policy = PruningPolicy.load(path)
        rows.append(("conditioned", _label(policy), policy.architecture(analysis)))
    for folder in sorted((front / "runs").glob("separate-*")):
        policy = PruningPolicy.load(folder / "best_policy.json")
        rows.append(("separate", _label(policy), policy.architecture(analysis)))
    dynamic = load_dynamic(front / "variants" / "dynamic.pt")
    rows += [("nested", label, dict(kept)) for label, kept in dynamic.variants.items()]
    return pd.DataFrame([{"arm": a, "budget": b, "kept": json.dumps(k, sort_keys=True)} for a, b, k in rows])


def _label(policy: PruningPolicy) -> str:
    return f"{round(100 * Budget.from_dict(policy.budget).fraction)}%"


def _setup(front: str, epochs: int, device: str, threads: int, ft_images: int | None) -> dict:
    """What a worker loads once: the data, the dense model and the channel ranking."""
    torch.set_num_threads(threads)
    splits = trimmed(load_splits("fashion-mnist"), ft_images)
    dense = load_or_create("resnet20", shipped_weights("resnet20"), require_weights=True).eval()
    analysis = analyse_model(dense, torch.zeros(1, 1, 28, 28))
    ranking = rank_channels(analysis, "l1", batches=splits.train(64, shuffle=False))
    return {"splits": splits, "teacher": copy.deepcopy(dense).to(device), "analysis": analysis,
            "ranking": ranking, "front": Path(front), "epochs": epochs, "device": device}


def run_job(init: tuple, job: Job) -> list[dict]:
    """The nested family fine-tuned jointly (``job.kept`` JOINT), or one architecture's protocol fine-tune."""
    s = per_process(_setup, *init)
    splits, start = s["splits"], time.perf_counter()
    cfg = FinetuneConfig(epochs=s["epochs"], lr=FT_LR, seed=job.seed, device=s["device"])
    if job.kept == JOINT:
        torch.manual_seed(job.seed)
        model = load_dynamic(s["front"] / "variants" / "dynamic.pt")
        bn = search_bn_batches(splits, 20)
        history = joint_finetune(model, lambda e: splits.train(cfg.batch_size, augment=cfg.augment,
                                                                seed=cfg.seed * 1000 + e),
                                 splits.val(), bn, cfg, s["teacher"], sampled=len(model.variants),
                                 progress=False).history
        seconds = time.perf_counter() - start
        return [{"kept": JOINT, "width": label, "seed": job.seed, "steps": len(model.variants) * _steps(splits, cfg),
                 "test_ft": evaluate(model.set_variant(label).eval(), splits.test()),
                 "val_last": history[-1][f"val_{label}"], "seconds": round(seconds, 1)}
                for label in model.variants]
    model = prune_physically(s["analysis"], s["ranking"], json.loads(job.kept))
    tuned = protocol_finetune(model, splits, s["epochs"], job.seed, s["teacher"], s["device"])
    return [{"kept": job.kept, "width": "", "seed": job.seed, "steps": _steps(splits, cfg), "test_bn": tuned.test_bn,
             "test_ft": tuned.test_ft, "val_best": tuned.best_val, "best_epoch": tuned.best_epoch,
             "seconds": round(time.perf_counter() - start, 1)}]


def _steps(splits, cfg: FinetuneConfig) -> int:
    return cfg.epochs * -(-len(splits.y_train) // cfg.batch_size)


def compare(archs: pd.DataFrame, jobs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(a) conditioned vs separate per budget, (b) joint vs separate per width: mean test accuracy
    over the seeds whose every fine-tune has finished (and how many), so all cells share seeds."""
    needed = {*archs["kept"], JOINT}
    complete = [s for s, rows in jobs.groupby("seed") if needed <= set(rows["kept"])]
    jobs = jobs[jobs["seed"].isin(complete)]
    single = jobs[jobs["kept"] != JOINT]
    joint = jobs[jobs["kept"] == JOINT]

    def mean(kept: str, seeds: set[int]) -> float:
        rows = single[(single["kept"] == kept) & single["seed"].isin(seeds)]
        return float(rows["test_ft"].mean()) if len(rows) else float("nan")

    def seeds_of(kept: str) -> set[int]:
        return set(single[single["kept"] == kept]["seed"])

    arch = {(r.arm, r.budget): r.kept for r in archs.itertuples()}
    rows_a, rows_b = [], []
    for budget in sorted({b for a, b in arch if a == "conditioned"}):
        c, s = arch[("conditioned", budget)], arch.get(("separate", budget))
        seeds = seeds_of(c) & seeds_of(s) if s else set()
        rows_a.append({"budget": budget, "same_architecture": c == s, "seeds": len(seeds),
                       "conditioned": mean(c, seeds), "separate": mean(s, seeds) if s else float("nan"),
                       "difference": mean(c, seeds) - mean(s, seeds) if s else float("nan")})
        n = arch[("nested", budget)]
        j = joint[joint["width"] == budget]
        seeds = set(j["seed"]) & seeds_of(n)
        jointly = float(j[j["seed"].isin(seeds)]["test_ft"].mean()) if seeds else float("nan")
        rows_b.append({"width": budget, "seeds": len(seeds), "joint": jointly, "separate": mean(n, seeds),
                       "difference": jointly - mean(n, seeds)})
    return pd.DataFrame(rows_a), pd.DataFrame(rows_b)


def plot(table_a: pd.DataFrame, table_b: pd.DataFrame, dense_acc: float, path: Path) -> None:
    """Test accuracy after the same fine-tune per budget: both searches, the jointly fine-tuned
    nested family (one set of weights) and its widths fine-tuned one by one; the dense model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = [float(b.rstrip("%")) for b in table_a["budget"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for values, label, style in ((table_a["conditioned"], "one budget-conditioned search", "o-"),
                                 (table_a["separate"], "five separate searches", "s--"),
                                 (table_b["joint"], "nested family, jointly fine-tuned (one set of weights)", "^-"),
                                 (table_b["separate"], "nested widths, fine-tuned one by one", "v:")):
        ax.plot(x, 100 * values.to_numpy(float), style, label=label, markersize=5)
    ax.axhline(100 * dense_acc, color="black", linewidth=0.8, label=f"dense ({100 * dense_acc:.2f} %)")
    ax.set_xlabel("latency budget (% of the dense model)")
    ax.set_ylabel("test accuracy after fine-tuning (%)")
    ax.set_title("ResNet-20 front, Fashion-MNIST", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sizes(front: Path, archs: pd.DataFrame) -> dict:
    """Bytes of the dynamic checkpoint (weights once, BN per width) against the five separately
    pruned models' state dicts."""
    dense = load_or_create("resnet20", shipped_weights("resnet20"), require_weights=True).eval()
    analysis = analyse_model(dense, torch.zeros(1, 1, 28, 28))
    ranking = rank_channels(analysis, "l1")
    total = 0
    for kept in archs[archs["arm"] == "nested"]["kept"]:
        buf = io.BytesIO()
        torch.save(prune_physically(analysis, ranking, json.loads(kept)).state_dict(), buf)
        total += buf.tell()
    return {"dynamic_pt_bytes": (front / "variants" / "dynamic.pt").stat().st_size, "separate_state_dicts_bytes": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--front", type=Path, default=ROOT / "results" / "front_resnet20")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tune epochs per model (protocol: 4)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per worker")
    parser.add_argument("--ft-images", type=int, help="fine-tune on the first N images only (a smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    out = args.front / "finetune"
    out.mkdir(parents=True, exist_ok=True)
    config = {"epochs": args.epochs, "lr": FT_LR, "distillation": "dense model", "bn_recalibration_batches": BN_BATCHES}
    saved = out / "config.json"
    if saved.is_file() and json.loads(saved.read_text())["epochs"] != args.epochs:
        raise SystemExit(f"{out} holds fine-tunes of {json.loads(saved.read_text())['epochs']} epochs; "
                         "use the same --epochs or another --front copy")
    write_json_atomic(saved, config)
    archs = architectures(args.front)
    write_text_atomic(out / "architectures.csv", archs.to_csv(index=False))
    csv = out / "jobs.csv"
    rows = pd.read_csv(csv).to_dict("records") if csv.is_file() else []
    done = {(r["kept"], r["seed"]) for r in rows}
    order = [*archs[archs["arm"] != "nested"]["kept"], JOINT, *archs[archs["arm"] == "nested"]["kept"]]
    jobs = [Job(k, s) for s in (int(x) for x in args.seeds.split(",")) for k in dict.fromkeys(order)
            if (k, s) not in done]
    print(f"{len(jobs)} fine-tunes to run on {args.device} with {args.workers} workers", flush=True)
    init = (str(args.front), args.epochs, args.device, args.threads, args.ft_images)
    executor = "processes" if args.workers > 1 else "local"
    for done in run_tasks(functools.partial(run_job, init), jobs, executor, args.workers):
        if done.error is not None:
            raise done.error
        rows += done.result
        write_text_atomic(csv, pd.DataFrame(rows).to_csv(index=False))
        print(json.dumps(done.result), flush=True)
    table_a, table_b = compare(archs, pd.DataFrame(rows))
    write_text_atomic(out / "compare_a.csv", table_a.to_csv(index=False))
    write_text_atomic(out / "compare_b.csv", table_b.to_csv(index=False))
    write_json_atomic(out / "sizes.json", sizes(args.front, archs))
    dense = load_or_create("resnet20", shipped_weights("resnet20"), require_weights=True).eval()
    plot(table_a, table_b, evaluate(dense, load_splits("fashion-mnist").test()), out / "front_finetuned.png")
    print(table_a.to_string(), table_b.to_string(), sep="\n")


if __name__ == "__main__":
    main()
