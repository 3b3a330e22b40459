"""A new budget in 50 queries: searches warm-started from an earlier front search, on Channel-Bench-Macro.

Per seed: one budget-conditioned search over 30/50/70 % of the FLOPs (``--budgets``, 300 queries),
then searches at 40 % and 60 % with 50 queries each (of which the last 15 refine), warm-started
from it (``--warm-start``) and, for comparison, cold. Search settings as ``channel_bench.py``'s
(noisy table scores, listed widths). Regret = best feasible mean - the returned architecture's.

Writes ``DIR/runs.csv`` (space, seed, budget, start, chosen_arch, regret) and ``DIR/summary.md``;
finished rows are kept, so a rerun resumes.

Usage: python benchmarks/warm_start.py --json .../Results_MobileNet.json --space mobilenet [--seeds 10]
       [--agent evolution] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
from channel_bench import table_search
from common import output_dir

from autoprune.atomic import write_text_atomic
from autoprune.channel_bench import load_table
from autoprune.models.channel_bench import SPACES
from autoprune.search import SearchConfig, SearchRun

FRONT, NEW, QUERIES, REFINE, FRONT_QUERIES = [0.3, 0.5, 0.7], [0.4, 0.6], 50, 15, 300


def config(space: str, json_path: str, agent: str, seed: int, out: Path, **settings) -> SearchConfig:
    return table_search(space, json_path, agent=agent, seed=seed, seeds=["uniform", "knapsack"], out=str(out),
                        **settings)


def seed_rows(space: str, json_path: str, agent: str, seed: int) -> list[dict]:
    """One seed: the front search, then each new budget warm and cold."""
    table, rows = load_table(json_path), []
    with tempfile.TemporaryDirectory() as tmp:
        front = Path(tmp) / "front"
        SearchRun(config(space, json_path, agent, seed, front, budgets=[f"{b:.0%}" for b in FRONT],
                         episodes=FRONT_QUERIES), progress=False).run()
        for budget in NEW:
            for start in ("warm", "cold"):
                out = Path(tmp) / f"{start}{budget}"
                SearchRun(config(space, json_path, agent, seed, out, budget=f"{budget:.0%}", episodes=QUERIES,
                                 refine=REFINE, warm_start=str(front) if start == "warm" else None),
                          progress=False).run()
                key = table.space.key(json.loads((out / "best_policy.json").read_text())["channels"])
                rows.append({"space": space, "seed": seed, "budget": budget, "start": start, "chosen_arch": key,
                             "regret": round(table.best(budget)[1] - table.entries[key].mean, 4)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--space", choices=sorted(SPACES), required=True)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--agent", default="evolution")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    out = output_dir(args.out, f"warm_start/{args.space}")
    path = out / "runs.csv"
    runs = pd.read_csv(path, dtype={"chosen_arch": str}) if path.is_file() else pd.DataFrame()
    json_path = str(Path(args.json).resolve())
    for seed in range(args.seeds):
        if len(runs) and seed in set(runs["seed"]):
            continue
        runs = pd.concat([runs, pd.DataFrame(seed_rows(args.space, json_path, args.agent, seed))], ignore_index=True)
        write_text_atomic(path, runs.to_csv(index=False))
        print(f"seed {seed}: done", flush=True)
    lines = [f"# A new budget in {QUERIES} queries, {SPACES[args.space].model} ({args.agent})", "",
             f"Warm: started from a search over {', '.join(f'{b:.0%}' for b in FRONT)} ({FRONT_QUERIES} queries); "
             f"cold: from nothing. {QUERIES} queries each, the last {REFINE} refining. Regret in accuracy points, "
             f"over {runs['seed'].nunique()} seeds.", "",
             "| budget | start | regret mean | max | within 0.10 |", "|---|---|---|---|---|"]
    for (budget, start), part in runs.groupby(["budget", "start"], sort=True):
        lines.append(f"| {budget:.0%} | {start} | {part.regret.mean():.3f} | {part.regret.max():.3f} | "
                     f"{int((part.regret <= 0.10).sum())}/{len(part)} |")
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
