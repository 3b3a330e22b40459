"""Candidate ceiling: how far above the uniform rule can any searched candidate get, and does a
search score tell which?

Takes the feasible candidates of finished searches (their ``history.csv``: the seed rules, the
best by first-stage score and a seeded sample of the others), scores each again the way a search
can (BN recalibration + validation accuracy; the short fine-tune of re-ranking at several
lengths) and fine-tunes each with the head-to-head protocol's fine-tune (epochs on the whole
fine-tune split, distillation from the dense model, one row per seed). Reports the Spearman
correlation of every proxy with the final test accuracy and how far the best candidate lies
above the uniform seed rule: whether a better score would let a search beat the one-liners.

Writes ``--out``: candidates.csv, scores.csv (one row per job, appended as jobs finish, so a
rerun resumes), summary.json.

Usage: python benchmarks/studies/candidate_ceiling.py --searches results/head_to_head/runs/resnet20/30pct
       [--model resnet20] [--top 15] [--others 15] [--seeds 0,1] [--workers 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import pandas as pd
import torch
from common import trimmed
from protocol import per_process, protocol_finetune

from autoprune.analysis import analyse_model
from autoprune.atomic import write_json_atomic, write_text_atomic
from autoprune.checkpoint import load_or_create, shipped_weights
from autoprune.data import load_splits
from autoprune.evaluation import CandidateEvaluator
from autoprune.pruning.importance import rank_channels
from autoprune.pruning.physical import prune_physically
from autoprune.search import read_history
from autoprune.sweep import run_tasks


@dataclass(frozen=True)
class Job:
    """One unit of work: the proxies of a candidate (``seed`` None) or its final fine-tune with a seed."""

    index: int
    kept: str
    seed: int | None


def pick_candidates(searches: Path, top: int, others: int, sample_seed: int = 0) -> pd.DataFrame:
    """Distinct feasible architectures of every ``history.csv`` under ``searches``: the seed rules,
    the ``top`` by first-stage score and ``others`` drawn at random from the rest."""
    frames = [read_history(p).assign(search=str(p.parent.relative_to(searches)))
              for p in sorted(searches.rglob("history.csv"))]
    if not frames:
        raise SystemExit(f"no history.csv under {searches}")
    hist = pd.concat(frames, ignore_index=True)
    hist = hist[hist["feasible"].astype(bool) & hist["score"].notna()]
    hist = hist.sort_values(["accuracy", "episode"], ascending=[False, True]).drop_duplicates("kept")
    rule = hist["source"].astype(str).str.startswith("seed:")
    best = hist[~rule].head(top)
    rest = hist[~rule].iloc[top:]
    sample = rest.sample(min(others, len(rest)), random_state=sample_seed) if len(rest) else rest
    picked = pd.concat([hist[rule].assign(role="rule"), best.assign(role="top"), sample.assign(role="other")])
    cols = ["role", "source", "search", "episode", "accuracy", "latency_ms", "kept"]
    return picked[cols].rename(columns={"accuracy": "search_score"}).reset_index(drop=True)


def _setup(model: str, device: str, short_steps: tuple[int, ...], epochs: int, threads: int,
           ft_images: int | None) -> dict:
    """What a worker loads once: data, dense model, ranking and the search's scorer."""
    torch.set_num_threads(threads)
    splits = trimmed(load_splits("fashion-mnist"), ft_images)
    dense = load_or_create(model, str(shipped_weights(model)), require_weights=True).eval()
    analysis = analyse_model(dense, torch.zeros(1, *splits.input_shape))
    ranking = rank_channels(analysis, "l1", batches=splits.train(64, shuffle=False))
    scorer = CandidateEvaluator(analysis, ranking, splits, device=device)
    teacher = copy.deepcopy(dense).to(device)  # the analysis keeps its own modules untouched
    return {"splits": splits, "teacher": teacher, "analysis": analysis, "ranking": ranking,
            "scorer": scorer, "device": device, "short": short_steps, "epochs": epochs}


def run_job(init: tuple, job: Job) -> dict:
    """A candidate's proxies (``job.seed`` None) or its protocol fine-tune with a seed."""
    s = per_process(_setup, *init)
    kept = json.loads(job.kept)
    if job.seed is None:
        row = {"index": job.index, "seed": -1, "bn_score": s["scorer"](kept)}
        for steps in s["short"]:
            row[f"short_{steps}"] = s["scorer"].finetuned(kept, steps)
        return row
    model = prune_physically(s["analysis"], s["ranking"], kept)
    tuned = protocol_finetune(model, s["splits"], s["epochs"], job.seed, s["teacher"], s["device"])
    return {"index": job.index, "seed": job.seed, "test_bn": tuned.test_bn, "test_ft": tuned.test_ft}


