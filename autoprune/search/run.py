"""A search run: builds model, data, cost model, env and agent from a config; writes its folder.

Folder layout: ``config.yaml`` (resolved settings), ``command.txt``, ``history.csv`` (one row per
episode, written as it happens), ``best_policy.json`` (rewritten whenever the best feasible
candidate improves, and after the search if the best one measures over budget on this machine:
``verification.csv``, and after the second-stage re-ranking: ``rerank.csv``), ``agent/`` (agent
state for ``--resume``), ``sb3_log/`` (SB3's own training log: CSV, and TensorBoard when installed),
``agent_params.yaml`` (the searcher's resolved hyper-parameters: preset plus overrides),
``summary.json`` (timings), ``report.md`` with its plots (see :mod:`autoprune.search.report`).
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv
from tqdm.auto import tqdm

from autoprune.agents import ALIASES, ONE_SHOT, SeededSearcher, create_searcher
from autoprune.agents.sb3 import SB3Searcher
from autoprune.agents.vector import PooledVecEnv
from autoprune.analysis.architecture import architecture_key
from autoprune.atomic import write_json_atomic, write_text_atomic
from autoprune.budget import MEASURED_TOLERANCE, Budget
from autoprune.data import Splits
from autoprune.envs import EpisodeResult, PruningEnv
from autoprune.errors import ConfigError, UserCodeError
from autoprune.memory import release_free_memory
from autoprune.parallel import PooledScorer, create_executor
from autoprune.policy import PruningPolicy, SearchScore
from autoprune.progress import bar_disabled, plain_lines
from autoprune.records import RerankRecord, SearchSummary, VerificationRecord
from autoprune.run_folder import prepare_run_folder
from autoprune.scoring import ScoreFn
from autoprune.search.assembly import assemble
from autoprune.search.config import SearchConfig
from autoprune.search.front import FrontPoint, episodes_at, policy_file, write_front
from autoprune.search.history import (
    Candidate,
    HistoryWriter,
    by_architecture,
    count_episodes,
    read_history,
    scored_feasible,
    top_candidates,
    truncate_history,
)
from autoprune.search.refine import final_choice, next_query
from autoprune.search.report import write_report
from autoprune.search.rerank import rerank_candidates
from autoprune.search.timing import measure_top_candidates, skip_reason, verdict
from autoprune.yaml_io import dump_yaml

TRIM_EVERY = 50  # episodes between returning freed heap memory to the OS (see autoprune.memory)


class SearchRun:
    """Prepare once, then :meth:`run`; resumable from its folder."""

    def __init__(self, config: SearchConfig, command: str = "", splits: Splits | None = None,
                 progress: bool = True, model: torch.nn.Module | None = None,
                 score: ScoreFn | None = None) -> None:
        """``splits``/``model``/``score``: data, model and score function given as objects (Python
        API) instead of by the config's names; the config still records what they were called."""
        self.config = config.validate()
        self.out = Path(config.out)
        self.command, self.progress = command, progress
        self._splits, self._model, self._score = splits, model, score
        self.best: Candidate | None = None
        self.policy: PruningPolicy | None = None  # the best candidate's policy, as best_policy.json holds it
        self._scores: dict[str, tuple[float, int, int]] = {}  # architecture -> (sum, count, first episode)

    # -- preparation -------------------------------------------------------------------------
    def prepare(self) -> PruningEnv:
        """Load everything and build the environment(s) (fails fast, before any search time)."""
        c = self.config
        self.searcher = create_searcher(c.agent, c.seed, c.preset, c.agent_params, seeds=tuple(c.seeds))
        torch.manual_seed(c.seed)
        parts = assemble(c, self.out, self._splits, self._model, self._score, progress=self.progress)
        c.val_size, c.table = parts.val_size, parts.table  # what the run folder's config.yaml resumes with
        self.analysis, self.cost_model, self.budgets = parts.analysis, parts.cost_model, parts.budgets
        self.budget, self.evaluator, self.score_name = parts.budgets[0], parts.evaluator, parts.score_name
        self.env = parts.env
        if isinstance(self.searcher, SeededSearcher):
            self.searcher.seed_env = self.env  # seeds play one episode each, in the main process
        self.executor = None
        if c.executor != "local":  # candidates scored by workers that build their scorer once
            factory = functools.partial(_worker_scorer, replace(self.config), self._splits, self._model, self._score)
            self.executor = create_executor(c.executor, factory, c.workers, address=c.ray_address,
                                          timeout_s=c.worker_timeout, cpus=c.worker_cpus, gpus=c.worker_gpus,
                                          threads=max(1, round(c.worker_cpus)))
            self.env.evaluator = PooledScorer(self.executor)
        self.search_env = self._vector_env()
        return self.env

    def _vector_env(self) -> PruningEnv | VecEnv:
        """What the searcher plays: the environment, or for SB3 agents with ``n_envs`` > 1 or an
        executor, ``n_envs`` copies of it, stepped together and their candidates scored in parallel
        (on the executor's workers, or each copy in a worker process of its own)."""
        if not isinstance(getattr(self.searcher, "inner", self.searcher), SB3Searcher):
            return self.env
        if self.executor is not None:
            return PooledVecEnv(self.env, self.config.n_envs)
        if self.config.n_envs == 1:
            return self.env
        factory = functools.partial(_worker_env, replace(self.config), self._splits, self._model, self._score)
        return SubprocVecEnv([factory] * self.config.n_envs)

    # -- running -----------------------------------------------------------------------------
    def run(self, resume: bool = False) -> SearchSummary:
        """Run (or continue) the search; returns the summary."""
        prepare_run_folder(self.out, resume=resume)  # no foreign folder, no link inside
        history = read_history(self.out / "history.csv") if resume else None  # the one read of the file
        if not resume and count_episodes(self.out / "history.csv"):
            raise ConfigError(f"{self.out} already holds a search; pass --resume to continue it or "
                              f"choose another --out")
        env = self.prepare()
        self.config.save(self.out / "config.yaml")
        inner = getattr(self.searcher, "inner", self.searcher)
        write_text_atomic(self.out / "agent_params.yaml", dump_yaml(
            {"agent": inner.name, "preset": self.config.preset, "seed": self.config.seed,
             "params": _plain(inner.params)}))
        if self.command:
            write_text_atomic(self.out / "command.txt", self.command + "\n")
        done = 0 if history is None else len(history)
        searched = self.config.episodes - self.config.refine  # the searcher's episodes; refinement follows
        point = self.searcher.resume_point(self.out / "agent", done) if 0 < done <= searched else done
        if point < done:  # the agent's state covers fewer episodes: replay the rest exactly
            tqdm.write(f"resuming from the agent's state after episode {point}: the {done - point} later "
                       f"episodes are played again (same seed, same results)")
            history = history.iloc[:point]
            truncate_history(self.out / "history.csv", point)
            done = point
        if history is not None and done:
            self._restore_best(history)
            self.policy = self._policy() if self.best is not None else None
            self.evaluator.restore([json.loads(k) for k in history["kept"]])  # noisy lookups draw on
        env.episode_index = done  # a front draws each episode's budget from its number
        writer = self.writer = HistoryWriter(self.out / "history.csv", history)
        bar = tqdm(total=self.config.episodes, initial=done, desc=f"search {self.config.agent}",
                   unit="ep", disable=bar_disabled(self.progress))
        state = {"episode": done, "last": time.perf_counter(), "scoring": 0.0, "env": 0.0}
        start = time.perf_counter()
        every = max(1, self.config.episodes // 10) if plain_lines(self.progress) else 0  # logs piped to a file

        def on_episode(result: EpisodeResult) -> None:
            now = time.perf_counter()
            state["scoring"] += result.score_seconds
            state["env"] += result.env_seconds
            if result.source is None:  # seeded runs name the seed rule instead
                result = result.tagged(self.searcher.name)
            writer.append(state["episode"], result, now - state["last"])
            self._consider(state["episode"], result)
            state["episode"] += 1
            state["last"] = now
            if state["episode"] % TRIM_EVERY == 0:
                release_free_memory()
            bar.update()
            best = self.best.accuracy if self.best else float("nan")
            bar.set_postfix(best=f"{best:.4f}", budget=f"{self.budget.value:.4g}{_unit(self.budget.metric)}")
            if every and state["episode"] % every == 0:
                tqdm.write(f"search: episode {state['episode']}/{self.config.episodes}, best score {best:.4f}, "
                           f"{now - start:.0f} s", file=sys.stderr)

        interrupted = True
        try:
            if done < searched:
                self.searcher.run(self.search_env, searched, on_episode, done, self.out / "agent")
            if self.config.refine:
                self._refine(on_episode, state)
            interrupted = False
        except UserCodeError as exc:  # the user's score or loss: name the episode it failed on
            raise UserCodeError(f"{exc} (episode {state['episode']}; the episodes before it are in "
                                f"{self.out / 'history.csv'})") from None
        finally:
            bar.close()
            writer.close()
            if self.search_env is not env:
                self.search_env.close()
            if self.executor is not None:
                self.executor.close()
            summary = self._summary(time.perf_counter() - start, state["episode"] - done, state)
            if interrupted:  # the timings of the episodes this session played are kept
                write_json_atomic(self.out / "summary.json", summary)
        try:
            if state["episode"] >= self.config.episodes and self.best is not None and self.is_front:
                summary["front"] = self._front()
                missing = [p["label"] for p in summary["front"] if not p["policy"]]
                if missing:
                    tqdm.write(f"warning: no feasible candidate for budget {', '.join(missing)} in "
                               f"{self.config.episodes} episodes ({len(self.budgets)} budgets share them); "
                               f"resume with more --episodes")
                summary["best"] = asdict(self.best)
                self._save_best()
            elif state["episode"] >= self.config.episodes and self.best is not None:
                summary["verification"] = self._verify()
                summary["rerank"] = self._rerank(summary["verification"])
                summary["best"] = asdict(self.best)
        finally:  # once: the finished search's record (what there is, should a stage fail)
            write_json_atomic(self.out / "summary.json", summary)
        write_report(self.out, self.writer.frame())
        return summary

    def _refine(self, on_episode, state: dict[str, float]) -> None:
        """The refinement episodes (see :mod:`autoprune.search.refine`), then the best architecture
        by its lower confidence bound becomes the search's best."""
        while state["episode"] < self.config.episodes:
            kept = next_query(self.writer.frame(), self.env.choices, self.env.wall.fits)
            if kept is None:
                break
            on_episode(self.searcher.play_widths(self.env, kept, exact=True).tagged("refine"))
        history = self.writer.frame()
        choice = final_choice(history)
        if choice is not None:
            rows = by_architecture(history)
            rows = rows[rows["arch"] == choice]
            self.best = Candidate.from_row(rows.iloc[0])
            self.best.accuracy, self.best.key = float(rows.iloc[0]["mean_score"]), choice
            self._save_best()

    def _rerank(self, verification: VerificationRecord) -> RerankRecord:
        """Second-stage scoring of the best candidates; the best by it becomes ``best_policy.json``."""
        c = self.config
        if c.rerank_top < 1:
            return {"skipped": "switched off (--rerank-top 0)"}
        if ALIASES.get(c.agent, c.agent) in ONE_SHOT:
            return {"skipped": f"{c.agent} proposes one candidate"}
        start = time.perf_counter()
        history = self.writer.frame()
        allowed = None
        checked = getattr(self, "_verification", None)
        if checked is not None and "skipped" not in verification:
            allowed = set(checked.loc[checked["fits"].astype(bool), "episode"].astype(int))
        second, asked = self._second_stage_of(history), [0]
        pool = len(top_candidates(history if allowed is None else history[history["episode"].isin(allowed)],
                                  c.rerank_top))

        def scored(kept: Mapping[str, int], steps: int) -> float:  # a line per candidate: minutes, not silence
            asked[0] += 1
            value = second(kept, steps)
            self._say(f"re-ranking: candidate {asked[0]}/{pool} scored {value:.4f}")
            return value

        self._say(f"re-ranking {pool} candidates (the {c.rerank_top} best and the seed rules'; {c.rerank_by}"
                  + (f", {c.rerank_steps} steps each)" if c.rerank_by == "finetune" else ")"))
        frame = rerank_candidates(history, scored, c.rerank_top, c.rerank_steps, allowed)
        frame.to_csv(self.out / "rerank.csv", index=False)
        if frame.empty or pd.isna(frame.loc[0, "finetuned"]):
            return {"candidates": len(frame), "chosen_episode": None}
        chosen = int(frame.loc[0, "episode"])
        if chosen != self.best.episode:
            self.best = Candidate.from_row(history.loc[history["episode"] == chosen].iloc[0])
        self.best.finetuned = float(frame.loc[0, "finetuned"])
        self._save_best()
        return {"candidates": len(frame), "chosen_episode": chosen, "steps": c.rerank_steps,
                "chosen_finetuned": self.best.finetuned, "seconds": round(time.perf_counter() - start, 2)}

    def _say(self, line: str) -> None:
        """A progress line (not with ``-q``), also when the output is piped to a log."""
        if not bar_disabled(self.progress):
            tqdm.write(line)

    def _second_stage_of(self, history: pd.DataFrame):
        """The second-stage score: after a short fine-tune (seeded by the search), or (``requery``)
        the mean of every score the architecture got, ``rerank_repeats`` more asked now."""
        c = self.config
        if c.rerank_by == "finetune":
            return lambda kept, steps: self.evaluator.finetuned(kept, steps, c.seed)
        earlier = by_architecture(history).groupby("arch")["accuracy"].apply(list).to_dict()

        def requery(kept: Mapping[str, int], steps: int) -> float:
            scores = earlier.get(architecture_key(kept), []) + [self.evaluator(kept) for _ in range(c.rerank_repeats)]
            return float(sum(scores) / len(scores))

        return requery

    def _verify(self) -> VerificationRecord:
        """Time the best candidates on this machine; keep the most accurate one within budget (see verify)."""
        reason = skip_reason(self.config.verify_top, self.cost_model, self.budget)
        if reason:
            return {"skipped": reason}
        start = time.perf_counter()
        history = self.writer.frame()
        self._say(f"verification: timing the {self.config.verify_top} best candidates on this machine")
        frame = measure_top_candidates(history, self.analysis, self.cost_model, self.budget, self.config.verify_top)
        frame.to_csv(self.out / "verification.csv", index=False)
        self._verification = frame
        result = {**verdict(frame, self.budget), "seconds": round(time.perf_counter() - start, 2)}
        chosen = result["chosen_episode"]
        if chosen is None:
            tqdm.write(f"warning: none of the {len(frame)} best candidates measured within the budget + "
                       f"{MEASURED_TOLERANCE:.0%} on this machine (best: {frame['adjusted_ms'].min():.4g} ms vs "
                       f"{self.budget.value:.4g} ms); search again with a tighter budget")
        elif chosen != self.best.episode:
            row = history.loc[history["episode"] == chosen].iloc[0]
            tqdm.write(f"verification: the best candidate measured over budget on this machine; episode "
                       f"{chosen} (val {row['accuracy']:.4f}) is within it and becomes best_policy.json")
            self.best = Candidate.from_row(row)
            self._save_best()
        return result

    def _consider(self, episode: int, result: EpisodeResult) -> None:
        """Keep the best feasible architecture by its mean score (a noisy score asked again for the
        same architecture is averaged, so one lucky draw does not win)."""
        acc = result.accuracy
        if math.isnan(acc) or not result.feasible or (self.is_front and not self.budget.matches(result.budget)):
            return
        key = architecture_key(result.kept)
        total, count, first = self._scores.get(key, (0.0, 0, episode))
        self._scores[key] = (total + acc, count + 1, first)
        mean = (total + acc) / (count + 1)
        if self.best is not None and self.best.key == key:  # the best's own mean moved
            self.best.accuracy = mean
            if count + 1 > 1 and not self._is_best_mean(key):
                self._reselect()
            return
        if self.best is None or mean > self.best.accuracy:
            self.best = Candidate.from_result(first if count else episode, result)
            self.best.accuracy, self.best.key = mean, key
            self._save_best()

    def _is_best_mean(self, key: str) -> bool:
        means = {k: t / n for k, (t, n, _) in self._scores.items()}
        return means[key] >= max(means.values())

    def _reselect(self) -> None:
        """The best by mean after the best's mean fell below another's (from the history)."""
        self._restore_best(self.writer.frame())
        self._save_best()

    @property
    def is_front(self) -> bool:
        """Several budgets searched at once (one policy per budget)."""
        return len(self.config.budgets) > 1

    def _front(self) -> list[dict[str, float | str | None]]:
        """The best policy per budget (re-ranked per budget when --rerank-top), front.csv, front.png."""
        c = self.config
        one_shot = ALIASES.get(c.agent, c.agent) in ONE_SHOT
        points, firsts = [], []
        history = self.writer.frame()
        for spec, budget in zip(c.budgets, self.budgets):
            at = episodes_at(history, budget)
            ok, uniform = scored_feasible(at), at[at["source"].astype(str) == "seed:uniform"]
            uni = (float(uniform["accuracy"].iloc[0]), float(uniform["cost"].iloc[0])) if len(uniform) else (None, None)
            if ok.empty:
                points.append(FrontPoint(spec, budget.value, budget.fraction, None, None, None, None, *uni, None))
                continue
            best = Candidate.from_row(ok.loc[ok["accuracy"].idxmax()])
            if c.rerank_top > 0 and not one_shot:
                frame = rerank_candidates(at, self._second_stage_of(at), c.rerank_top, c.rerank_steps)
                if not frame.empty and not pd.isna(frame.loc[0, "finetuned"]):
                    best = Candidate.from_row(history.loc[history["episode"] == int(frame.loc[0, "episode"])].iloc[0])
                    best.finetuned = float(frame.loc[0, "finetuned"])
            file = policy_file(spec)
            (self.out / "policies").mkdir(exist_ok=True)
            self._policy(best, budget).save(self.out / file)
            points.append(FrontPoint(spec, budget.value, budget.fraction, best.episode, best.accuracy, best.finetuned,
                                     best.cost, *uni, file))
            firsts.append(best)
        if points[0].found:
            self.best = firsts[0]
        dense = self.evaluator({g.name: g.channels for g in self.analysis.groups})
        write_front(self.out, points, self.budget.unit, self.budget.dense, dense)
        return [asdict(p) for p in points]

    def _restore_best(self, history) -> None:
        """The best architecture by mean score in ``history`` (its first episode), and the scores so far."""
        ok = by_architecture(episodes_at(history, self.budget) if self.is_front else history)
        self._scores = {}
        for key, group in ok.groupby("arch", sort=False):
            self._scores[key] = (float(group["accuracy"].sum()), len(group), int(group["episode"].min()))
        if len(ok):
            ranked = ok.sort_values(["mean_score", "episode"], ascending=[False, True])
            self.best = Candidate.from_row(ranked.iloc[0])
            self.best.accuracy = float(ranked.iloc[0]["mean_score"])
            self.best.key = ranked.iloc[0]["arch"]

    def _save_best(self) -> None:
        """The best candidate's policy as :attr:`policy` and ``best_policy.json`` (written atomically)."""
        self.policy = self._policy()
        self.policy.save(self.out / "best_policy.json")

    def _policy(self, best: Candidate | None = None, budget: Budget | None = None) -> PruningPolicy:
        b, budget = best or self.best, budget or self.budget
        return PruningPolicy.for_model(
            self.analysis, b.ratios, model_name=self.config.model, model_args=dict(self.config.model_args),
            round_to=self.config.round_to,
            importance=self.config.importance, exclude=list(self.config.exclude), budget=budget.to_dict(),
            widths=self.env.choices.to_dict() if self.env.choices.listed else None,
            cost_model=self.cost_model.name, predicted_cost=b.predicted_cost(),
            accuracy=SearchScore(b.accuracy, self.config.val_size, b.episode, self.config.bn_batches,
                                 b.finetuned, self.config.rerank_steps if b.finetuned is not None else None))

    def _summary(self, seconds: float, episodes: int, timing: dict[str, float]) -> SearchSummary:
        scoring, env = timing["scoring"], timing["env"]  # summed over every env (parallel: > wall)
        summary = {
            "episodes_this_session": episodes, "wall_s": round(seconds, 2),
            "scoring_s": round(scoring, 2), "env_s": round(env, 2),
            "agent_s": round(max(seconds - (scoring + env) / self.config.n_envs, 0.0), 2),
            "n_envs": self.config.n_envs,
            "best": None if self.best is None else asdict(self.best), "score": self.score_name, "budget": self.budget.to_dict(),
            "cost_model": self.cost_model.describe(),
            "config": asdict(self.config),
        }
        return summary


def _plain(value: Any) -> Any:
    """``value`` as YAML-safe plain data (tuples as lists, anything else exotic as its text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _unit(metric: str) -> str:
    return "ms" if metric == "latency_ms" else ""


def _worker_env(config: SearchConfig, splits: Splits | None, model: torch.nn.Module | None,
                score: ScoreFn | None, threads: int | None = 1) -> PruningEnv:
    """A worker process's environment: the same model, data, cost model and budget (``threads``:
    torch threads, None: as set already). Built without a search around it."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(config.seed)  # seeded as in prepare: a model with random weights is the main one
    return assemble(config, Path(config.out), splits, model, score, check=False, progress=False).env


def _worker_scorer(config: SearchConfig, splits: Splits | None, model: torch.nn.Module | None,
                   score: ScoreFn | None):
    """A scoring worker's scorer: the search's own candidate evaluator, built once in the worker."""
    return _worker_env(config, splits, model, score, threads=None).evaluator  # the executor set the threads
