"""Where a search loses on Channel-Bench-Macro at 200 queries: finding the good architectures, or
choosing among them? And how much of its queries Thompson sampling should spend asking again.

Per table, budget, method and seed: the search of ``benchmarks/channel_bench.py`` (noisy table
scores, 300 queries, the seed rules first), its first 200 queries kept. Per search: ``regret``
(of the best architecture by the mean of its queries, the one the benchmark's curve counts),
``explore`` (of the best architecture asked at all: what a perfect choice among the asked ones
would return), how often the returned and the best-asked architectures were asked, the distinct
architectures, and the mean number of queries of the ten best asked. Seeds start at ``--first-seed``
(100 by default): settings are chosen here on other seeds than the 0-19 the benchmark reports.

Writes ``DIR/runs.csv`` (finished rows kept: a rerun resumes) and ``DIR/summary.md`` (means, and
random search's regret minus each method's, paired by seed, with its standard error).

Usage: python benchmarks/studies/requery_share.py --mobilenet .../Results_MobileNet.json
       --resnet .../Results_ResNet.json [--methods random "thompson:intensify=2,top=3" ...]
       [--seeds 10] [--first-seed 100] [--out results/requery_share]
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
from pathlib import Path

import _path  # noqa: F401  (benchmarks/ on the import path)
import numpy as np
import pandas as pd
import torch
from channel_bench import Cell, search
from common import output_dir

from autoprune.atomic import write_text_atomic
from autoprune.channel_bench import load_table
from autoprune.sweep import run_tasks

AT = 200  # queries: the benchmark's comparison point, before refinement
BUDGETS = [0.3, 0.5, 0.7]


def one(cell: Cell, tables: dict[str, str]) -> dict:
    """One search's first :data:`AT` queries, decomposed."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        _, history = search(cell, tables[cell.space], 300, Path(tmp) / "run")
    table = load_table(tables[cell.space])
    best = table.best(cell.budget)[1]
    asked: dict[str, list[float]] = {}
    for kept, score, ok in zip(history["kept"][:AT], history["score"][:AT], history["feasible"][:AT]):
        if ok:
            asked.setdefault(table.space.key(json.loads(kept)), []).append(float(score))
    chosen = max(asked, key=lambda k: np.mean(asked[k]))
    found = max(asked, key=lambda k: table.entries[k].mean)
    ten = sorted(asked, key=lambda k: -table.entries[k].mean)[:10]
    return {"space": cell.space, "budget": cell.budget, "method": cell.method, "seed": cell.seed,
            "regret": round(best - table.entries[chosen].mean, 4), "explore": round(best - table.entries[found].mean, 4),
            "asks_returned": len(asked[chosen]), "asks_best_asked": len(asked[found]), "distinct": len(asked),
            "asks_ten_best": float(np.mean([len(asked[k]) for k in ten]))}


def summary(runs: pd.DataFrame) -> str:
    """Means per cell and method; random search's regret minus each method's, paired by seed."""
    columns = ["regret", "explore", "asks_returned", "asks_best_asked", "distinct", "asks_ten_best"]
    lines = [f"# Regret at {AT} queries, decomposed (seeds {runs.seed.min()}-{runs.seed.max()})", "",
             "| table | budget | method | " + " | ".join(columns) + " |", "|---|---|---|" + "---|" * len(columns)]
    for (space, budget, method), group in runs.groupby(["space", "budget", "method"]):
        lines.append(f"| {space} | {budget:.0%} | {method} | " + " | ".join(f"{group[c].mean():.3f}" for c in columns)
                     + " |")
    lines.append("")
    wide = runs.pivot_table(index=["space", "budget", "seed"], columns="method", values="regret")
    if "random" in wide:
        lines += ["## Random search's regret minus each method's (positive: better), paired by seed", "",
                  "| method | " + " | ".join(f"{s} {b:.0%}" for s, b in wide.groupby(level=[0, 1]).groups) + " |",
                  "|---|" + "---|" * wide.groupby(level=[0, 1]).ngroups]
        for method in (m for m in wide.columns if m != "random"):
            diff = (wide["random"] - wide[method]).groupby(level=[0, 1])
            cells = [f"{m:+.3f} ± {s:.3f}" for m, s in zip(diff.mean(), diff.std(ddof=1) / np.sqrt(diff.count()))]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mobilenet", required=True, help="Results_MobileNet.json")
    p.add_argument("--resnet", required=True, help="Results_ResNet.json")
    p.add_argument("--methods", nargs="+", default=["random", "thompson"])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=100)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = output_dir(args.out, "requery_share")
    path = out / "runs.csv"
    rows = pd.read_csv(path).to_dict("records") if path.is_file() else []
    done = {(r["space"], r["budget"], r["method"], r["seed"]) for r in rows}
    tables = {"mobilenet": str(Path(args.mobilenet).resolve()), "resnet": str(Path(args.resnet).resolve())}
    cells = [Cell(space, budget, method, seed) for space in tables for budget in BUDGETS for method in args.methods
             for seed in range(args.first_seed, args.first_seed + args.seeds)
             if (space, budget, method, seed) not in done]
    print(f"{len(cells)} searches to run ({len(done)} done)", flush=True)
    for task in run_tasks(functools.partial(one, tables=tables), cells, "processes", args.workers):
        if task.error is not None:
            print(f"{task.item}: {type(task.error).__name__}: {task.error}", flush=True)
            continue
        rows.append(task.result)
        write_text_atomic(path, pd.DataFrame(rows).to_csv(index=False))
    write_text_atomic(out / "summary.md", summary(pd.DataFrame(rows)))
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
