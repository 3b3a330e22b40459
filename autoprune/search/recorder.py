"""The episode recorder: what a search does after every episode, as a callback the searchers call.

Like a stable-baselines3 callback, it keeps the side effects out of the searchers' loops: the
history row written (flushed), the incumbent told, the progress bar and (when the output is piped
to a log) a progress line every tenth of the run, freed heap memory returned to the OS now and then.
It also counts what the summary reports: the episodes this session played and the seconds spent
scoring and in the environment.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm.auto import tqdm

from autoprune.budget import Budget
from autoprune.envs import EpisodeResult
from autoprune.memory import release_free_memory
from autoprune.progress import bar_disabled, plain_lines
from autoprune.search.history import HistoryWriter
from autoprune.search.incumbent import Incumbent

TRIM_EVERY = 50  # episodes between returning freed heap memory to the OS (see autoprune.memory)


class EpisodeRecorder:
    """Called with each finished episode's result, in episode order."""

    def __init__(self, writer: HistoryWriter, incumbent: Incumbent, source: str, done: int, total: int,
                 budget: Budget, progress: bool, label: str) -> None:
        """``source``: the name rows without one are tagged with; ``done``: episodes already in the
        history (a resumed search); ``total``: the episodes the search plays in all."""
        self.writer, self.incumbent, self.source = writer, incumbent, source
        self.episode, self.first, self.total, self.budget = done, done, total, budget
        self.scoring_s = self.env_s = 0.0
        self.started = self.last = time.perf_counter()
        self.bar = tqdm(total=total, initial=done, desc=f"search {label}", unit="ep", disable=bar_disabled(progress))
        self.every = max(1, total // 10) if plain_lines(progress) else 0  # logs piped to a file
        self.listeners: list[Callable[[EpisodeRecorder], None]] = []  # called after each episode (a study's probe)

    def __call__(self, result: EpisodeResult) -> None:
        now = time.perf_counter()
        self.scoring_s += result.score_seconds
        self.env_s += result.env_seconds
        if result.source is None:  # seeded runs name the seed rule instead
            result = result.tagged(self.source)
        self.writer.append(self.episode, result, now - self.last)
        self.incumbent.consider(self.episode, result)
        self.episode += 1
        self.last = now
        if self.episode % TRIM_EVERY == 0:
            release_free_memory()
        self.bar.update()
        best = self.incumbent.best.score if self.incumbent.best else float("nan")
        unit = "ms" if self.budget.metric == "latency_ms" else ""
        self.bar.set_postfix(best=f"{best:.4f}", budget=f"{self.budget.value:.4g}{unit}")
        if self.every and self.episode % self.every == 0:
            tqdm.write(f"search: episode {self.episode}/{self.total}, best score {best:.4f}, "
                       f"{now - self.started:.0f} s", file=sys.stderr)
        for listener in self.listeners:
            listener(self)

    @property
    def played(self) -> int:
        """Episodes played in this session."""
        return self.episode - self.first

    @property
    def finished(self) -> bool:
        """Every episode of the search played."""
        return self.episode >= self.total

    def timings(self, n_envs: int) -> dict[str, float | int]:
        """This session's episodes and seconds, as the summary records them (scoring and env
        seconds summed over every env: in parallel, more than the wall time)."""
        seconds = time.perf_counter() - self.started
        return {"episodes_this_session": self.played, "wall_s": round(seconds, 2),
                "scoring_s": round(self.scoring_s, 2), "env_s": round(self.env_s, 2),
                "agent_s": round(max(seconds - (self.scoring_s + self.env_s) / n_envs, 0.0), 2), "n_envs": n_envs}

    def close(self) -> None:
        self.bar.close()
