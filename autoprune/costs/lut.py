"""Latency lookup tables (NetAdapt, Yang et al. 2018; HALP, Shen et al. 2022).

Every Conv/Linear layer is profiled alone on the target device over a grid of input/output
channel counts; a model's latency is a calibrated weighted sum of its layers' latencies above
their smallest configuration: ``latency = offset + sum_l w_l * layer_l``. The weights and offset
are fitted by non-negative least squares on whole-model measurements of random architectures
(ridge-regularised toward one shared scale); they absorb element-wise ops, pooling, fusion and
per-op overheads that standalone layers do not show. Non-negative weights on monotone terms keep
the prediction monotone, which budget-aware action clipping relies on.
Tables are CSV files (metadata on the first ``#`` line), so a table profiled on one machine
drives a search on another.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from scipy.optimize import nnls
from tqdm.auto import tqdm

from autoprune.analysis.architecture import Architecture, layer_channels
from autoprune.analysis.fingerprint import model_fingerprint
from autoprune.analysis.groups import ModelAnalysis
from autoprune.analysis.layers import LayerSpec
from autoprune.atomic import write_text_atomic
from autoprune.costs.base import LatencyCostModel
from autoprune.costs.layer_graphs import layer_graph, layer_input
from autoprune.costs.measured import MeasuredLatencyCostModel
from autoprune.errors import ConfigError
from autoprune.latency import LatencySettings, min_round_ms, ort_session
from autoprune.pruning.ratios import architecture_for

FORMAT = "autoprune-latency-table"
TABLE_VERSION = 1


def channel_levels(channels: int, linked: bool, round_to: int = 8, max_levels: int = 17) -> list[int]:
    """Grid points for one channel dimension: the counts a search with ``round_to`` can produce.

    CPU kernels are fast only for some channel counts (ONNX Runtime's blocked convolutions want
    multiples of 8: a 30 %-pruned MobileNetV2 with arbitrary widths runs 2.2x slower than dense),
    so the grid holds exactly the reachable counts, thinned evenly beyond ``max_levels``.
    """
    if not linked or channels <= 1:
        return [channels]
    step = max(1, round_to)
    levels = sorted({min(k, channels) for k in range(step, channels + step, step)} | {min(step, channels)})
    if len(levels) > max_levels:
        picks = np.linspace(0, len(levels) - 1, max_levels).round().astype(int)
        levels = sorted({levels[i] for i in picks})
    return levels


@dataclass
class LayerTable:
    """One layer's latency grid ``ms[i, j]`` at ``c_in = ins[i]``, ``c_out = outs[j]`` (monotone)."""

    ins: list[int]
    outs: list[int]
    ms: np.ndarray

    def __post_init__(self) -> None:
        # Removing channels must never add latency: enforce monotonicity against measurement noise.
        self.ms = np.maximum.accumulate(np.maximum.accumulate(np.asarray(self.ms, float), axis=0), axis=1)
        self._rows = self.ms.tolist()
        self.floor = float(self.ms[0, 0])

    def predict(self, c_in: float, c_out: float) -> float:
        """Bilinear interpolation (clamped to the grid)."""
        i, fi = _bracket(self.ins, c_in)
        j, fj = _bracket(self.outs, c_out)
        r0, r1 = self._rows[i], self._rows[min(i + 1, len(self.ins) - 1)]
        j1 = min(j + 1, len(self.outs) - 1)
        top = r0[j] + (r0[j1] - r0[j]) * fj
        bottom = r1[j] + (r1[j1] - r1[j]) * fj
        return top + (bottom - top) * fi


def _bracket(levels: list[int], x: float) -> tuple[int, float]:
    if len(levels) == 1 or x <= levels[0]:
        return 0, 0.0
    if x >= levels[-1]:
        return len(levels) - 1, 0.0
    i = bisect_right(levels, x) - 1
    return i, (x - levels[i]) / (levels[i + 1] - levels[i])


