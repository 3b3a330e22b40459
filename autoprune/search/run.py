"""A search run: builds model, data, cost model, env and agent from a config; writes its folder
(``config.yaml``, ``history.csv`` written as episodes finish, ``best_policy.json`` rewritten whenever
the best changes, ``agent/`` for ``--resume``, ``summary.json``, ...; see docs/formats.md).

The jobs live apart: :mod:`~autoprune.search.assembly` builds the pieces,
:func:`~autoprune.search.timing.check_table` checks a latency table on this machine, the searcher
plays the episodes, :class:`~autoprune.search.recorder.EpisodeRecorder` records each one,
:class:`~autoprune.search.incumbent.Incumbent` keeps the best, :mod:`~autoprune.search.refine`
refines it and :class:`~autoprune.search.finish.Finisher` verifies, re-ranks or builds the front.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from autoprune.agents import create_searcher
from autoprune.atomic import write_json_atomic
from autoprune.data import Splits
from autoprune.envs import PruningEnv
from autoprune.errors import ConfigError, UserCodeError
from autoprune.policy import PruningPolicy
from autoprune.progress import bar_disabled
from autoprune.records import SearchSummary
from autoprune.run_folder import prepare_run_folder
from autoprune.scoring import ScoreFn
from autoprune.search.assembly import Assembled, assemble
from autoprune.search.config import SearchConfig
from autoprune.search.finish import Finisher, candidate_policy
from autoprune.search.history import (
    Candidate,
    HistoryWriter,
    count_episodes,
    read_history,
    scored_architectures,
    truncate_history,
)
from autoprune.search.incumbent import Incumbent
from autoprune.search.recorder import EpisodeRecorder
from autoprune.search.refine import refine
from autoprune.search.report import write_report
from autoprune.search.timing import check_table
from autoprune.search.workers import searched_env


class SearchRun:
    """Prepare once, then :meth:`run`; resumable from its folder."""

    def __init__(self, config: SearchConfig, command: str = "", splits: Splits | None = None, progress: bool = True,
                 model: torch.nn.Module | None = None, score: ScoreFn | None = None) -> None:
        """``splits``/``model``/``score``: data, model and score function given as objects (Python
        API) instead of by the config's names; the config still records what they were called."""
        self.config = config.validate()
        print(*(f"note: {n}\n" for n in config.notes), end="", sep="", file=sys.stderr)
        self.out = Path(config.out)
        self.command, self.progress = command, progress
        self._splits, self._model, self._score = splits, model, score
        self.searcher = create_searcher(config.agent, config.seed, config.preset, config.agent_params,
                                        seeds=tuple(config.seeds))
        self.parts: Assembled | None = None  # model, cost model, budgets, evaluator, env: built by prepare()
        self.search_env = self.executor = None  # what the searcher plays, and the scoring workers
        self.writer: HistoryWriter | None = None
        self._frame = lambda: self.writer.frame()  # the history so far (the writer's, once running)
        self.incumbent = Incumbent(self._frame, self._save_best, None)
        self.policy: PruningPolicy | None = None  # the best candidate's policy, as best_policy.json holds it

    analysis = property(lambda self: self.parts.analysis, doc="The model's analysis (groups, layers).")
    env = property(lambda self: self.parts.env, doc="The environment (one copy, in this process).")
    evaluator = property(lambda self: self.parts.evaluator, doc="The candidate evaluator (first-stage score).")
    cost_model = property(lambda self: self.parts.cost_model, doc="The cost model budgets are priced by.")
    budget = property(lambda self: self.parts.budgets[0], doc="The budget best_policy.json is for.")
    best = property(lambda self: self.incumbent.best, doc="The best candidate so far.")
    is_front = property(lambda self: len(self.config.budgets) > 1, doc="Several budgets searched at once.")

    def prepare(self) -> PruningEnv:
        """Load everything and build the environment(s) (fails fast, before any search time)."""
        c = self.config
        torch.manual_seed(c.seed)
        self.parts = assemble(c, self.out, self._splits, self._model, self._score, progress=self.progress)
        c.val_size, c.table = self.parts.val_size, self.parts.table  # what the run folder's config.yaml resumes with
        self.search_env, self.executor = searched_env(c, self.parts, self.searcher, self._splits, self._model,
                                                      self._score)
        if self.is_front:
            self.incumbent = Incumbent(self._frame, self._save_best, self.budget)
        if c.warm_start:
            self.searcher.warm_start(scored_architectures(read_history(Path(c.warm_start) / "history.csv")))
        return self.env

    def run(self, resume: bool = False) -> SearchSummary:
        """Run (or continue) the search; returns the summary."""
        prepare_run_folder(self.out, resume=resume)  # no foreign folder, no link inside
        history = read_history(self.out / "history.csv") if resume else None  # the one read of the file
        if not resume and count_episodes(self.out / "history.csv"):
            raise ConfigError(f"{self.out} already holds a search; pass --resume to continue it or "
                              f"choose another --out")
        self.prepare()
        inner = getattr(self.searcher, "inner", self.searcher)  # a wrapped searcher's own name and settings
        self.config.save_run(self.out, inner.name, inner.params, self.command)
        history = self._replayed(history)
        done = 0 if history is None else len(history)
        if done:
            self.incumbent.restore(history)
            self.policy = candidate_policy(self.config, self.parts, self.best, self.budget) if self.best is not None else None
            self.evaluator.restore([json.loads(k) for k in history["kept"]])  # noisy lookups draw on
        self.env.episode_index = done  # a front draws each episode's budget from its number
        self.writer = HistoryWriter(self.out / "history.csv", history)
        c = self.config
        checked = None if done or self.is_front else check_table(self.parts, c.budget, c.verify_top)
        recorder = self.recorder(done)
        summary = {**self._play(recorder), **({"table_check": checked} if checked else {})}
        try:
            if recorder.finished and self.best is not None:
                summary.update(self._finish())
        finally:  # once: the finished search's record (what there is, should a stage fail)
            write_json_atomic(self.out / "summary.json", summary)
        write_report(self.out, self.writer.frame())
        return summary

    def recorder(self, done: int) -> EpisodeRecorder:
        """The callback every episode is recorded by (``done``: episodes already in the history)."""
        return EpisodeRecorder(self.writer, self.incumbent, self.searcher.name, done, self.config.episodes,
                               self.budget, self.progress, self.config.agent)

    def _replayed(self, history: pd.DataFrame | None) -> pd.DataFrame | None:
        """The history a resumed search continues from: cut back to the agent's saved state, whose
        later episodes are played again (same seed, same results)."""
        done = 0 if history is None else len(history)
        searched = self.config.episodes - self.config.refine  # the searcher's episodes; refinement follows
        point = self.searcher.resume_point(self.out / "agent", done) if 0 < done <= searched else done
        if point >= done:
            return history
        tqdm.write(f"resuming from the agent's state after episode {point}: the {done - point} later "
                   f"episodes are played again (same seed, same results)")
        truncate_history(self.out / "history.csv", point)
        return history.iloc[:point]

    def _play(self, recorder: EpisodeRecorder) -> SearchSummary:
        """The searcher's episodes, then refinement; the summary of this session's play (written
        at once if the play stops early: the timings of the episodes played are kept)."""
        searched = self.config.episodes - self.config.refine
        interrupted = True
        try:
            if recorder.episode < searched:
                self.searcher.run(self.search_env, searched, recorder, recorder.episode, self.out / "agent")
            if self.config.refine:  # then the best by its lower confidence bound is the search's best
                refine(recorder, lambda kept: self.searcher.play_widths(self.env, kept, exact=True),
                       self.writer.frame, self.env.choices, self.env.wall.fits, self.incumbent)
            interrupted = False
        except UserCodeError as exc:  # the user's score or loss: name the episode it failed on
            raise UserCodeError(f"{exc} (episode {recorder.episode}; the episodes before it are in "
                                f"{self.out / 'history.csv'})") from None
        finally:
            recorder.close()
            self.writer.close()
            if self.search_env is not self.env:
                self.search_env.close()
            if self.executor is not None:
                self.executor.close()
            summary = self._summary(recorder)
            if interrupted:
                write_json_atomic(self.out / "summary.json", summary)
        return summary

    def _finish(self) -> dict:
        """The finishing stages (see :mod:`autoprune.search.finish`): their records for the summary."""
        finisher = Finisher(self.config, self.parts, self.out, self.incumbent, self._say)
        if self.is_front:
            front = finisher.front(self.writer.frame())
            self._save_best(self.best)
            return {"front": front, "best": asdict(self.best)}
        verification = finisher.verify(self.writer.frame())
        rerank = finisher.rerank(self.writer.frame(), verification)
        return {"verification": verification, "rerank": rerank, "best": asdict(self.best)}

    def _say(self, line: str) -> None:
        """A progress line (not with ``-q``), also when the output is piped to a log."""
        if not bar_disabled(self.progress):
            tqdm.write(line)

    def _save_best(self, best: Candidate) -> None:
        """The best candidate's policy as :attr:`policy` and ``best_policy.json`` (written atomically)."""
        self.policy = candidate_policy(self.config, self.parts, best, self.budget)
        self.policy.save(self.out / "best_policy.json")

    def _summary(self, recorder: EpisodeRecorder) -> SearchSummary:
        return {**recorder.timings(self.config.n_envs),
                "best": None if self.best is None else asdict(self.best), "score": self.parts.score_name,
                "budget": self.budget.to_dict(), "cost_model": self.cost_model.describe(), "config": asdict(self.config)}
