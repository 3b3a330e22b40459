"""Measured latency: ONNX Runtime or torch, batch size, threads, warm-up and median of repeats."""

from __future__ import annotations

import contextlib
import itertools
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    return [min(column) for column in zip(*interleaved_passes(fns, warmup, repeats, passes, calls_per_sample,
                                                               progress))]


def interleaved_passes(fns: Sequence[Callable[[], object]], warmup: int, repeats: int, passes: int,
                       calls_per_sample: int = 1, progress: Callable[[], None] | None = None) -> list[list[float]]:
    """The median (ms) of each ``fns[i]`` in each of ``passes`` round-robin passes (one list per pass).

    A function may appear more than once in ``fns`` (a reference timed between candidates); it gets
    its full ``warmup`` only the first time it is called.
    """
    warmed: set[int] = set()
    out = []
    for _ in range(passes):
        medians = []
        for fn in fns:
            for _ in range(min(warmup, 2) if id(fn) in warmed else warmup):
                fn()
            warmed.add(id(fn))
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(calls_per_sample):
                    fn()
                samples.append((time.perf_counter() - start) / calls_per_sample)
            medians.append(statistics.median(samples) * 1e3)
            if progress is not None:
                progress()
        out.append(medians)
    return out


@dataclass(frozen=True)
class Alongside:
    """Models timed against a reference timed between every two of them, in every pass.

    ``shares``: each model's time over the mean of the reference readings on either side of it,
    the median over passes; ``best_ms``: each model's best pass; ``reference_ms``: the reference's.
    """

    shares: list[float]
    best_ms: list[float]
    reference_ms: float


def against_reference(fns: Sequence[Callable[[], object]], reference: Callable[[], object], warmup: int,
                      repeats: int, passes: int, progress: Callable[[], None] | None = None) -> Alongside:
    """Each of ``fns`` as a share of ``reference`` timed just before and just after it in every pass.

    For models of about the same size this ratio holds when the machine's speed changes: this VM
    switches for seconds at a time between two speeds that differ by about 30 % for a 0.3 ms model
    and 10 % for a 0.6 ms one, and a pass a switch crossed once read ten searched candidates 1.31x
    slower than three seed rules of the same predicted latency timed after them. The median over
    passes discards a pass a switch crossed.
    """
    order = [reference]
    for fn in fns:
        order += [fn, reference]
    per_pass = interleaved_passes(order, warmup, repeats, passes, progress=progress)
    shares = [statistics.median(p[2 * i + 1] / ((p[2 * i] + p[2 * i + 2]) / 2) for p in per_pass)
              for i in range(len(fns))]
    best = [min(p[2 * i + 1] for p in per_pass) for i in range(len(fns))]
    return Alongside(shares, best, min(min(p[0::2]) for p in per_pass))


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
    with _runners(models, input_shape, settings) as runners:
        return _time_runners(runners, settings, interleaved, progress) if runners else []


def measure_against(models: Iterable[nn.Module], reference: nn.Module, input_shape: Signature,
                    settings: LatencySettings = LatencySettings(),
                    progress: Callable[[], None] | None = None) -> Alongside:
    """``models`` timed as shares of ``reference`` timed just before and after each of them
    (:func:`against_reference`): a comparison that a change of the machine's speed leaves alone."""
    with _runners(itertools.chain([reference], models), input_shape, settings) as runners:
        return against_reference(runners[1:], runners[0], settings.warmup, settings.repeats, settings.rounds,
                                 progress)


@contextlib.contextmanager
def _runners(models: Iterable[nn.Module], input_shape: Signature,
             settings: LatencySettings) -> Iterator[list[Callable[[], object]]]:
    """One call of each model on the same input, under ``settings``' backend and threads."""
    models = iter(models)
    first = next(models, None)
    if first is None:
        yield []
        return
    models = itertools.chain([first], models)
    x = example_input(first, input_shape, settings.batch_size, random=True)  # token IDs for a text model
    if settings.backend == "onnxruntime":
        yield [_session_runner(ort_session(timing_onnx(m, rows(x, 1)), settings.threads, settings.provider), x)
               for m in models]
        return
    if settings.backend != "torch":
        raise ConfigError(f"unknown latency backend {settings.backend!r}; use onnxruntime or torch")
    models = list(models)
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    modes = [m.training for m in models]
    try:
        with torch.inference_mode():
            yield [_module_runner(m.eval(), x) for m in models]
    finally:
        torch.set_num_threads(previous)
        for m, mode in zip(models, modes):
            m.train(mode)


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
