"""Latency lookup tables (NetAdapt, Yang et al. 2018; HALP, Shen et al. 2022).

Every Conv/Linear layer is profiled alone on the target device over a grid of input/output
channel counts; a model's latency is a calibrated weighted sum of its layers' latencies above
their smallest configuration, plus tolls for channel counts off a SIMD block:
``latency = offset + sum_l w_l * layer_l + sum_(g,b) toll_gb * [width_g % b != 0]``
(fitted on whole-model measurements, :mod:`autoprune.costs.calibration`). All grid points and
calibration models are timed round-robin, so bursts of interference on a shared machine do not
bias single entries. Tables are CSV files (metadata on the first ``#`` line), so a table
profiled on one machine drives a search on another. Profiling lives in
:mod:`autoprune.costs.profiling`.
"""

from __future__ import annotations

import io
import json
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from autoprune.analysis.architecture import Architecture, layer_channels
from autoprune.analysis.groups import ModelAnalysis
from autoprune.analysis.layers import LayerSpec
from autoprune.atomic import write_text_atomic
from autoprune.costs.alignment import alignment_toll
from autoprune.costs.base import LatencyCostModel
from autoprune.errors import ConfigError
from autoprune.limits import checked_file
from autoprune.records import CostModelRecord

FORMAT = "autoprune-latency-table"
TABLE_VERSION = 2  # 2: calibration may hold alignment tolls, which version-1 readers would ignore
MAX_TABLE_BYTES = 20 * 2**20  # a ResNet-20 table is ~20 kB; a much larger file is not a table
MAX_CHANNELS = 1 << 20  # wider than any layer; larger counts overflow the interpolation


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
        # Within one layer, a wider grid point reading faster is timing noise: even it out. What
        # a width off a SIMD block costs the model around the layer is the calibration's tolls.
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


class CalibrationRecord(TypedDict, total=False):
    """:class:`Calibration` as a table's metadata (JSON) records it."""

    scale: float
    offset: float
    samples: int
    layer_weights: dict[str, float]
    alignment_tolls: dict[str, dict[str, float]]
    dense_ms: float


@dataclass(frozen=True)
class Calibration:
    """How a table's layer sums become whole-model latency (see :mod:`autoprune.costs.calibration`):
    ``offset + sum_l w_l * term_l + tolls``, ``w_l`` the layer's weight or the shared ``scale``.

    ``dense_ms`` is the dense model as measured among the calibration samples: what a budget given
    as a share is a share of (the fit's own prediction of the dense model, an end point of the
    sampled range, can miss it by a few per cent). None in tables profiled before it was recorded.
    """

    scale: float = 1.0
    offset: float = 0.0
    samples: int = 0
    layer_weights: dict[str, float] | None = None
    alignment_tolls: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> block -> ms
    dense_ms: float | None = None

    @classmethod
    def from_dict(cls, data: Any, source: str = "latency table") -> Calibration:
        """From a table's metadata; a one-line error when a hand edit broke it."""
        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        tolls = data.get("alignment_tolls", {}) if isinstance(data, dict) else None
        weights = data.get("layer_weights") if isinstance(data, dict) else None
        dense = data.get("dense_ms") if isinstance(data, dict) else None
        ok = isinstance(data, dict) and all(number(data.get(k, 0.0)) for k in ("scale", "offset")) and (
            data.get("scale", 1.0) > 0) and (dense is None or number(dense) and dense > 0) and (
            weights is None or isinstance(weights, dict) and all(number(w) and w >= 0 for w in weights.values())) and (
            isinstance(tolls, dict) and all(isinstance(per, dict) and all(
                str(b).isdigit() and int(b) > 0 and number(t) and t >= 0 for b, t in per.items())
                for per in tolls.values()))
        if not ok:
            raise ConfigError(f"{source}: its calibration metadata is malformed (scale must be a positive number, "
                              f"dense_ms too when given, offset and tolls finite); profile the table again")
        return cls(float(data.get("scale", 1.0)), float(data.get("offset", 0.0)), int(data.get("samples", 0)),
                   None if weights is None else {str(k): float(v) for k, v in weights.items()},
                   {str(g): {str(b): float(t) for b, t in per.items()} for g, per in tolls.items()},
                   None if dense is None else float(dense))

    def to_dict(self) -> CalibrationRecord:
        """As a table's metadata records it."""
        out: CalibrationRecord = {"scale": self.scale, "offset": self.offset, "samples": self.samples}
        if self.layer_weights is not None:
            out["layer_weights"] = dict(self.layer_weights)
        if self.alignment_tolls:
            out["alignment_tolls"] = {g: dict(per) for g, per in self.alignment_tolls.items()}
        if self.dense_ms is not None:
            out["dense_ms"] = self.dense_ms
        return out


