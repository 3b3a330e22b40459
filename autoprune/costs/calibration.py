"""Whole-model calibration of a latency table: per-layer weights, an offset and alignment tolls.

``latency = offset + sum_l w_l * layer_l + sum_(g, b) toll_gb * [width_g % b != 0]``, fitted by
non-negative least squares on interleaved measurements of random architectures. The weights
(ridge-regularised toward one shared scale) absorb element-wise ops, pooling, fusion and per-op
overheads that standalone layers do not show; the tolls absorb layout changes at channel counts
off a SIMD block (see :mod:`autoprune.costs.alignment`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import nnls
from tqdm.auto import tqdm

from autoprune.analysis.groups import ModelAnalysis
from autoprune.analysis.layers import LayerSpec
from autoprune.costs.alignment import alignment_keys, misaligned
from autoprune.costs.lut import Calibration, LatencyTable
from autoprune.costs.measured import MeasuredLatencyCostModel
from autoprune.latency import LatencySettings
from autoprune.progress import bar_disabled
from autoprune.pruning.ratios import architecture_for

MIN_SAMPLES = 80


def default_samples(layers: list[LayerSpec], round_to: int) -> int:
    """Two calibration models per fitted term (a weight per layer, a toll per (group, block) that
    widths in steps of ``round_to`` can miss) plus ten, at least :data:`MIN_SAMPLES`.

    ResNet-20 and MobileNetV2-small: 80 at ``round_to`` 8, 102 and 100 at 4 (both block sizes).
    """
    flags = sum(1 for _, block in alignment_keys(layers) if round_to % block != 0)
    return max(MIN_SAMPLES, 2 * (len(layers) + flags) + 10)


def calibrate(table: LatencyTable, analysis: ModelAnalysis, settings: LatencySettings, samples: int,
              seed: int, progress: bool = True, ridge: float = 0.05, tolls: bool = True) -> Calibration:
    """Measure the dense model and ``samples`` random architectures; fit the calibration to them.

    Per-layer weights are fitted when there are two samples per term, else one shared scale;
    alignment tolls (unless ``tolls`` is False: an ablation) only for the (group, block) pairs
    the samples both meet and miss.
    """
    measured = MeasuredLatencyCostModel(analysis, LatencySettings(
        "onnxruntime", settings.batch_size, settings.threads, provider=settings.provider))
    rng = np.random.default_rng(seed)
    round_to = int(table.meta.get("round_to", 1))
    archs = [{}] + [architecture_for(analysis.groups, {g.name: rng.uniform(0, 0.8) for g in analysis.groups},
                                     round_to) for _ in range(samples)]
    with tqdm(total=len(archs) * (measured.settings.rounds + 1), desc="calibrating", disable=bar_disabled(progress)) as bar:
        ys = measured.latencies(archs, progress=bar.update)
    x, y = np.asarray([table.layer_terms(analysis.layers, arch) for arch in archs]), np.asarray(ys)
    sums = x.sum(axis=1)
    dense_ms = float(y[0])
    if len(archs) < 3:
        return Calibration(float(y[0] / max(sums[0], 1e-9)), 0.0, len(archs), dense_ms=dense_ms)
    scale, offset = np.polyfit(sums, y, 1)
    if scale <= 0:  # a degenerate fit; fall back to a pure ratio
        scale, offset = float(np.mean(y) / np.mean(sums)), 0.0
    result: dict[str, Any] = {"scale": float(scale), "offset": float(offset), "samples": len(archs),
                              "dense_ms": dense_ms}
    keys = alignment_keys(analysis.layers) if tolls else []
    flags = np.asarray([misaligned(analysis.layers, arch, keys) for arch in archs]).reshape(len(archs), -1)
    varying = [j for j in range(len(keys)) if 0 < flags[:, j].sum() < len(archs)]
    per_layer = len(archs) >= 2 * (x.shape[1] + len(varying))
    if not per_layer and len(archs) < 2 * (1 + len(varying)):
        return Calibration.from_dict(result)
    # The shared scale the per-layer weights are pulled toward is fitted with the tolls: left
    # to a plain line through the sums, off-block tolls would bias it.
    shared, fitted, offset = fit_calibration(sums[:, None], flags[:, varying], y, float(scale), 0.0)
    if shared[0] > 0:
        result.update(scale=shared[0], offset=offset)
    if per_layer:
        weights, fitted, offset = fit_calibration(x, flags[:, varying], y, result["scale"], ridge)
    else:
        weights = shared
    per = weights if per_layer else [weights[0]] * len(analysis.layers)
    result.update(offset=offset, layer_weights={s.name: w for s, w in zip(analysis.layers, per)})
    by_group: dict[str, dict[str, float]] = {}
    for j, toll in zip(varying, fitted):
        if toll > 1e-6:  # ms; NNLS leaves round-off above zero
            g, b = keys[j]
            by_group.setdefault(g, {})[str(b)] = toll
    result["alignment_tolls"] = by_group
    return Calibration.from_dict(result)


def fit_calibration(x: np.ndarray, flags: np.ndarray, y: np.ndarray, scale: float,
                    ridge: float) -> tuple[list[float], list[float], float]:
    """Non-negative weights for ``x``'s columns, tolls for ``flags``' columns, and an offset.

    ``ridge`` pulls the weights toward ``scale`` (tolls are not regularised): with few samples
    the fit falls back to one shared scale instead of wild per-layer weights.
    """
    n, k = x.shape
    q = flags.shape[1]
    lam = np.sqrt(ridge * max(float(np.mean(np.sum(x * x, axis=0))), 1e-12))
    a = np.vstack([np.hstack([x, flags, np.ones((n, 1))]), np.hstack([lam * np.eye(k), np.zeros((k, q + 1))])])
    b = np.concatenate([y, np.full(k, lam * scale)])
    solution, _ = nnls(a, b)
    return [float(w) for w in solution[:k]], [float(t) for t in solution[k:k + q]], float(solution[k + q])
