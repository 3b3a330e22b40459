"""Measured latency: ONNX Runtime or torch, batch size, threads, warm-up and median of repeats."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from autoprune.analysis.layers import example_input
from autoprune.errors import ConfigError
from autoprune.inputs import InputSpec, ModelInput, Signature, call, rows
from autoprune.onnx_export import onnx_feed, ort_session, timing_onnx

# The latency options' help, shared by ``search`` (its settings) and every command that times.
PROVIDERS_HELP = "cpu, cuda, tensorrt, openvino, coreml, ...; default: cpu"
LATENCY_BATCH_HELP = "batch size latency is measured at"


@dataclass(frozen=True)
class LatencySettings:
    """How latency is measured; part of a cost model's identity (tables record it)."""

    backend: str = "onnxruntime"  # or "torch"
    batch_size: int = 1
    threads: int = 1
    warmup: int = 20
    repeats: int = 40  # timed calls per round
    rounds: int = 5    # latency = the smallest of the rounds' medians
    provider: str = "CPUExecutionProvider"  # ONNX Runtime execution provider (--provider)

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 1024 or not 1 <= self.batch_size <= 65536:
            raise ConfigError("--latency-threads and --latency-batch must be positive (at most 1024 and 65536)")


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


def robust_median_ms(fn: Callable[[], object], settings: LatencySettings) -> float:
    """The smallest of ``rounds`` medians of ``repeats`` calls each.

    On a shared (virtual) machine, interference comes in bursts longer than one round; a single
    median over consecutive calls then varies by +-25 %, the smallest round median by ~1 %.
    """
    first = median_ms(fn, settings.warmup, settings.repeats)
    return min([first] + [median_ms(fn, 2, settings.repeats) for _ in range(settings.rounds - 1)])


def interleaved_ms(fns: Sequence[Callable[[], object]], warmup: int, repeats: int, passes: int,
                   calls_per_sample: int = 1, progress: Callable[[], None] | None = None) -> list[float]:
    """Each ``fns[i]``'s smallest per-pass median, measuring all of them round-robin ``passes`` times.

    Interference on a shared (virtual) machine comes in bursts of 0.1 s to a few seconds, longer
    than all rounds of one candidate measured back to back: re-measured that way, a ResNet-20 candidate read 0.58 ms
    once and 0.36 ms three times. Measuring every candidate once per pass spreads a burst over single
    passes of many candidates, and each keeps its best pass. A sample is the mean of
    ``calls_per_sample`` back-to-back calls (use > 1 for microsecond layers, below timer noise).
    ``progress`` is called once per candidate measured in a pass.
    """
    best = [float("inf")] * len(fns)
    for p in range(passes):
        for i, fn in enumerate(fns):
            for _ in range(warmup if p == 0 else min(warmup, 2)):
                fn()
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(calls_per_sample):
                    fn()
                samples.append((time.perf_counter() - start) / calls_per_sample)
            best[i] = min(best[i], statistics.median(samples) * 1e3)
            if progress is not None:
                progress()
    return best


def measure_latency(model: nn.Module, input_shape: Signature,
                    settings: LatencySettings = LatencySettings()) -> float:
    """Latency (ms) of one forward pass of ``model`` at ``settings.batch_size`` (robust median)."""
    return measure_latencies([model], input_shape, settings, interleaved=False)[0]


def measure_latencies(models: Iterable[nn.Module], input_shape: Signature,
                      settings: LatencySettings = LatencySettings(), interleaved: bool = True,
                      progress: Callable[[], None] | None = None) -> list[float]:
    """Latencies (ms) of several models; ``interleaved`` measures them round-robin (:func:`interleaved_ms`).

    Use it whenever models are compared with one another: back-to-back measurement lets one burst
    of interference on a shared machine spoil one candidate's every round. With ONNX Runtime each
    model is exported as it is drawn, so a generator of models is never all in memory at once.
    """
    models = iter(models)
    first = next(models, None)
    if first is None:
        return []
    models = itertools.chain([first], models)
    x = example_input(first, input_shape, settings.batch_size, random=True)  # token IDs for a text model
    if settings.backend == "onnxruntime":
        runners = [_session_runner(ort_session(timing_onnx(m, rows(x, 1)), settings.threads, settings.provider), x)
                   for m in models]
        return _time_runners(runners, settings, interleaved, progress)
    if settings.backend == "torch":
        models = list(models)
        previous = torch.get_num_threads()
        torch.set_num_threads(settings.threads)
        modes = [m.training for m in models]
        try:
            with torch.inference_mode():
                return _time_runners([_module_runner(m.eval(), x) for m in models], settings, interleaved, progress)
        finally:
            torch.set_num_threads(previous)
            for m, mode in zip(models, modes):
                m.train(mode)
    raise ConfigError(f"unknown latency backend {settings.backend!r}; use onnxruntime or torch")


def _session_runner(session: ort.InferenceSession, x: ModelInput) -> Callable[[], object]:
    feed = onnx_feed(session, x)
    return lambda: session.run(None, feed)


def _module_runner(model: nn.Module, x: ModelInput) -> Callable[[], object]:
    return lambda: call(model, x)


def _time_runners(runners: list[Callable[[], object]], settings: LatencySettings, interleaved: bool,
                  progress: Callable[[], None] | None) -> list[float]:
    if interleaved:
        return interleaved_ms(runners, settings.warmup, settings.repeats, settings.rounds, progress=progress)
    out = []
    for fn in runners:
        out.append(robust_median_ms(fn, settings))
        if progress is not None:
            progress()
    return out


def measure_onnx_latency(onnx_bytes: bytes, input_shape: Signature,
                         settings: LatencySettings = LatencySettings()) -> float:
    """Latency (ms) of an exported ONNX model under ONNX Runtime (the file a user ships)."""
    return robust_median_ms(_onnx_runner(onnx_bytes, input_shape, settings), settings)


def measure_onnx_latencies(models: Sequence[bytes], input_shape: Signature,
                           settings: LatencySettings = LatencySettings()) -> list[float]:
    """Latencies (ms) of several ONNX models measured round-robin in the same passes
    (:func:`interleaved_ms`), so that their ratio does not depend on the machine's speed drifting."""
    runners = [_onnx_runner(m, input_shape, settings) for m in models]
    return interleaved_ms(runners, settings.warmup, settings.repeats, settings.rounds)


def _onnx_runner(onnx_bytes: bytes, input_shape: Signature, settings: LatencySettings) -> Callable[[], object]:
    """One ONNX Runtime call of ``onnx_bytes`` at ``settings.batch_size`` on a fixed input."""
    session = ort_session(onnx_bytes, settings.threads, settings.provider)
    if isinstance(input_shape, InputSpec):
        feed = onnx_feed(session, input_shape.example(settings.batch_size, random=True))
        return lambda: session.run(None, feed)
    shape = (settings.batch_size, *input_shape)
    if session.get_inputs()[0].type == "tensor(int64)":  # token IDs: zeros are in every vocabulary
        feed = {"input": np.zeros(shape, dtype=np.int64)}
    else:
        feed = {"input": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    return lambda: session.run(None, feed)
