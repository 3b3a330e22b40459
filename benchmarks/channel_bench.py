"""Optimiser quality on Channel-Bench-Macro: regret of every searcher under a FLOPs budget.

Every search goes through the tool's real search path (``autoprune search`` settings: the built-in
``cbm_<space>`` model, ``--widths 0.25,0.5,0.75,1.0``, ``--cost-model flops``, ``--score
channel-bench:PATH``): the score of a candidate is one of its three training runs in the table,
drawn from the seed, the architecture and how often it was asked (noisy, reproducible).

Queries are the budget: every episode is one query (an architecture asked again draws another run
and counts again); the last ``REFINE`` of a searcher's queries are the search's refinement stage
(``--refine``: the best architectures asked again and their one-step neighbours, most promising
first), the returned architecture the best by its lower confidence bound. One-shot rules (uniform,
knapsack) ask once. Regret = best feasible mean accuracy - the returned architecture's.

Writes ``DIR/runs.csv`` (space, budget, method, seed, queries, chosen_arch, chosen_mean, best_mean,
regret, rank_percentile), ``DIR/curves.csv`` (regret of the best-so-far by queries), ``DIR/summary.md``
and ``DIR/regret_<budget>.png``; finished rows are kept, so a rerun resumes.

Usage: python benchmarks/channel_bench.py --json .../Results_MobileNet.json --space mobilenet
       [--budgets 0.3 0.5 0.7] [--queries 300] [--seeds 10] [--first-seed 0] [--methods random thompson:intensify=0 ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import ROOT, output_dir

from autoprune.agents import ONE_SHOT, list_searchers, parse_overrides
from autoprune.atomic import write_text_atomic
from autoprune.channel_bench import ChannelBenchTable, load_table
from autoprune.models.channel_bench import SPACES
from autoprune.search import SearchConfig, SearchRun, read_history
from autoprune.search.config import DEFAULT_AGENT
from autoprune.sweep import run_tasks

CURVE_EVERY = 5  # the regret curve is kept at the first query and every 5th
WIDTHS = [0.25, 0.5, 0.75, 1.0]
REFINE = 100  # of the queries, the refinement stage's (measured: 100 of 300 beat 0, 8 x 2 re-queries and 150)
SEEDS = ["uniform", "knapsack"]  # global magnitude left out: the table's trained weights are not published
COLUMNS = ["space", "budget", "method", "seed", "queries", "chosen_arch", "chosen_mean", "best_mean", "regret",
           "rank_percentile", "search_s"]


@dataclasses.dataclass(frozen=True)
class Cell:
    space: str
    budget: float
    method: str
    seed: int


def table_search(space: str, json_path: str, **settings) -> SearchConfig:
    """A search of a Channel-Bench-Macro table as the benchmarks here run it: the built-in model on
    synthetic inputs, the table's score, FLOPs, the listed widths, no re-ranking or timing."""
    return SearchConfig(model=SPACES[space].model, data="synthetic", input_shape=[3, 32, 32],
                        score=f"channel-bench:{json_path}", cost_model="flops", widths=list(WIDTHS), rerank_top=0,
                        verify_top=0, max_ratio=0.75, **settings)


def method_agent(method: str) -> tuple[str, dict]:
    """A method label as the agent and its parameters: ``thompson:intensify=0,top=3`` (``default``:
    the default searcher)."""
    name, _, params = method.partition(":")
    return DEFAULT_AGENT if name == "default" else name, parse_overrides(params.split(",")) if params else {}


def search(cell: Cell, json_path: str, queries: int, folder: Path) -> tuple[dict, pd.DataFrame]:
    """One search of ``cell`` within ``queries`` table queries; its row and its history."""
    agent, params = method_agent(cell.method)
    one_shot = agent in ONE_SHOT
    config = table_search(cell.space, json_path, budget=str(cell.budget), agent=agent, agent_params=params,
                          episodes=1 if one_shot else queries, refine=0 if one_shot else REFINE, seed=cell.seed,
                          seeds=[] if one_shot else SEEDS, out=str(folder))
    start = time.perf_counter()
    SearchRun(config, progress=False).run()
    seconds = time.perf_counter() - start
    table = load_table(json_path)
    chosen = table.space.key(json.loads((folder / "best_policy.json").read_text())["channels"])
    history = read_history(folder / "history.csv")
    return _row(table, cell, chosen, len(history), seconds), history