@dataclass
class LatencyTable:
    """Per-layer latency tables plus calibration and provenance."""

    tables: dict[str, LayerTable]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        return float(self.meta.get("calibration", {}).get("scale", 1.0))

    @property
    def offset(self) -> float:
        return float(self.meta.get("calibration", {}).get("offset", 0.0))

    def layer_terms(self, layers: list[LayerSpec], arch: Architecture) -> list[float]:
        """Each layer's latency above its smallest configuration (ms), uncalibrated.

        A layer's smallest configuration is mostly fixed per-call overhead, which a standalone
        layer pays and a fused whole model does not; it belongs in the calibrated offset, not
        in the part that scales with channels.
        """
        terms = []
        for spec in layers:
            c_in, c_out = layer_channels(spec, arch)
            table = self.tables[spec.name]
            terms.append(table.predict(c_in, c_out) - table.floor)
        return terms

    def layer_sum(self, layers: list[LayerSpec], arch: Architecture) -> float:
        """Uncalibrated sum of :meth:`layer_terms`."""
        return sum(self.layer_terms(layers, arch))

    def predict(self, layers: list[LayerSpec], arch: Architecture) -> float:
        """Calibrated whole-model latency (ms)."""
        weights = self.meta.get("calibration", {}).get("layer_weights")
        terms = self.layer_terms(layers, arch)
        if weights:
            return self.offset + sum(weights.get(s.name, self.scale) * t for s, t in zip(layers, terms))
        return self.scale * sum(terms) + self.offset

    def check_matches(self, analysis: ModelAnalysis, source: str = "latency table") -> None:
        """Raise a one-line error unless the table covers every layer of ``analysis`` at its widths."""
        for spec in analysis.layers:
            t = self.tables.get(spec.name)
            group = spec.out_group or spec.in_group or "none"
            if t is None:
                raise ConfigError(f"{source} has no entry for layer {spec.name!r} (group {group!r}); "
                                  f"profile this model with 'autoprune profile'")
            if t.ins[-1] < spec.in_channels or t.outs[-1] < spec.out_channels:
                raise ConfigError(f"{source} covers layer {spec.name!r} up to {t.ins[-1]}x{t.outs[-1]} "
                                  f"channels, the model has {spec.in_channels}x{spec.out_channels}; "
                                  f"profile this model again")

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for name, t in self.tables.items():
            for i, c_in in enumerate(t.ins):
                for j, c_out in enumerate(t.outs):
                    rows.append((name, c_in, c_out, float(t.ms[i, j])))
        return pd.DataFrame(rows, columns=["layer", "c_in", "c_out", "latency_ms"])

    def save(self, path: str | Path) -> Path:
        """Write CSV with a ``# {json metadata}`` first line (atomic)."""
        buf = io.StringIO()
        buf.write("# " + json.dumps({"format": FORMAT, "version": TABLE_VERSION, **self.meta}) + "\n")
        self.to_frame().to_csv(buf, index=False, float_format="%.6g")
        return write_text_atomic(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        """Read a table written by :meth:`save`; one-line errors for anything else."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"latency table {path} does not exist; create it with 'autoprune profile'")
        try:
            with path.open() as f:
                first = f.readline()
            meta = json.loads(first[1:]) if first.startswith("#") else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            meta = None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ConfigError(f"{path} is not an autoprune latency table (no metadata line); "
                              f"create one with 'autoprune profile'")
        version = meta.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"{path}: its metadata 'version' must be an integer, got {version!r}")
        if version > TABLE_VERSION:
            raise ConfigError(f"{path} was written by a newer autoprune; upgrade to read it")
        try:
            frame = pd.read_csv(path, comment="#")
            frame = frame.astype({"layer": str, "c_in": int, "c_out": int, "latency_ms": float})
        except (ValueError, KeyError, pd.errors.ParserError) as exc:
            raise ConfigError(f"latency table {path} is malformed ({str(exc).splitlines()[0][:100]})") from exc
        if not np.isfinite(frame["latency_ms"]).all() or (frame["latency_ms"] < 0).any():
            raise ConfigError(f"latency table {path} holds negative or non-finite latencies")
        if (frame[["c_in", "c_out"]] < 1).any().any():
            raise ConfigError(f"latency table {path} holds channel counts below 1")
        duplicated = frame.duplicated(["layer", "c_in", "c_out"])
        if duplicated.any():
            row = frame[duplicated].iloc[0]
            raise ConfigError(f"latency table {path}: layer {row['layer']!r} lists ({row['c_in']}, {row['c_out']}) "
                              f"channels twice")
        tables = {}
        for name, rows in frame.groupby("layer", sort=False):
            grid = rows.pivot(index="c_in", columns="c_out", values="latency_ms").sort_index().sort_index(axis=1)
            if grid.isna().any().any():
                raise ConfigError(f"latency table {path}: layer {name!r} has an incomplete grid")
            tables[name] = LayerTable(list(grid.index), list(grid.columns), grid.to_numpy())
        meta.pop("format", None)
        _check_meta(meta, path)
        return cls(tables, meta)


def _check_meta(meta: dict[str, Any], path: Path) -> None:
    """One-line errors for calibration or rounding values a hand-edited file may have broken."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    cal = meta.get("calibration", {})
    weights = cal.get("layer_weights") if isinstance(cal, dict) else None
    ok = isinstance(cal, dict) and all(number(cal.get(k, 0.0)) for k in ("scale", "offset")) and (
        weights is None or isinstance(weights, dict) and all(number(w) and w >= 0 for w in weights.values()))
    if not ok:
        raise ConfigError(f"{path}: its calibration metadata is malformed; profile the table again")
    round_to = meta.get("round_to", 1)
    if not isinstance(round_to, int) or isinstance(round_to, bool) or round_to < 1:
        raise ConfigError(f"{path}: metadata 'round_to' must be a positive integer, got {round_to!r}")


def _profile_point(spec: LayerSpec, c_in: int, c_out: int, settings: LatencySettings) -> float:
    session = ort_session(layer_graph(spec, c_in, c_out, settings.batch_size), settings.threads)
    feed = {"x": layer_input(spec, c_in, settings.batch_size)}
    return min_round_ms(lambda: session.run(None, feed), settings.warmup, max(settings.repeats // 10, 3))


def profile_latency_table(analysis: ModelAnalysis, model_name: str | None = None, round_to: int = 8,
                          settings: LatencySettings = LatencySettings(warmup=10, repeats=50),
                          calibration_samples: int = 60, seed: int = 0, progress: bool = True) -> LatencyTable:
    """Profile every layer of ``analysis`` on this machine with ONNX Runtime and calibrate the sum.

    The grid holds the channel counts reachable with ``round_to`` (see :func:`channel_levels`);
    layers with the same shape and grid are profiled once. Calibration measures the dense model
    and ``calibration_samples`` random architectures (same rounding) end to end.
    """
    if settings.backend != "onnxruntime":
        raise ConfigError("latency tables are profiled with ONNX Runtime; use backend onnxruntime")
    start = time.perf_counter()
    plans, unique = {}, {}
    for spec in analysis.layers:
        ins = channel_levels(spec.in_channels, spec.in_group is not None and spec.kind != "depthwise", round_to)
        outs = channel_levels(spec.out_channels, spec.out_group is not None, round_to)
        key = (spec.kind, spec.kernel, spec.stride, spec.padding, spec.in_hw, spec.groups, tuple(ins), tuple(outs))
        plans[spec.name] = key
        unique.setdefault(key, (spec, ins, outs))
    points = sum(len(ins) * len(outs) for _, ins, outs in unique.values())
    measured: dict[tuple, LayerTable] = {}
    with tqdm(total=points, desc="profiling layers", unit="pt", disable=not progress) as bar:
        for key, (spec, ins, outs) in unique.items():
            grid = np.zeros((len(ins), len(outs)))
            for i, c_in in enumerate(ins):
                for j, c_out in enumerate(outs):
                    c_in_eff = c_out if spec.kind == "depthwise" else c_in
                    grid[i, j] = _profile_point(spec, c_in_eff, c_out, settings)
                    bar.update()
            measured[key] = LayerTable(ins, outs, grid)
    # Depthwise layers have c_in == c_out: their table is indexed by c_out, any c_in reads the same row.
    table = LatencyTable({name: measured[key] for name, key in plans.items()})
    table.meta = {
        "model": model_name, "fingerprint": model_fingerprint(analysis.model),
        "input_shape": list(analysis.example_input.shape[1:]), "settings": settings.__dict__,
        "round_to": round_to, "device": device_info(),
    }
    table.meta["calibration"] = calibrate(table, analysis, settings, calibration_samples, seed, progress)
    table.meta["profile_seconds"] = round(time.perf_counter() - start, 3)
    return table


def calibrate(table: LatencyTable, analysis: ModelAnalysis, settings: LatencySettings, samples: int,
              seed: int, progress: bool = True, ridge: float = 0.05) -> dict[str, Any]:
    """Fit ``offset`` and per-layer weights (NNLS, ridge toward a shared ``scale``) on measurements."""
    measured = MeasuredLatencyCostModel(analysis, LatencySettings(
        "onnxruntime", settings.batch_size, settings.threads))
    rng = np.random.default_rng(seed)
    round_to = int(table.meta.get("round_to", 1))
    archs = [{}] + [architecture_for(analysis.groups, {g.name: rng.uniform(0, 0.8) for g in analysis.groups},
                                     round_to) for _ in range(samples)]
    terms, ys = [], []
    for arch in tqdm(archs, desc="calibrating", disable=not progress):
        terms.append(table.layer_terms(analysis.layers, arch))
        ys.append(measured.latency(arch))
    x, y = np.asarray(terms), np.asarray(ys)
    sums = x.sum(axis=1)
    if len(archs) < 3:
        return {"scale": float(y[0] / max(sums[0], 1e-9)), "offset": 0.0, "samples": len(archs)}
    scale, offset = np.polyfit(sums, y, 1)
    if scale <= 0:  # a degenerate fit would break monotonicity; fall back to a pure ratio
        scale, offset = float(np.mean(y) / np.mean(sums)), 0.0
    result = {"scale": float(scale), "offset": float(offset), "samples": len(archs)}
    if len(archs) >= 2 * x.shape[1]:
        weights, offset = _fit_layer_weights(x, y, float(scale), ridge)
        result.update(offset=offset, layer_weights={s.name: w for s, w in zip(analysis.layers, weights)})
    return result


def _fit_layer_weights(x: np.ndarray, y: np.ndarray, scale: float, ridge: float) -> tuple[list[float], float]:
    """Non-negative per-layer weights and offset; ``ridge`` pulls weights toward ``scale``."""
    n, k = x.shape
    lam = np.sqrt(ridge * max(float(np.mean(np.sum(x * x, axis=0))), 1e-12))
    a = np.vstack([np.hstack([x, np.ones((n, 1))]), np.hstack([lam * np.eye(k), np.zeros((k, 1))])])
    b = np.concatenate([y, np.full(k, lam * scale)])
    solution, _ = nnls(a, b)
    return [float(w) for w in solution[:k]], float(solution[k])


def device_info() -> dict[str, Any]:
    """Where a table was profiled (it only predicts well on a similar machine)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
            "onnxruntime": ort.__version__, "python": platform.python_version()}


class LookupTableCostModel(LatencyCostModel):
    """Latency from a profiled :class:`LatencyTable` (fast: ~0.1 ms a prediction)."""

    name = "lut"

    def __init__(self, analysis: ModelAnalysis, table: LatencyTable | str | Path) -> None:
        super().__init__(analysis.layers)
        source = f"latency table {table}" if not isinstance(table, LatencyTable) else "latency table"
        self.table = table if isinstance(table, LatencyTable) else LatencyTable.load(table)
        self.table.check_matches(analysis, source)
        self.path = None if isinstance(table, LatencyTable) else str(table)

    def latency(self, arch: Architecture) -> float:
        """Predicted latency (ms) of ``arch``."""
        return self.table.predict(self.layers, arch)

    def describe(self) -> dict:
        return {**super().describe(), "table": self.path, "device": self.table.meta.get("device"),
                "settings": self.table.meta.get("settings")}
