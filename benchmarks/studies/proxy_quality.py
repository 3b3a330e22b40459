"""Proxy quality: how well each search score predicts the accuracy after the final fine-tune.

For ResNet-20 at 30 % and 50 % of its latency (one lookup table for both): the three seed rules'
candidates plus random candidates (random actions, projected onto the budget), each scored by the
first stage (BN recalibration + validation accuracy) and the second stage (a short fine-tune, then
validation accuracy), then applied for real and fine-tuned (``--epochs`` on the full fine-tune
split, distillation from the dense model) and tested. Spearman between each stage and the final
test accuracy, per budget. Resumes: finished candidates are kept in ``candidates.csv``.

Usage: python benchmarks/studies/proxy_quality.py [--candidates 12] [--epochs 1] [--name proxy_quality]
"""

from __future__ import annotations

import argparse
import json

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import numpy as np
import pandas as pd
import torch
from common import result_dir
from protocol import protocol_finetune
from scipy.stats import spearmanr

from autoprune.agents import SEED_RULES
from autoprune.analysis import analyse_model
from autoprune.apply import apply_policy
from autoprune.atomic import write_json_atomic, write_text_atomic
from autoprune.checkpoint import load_or_create, shipped_weights
from autoprune.costs import profile_latency_table
from autoprune.data import load_splits
from autoprune.envs import EpisodeResult
from autoprune.policy import PruningPolicy
from autoprune.search import SearchConfig, SearchRun

MODEL, ROUND_TO, MAX_RATIO, STEPS = "resnet20", 8, 0.9, SearchConfig().rerank_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=12, help="per budget, seed rules included")
    parser.add_argument("--epochs", type=int, default=1, help="final fine-tuning epochs")
    parser.add_argument("--budgets", default="0.3,0.5")
    parser.add_argument("--name", default="proxy_quality")
    args = parser.parse_args()
    out = result_dir(args.name)
    torch.set_num_threads(2)
    splits = load_splits("fashion-mnist")
    weights = str(shipped_weights(MODEL))
    table = out / "resnet20_table.csv"
    if not table.is_file():
        dense = load_or_create(MODEL, weights)
        profile_latency_table(analyse_model(dense, torch.zeros(1, *splits.input_shape)), MODEL,
                              round_to=ROUND_TO, progress=False).save(table)
    path = out / "candidates.csv"
    rows = pd.read_csv(path).to_dict("records") if path.is_file() else []
    for budget in [float(b) for b in args.budgets.split(",")]:
        run = SearchRun(SearchConfig(model=MODEL, weights=weights, table=str(table), budget=f"{budget:.0%}",
                                     agent="random", max_ratio=MAX_RATIO, round_to=ROUND_TO,
                                     out=str(out / "scratch")), splits=splits, progress=False)
        env = run.prepare()
        for i, kept in enumerate(candidates(env, args.candidates)):
            if any(r["budget"] == budget and r["candidate"] == i for r in rows):
                continue
            rows.append({"budget": budget, "candidate": i, "source": kept.pop("_source"),
                         "cost_ms": env.wall.cost_of(kept), **score(run, kept, splits, weights, args.epochs),
                         "kept": json.dumps(kept)})
            write_text_atomic(path, pd.DataFrame(rows).to_csv(index=False))
            print(f"{budget:.0%} #{i}: {rows[-1]['stage1']:.4f} / {rows[-1]['stage2']:.4f} -> "
                  f"{rows[-1]['final_test']:.4f}", flush=True)
    frame = pd.DataFrame(rows)
    summary = {f"{b:.0%}": {"candidates": len(c), "final_epochs": args.epochs, "stage2_steps": STEPS,
                            "spearman_stage1": float(spearmanr(c.stage1, c.final_test).statistic),
                            "spearman_stage2": float(spearmanr(c.stage2, c.final_test).statistic)}
               for b, c in frame.groupby("budget")}
    write_json_atomic(out / "summary.json", summary)
    print(json.dumps(summary, indent=1))


def candidates(env, n: int) -> list[dict]:
    """The seed rules' architectures, then random actions projected onto the budget (seeded)."""
    out = []
    for name, rule in SEED_RULES.items():
        infos = []
        rule().run(env, 1, infos.append)
        out.append({**infos[0].kept, "_source": name})
    rng = np.random.default_rng(0)
    while len(out) < n:
        env.reset()
        done, info = False, {}
        while not done:
            _, _, done, _, info = env.step(np.array([rng.uniform(-1, 1)], np.float32))
        out.append({**EpisodeResult.of(info).kept, "_source": "random"})
    return out


def score(run: SearchRun, kept: dict, splits, weights: str, epochs: int) -> dict:
    """Both search scores and the final test accuracy after apply + fine-tune."""
    stage1, stage2 = run.evaluator(kept), run.evaluator.finetuned(kept, STEPS)
    ratios = {g.name: 1 - kept[g.name] / g.channels for g in run.analysis.groups}
    policy = PruningPolicy.for_model(run.analysis, ratios, model_name=MODEL, round_to=ROUND_TO)
    dense = load_or_create(MODEL, weights)
    analysis = analyse_model(dense, torch.zeros(1, *splits.input_shape))
    pruned, _ = apply_policy(analysis, policy)
    tuned = protocol_finetune(pruned, splits, epochs, 0, dense.eval())
    return {"stage1": stage1, "stage2": stage2, "final_test": tuned.test_ft}


if __name__ == "__main__":
    main()