def _row(table: ChannelBenchTable, cell: Cell, key: str, queries: int, seconds: float) -> dict:
    feasible = table.feasible(cell.budget)
    best = table.best(cell.budget)[1]
    mean = table.entries[key].mean
    better = sum(table.entries[k].mean > mean for k in feasible)
    return {"space": cell.space, "budget": cell.budget, "method": cell.method, "seed": cell.seed, "queries": queries,
            "chosen_arch": key, "chosen_mean": round(mean, 4), "best_mean": round(best, 4),
            "regret": round(best - mean, 4), "rank_percentile": round(100 * better / len(feasible), 3),
            "search_s": round(seconds, 1)}


def curve(table: ChannelBenchTable, cell: Cell, history: pd.DataFrame) -> pd.DataFrame:
    """Regret of the best-so-far architecture (by the mean of its queries) after the first query and
    every :data:`CURVE_EVERY`-th."""
    best = table.best(cell.budget)[1]
    sums: dict[str, list[float]] = {}
    rows, chosen = [], None
    for q, (kept, acc, ok) in enumerate(zip(history["kept"], history["score"], history["feasible"]), 1):
        if ok:
            key = table.space.key(json.loads(kept))
            sums.setdefault(key, []).append(float(acc))
            chosen = max(sums, key=lambda k: (np.mean(sums[k]), -list(sums).index(k)))
        if chosen is not None and (q == 1 or q % CURVE_EVERY == 0):
            rows.append({"space": cell.space, "budget": cell.budget, "method": cell.method, "seed": cell.seed,
                         "queries": q, "regret": round(best - table.entries[chosen].mean, 4)})
    return pd.DataFrame(rows)


def run_cell(cell: Cell, json_path: str, queries: int) -> tuple[dict, list[dict]]:
    """A cell in its own scratch folder (the search's files are not kept: the row and curve are)."""
    torch.set_num_threads(1)  # cells run side by side, one core each
    with tempfile.TemporaryDirectory() as tmp:
        row, history = search(cell, json_path, queries, Path(tmp) / "run")
    return row, curve(load_table(json_path), cell, history).to_dict("records")


PAIRED_AT = 200  # queries at which searchers are compared with random search, seed by seed (before refinement)


def paired_lines(curves: pd.DataFrame, at: int) -> list[str]:
    """Each method's regret at ``at`` queries against random search's, paired by seed: the mean
    difference (random - method; positive: better than random) and its standard error."""
    here = curves[curves.queries == at].pivot_table(index="seed", columns="method", values="regret")
    if "random" not in here:
        return []
    lines = [f"Against random search at {at} queries, paired by seed (random - method; positive: better):", "",
             "| method | seeds | mean difference | paired SE | > 2 SE better |", "|---|---|---|---|---|"]
    for method in (m for m in here.columns if m != "random"):
        diff = (here["random"] - here[method]).dropna()
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
        lines.append(f"| {method} | {len(diff)} | {diff.mean():+.3f} | {se:.3f} | "
                     f"{'yes' if diff.mean() > 2 * se else 'no'} |")
    return lines


