"""What a searcher plays: the search's environment in this process, or copies of it stepped together
whose candidates are scored in parallel (by an executor's workers, or each copy in a process of its
own). Every worker builds the same pieces from the same settings (see :mod:`autoprune.search.assembly`).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import torch
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv

from autoprune.agents import SeededSearcher
from autoprune.agents.sb3 import SB3Searcher
from autoprune.agents.vector import PooledVecEnv
from autoprune.data import Splits
from autoprune.envs import PruningEnv
from autoprune.evaluation import CandidateEvaluator
from autoprune.parallel import Executor, PooledScorer, create_executor
from autoprune.scoring import ScoreFn
from autoprune.search.assembly import Assembled, assemble
from autoprune.search.config import SearchConfig


def searched_env(config: SearchConfig, parts: Assembled, searcher: object, splits: Splits | None = None,
                 model: torch.nn.Module | None = None, score: ScoreFn | None = None
                 ) -> tuple[PruningEnv | VecEnv, Executor | None]:
    """The environment ``searcher`` plays (``parts.env``, or ``n_envs`` copies of it for SB3 agents
    with ``n_envs`` > 1 or an executor), and the executor scoring candidates (None: this process)."""
    env = parts.env
    if isinstance(searcher, SeededSearcher):
        searcher.seed_env = env  # seeds play one episode each, in the main process
    executor = None
    if config.executor != "local":  # candidates scored by workers that build their scorer once
        factory = functools.partial(_worker_scorer, replace(config), splits, model, score)
        executor = create_executor(config.executor, factory, config.workers, address=config.ray_address,
                                   timeout_s=config.worker_timeout, cpus=config.worker_cpus, gpus=config.worker_gpus,
                                   threads=max(1, round(config.worker_cpus)))
        env.evaluator = PooledScorer(executor)
    if not isinstance(getattr(searcher, "inner", searcher), SB3Searcher):
        return env, executor
    if executor is not None:
        return PooledVecEnv(env, config.n_envs), executor
    if config.n_envs == 1:
        return env, executor
    factory = functools.partial(_worker_env, replace(config), splits, model, score)
    return SubprocVecEnv([factory] * config.n_envs), executor


def _worker_env(config: SearchConfig, splits: Splits | None, model: torch.nn.Module | None,
                score: ScoreFn | None, threads: int | None = 1) -> PruningEnv:
    """A worker process's environment: the same model, data, cost model and budget (``threads``:
    torch threads, None: as set already). Built without a search around it."""
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(config.seed)  # seeded as in prepare: a model with random weights is the main one
    return assemble(config, Path(config.out), splits, model, score, check=False, progress=False).env


def _worker_scorer(config: SearchConfig, splits: Splits | None, model: torch.nn.Module | None,
                   score: ScoreFn | None) -> CandidateEvaluator:
    """A scoring worker's scorer: the search's own candidate evaluator, built once in the worker."""
    return _worker_env(config, splits, model, score, threads=None).evaluator  # the executor set the threads