@dataclass
class LatencyTable:
    """Per-layer latency tables plus calibration and provenance (``meta``, JSON in the file's
    first line; its ``calibration`` entry is read as a :class:`Calibration`)."""

    tables: dict[str, LayerTable]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def calibration(self) -> Calibration:
        """The calibration ``meta`` holds (parsed once per value it holds)."""
        raw = self.meta.get("calibration", {})
        cached = getattr(self, "_calibration", None)
        if cached is None or cached[0] is not raw:
            cached = (raw, Calibration.from_dict(raw))
            self._calibration = cached
        return cached[1]

    @property
    def scale(self) -> float:
        return self.calibration.scale

    @property
    def offset(self) -> float:
        return self.calibration.offset

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
            terms.append((table.predict(c_in, c_out) - table.floor) * spec.calls)
        return terms

    def layer_sum(self, layers: list[LayerSpec], arch: Architecture) -> float:
        """Uncalibrated sum of :meth:`layer_terms`."""
        return sum(self.layer_terms(layers, arch))

    def predict(self, layers: list[LayerSpec], arch: Architecture) -> float:
        """Calibrated whole-model latency (ms)."""
        calibration = self.calibration
        weights = calibration.layer_weights
        terms = self.layer_terms(layers, arch)
        toll = alignment_toll(calibration.alignment_tolls, layers, arch)
        if weights:
            return calibration.offset + toll + sum(weights.get(s.name, calibration.scale) * t
                                                   for s, t in zip(layers, terms))
        return calibration.scale * sum(terms) + calibration.offset + toll

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
    def load(cls, path: str | Path) -> LatencyTable:
        """Read a table written by :meth:`save`; one-line errors for anything else."""
        path = checked_file(path, "latency table", MAX_TABLE_BYTES, "create it with 'autoprune profile'")
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
        except (ValueError, KeyError, OverflowError, pd.errors.ParserError) as exc:
            raise ConfigError(f"latency table {path} is malformed ({str(exc).splitlines()[0][:100]})") from exc
        if not np.isfinite(frame["latency_ms"]).all() or (frame["latency_ms"] < 0).any():
            raise ConfigError(f"latency table {path} holds negative or non-finite latencies")
        if (frame[["c_in", "c_out"]] < 1).any().any() or (frame[["c_in", "c_out"]] > MAX_CHANNELS).any().any():
            raise ConfigError(f"latency table {path} holds channel counts below 1 or above {MAX_CHANNELS}")
        duplicated = frame.duplicated(["layer", "c_in", "c_out"])
        if duplicated.any():
            row = frame[duplicated].iloc[0]
            raise ConfigError(f"latency table {path}: layer {row['layer']!r} lists ({row['c_in']}, {row['c_out']}) "
                              f"channels twice")
        tables = {}
        for name, rows in frame.groupby("layer", sort=False):
            if rows["c_in"].nunique() * rows["c_out"].nunique() != len(rows):  # checked before the grid is built
                raise ConfigError(f"latency table {path}: layer {name!r} has an incomplete grid (every input width "
                                  f"needs a row for every output width)")
            grid = rows.pivot(index="c_in", columns="c_out", values="latency_ms").sort_index().sort_index(axis=1)
            if grid.isna().any().any():
                raise ConfigError(f"latency table {path}: layer {name!r} has an incomplete grid")
            tables[name] = LayerTable(list(grid.index), list(grid.columns), grid.to_numpy())
        meta.pop("format", None)
        _check_meta(meta, path)
        return cls(tables, meta)


def _check_meta(meta: dict[str, Any], path: Path) -> None:
    """One-line errors for calibration or rounding values a hand-edited file may have broken."""
    Calibration.from_dict(meta.get("calibration", {}), str(path))
    round_to = meta.get("round_to", 1)
    if not isinstance(round_to, int) or isinstance(round_to, bool) or round_to < 1:
        raise ConfigError(f"{path}: metadata 'round_to' must be a positive integer, got {round_to!r}")


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

    def measured_dense(self) -> float | None:
        """The dense model measured when the table was profiled (ms; None in older tables)."""
        return self.table.calibration.dense_ms

    def describe(self) -> CostModelRecord:
        return {**super().describe(), "table": self.path, "device": self.table.meta.get("device"),
                "settings": self.table.meta.get("settings")}