def summarise(runs: pd.DataFrame, curves: pd.DataFrame, table: ChannelBenchTable, out: Path, queries: int) -> None:
    """summary.md and one regret-versus-queries plot per budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    within = [table.entries[str(k)].flops <= b * table.full_flops for k, b in zip(runs.chosen_arch, runs.budget)]
    lines = [f"# Channel-Bench-Macro, {table.space.model}: regret after {queries} noisy queries", "",
             "Regret (accuracy points) = best feasible mean - returned architecture's mean; mean ± sd over seeds.",
             f"Returned architectures within their FLOPs budget: {sum(within)} of {len(within)}.", ""]
    for budget, part in runs.groupby("budget"):
        best_key, best = table.best(budget)
        uniform = max((k for k in table.feasible(budget) if len(set(k)) == 1), key=lambda k: table.entries[k].mean)
        lines += [f"## {budget:.0%} of the full net's FLOPs", "",
                  f"{len(table.feasible(budget))} feasible architectures; best {best_key} ({best:.2f} %), best uniform "
                  f"{uniform} ({table.entries[uniform].mean:.2f} %).", "",
                  "| method | seeds | regret mean | sd | at 30 / 100 queries | beats best uniform | median rank % |",
                  "|---|---|---|---|---|---|---|"]
        for method, m in part.groupby("method"):
            at = curves[(curves.budget == budget) & (curves.method == method)]
            early = [at[at.queries == q].regret.mean() for q in (30, 100)]
            wins = int((m.chosen_mean > table.entries[uniform].mean).sum())
            lines.append(f"| {method} | {len(m)} | {m.regret.mean():.3f} | {m.regret.std(ddof=0):.3f} | "
                         f"{early[0]:.3f} / {early[1]:.3f} | {wins}/{len(m)} | {m.rank_percentile.median():.2f} |")
        lines += ["", *paired_lines(curves[curves.budget == budget], PAIRED_AT), ""]
        fig, ax = plt.subplots(figsize=(6, 4))
        for method, m in curves[curves.budget == budget].groupby("method"):
            mean = m.groupby("queries").regret.mean()
            ax.plot(mean.index, mean.values, label=method)
        ax.set(xlabel="queries", ylabel="regret (points)", title=f"{table.space.model}, {budget:.0%} FLOPs",
               yscale="log")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"regret_{round(budget * 100)}pct.png", dpi=120)
        plt.close(fig)
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True, help="Results_MobileNet.json or Results_ResNet.json")
    p.add_argument("--space", choices=sorted(SPACES), required=True)
    p.add_argument("--budgets", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1 (a replication "
                                                             "on seeds no setting was chosen on)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="names as --agent takes them, plus 'default', each optionally with parameters "
                        "(thompson:intensify=0); all when omitted")
    p.add_argument("--workers", type=int, default=2, help="cells at a time (processes)")
    p.add_argument("--out", default=None, help="results folder (default: results/channel_bench/<space>)")
    args = p.parse_args()
    if args.first_seed < 0 or args.seeds < 1:
        p.error("--first-seed must be >= 0 and --seeds >= 1")
    table = load_table(args.json)
    if table.space is not SPACES[args.space]:
        sys.exit(f"{args.json} is the {table.space.model} table, not --space {args.space}")
    methods = args.methods or ["default", *(m for m in list_searchers() if m not in ("global-magnitude", "ddpg",
                                                                                      "tp-global"))]
    out = output_dir(args.out, f"channel_bench/{args.space}")
    runs_path, curves_path = out / "runs.csv", out / "curves.csv"
    runs = pd.read_csv(runs_path, dtype={"chosen_arch": str}) if runs_path.is_file() else pd.DataFrame(columns=COLUMNS)
    curves = pd.read_csv(curves_path) if curves_path.is_file() else pd.DataFrame()
    done = {(r.budget, r.method, r.seed) for r in runs.itertuples()}
    alias = DEFAULT_AGENT if "default" in methods and DEFAULT_AGENT in methods else None  # one search, two names
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    cells = [Cell(args.space, b, m, s) for b in args.budgets for m in methods for s in seeds
             if (b, m, s) not in done and not (m == "default" and alias)]
    print(f"{len(cells)} searches to run ({len(done)} done)", flush=True)
    fn = functools.partial(run_cell, json_path=str(Path(args.json).resolve()), queries=args.queries)
    executor = "processes" if args.workers > 1 else "local"
    for task in run_tasks(fn, cells, executor, args.workers):
        if task.error is not None:
            print(f"{task.item}: {type(task.error).__name__}: {task.error}", flush=True)
            continue
        row, points = task.result
        runs = pd.concat([runs, pd.DataFrame([row])], ignore_index=True)
        curves = pd.concat([curves, pd.DataFrame(points)], ignore_index=True)
        write_text_atomic(curves_path, curves.to_csv(index=False))  # the curve first: a row means both exist
        write_text_atomic(runs_path, runs.to_csv(index=False))
        print(f"{row['budget']:.0%} {row['method']:>16} seed {row['seed']}: regret {row['regret']:.3f} "
              f"({row['chosen_arch']}, {row['search_s']:.0f} s)", flush=True)
    if alias:  # the default agent's rows, under its own name and as "default"
        runs = pd.concat([runs[runs.method != "default"],
                          runs[runs.method == alias].assign(method="default")], ignore_index=True)
        curves = pd.concat([curves[curves.method != "default"],
                            curves[curves.method == alias].assign(method="default")], ignore_index=True)
        write_text_atomic(curves_path, curves.to_csv(index=False))
        write_text_atomic(runs_path, runs.to_csv(index=False))
    summarise(runs, curves, table, out, args.queries)
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    main()