def summarise(cands: pd.DataFrame, scores: pd.DataFrame) -> dict:
    """Spearman of each proxy with the mean final accuracy; best and uniform after fine-tuning."""
    proxies = scores[scores["seed"] < 0].drop(columns=["seed", "test_bn", "test_ft"], errors="ignore")
    final = scores[scores["seed"] >= 0].groupby("index")["test_ft"].agg(["mean", "std", "count"])
    table = cands.join(proxies.set_index("index")).join(final)
    done = table.dropna(subset=["mean"])
    cols = ["search_score", "bn_score", *[c for c in table if str(c).startswith("short_")]]
    uniform = done[done["source"] == "seed:uniform"]["mean"]
    best = done.sort_values("mean", ascending=False).head(1)
    return {
        "candidates": len(cands), "finished": int(len(done)),
        "spearman_with_final": {c: float(done[c].corr(done["mean"], method="spearman"))
                                for c in cols if c in done and done[c].notna().sum() > 2},
        "uniform_final": float(uniform.iloc[0]) if len(uniform) else None,
        "best_final": float(best["mean"].iloc[0]) if len(best) else None,
        "best_source": str(best["source"].iloc[0]) if len(best) else None,
        "best_minus_uniform": float(best["mean"].iloc[0] - uniform.iloc[0]) if len(best) and len(uniform) else None,
        "seed_std_mean": float(done["std"].mean()) if "std" in done else None,
    }


def plot(cands: pd.DataFrame, scores: pd.DataFrame, path: Path) -> None:
    """One panel per proxy: the proxy against the mean final accuracy, the uniform rule marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    proxies = scores[scores["seed"] < 0].set_index("index").drop(columns=["seed", "test_bn", "test_ft"],
                                                                  errors="ignore")
    table = cands.join(proxies).join(scores[scores["seed"] >= 0].groupby("index")["test_ft"].mean())
    cols = ["search_score", *[c for c in proxies if c != "bn_score"]]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.2), sharey=True)
    for ax, col in zip(axes, cols):
        rho = table[col].corr(table["test_ft"], method="spearman")
        ax.scatter(table[col], 100 * table["test_ft"], s=14)
        uni = table[table["source"] == "seed:uniform"]
        ax.scatter(uni[col], 100 * uni["test_ft"], s=40, c="red", label="uniform")
        ax.set_title(f"{col} (Spearman {rho:.2f})", fontsize=9)
    axes[0].set_ylabel("test accuracy after fine-tuning (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=Path, required=True, help="folder holding searches' history.csv")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--others", type=int, default=15)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--short-steps", default="100,400,1600")
    parser.add_argument("--epochs", type=int, default=4, help="final fine-tune epochs (the protocol's 4)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per worker")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--ft-images", type=int, help="fine-tune on the first N images only (a smoke run)")
    parser.add_argument("--limit", type=int, help="only the first N candidates (a smoke run)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cands = pick_candidates(args.searches, args.top, args.others)
    if args.limit:
        cands = cands.head(args.limit)
    write_text_atomic(args.out / "candidates.csv", cands.to_csv(index_label="index"))
    csv = args.out / "scores.csv"
    rows = pd.read_csv(csv).to_dict("records") if csv.is_file() else []
    done = {(r["index"], r["seed"]) for r in rows}
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [Job(i, k, s) for s in [None, *seeds] for i, k in enumerate(cands["kept"])
            if (i, -1 if s is None else s) not in done]
    print(f"{len(cands)} candidates, {len(jobs)} jobs to run on {args.device} with {args.workers} workers",
          flush=True)
    init = (args.model, args.device, tuple(int(s) for s in args.short_steps.split(",")), args.epochs, args.threads,
            args.ft_images)
    executor = "processes" if args.workers > 1 else "local"
    for done in run_tasks(functools.partial(run_job, init), jobs, executor, args.workers):
        if done.error is not None:
            raise done.error
        rows.append(done.result)
        write_text_atomic(csv, pd.DataFrame(rows).to_csv(index=False))
        print(json.dumps(done.result), flush=True)
    summary = summarise(cands, pd.DataFrame(rows))
    summary.update(epochs=args.epochs, seeds=seeds)
    write_json_atomic(args.out / "summary.json", summary)
    plot(cands, pd.DataFrame(rows), args.out / "proxy.png")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
