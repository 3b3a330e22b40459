"""Search benchmark: AMC-DDPG vs random search, same episodes, ResNet-20 / Fashion-MNIST,
50% of dense latency (lookup table profiled on this machine). Reports wall time, the split between
candidate scoring, environment and agent, and the best validation accuracy found.

Writes results/search_resnet20/: <agent>/ (full run folders), summary.json.
Usage: python benchmarks/studies/search_speed.py [--episodes 300] [--table results/cost_fidelity/resnet20_table.csv]
"""

from __future__ import annotations

import argparse

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import torch
from common import ROOT, result_dir

from autoprune.atomic import write_json_atomic
from autoprune.data import load_splits
from autoprune.search import SearchConfig, SearchRun


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--budget", default="50%")
    parser.add_argument("--agents", nargs="+", default=["amc-ddpg", "random"])
    parser.add_argument("--table", default=str(ROOT / "results/cost_fidelity/resnet20_table.csv"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = result_dir("search_resnet20")
    torch.set_num_threads(2)
    splits = load_splits()
    rows = []
    for agent in args.agents:
        run_dir = out / agent
        if (run_dir / "history.csv").exists():
            (run_dir / "history.csv").unlink()
        cfg = SearchConfig(model="resnet20", cost_model="lut", table=args.table, budget=args.budget, agent=agent,
                           episodes=args.episodes, seed=args.seed, out=str(run_dir))
        summary = SearchRun(cfg, command=f"benchmarks/studies/search_speed.py ({agent})", splits=splits).run()
        wall = summary["wall_s"]
        rows.append({"agent": agent, "episodes": args.episodes, "wall_s": wall, "scoring_s": summary["scoring_s"],
                     "env_s": summary["env_s"], "agent_s": summary["agent_s"],
                     "agent_plus_env_share": (summary["agent_s"] + summary["env_s"]) / wall,
                     "best_val_acc": summary["best"]["score"], "best_episode": summary["best"]["episode"],
                     "best_latency_ms": summary["best"]["latency_ms"], "budget_ms": summary["budget"]["value"],
                     "dense_ms": summary["budget"]["dense"]})
        print(rows[-1])
    write_json_atomic(out / "summary.json", rows)


if __name__ == "__main__":
    main()
