"""Parallel scoring: a 100-candidate random search of ResNet-20 (Fashion-MNIST, 50 % latency) run
in this process, on 1 and 2 worker processes, and on 1 and 2 Ray actors; wall time, speed-up,
overhead per candidate, and an estimate for 16 and 64 workers from the measured scoring time and
overhead (wall = candidates x (scoring / workers + overhead)). Every run must give the same history.

Writes results/parallel_eval/: runs.csv, summary.json, runs/ (each search's folder).
Usage: python benchmarks/studies/executors.py [--candidates 100] [--skip-ray]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import time

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import pandas as pd
import torch
from common import ROOT, result_dir

from autoprune.atomic import write_json_atomic, write_text_atomic
from autoprune.checkpoint import shipped_weights
from autoprune.search import SearchConfig, SearchRun

TABLE = ROOT / "results" / "head_to_head" / "tables" / "resnet20.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--arms", help="only these runs, e.g. ray-2 (the others are read from runs.csv)")
    args = parser.parse_args()
    out = result_dir("parallel_eval")
    torch.set_num_threads(2)
    arms = [("local", 1), ("processes", 1), ("processes", 2)]
    if not args.skip_ray and importlib.util.find_spec("ray") is not None:
        arms += [("ray", 1), ("ray", 2)]
    kept = pd.read_csv(out / "runs.csv").to_dict("records") if args.arms and (out / "runs.csv").is_file() else []
    if args.arms:
        arms = [(a.split("-")[0], int(a.split("-")[1])) for a in args.arms.split(",")]
        kept = [r for r in kept if (r["executor"], r["workers"]) not in arms]
    rows, histories = [{k: r[k] for k in list(r)[:8]} for r in kept], {}
    for r in kept:
        histories[f"{r['executor']}-{r['workers']}"] = pd.read_csv(
            out / "runs" / f"{r['executor']}-{r['workers']}" / "history.csv").drop(columns=["wall_s", "score_s"])
    for executor, workers in arms:
        folder = out / "runs" / f"{executor}-{workers}"
        shutil.rmtree(folder, ignore_errors=True)
        cfg = SearchConfig(model="resnet20", weights=str(shipped_weights("resnet20")), cost_model="lut",
                           table=str(TABLE), budget="50%", agent="random", episodes=args.candidates, seeds=[],
                           rerank_top=0, verify_top=0, round_to=8, max_ratio=0.9, executor=executor,
                           workers=workers, out=str(folder))
        start = time.perf_counter()
        summary = SearchRun(cfg, progress=False).run()
        total = time.perf_counter() - start
        history = pd.read_csv(folder / "history.csv")
        histories[f"{executor}-{workers}"] = history.drop(columns=["wall_s", "score_s"])
        scoring = float(history["score_s"].mean())
        wall = float(summary["wall_s"])
        rows.append({"executor": executor, "workers": workers, "candidates": len(history),
                     "wall_s": round(wall, 2), "total_s_with_startup": round(total, 2),
                     "scoring_s_per_candidate": round(scoring, 4),
                     "wall_s_per_candidate": round(wall / len(history), 4),
                     "overhead_s_per_candidate": round(wall / len(history) - scoring / workers, 4)})
        write_text_atomic(out / "runs.csv", pd.DataFrame(rows).to_csv(index=False))
        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    base = float(frame.loc[frame["executor"] == "local", "wall_s"].iloc[0])
    frame["speedup_vs_local"] = (base / frame["wall_s"]).round(3)
    frame["overhead_share_of_scoring"] = (frame["overhead_s_per_candidate"] / frame["scoring_s_per_candidate"]).round(4)
    write_text_atomic(out / "runs.csv", frame.to_csv(index=False))
    reference = next(iter(histories.values()))
    estimate = {}
    for executor in ("processes", "ray"):
        two = frame[(frame["executor"] == executor) & (frame["workers"] == 2)]
        if len(two):
            s, o = float(two["scoring_s_per_candidate"].iloc[0]), max(float(two["overhead_s_per_candidate"].iloc[0]), 0.0)
            estimate[executor] = {str(w): round(args.candidates * (s / w + o), 1) for w in (16, 64)}
    write_json_atomic(out / "summary.json", {
        "same_history_everywhere": all(h.equals(reference) for h in histories.values()),
        "estimated_wall_s_for_workers": estimate, "runs": frame.to_dict("records"),
        "model": "wall = candidates x (scoring per candidate / workers + overhead per candidate), from the "
                 "2-worker run; ignores contention for memory bandwidth and a shared data source"})
    for name in histories:
        shutil.rmtree(out / "runs" / name / "agent", ignore_errors=True)
    print(frame.to_string())


if __name__ == "__main__":
    main()
