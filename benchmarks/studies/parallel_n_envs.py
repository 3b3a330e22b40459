"""Parallel candidate scoring: AMC-DDPG on ResNet-20 / Fashion-MNIST at 50 % latency with
1 environment (torch on 2 threads) vs 2 worker environments (1 thread each, SB3 SubprocVecEnv),
same episodes, same lookup table. Reports wall time, episodes per second and the best accuracy.

Writes results/parallel_n_envs/: n_envs_<k>/ (run folders), summary.json.
Usage: python benchmarks/studies/parallel_n_envs.py [--episodes 60] [--n-envs 1 2]
"""

from __future__ import annotations

import argparse
import shutil

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import torch
from common import ROOT, result_dir

from autoprune.atomic import write_json_atomic
from autoprune.search import SearchConfig, SearchRun


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--n-envs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--table", default=str(ROOT / "results/cost_fidelity/resnet20_table.csv"))
    args = parser.parse_args()
    out = result_dir("parallel_n_envs")
    torch.set_num_threads(2)
    rows = {}
    for n in args.n_envs:
        folder = out / f"n_envs_{n}"
        shutil.rmtree(folder, ignore_errors=True)
        config = SearchConfig(table=args.table, episodes=args.episodes, n_envs=n,
                              agent_params={"warmup_episodes": 20}, out=str(folder))
        s = SearchRun(config, "python benchmarks/studies/parallel_n_envs.py", progress=False).run()
        rows[n] = {"wall_s": s["wall_s"], "episodes_per_s": round(args.episodes / s["wall_s"], 3),
                   "scoring_s_summed_over_envs": s["scoring_s"], "best_val_accuracy": s["best"]["score"]}
        print(n, rows[n])
    write_json_atomic(out / "summary.json", {"episodes": args.episodes, "warmup_episodes": 20, "runs": rows})


if __name__ == "__main__":
    main()
