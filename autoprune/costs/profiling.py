"""Profiling a latency lookup table on this machine: every layer alone over a channel grid,
timed round-robin with ONNX Runtime, then calibrated on whole-model measurements."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from autoprune.analysis.fingerprint import model_fingerprint
from autoprune.analysis.groups import ModelAnalysis
from autoprune.analysis.layers import LayerSpec
from autoprune.costs.calibration import calibrate, default_samples
from autoprune.costs.layer_graphs import layer_graph, layer_input
from autoprune.costs.lut import LatencyTable, LayerTable, channel_levels
from autoprune.devices import device_info
from autoprune.errors import ConfigError
from autoprune.inputs import signature_json
from autoprune.latency import LatencySettings, interleaved_ms
from autoprune.onnx_export import ort_session
from autoprune.progress import bar_disabled


def _point_runner(spec: LayerSpec, c_in: int, c_out: int, settings: LatencySettings) -> Callable[[], object]:
    session = ort_session(layer_graph(spec, c_in, c_out, settings.batch_size), settings.threads, settings.provider)
    feed = {"x": layer_input(spec, c_in, settings.batch_size)}
    return lambda: session.run(None, feed)


def profile_latency_table(analysis: ModelAnalysis, model_name: str | None = None, round_to: int = 8,
                          settings: LatencySettings = LatencySettings(warmup=10, repeats=50),
                          calibration_samples: int | None = None, seed: int = 0,
                          progress: bool = True) -> LatencyTable:
    """Profile every layer of ``analysis`` on this machine with ONNX Runtime and calibrate the sum.

    The grid holds the channel counts reachable with ``round_to`` (see :func:`channel_levels`);
    layers with the same shape and grid are profiled once. Calibration measures the dense model
    and ``calibration_samples`` random architectures (same rounding; default
    :func:`~autoprune.costs.calibration.default_samples`) end to end.
    """
    if settings.backend != "onnxruntime":
        raise ConfigError("latency tables are profiled with ONNX Runtime; use backend onnxruntime")
    start = time.perf_counter()
    plans, unique = {}, {}
    for spec in analysis.layers:
        every = math.lcm(round_to, spec.groups) if spec.kind in ("conv", "transpose") else round_to  # whole groups
        if spec.kind == "attention":  # whole heads; nn.MultiheadAttention: as many channels from each head
            every = math.lcm(every, spec.heads or spec.head_dim)
        same = spec.kind in ("depthwise", "attention")  # input channels are the output's: a table over c_out
        ins = channel_levels(spec.in_channels, spec.in_group is not None and not same, every)
        outs = channel_levels(spec.out_channels, spec.out_group is not None, every)
        key = (spec.kind, spec.kernel, spec.stride, spec.padding, spec.in_hw, spec.groups, tuple(ins), tuple(outs))
        plans[spec.name] = key
        unique.setdefault(key, (spec, ins, outs))
    runners, slots = [], []
    for key, (spec, ins, outs) in unique.items():
        for i, c_in in enumerate(ins):
            for j, c_out in enumerate(outs):
                # Depthwise layers and attention have c_in == c_out: their table is indexed by c_out.
                runners.append(_point_runner(spec, c_out if spec.kind in ("depthwise", "attention") else c_in,
                                             c_out, settings))
                slots.append((key, i, j))
    # Every grid point is timed once per pass, round-robin (see interleaved_ms): a burst of
    # interference then inflates single passes of many points, never all passes of one, and
    # LayerTable's monotone clean-up cannot spread one inflated point over a whole grid.
    with tqdm(total=len(runners) * settings.rounds, desc="profiling layers", unit="pt",
              disable=bar_disabled(progress)) as bar:
        times = interleaved_ms(runners, settings.warmup, max(settings.repeats // 10, 3), settings.rounds,
                               calls_per_sample=10, progress=bar.update)
    grids = {key: np.zeros((len(ins), len(outs))) for key, (_, ins, outs) in unique.items()}
    for (key, i, j), ms in zip(slots, times):
        grids[key][i, j] = ms
    measured = {key: LayerTable(ins, outs, grids[key]) for key, (_, ins, outs) in unique.items()}
    # A depthwise table's rows repeat one measurement per c_out: any c_in reads the same values.
    table = LatencyTable({name: measured[key] for name, key in plans.items()})
    table.meta = {
        "model": model_name, "fingerprint": model_fingerprint(analysis.model),
        "input_shape": signature_json(analysis.signature), "settings": settings.__dict__,
        "round_to": round_to, "device": device_info(),
    }
    samples = default_samples(analysis.layers, round_to) if calibration_samples is None else calibration_samples
    table.meta["calibration"] = calibrate(table, analysis, settings, samples, seed, progress).to_dict()
    table.meta["profile_seconds"] = round(time.perf_counter() - start, 3)
    return table
