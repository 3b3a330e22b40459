"""The README's main job as a searcher comparison: which searcher finds the best ResNet-20 at 50 %
of its latency, and does it keep searching past its warm-up?

Per searcher and seed: the main job's search (``autoprune search`` defaults: the shipped ResNet-20
on Fashion-MNIST, 50 % of this machine's ONNX Runtime latency under one lookup table profiled once
for every search, 300 episodes, the seed rules first), re-ranking and timing switched off so only
the proposal rule differs. Per search: the best first-stage score and where it was found, the best
score after the warm-up (AMC-DDPG's 100 random episodes; evolution's first population), and the
distinct architectures among the last 100 proposals (a searcher that collapses proposes a few).

Writes ``results/<name>/runs.csv`` (one row per searcher and seed, appended as searches finish, so
a rerun resumes), ``summary.md`` and the table under ``tables/``.

Usage: python benchmarks/main_job_searchers.py [--agents amc-ddpg evolution] [--seeds 0 1]
       [--episodes 300] [--name main_job_searchers]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import torch
from common import result_dir

from autoprune.analysis import analyse_model
from autoprune.atomic import write_text_atomic
from autoprune.checkpoint import load_or_create, shipped_weights
from autoprune.costs import profile_latency_table
from autoprune.search import SearchConfig, SearchRun, read_history

MODEL, BUDGET = "resnet20", "50%"
WARMUP = {"amc-ddpg": 100, "evolution": 20, "thompson": 20}  # episodes of random proposals before the rule takes over


def table(out: Path) -> Path:
    """One latency table for every search (profiled here once)."""
    path = out / "tables" / f"{MODEL}.csv"
    if not path.is_file():
        dense = load_or_create(MODEL, str(shipped_weights(MODEL)), require_weights=True)
        analysis = analyse_model(dense, torch.zeros(1, 1, 28, 28))
        profile_latency_table(analysis, MODEL, round_to=8, progress=False).save(path)
    return path


def search_row(out: Path, agent: str, seed: int, episodes: int) -> dict:
    """One search, summarised."""
    folder = out / "runs" / f"{agent}_seed{seed}"
    config = SearchConfig(model=MODEL, weights=str(shipped_weights(MODEL)), table=str(table(out)), budget=BUDGET,
                          agent=agent, episodes=episodes, seed=seed, rerank_top=0, verify_top=0, out=str(folder))
    start = time.perf_counter()
    summary = SearchRun(config, progress=False).run(resume=(folder / "history.csv").is_file())
    shutil.rmtree(folder / "agent", ignore_errors=True)  # resume state, not a result (MBs of replay buffer)
    history = read_history(folder / "history.csv")
    seeds = len(config.seeds)
    warm = seeds + WARMUP.get(agent, 0)
    after = history[history["episode"] >= warm]
    last = history.tail(100)
    return {"agent": agent, "seed": seed, "episodes": len(history), "best_score": summary["best"]["score"],
            "best_episode": summary["best"]["episode"], "warmup_episodes": warm,
            "best_before_warmup_end": float(history[history["episode"] < warm]["score"].max()),
            "best_after_warmup": float(after["score"].max()) if len(after) else float("nan"),
            "mean_after_warmup": float(after["score"].mean()) if len(after) else float("nan"),
            "distinct_last_100": int(last["kept"].nunique()), "search_s": round(time.perf_counter() - start, 1)}


def write_summary(out: Path, rows: pd.DataFrame) -> None:
    lines = ["# The main job's search per searcher (ResNet-20, 50 % latency, 300 episodes)", "",
             "| searcher | seed | best score | found at episode | best after warm-up | distinct in last 100 | "
             "search s |", "|---|---|---|---|---|---|---|"]
    for r in rows.itertuples():
        lines.append(f"| {r.agent} | {r.seed} | {r.best_score:.4f} | {r.best_episode} | "
                     f"{r.best_after_warmup:.4f} (from episode {r.warmup_episodes}) | {r.distinct_last_100} | "
                     f"{r.search_s:.0f} |")
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", nargs="+", default=["amc-ddpg", "evolution"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--episodes", type=int, default=300)
    p.add_argument("--name", default="main_job_searchers")
    args = p.parse_args()
    out = result_dir(args.name)
    csv = out / "runs.csv"
    rows = pd.read_csv(csv).to_dict("records") if csv.is_file() else []
    done = {(r["agent"], r["seed"]) for r in rows}
    for seed in args.seeds:
        for agent in args.agents:
            if (agent, seed) in done:
                continue
            rows.append(search_row(out, agent, seed, args.episodes))
            write_text_atomic(csv, pd.DataFrame(rows).to_csv(index=False))
            print(json.dumps(rows[-1]), flush=True)
    write_summary(out, pd.DataFrame(rows))


if __name__ == "__main__":
    main()
