"""Scoring candidates in parallel: in this process, in worker processes, or on Ray actors.

Scoring is almost all of a search's time. An executor scores a batch of candidates (channels kept
per group: small messages) on workers that built their scorer once (model, data slices, cost
model) and returns the scores in the order asked, so a search's history does not depend on the
number of workers. A worker that dies or hangs past ``timeout_s`` is replaced and its candidate
scored again; a candidate that fails on every try is recorded as failed (NaN), never lost.
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

from autoprune.errors import ConfigError, UserCodeError

EXECUTORS = ("local", "processes", "ray")
RAY_MISSING = '--executor ray needs Ray; install it with: pip install "autoprune[ray]"'
Kept = Mapping[str, int]
Scorer = Callable[[Kept], float]


@dataclass(frozen=True)
class Scored:
    """One candidate's score, the seconds it took, and the tries it needed (NaN: failed on every try)."""

    score: float
    seconds: float
    attempts: int = 1


class Executor(Protocol):
    """Scores batches of candidates; ``workers`` of them at a time."""

    workers: int

    def score(self, batch: Sequence[Kept]) -> list[Scored]: ...

    def close(self) -> None: ...


def check_executor(name: str, workers: int) -> None:
    """One-line errors for an unknown executor, a bad worker count or a missing extra."""
    if name not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
    if not 1 <= workers <= 1024:
        raise ConfigError(f"--workers must be between 1 and 1024, got {workers}")
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError(RAY_MISSING)


class LocalExecutor:
    """In this process, one candidate after another (the default)."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer, self.workers = scorer, 1

    def score(self, batch: Sequence[Kept]) -> list[Scored]:
        out = []
        for kept in batch:
            start = time.perf_counter()
            out.append(Scored(_safe(self.scorer, kept), time.perf_counter() - start))
        return out

    def close(self) -> None:
        pass


# -- worker processes ---------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(factory: Callable[[], Scorer], threads: int, parent: int | None = None) -> None:
    import torch

    if parent is not None:
        exit_with_parent(parent)
    torch.set_num_threads(threads)
    _WORKER["scorer"] = factory()


def exit_with_parent(parent: int, every_s: float = 0.5, child: bool = True) -> None:
    """Exit this worker process as soon as ``parent`` is gone (killed with -9 included), so no
    worker outlives the search that started it (a daemon thread polls). ``child``: ``parent`` is
    this process's parent (a process pool); else any process on this machine (a Ray actor's driver)."""
    def alive() -> bool:
        if child:
            return os.getppid() == parent
        try:
            os.kill(parent, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def watch() -> None:
        while alive():
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="autoprune-exit-with-parent", daemon=True).start()


def _score_in_worker(kept: Kept) -> tuple[float, float]:
    start = time.perf_counter()
    value = float(_WORKER["scorer"](kept))  # exceptions travel back to the caller, which retries
    return value, time.perf_counter() - start


class ProcessExecutor:
    """``workers`` processes (spawned), each building its scorer once with ``factory``."""

    def __init__(self, factory: Callable[[], Scorer], workers: int, timeout_s: float | None = None,
                 retries: int = 2, threads: int = 1) -> None:
        self.factory, self.workers, self.timeout_s, self.retries, self.threads = factory, workers, timeout_s, retries, threads
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.factory, self.threads, os.getpid()))

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (they start with the first batch)."""
        return list(getattr(self.pool, "_processes", {}) or {})

    def score(self, batch: Sequence[Kept]) -> list[Scored]:
        results: list[Scored | None] = [None] * len(batch)
        tries, timeouts = [0] * len(batch), [0] * len(batch)
        todo = list(range(len(batch)))
        while todo:  # one round: submit what is left, collect until done or the pool breaks
            for i in todo:
                tries[i] += 1
            running = {self.pool.submit(_score_in_worker, batch[i]): i for i in todo}
            todo = self._collect(running, tries, timeouts, results)
            for i in todo:  # a candidate out of tries is recorded as failed
                if tries[i] > self.retries:
                    check_timeouts(timeouts[i], tries[i], self.timeout_s)
                    results[i] = Scored(math.nan, 0.0, tries[i])
            todo = [i for i in todo if results[i] is None]
        return [r for r in results if r is not None]

    def _collect(self, running: dict[Future, int], tries: list[int], timeouts: list[int],
                 results: list[Scored | None]) -> list[int]:
        """Wait for ``running``; returns the candidates to score again. A dead or hung worker
        (no result within the timeout) breaks the pool: it is replaced and every unfinished
        candidate goes again. A user's score function that misbehaves stops the search."""
        again: list[int] = []
        while running:
            done, _ = wait(list(running), timeout=self.timeout_s, return_when=FIRST_COMPLETED)
            broken = not done
            if broken:  # nothing finished within the timeout: every running candidate timed out
                for i in running.values():
                    timeouts[i] += 1
            for future in done:
                i = running.pop(future)
                try:
                    results[i] = Scored(*future.result(), tries[i])
                except BrokenProcessPool:
                    again.append(i)
                    broken = True
                except UserCodeError:
                    self._restart()
                    raise
                except Exception:  # noqa: BLE001 - the scorer raised: tried again, then recorded NaN
                    again.append(i)
            if broken:
                again.extend(running.values())
                self._restart()
                break
        return list(dict.fromkeys(again))

    def _restart(self) -> None:
        for pid in self.worker_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# -- Ray actors ---------------------------------------------------------------------------------
