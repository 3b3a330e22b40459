"""Deploying a dynamic model: one ONNX file per variant, ``variants.json``, and a loader that picks
the variant for a latency target; the PyTorch weights are stored once (``dynamic.pt``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoprune.analysis import analyse_model
from autoprune.analysis.layers import example_input
from autoprune.atomic import atomic_path, write_json_atomic
from autoprune.budget import file_label
from autoprune.checkpoint import load_state_into
from autoprune.dynamic.model import DynamicModel
from autoprune.errors import ConfigError
from autoprune.latency import LatencySettings, measure_onnx_latencies
from autoprune.limits import MAX_CLASSES, check_input_size
from autoprune.models import create_model
from autoprune.onnx_export import export_onnx, ort_session, timing_onnx
from autoprune.references import require_consent

VARIANTS_FORMAT, DYNAMIC_FORMAT, VERSION = "autoprune-variants", "autoprune-dynamic", 1


@dataclass(frozen=True)
class Variant:
    """One width of a dynamic model as deployed: its ONNX file and what it was measured at."""

    label: str
    file: str                 # ONNX file, relative to variants.json
    latency_ms: float         # measured with ONNX Runtime (settings in variants.json)
    kept: dict[str, int]
    params: int
    accuracy: float | None = None
    budget_ms: float | None = None


@dataclass
class VariantSet:
    """``variants.json``: the variants of one model, and which to run for a latency target."""

    folder: Path
    variants: list[Variant]
    input_shape: tuple[int, ...]
    latency_settings: dict[str, Any]
    dense_latency_ms: float | None = None  # the unpruned model, timed in the same passes as the variants

    def pick(self, latency_ms: float) -> Variant:
        """The largest (slowest) variant measured within ``latency_ms``."""
        fitting = [v for v in self.variants if v.latency_ms <= latency_ms]
        if not fitting:
            fastest = min(v.latency_ms for v in self.variants)
            raise ConfigError(f"no variant runs within {latency_ms:g} ms (the fastest takes {fastest:.4g} ms)")
        return max(fitting, key=lambda v: v.latency_ms)

    def session(self, latency_ms: float, threads: int = 1):
        """An ONNX Runtime session of :meth:`pick`'s variant."""
        return ort_session((self.folder / self.pick(latency_ms).file).read_bytes(), threads,
                           self.latency_settings.get("provider") or "CPUExecutionProvider")

    def save(self) -> Path:
        data = {"format": VARIANTS_FORMAT, "version": VERSION, "input_shape": list(self.input_shape),
                "latency_settings": self.latency_settings, "variants": [asdict(v) for v in self.variants]}
        if self.dense_latency_ms is not None:
            data["dense_latency_ms"] = self.dense_latency_ms
        return write_json_atomic(self.folder / "variants.json", data)

    @classmethod
    def load(cls, path: str | Path) -> VariantSet:
        """Read and check ``variants.json`` (or the folder holding it); one-line errors."""
        path = Path(path)
        path = path / "variants.json" if path.is_dir() else path
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {path} ({type(exc).__name__}); pass a variants.json written by "
                              f"autoprune") from exc
        if not isinstance(data, dict) or data.get("format") != VARIANTS_FORMAT:
            raise ConfigError(f"{path} is not an autoprune variants file")
        if data.get("version", 0) > VERSION:
            raise ConfigError(f"{path} was written by a newer autoprune (version {data['version']}); upgrade")
        try:
            variants = [Variant(**v) for v in data["variants"]]
        except (TypeError, KeyError) as exc:
            raise ConfigError(f"{path}: malformed variant entry ({exc})") from exc
        if not variants:
            raise ConfigError(f"{path} lists no variants")
        folder = path.parent.resolve()
        for v in variants:
            if not isinstance(v.file, str) or (folder / v.file).resolve().parent != folder:
                raise ConfigError(f"{path}: variant {v.label!r} names {v.file!r}, which is not a file in {path.parent}; "
                                  f"variant files must sit next to variants.json")
            if not (path.parent / v.file).is_file():
                raise ConfigError(f"{path}: variant {v.label!r} names {v.file}, which is missing")
            if isinstance(v.latency_ms, bool) or not isinstance(v.latency_ms, (int, float)) or not v.latency_ms > 0:
                raise ConfigError(f"{path}: variant {v.label!r} has latency {v.latency_ms!r}; must be positive")
        dense = data.get("dense_latency_ms")
        if dense is not None and (isinstance(dense, bool) or not isinstance(dense, (int, float)) or not dense > 0):
            raise ConfigError(f"{path}: dense_latency_ms is {dense!r}; must be positive")
        return cls(path.parent, variants, tuple(data["input_shape"]), dict(data.get("latency_settings") or {}),
                   None if dense is None else float(dense))


