"""Long-run memory: resident memory of a 2,000-episode AMC-DDPG search on a small model.

A search that runs for hours must not grow: the history is streamed to disk, candidates are
scored on throw-away copies, the agent's replay buffer is preallocated, and freed heap pages are
handed back to the OS every 50 episodes (autoprune.memory). RSS is sampled every 100 episodes.
A first run without that trim grew 91.5 MiB from episode 200 to 2,000 (kept as before_fix_*).

Writes results/memory_long_search/: memory.csv (episode, rss_mib), summary.json, run/ (the run folder).
Usage: python benchmarks/studies/memory_long_search.py [--episodes 2000] [--model mlp]
"""

from __future__ import annotations

import argparse
import shutil
import time

import _path  # noqa: F401 - benchmarks/ on the import path (studies/_path.py)
import pandas as pd
import torch
from common import result_dir

from autoprune.atomic import write_json_atomic, write_text_atomic
from autoprune.data import synthetic_splits
from autoprune.memory import rss_mib
from autoprune.search import SearchConfig, SearchRun


class SampledRun(SearchRun):
    """A search run that records RSS every ``every`` finished episodes."""

    samples: list[dict] = []
    every = 100

    def recorder(self, done):
        record = super().recorder(done)
        record.listeners.append(self.sample)
        return record

    def sample(self, record):
        if record.episode % self.every == 0 or record.episode == 1:
            self.samples.append({"episode": record.episode, "rss_mib": round(rss_mib(), 1),
                                 "seconds": round(time.perf_counter() - self.started, 1)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--model", default="mlp")
    args = parser.parse_args()
    out = result_dir("memory_long_search")
    shutil.rmtree(out / "run", ignore_errors=True)
    torch.set_num_threads(2)
    config = SearchConfig(model=args.model, data="synthetic", cost_model="flops", budget="50%", agent="amc-ddpg",
                          episodes=args.episodes, val_size=256, bn_batches=1, out=str(out / "run"))
    run = SampledRun(config, "python benchmarks/studies/memory_long_search.py", synthetic_splits(), progress=False)
    run.started = time.perf_counter()
    summary = run.run()
    frame = pd.DataFrame(run.samples)
    write_text_atomic(out / "memory.csv", frame.to_csv(index=False))
    after_warmup = frame[frame["episode"] >= 200]
    result = {"episodes": args.episodes, "model": args.model, "agent": "amc-ddpg", "wall_s": summary["wall_s"],
              "rss_first_mib": float(frame["rss_mib"].iloc[0]), "rss_at_200_mib": float(after_warmup["rss_mib"].iloc[0]),
              "rss_last_mib": float(frame["rss_mib"].iloc[-1]), "rss_max_mib": float(frame["rss_mib"].max()),
              "growth_200_to_end_mib": round(float(frame["rss_mib"].iloc[-1] - after_warmup["rss_mib"].iloc[0]), 1)}
    write_json_atomic(out / "summary.json", result)
    print(result)


if __name__ == "__main__":
    main()