class _ScoringActor:
    """A Ray actor holding one scorer (built once)."""

    def __init__(self, factory: Callable[[], Scorer], threads: int, driver: int | None = None) -> None:
        if driver is not None:  # a local runtime: the actor exits with the search that started it
            exit_with_parent(driver, child=False)
        _init_worker(factory, threads)

    def score(self, kept: Kept) -> tuple[float, float]:
        return _score_in_worker(kept)

    def pid(self) -> int:
        return os.getpid()


class RayExecutor:
    """``workers`` Ray actors (a local runtime, or the cluster at ``address``; ``auto`` joins one)."""

    def __init__(self, factory: Callable[[], Scorer], workers: int, address: str | None = None,
                 timeout_s: float | None = None, retries: int = 2, cpus: float = 1.0, gpus: float = 0.0,
                 threads: int = 1) -> None:
        if importlib.util.find_spec("ray") is None:
            raise ConfigError(RAY_MISSING)
        import ray

        self.ray, self.started = ray, not ray.is_initialized()
        self.local = self.started and not address  # actors on this machine: they can watch this process
        if self.started:  # ours to stop on close; a runtime the caller started stays up
            kwargs = {"address": address} if address else {"num_cpus": max(workers * cpus, 1)}
            ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True, **kwargs)
        self.actor_class = ray.remote(num_cpus=cpus, num_gpus=gpus)(_ScoringActor)
        self.factory, self.threads = factory, threads
        self.workers, self.timeout_s, self.retries = workers, timeout_s, retries
        self.actors = [self._new_actor(ready=False) for _ in range(workers)]
        ray.get([a.pid.remote() for a in self.actors])  # started together

    def _new_actor(self, ready: bool = True):
        """An actor; ``ready``: once started (its scorer built), so the timeout measures scoring alone."""
        actor = self.actor_class.remote(self.factory, self.threads, os.getpid() if self.local else None)
        if ready:
            self.ray.get(actor.pid.remote())
        return actor

    def score(self, batch: Sequence[Kept]) -> list[Scored]:
        ray = self.ray
        results: list[Scored | None] = [None] * len(batch)
        tries, timeouts = [0] * len(batch), [0] * len(batch)
        queue = list(range(len(batch)))
        free = list(range(len(self.actors)))
        running: dict[Any, tuple[int, int, float]] = {}  # ref -> (candidate, actor slot, start)
        while queue or running:
            while queue and free:
                i, slot = queue.pop(0), free.pop(0)
                tries[i] += 1
                running[self.actors[slot].score.remote(batch[i])] = (i, slot, time.perf_counter())
            done, _ = ray.wait(list(running), num_returns=1, timeout=self.timeout_s)
            if not done:  # every running task is past the timeout: replace those actors
                for ref, (i, slot, _) in list(running.items()):
                    self._replace(slot)
                    free.append(slot)
                    timeouts[i] += 1
                    self._retry_or_fail(i, tries, results, queue, timeouts)
                    del running[ref]
                continue
            ref = done[0]
            i, slot, _ = running.pop(ref)
            try:
                results[i] = Scored(*ray.get(ref), tries[i])
            except ray.exceptions.RayActorError:  # the actor died: a fresh one, the candidate again
                self._replace(slot)
                self._retry_or_fail(i, tries, results, queue, timeouts)
            except ray.exceptions.RayTaskError as exc:  # the scorer raised
                if isinstance(getattr(exc, "cause", None), UserCodeError):
                    raise exc.cause from None
                self._retry_or_fail(i, tries, results, queue, timeouts)
            free.append(slot)
        return [r for r in results if r is not None]

    def _retry_or_fail(self, i: int, tries: list[int], results: list, queue: list[int], timeouts: list[int]) -> None:
        if tries[i] <= self.retries:
            queue.insert(0, i)
        else:
            check_timeouts(timeouts[i], tries[i], self.timeout_s)
            results[i] = Scored(math.nan, 0.0, tries[i])

    def _replace(self, slot: int) -> None:
        try:
            self.ray.kill(self.actors[slot], no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.actors[slot] = self._new_actor()

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        if self.started:
            self.ray.shutdown()


WORKER_MEMORY_BYTES = 500 * 2**20  # resident size of one scoring worker (torch, model, data slices): ~420 MB seen


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux ``MemAvailable``), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cap_workers(workers: int, cpus_each: float = 1.0) -> int:
    """``workers`` capped by this machine's cores and memory; a one-line note when capped.

    Workers beyond the cores only queue for them, and beyond memory they swap or are killed.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    by_cores = max(1, int(cores // max(cpus_each, 1e-9)))
    memory = available_memory()
    by_memory = max(1, memory // WORKER_MEMORY_BYTES) if memory is not None else workers
    capped = max(1, min(workers, by_cores, by_memory))
    if capped < workers:
        why = f"{cores} cores" if capped == by_cores else f"{memory / 2**30:.1f} GiB of free memory"
        print(f"note: --workers {workers} capped to {capped} ({why} here)", file=sys.stderr)
    return capped


def create_executor(name: str, factory: Callable[[], Scorer], workers: int, local: Scorer | None = None,
                  **options: Any) -> Executor:
    """The executor ``name`` (``local`` uses ``local``, the scorer already built in this process).

    Worker processes, and the actors of a Ray runtime started here, are capped by this machine's
    cores and memory (:func:`cap_workers`); a Ray cluster (``address``) sizes itself.
    """
    check_executor(name, workers)
    if name == "processes" or (name == "ray" and not options.get("address")):
        workers = cap_workers(workers, float(options.get("cpus", 1.0)) if name == "ray" else 1.0)
    if name == "local":
        return LocalExecutor(local if local is not None else factory())
    if name == "processes":
        return ProcessExecutor(factory, workers, options.get("timeout_s"), threads=options.get("threads", 1))
    return RayExecutor(factory, workers, options.get("address"), options.get("timeout_s"),
                       cpus=options.get("cpus", 1.0), gpus=options.get("gpus", 0.0), threads=options.get("threads", 1))


class PooledScorer:
    """What the environment calls: one candidate (``scorer(kept)``) or a batch (``score_many``)."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.parallel = executor.workers

    def __call__(self, kept: Kept) -> float:
        return self.executor.score([kept])[0].score

    def score_many(self, batch: Sequence[Kept]) -> list[Scored]:
        return self.executor.score(batch)


def _safe(scorer: Scorer, kept: Kept) -> float:
    try:
        return float(scorer(kept))
    except UserCodeError:  # the user's score function misbehaves: the search stops, naming it
        raise
    except Exception:  # noqa: BLE001 - a failing candidate is recorded (NaN), never fatal
        return math.nan


def check_timeouts(timeouts: int, tries: int, timeout_s: float | None) -> None:
    """A candidate that timed out on every try means the timeout is too short: say so, in one line."""
    if timeout_s is not None and timeouts >= tries:
        raise ConfigError(f"scoring a candidate timed out {tries} times (--worker-timeout {timeout_s:g} s): "
                          f"raise --worker-timeout above the seconds one candidate takes, or leave it unset")
