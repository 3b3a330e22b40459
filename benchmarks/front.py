"""Front and dynamic pruning on ResNet-20: one budget-conditioned search vs separate searches, and
the front's policies as one dynamic model.

(a) One search over budgets 30-70 % of the latency (the lookup table of the head-to-head protocol,
steps of 8 channels, at most 90 % of a group pruned) against five separate searches with the same
total number of candidate evaluations; the best candidate per budget by the search's scores
(first stage and the re-ranking's short fine-tune). (c) The conditioned front's policies nested
into one :class:`DynamicModel` (BN statistics per width): test accuracy per width before any
fine-tuning, every variant exported and measured against its budget, and the time to switch
widths in PyTorch. Fine-tuning comparisons (the same fine-tune after each search; the jointly
fine-tuned nested family) are not part of this script.

Writes results/<name>/ as it goes (rerun to resume finished searches): config.json, compare.csv,
variants.csv (per width: accuracy, measured latency as a share of the measured dense model
against its budget), variants/ (variants.json, dynamic.json, one ONNX file per width; dynamic.pt,
not committed), switch.json, runs/ (each search).

Usage: python benchmarks/front.py [--agent sac] [--evaluations 250] [--name front_resnet20]
       [--executor processes|ray --workers N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import torch
from common import ROOT, result_dir

from autoprune.atomic import write_json_atomic, write_text_atomic
from autoprune.checkpoint import load_or_create, shipped_weights
from autoprune.data import load_splits
from autoprune.dynamic import load_dynamic
from autoprune.latency import LatencySettings, measure_latency
from autoprune.model_source import ModelSource
from autoprune.search import SearchConfig, SearchRun
from autoprune.workflow.dynamic_stage import dynamic_stage

BUDGETS = ["30%", "40%", "50%", "60%", "70%"]
TABLE = ROOT / "results" / "head_to_head" / "tables" / "resnet20.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="sac", help="the searcher (the same for both arms)")
    parser.add_argument("--evaluations", type=int, default=250, help="candidate evaluations per arm, in all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rerank-top", type=int, default=SearchConfig().rerank_top)
    parser.add_argument("--name", default="front_resnet20")
    parser.add_argument("--executor", default="local", choices=["local", "processes", "ray"],
                        help="where candidates are scored (the same histories; see docs/search.md)")
    parser.add_argument("--workers", type=int, default=1, help="scoring workers of --executor processes or ray")
    args = parser.parse_args()
    out = result_dir(args.name)
    common = dict(model="resnet20", weights=str(shipped_weights("resnet20")), cost_model="lut", table=str(TABLE),
                  agent=args.agent, seed=args.seed, max_ratio=0.9, round_to=8, verify_top=0,
                  rerank_top=args.rerank_top)
    write_json_atomic(out / "config.json", {"budgets": BUDGETS, "evaluations": args.evaluations, **common})
    common.update(executor=args.executor, workers=args.workers)  # where, not what: not part of the config
    torch.set_num_threads(2)
    splits = load_splits("fashion-mnist")
    conditioned = search(out / "runs" / "conditioned", splits, budgets=BUDGETS, episodes=args.evaluations, **common)
    rows = []
    for point in conditioned["front"]:
        label = point["label"]
        single = search(out / "runs" / f"separate-{label.rstrip('%')}", splits, budget=label,
                        episodes=args.evaluations // len(BUDGETS), **common)
        best = single["best"] or {}
        rows.append({"budget": label, "conditioned_score": point["score"], "conditioned_finetuned": point["finetuned"],
                     "conditioned_cost_ms": point["cost"], "separate_score": best.get("score", best.get("accuracy")),
                     "separate_finetuned": best.get("finetuned"), "separate_cost_ms": best.get("cost"),
                     "uniform_score": point["uniform_score"], "budget_ms": point["budget"],
                     "evaluations_conditioned": args.evaluations,
                     "evaluations_separate": args.evaluations // len(BUDGETS)})
        write_text_atomic(out / "compare.csv", pd.DataFrame(rows).to_csv(index=False))
    policies = [str(out / "runs" / "conditioned" / p["policy"]) for p in conditioned["front"] if p["policy"]]
    source = ModelSource("resnet20", {}, str(shipped_weights("resnet20")), (1, 28, 28))
    reports = dynamic_stage(policies, source, splits, out / "variants")
    dense_ms = measure_latency(load_or_create("resnet20", shipped_weights("resnet20")), (1, 28, 28), LatencySettings())
    table = [{"budget": r.label, "budget_fraction": float(r.label.rstrip("%")) / 100, "test_acc_no_finetune": r.test_acc,
              "measured_ms": r.measured_ms, "dense_measured_ms": round(dense_ms, 4),
              "measured_share": round(r.measured_ms / dense_ms, 4),
              "over_budget_share": round(r.measured_ms / dense_ms / (float(r.label.rstrip("%")) / 100), 4),
              "channels_cut_by_nesting": sum(r.channels_cut_by_nesting.values())} for r in reports]
    write_text_atomic(out / "variants.csv", pd.DataFrame(table).to_csv(index=False))
    print(pd.DataFrame(table).to_string())
    write_json_atomic(out / "switch.json", switch_times(out / "variants" / "dynamic.pt"))


def search(folder: Path, splits, **settings) -> dict:
    """One search (resumed when its folder holds an unfinished one; skipped when finished)."""
    done = folder / "summary.json"
    if done.is_file() and json.loads(done.read_text()).get("best") is not None:
        return json.loads(done.read_text())
    cfg = SearchConfig(out=str(folder), **settings)
    start = time.perf_counter()
    local = cfg.executor == "local"  # workers load the data by name themselves (no copy sent to each)
    summary = SearchRun(cfg, splits=splits if local else None, progress=False).run(
        resume=(folder / "history.csv").is_file())
    shutil.rmtree(folder / "agent", ignore_errors=True)
    print(f"{folder.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(done.read_text()) if done.is_file() else summary


def switch_times(path: Path, repeats: int = 200) -> dict:
    """Mean time of ``set_variant`` between widths, and of one forward pass at each width (batch 1)."""
    model = load_dynamic(path)
    labels = list(model.variants)
    for label in labels:  # the first switch to each width builds its slicing plan
        model.set_variant(label)
    start = time.perf_counter()
    for i in range(repeats):
        model.set_variant(labels[i % len(labels)])
    switch_ms = (time.perf_counter() - start) / repeats * 1e3
    x = torch.randn(1, 1, 28, 28)
    forward = {}
    with torch.no_grad():
        for label in labels:
            model.set_variant(label)
            model(x)
            start = time.perf_counter()
            for _ in range(50):
                model(x)
            forward[label] = round((time.perf_counter() - start) / 50 * 1e3, 4)
    return {"switch_ms": round(switch_ms, 4), "forward_ms_torch": forward, "threads": torch.get_num_threads()}


if __name__ == "__main__":
    main()