def export_variants(model: DynamicModel, out: str | Path, input_shape: tuple[int, ...],
                    settings: LatencySettings = LatencySettings(), accuracy: Mapping[str, float] | None = None,
                    budgets_ms: Mapping[str, float] | None = None, dense: nn.Module | None = None) -> VariantSet:
    """Export every variant as its own (physically pruned) ONNX file, measure them all round-robin
    (with ``dense``, the unpruned model, when given: one clock for the shares of it), and write
    ``variants.json``; the measured latencies become ``model.latency_ms``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files, params = {}, {}
    for label in model.variants:
        pruned = model.pruned(label)
        files[label] = f"variant-{file_label(label)}.onnx"
        export_onnx(pruned, example_input(pruned, tuple(input_shape), random=True), out / files[label])
        params[label] = sum(p.numel() for p in pruned.parameters())
    onnx = [(out / files[label]).read_bytes() for label in model.variants]
    if dense is not None:
        onnx.append(timing_onnx(dense.eval(), example_input(dense, tuple(input_shape), random=True)))
    times = measure_onnx_latencies(onnx, input_shape, settings)
    variants = []
    for (label, kept), ms in zip(model.variants.items(), times):
        model.latency_ms[label] = round(ms, 4)
        variants.append(Variant(label, files[label], round(ms, 4), dict(kept), params[label],
                                None if accuracy is None else accuracy.get(label),
                                None if budgets_ms is None else budgets_ms.get(label)))
    # widest first, as they nest (not by the measured times, which a busy machine can swap)
    found = VariantSet(out, sorted(variants, key=lambda v: (-v.params, -v.latency_ms)), tuple(input_shape),
                       {"batch_size": settings.batch_size, "threads": settings.threads, "provider": settings.provider},
                       round(times[-1], 4) if dense is not None else None)
    found.save()
    return found


def save_dynamic(path: str | Path, model: DynamicModel, model_name: str, input_shape: tuple[int, ...],
                 num_classes: int | None = None, model_args: Mapping[str, Any] | None = None) -> Path:
    """The dynamic model's weights, once, with its variants, per-variant BN statistics and latencies."""
    active = model.active
    model.set_variant(None)  # the dense statistics in the buffers
    payload = {"format": DYNAMIC_FORMAT, "version": VERSION, "model": model_name, "model_args": dict(model_args or {}),
               "input_shape": list(input_shape), "num_classes": num_classes,
               "state_dict": {k: v.detach().clone() for k, v in model.net.state_dict().items()},
               "variants": model.variants, "latency_ms": model.latency_ms, "bn_stats": model.bn_stats}
    model.set_variant(active)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_dynamic(path: str | Path) -> DynamicModel:
    """A dynamic model saved by :func:`save_dynamic` (no code unpickled)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"cannot read {path} ({type(exc).__name__}); pass a dynamic.pt written by autoprune") from exc
    if not isinstance(payload, dict) or payload.get("format") != DYNAMIC_FORMAT:
        raise ConfigError(f"{path} is not an autoprune dynamic model")
    _check_dynamic_header(payload, str(path))
    require_consent(payload.get("model"), f"dynamic model {path}")
    shape = tuple(payload["input_shape"])
    dense = create_model(payload["model"], shape[0], payload.get("num_classes"), payload.get("model_args") or None)
    load_state_into(dense, payload["state_dict"], str(path))
    analysis = analyse_model(dense.eval(), example_input(dense, shape))
    in_order = {g.name: torch.arange(g.channels - 1, -1, -1) for g in analysis.groups}  # saved already sorted
    model = DynamicModel(analysis, in_order, payload["variants"], payload["latency_ms"])
    known = set(model._bn_buffers())
    for label, stats in payload["bn_stats"].items():
        if label not in model.variants or not isinstance(stats, dict) or set(stats) - known:
            raise ConfigError(f"{path}: BN statistics of {label!r} do not fit the model; the file is damaged")
    model.bn_stats = {label: dict(stats) for label, stats in payload["bn_stats"].items()}
    return model.eval()


def _check_dynamic_header(payload: dict[str, Any], path: str) -> None:
    """Types and sizes of a dynamic model's fields, checked before anything is built from them."""
    if payload.get("version", 0) > VERSION:
        raise ConfigError(f"{path} was written by a newer autoprune (version {payload['version']}); upgrade")
    shape = payload.get("input_shape")
    if not (isinstance(shape, list) and 1 <= len(shape) <= 4
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise ConfigError(f"{path}: input_shape {shape!r} must be 1-4 positive integers; the file is damaged")
    check_input_size(shape, f"{path}: input_shape")
    classes = payload.get("num_classes")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= MAX_CLASSES):
        raise ConfigError(f"{path}: num_classes {classes!r} must be an integer in [1, {MAX_CLASSES}]")
    kinds = {"model": str, "model_args": dict, "state_dict": dict, "variants": dict, "latency_ms": dict,
             "bn_stats": dict}
    for key, kind in kinds.items():
        if not isinstance(payload.get(key), kind):
            raise ConfigError(f"{path}: '{key}' must be a {kind.__name__}; the file is damaged or not from autoprune")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in payload["latency_ms"].values()):
        raise ConfigError(f"{path}: every latency must be a positive number of milliseconds")
