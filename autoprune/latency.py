"""Measured latency: ONNX Runtime or torch, batch size, threads, warm-up and median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from autoprune.errors import ConfigError
from autoprune.onnx_export import to_onnx_bytes


@dataclass(frozen=True)
class LatencySettings:
    """How latency is measured; part of a cost model's identity (tables record it)."""

    backend: str = "onnxruntime"  # or "torch"
    batch_size: int = 1
    threads: int = 1
    warmup: int = 20
    repeats: int = 40  # timed calls per round
    rounds: int = 5    # latency = the smallest of the rounds' medians


def ort_session(onnx_bytes: bytes, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with full graph optimisation and a fixed thread count."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])


def median_ms(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def min_round_ms(fn: Callable[[], object], warmup: int, rounds: int, per_round: int = 10) -> float:
    """Minimum over ``rounds`` of the mean time of ``per_round`` back-to-back calls (timeit-style).

    For microsecond-scale layers a minimum is far less noisy than a median: scheduler and cache
    noise only ever add time.
    """
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        best = min(best, (time.perf_counter() - start) / per_round)
    return best * 1e3


def robust_median_ms(fn: Callable[[], object], settings: LatencySettings) -> float:
    """The smallest of ``rounds`` medians of ``repeats`` calls each.

    On a shared (virtual) machine, interference comes in bursts longer than one round; a single
    median over consecutive calls then varies by +-25 %, the smallest round median by ~1 %.
    """
    first = median_ms(fn, settings.warmup, settings.repeats)
    return min([first] + [median_ms(fn, 2, settings.repeats) for _ in range(settings.rounds - 1)])


def measure_latency(model: nn.Module, input_shape: tuple[int, ...],
                    settings: LatencySettings = LatencySettings()) -> float:
    """Latency (ms) of one forward pass of ``model`` at ``settings.batch_size`` (robust median)."""
    x = torch.randn(settings.batch_size, *input_shape)
    if settings.backend == "onnxruntime":
        return measure_onnx_latency(to_onnx_bytes(model, x[:1]), input_shape, settings)
    if settings.backend == "torch":
        previous = torch.get_num_threads()
        torch.set_num_threads(settings.threads)
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                return robust_median_ms(lambda: model(x), settings)
        finally:
            torch.set_num_threads(previous)
            model.train(was_training)
    raise ConfigError(f"unknown latency backend {settings.backend!r}; use onnxruntime or torch")


def measure_onnx_latency(onnx_bytes: bytes, input_shape: tuple[int, ...],
                         settings: LatencySettings = LatencySettings()) -> float:
    """Latency (ms) of an exported ONNX model under ONNX Runtime (the file a user ships)."""
    session = ort_session(onnx_bytes, settings.threads)
    feed = {"input": np.random.default_rng(0).standard_normal(
        (settings.batch_size, *input_shape)).astype(np.float32)}
    return robust_median_ms(lambda: session.run(None, feed), settings)
