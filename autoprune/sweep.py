"""Independent tasks (the cells of a benchmark sweep) in this process, in worker processes or as
Ray tasks, yielded as they finish so the caller can record each at once (and resume later).

A task that raises is yielded with its exception (the caller records it; the sweep goes on); a
Ray task whose worker dies is retried by Ray (``retries``); a worker process that dies breaks
its pool, and the tasks not finished by then are yielded with that error (a rerun retries them).
Worker processes exit when the process that started them is killed.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from autoprune.parallel import check_executor, exit_with_parent

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class TaskResult(Generic[T, R]):
    """One finished task: its input, and its result or the exception it ended with."""

    item: T
    result: R | None = None
    error: BaseException | None = None


def run_tasks(fn: Callable[[T], R], items: Sequence[T], executor: str = "local", workers: int = 1,
              cpus: float = 1.0, gpus: float = 0.0, retries: int = 2,
              ray_env: dict[str, str] | None = None) -> Iterator[TaskResult[T, R]]:
    """``fn(item)`` for every item, ``workers`` at a time; results in the order they finish.

    ``executor``: ``local`` (in order, here), ``processes`` (spawned) or ``ray`` (tasks of ``cpus``
    CPUs and ``gpus`` GPUs each on the running Ray runtime or a local one; ``ray_env``:
    environment variables of its workers, e.g. a ``PYTHONPATH`` for ``fn``'s module).
    """
    check_executor(executor, workers)
    if executor == "local":
        for item in items:
            try:
                yield TaskResult(item, fn(item))
            except Exception as exc:  # noqa: BLE001 - recorded by the caller, the sweep goes on
                yield TaskResult(item, error=exc)
    elif executor == "processes":
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
            running = {pool.submit(fn, item): item for item in items}
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    item = running.pop(future)
                    error = future.exception()
                    yield TaskResult(item, None if error else future.result(), error)
    else:
        yield from _ray_tasks(fn, items, workers, cpus, gpus, retries, ray_env)


def _ray_tasks(fn: Callable[[T], R], items: Sequence[T], workers: int, cpus: float, gpus: float, retries: int,
               env: dict[str, str] | None) -> Iterator[TaskResult[T, R]]:
    import ray  # check_executor found it

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=max(workers * cpus, 1), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": env} if env else None)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=retries)(_call)  # fn may be a partial
    try:
        shared, queue, running = ray.put(fn), list(items), {}
        while queue or running:
            while queue and len(running) < workers:
                item = queue.pop(0)
                running[task.remote(shared, item)] = item
            done, _ = ray.wait(list(running), num_returns=1)
            item = running.pop(done[0])
            try:
                yield TaskResult(item, ray.get(done[0]))
            except Exception as exc:  # noqa: BLE001 - the task raised, or its worker died past the retries
                yield TaskResult(item, error=getattr(exc, "cause", None) or exc)
    finally:
        if started:
            ray.shutdown()


def _call(fn: Callable[[T], R], item: T) -> R:
    return fn(item)
