"""Why the agents do not learn: what a searcher proposes, episode by episode, on a Channel-Bench-Macro table.

Each searcher runs 300 episodes (no seed rules, no refinement) on the table's search, built as
``benchmarks/channel_bench.py`` builds it. Per window of 50 episodes: the reward's mean and spread,
the distinct architectures proposed, the share of proposals the budget projection changed and how
many channels it moved, and for AMC-DDPG its exploration sigma and critic loss (SB3's log).

Writes ``DIR/windows.csv`` (one row per searcher, seed and window) and ``DIR/summary.md``.

Usage: python benchmarks/studies/agent_diagnosis.py --json .../Results_MobileNet.json --space mobilenet [--budget 0.5]
       [--seeds 3] [--agents amc-ddpg random evolution "amc-ddpg:noise_min_sigma=0.2"] [--budget-rule wall]
       [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import numpy as np
import pandas as pd
import torch
from channel_bench import table_search
from common import output_dir

from autoprune.agents import create_searcher, parse_overrides
from autoprune.analysis.architecture import architecture_key
from autoprune.atomic import write_text_atomic
from autoprune.models.channel_bench import SPACES
from autoprune.search import SearchRun

EPISODES, WINDOW = 300, 50


def run(space: str, json_path: str, budget: float, agent: str, seed: int, rule: str = "project") -> pd.DataFrame:
    """``agent``: a searcher's name, or ``name:key=value,...`` with hyper-parameters overridden."""
    name, _, params = agent.partition(":")
    overrides = parse_overrides(params.split(",")) if params else None
    return _run(space, json_path, budget, name, overrides, seed, rule).assign(agent=agent)


def _run(space: str, json_path: str, budget: float, agent: str, overrides: dict | None, seed: int,
         rule: str) -> pd.DataFrame:
    """One search's episodes: reward, proposal, projection, and (DDPG) sigma and critic loss."""
    with tempfile.TemporaryDirectory() as tmp:
        config = table_search(space, json_path, budget=str(budget), agent=agent, episodes=EPISODES, seed=seed,
                              seeds=[], budget_rule=rule, out=str(Path(tmp) / "run"))
        env = SearchRun(config, progress=False).prepare()
        searcher = create_searcher(agent, seed=seed, overrides=overrides)
        rows: list[dict] = []
        total = sum(g.channels for g in env.groups)

        def record(result) -> None:
            noise = getattr(getattr(getattr(searcher, "model", None), "action_noise", None), "sigma", None)
            moved = sum(abs(result.proposed[n] - result.kept[n]) for n in result.kept)
            rows.append({"episode": len(rows), "reward": result.reward, "score": result.accuracy,
                         "arch": architecture_key(result.kept), "projected": result.proposed != result.kept,
                         "moved_share": moved / total, "sigma": float("nan") if noise is None else float(noise)})

        searcher.run(env, EPISODES, record, state_dir=Path(tmp) / "run" / "agent")
        frame = pd.DataFrame(rows)
        log = Path(tmp) / "run" / "sb3_log" / "progress.csv"
        if log.is_file():  # critic loss by the episode it was logged in (one step per group)
            sb3 = pd.read_csv(log)
            if "train/critic_loss" in sb3 and "time/total_timesteps" in sb3:
                episode = (sb3["time/total_timesteps"] // len(env.groups)).astype(int)
                losses = pd.Series(sb3["train/critic_loss"].values, index=episode).groupby(level=0).mean()
                frame["critic_loss"] = frame["episode"].map(losses)
    return frame.assign(seed=seed)


def windows(frame: pd.DataFrame) -> pd.DataFrame:
    """Per searcher, seed and window of :data:`WINDOW` episodes."""
    frame = frame.assign(window=frame["episode"] // WINDOW * WINDOW,
                         critic_loss=frame.get("critic_loss", pd.Series(np.nan, index=frame.index)))
    return frame.groupby(["agent", "seed", "window"]).agg(
        reward_mean=("reward", "mean"), reward_sd=("reward", "std"), best_score=("score", "max"),
        distinct=("arch", "nunique"), projected=("projected", "mean"), moved_share=("moved_share", "mean"),
        sigma=("sigma", "mean"), critic_loss=("critic_loss", "mean")).reset_index()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True)
    p.add_argument("--space", choices=sorted(SPACES), required=True)
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--agents", nargs="+", default=["amc-ddpg", "random", "evolution"])
    p.add_argument("--budget-rule", default="project", choices=["project", "wall"])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    out = output_dir(args.out, f"agent_diagnosis/{args.space}")
    json_path = str(Path(args.json).resolve())
    frames = []
    for agent in args.agents:
        for seed in range(args.seeds):
            frames.append(run(args.space, json_path, args.budget, agent, seed, args.budget_rule))
            print(f"{agent} seed {seed}: done", flush=True)
    table = windows(pd.concat(frames, ignore_index=True))
    write_text_atomic(out / "windows.csv", table.to_csv(index=False))
    mean = table.groupby(["agent", "window"]).mean(numeric_only=True).drop(columns="seed").reset_index()
    lines = [f"# Searcher diagnosis: {SPACES[args.space].model}, {args.budget:.0%} FLOPs, {EPISODES} episodes, "
             f"{args.seeds} seeds, budget rule {args.budget_rule}", "", "Per window of 50 episodes, mean over seeds: reward (mean, sd), best score, distinct "
             "architectures proposed, share of proposals the budget projection changed, channels it moved (share "
             "of all), AMC-DDPG's exploration sigma and critic loss.", "",
             "| agent | episodes | reward mean | reward sd | best score | distinct | projected | moved | sigma | "
             "critic loss |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in mean.itertuples():
        cells = [f"{v:.4f}" if isinstance(v, float) and not np.isnan(v) else "" for v in
                 (r.reward_mean, r.reward_sd, r.best_score)]
        extra = [f"{r.distinct:.1f}", f"{r.projected:.2f}", f"{r.moved_share:.3f}",
                 "" if np.isnan(r.sigma) else f"{r.sigma:.3f}",
                 "" if np.isnan(r.critic_loss) else f"{r.critic_loss:.2e}"]
        lines.append(f"| {r.agent} | {r.window}-{r.window + WINDOW - 1} | " + " | ".join(cells + extra) + " |")
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
