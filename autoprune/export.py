"""Exporting a final model: ONNX (checked), safe weights with the pruning record, the policy, latency.

The export folder holds ``model.onnx``, ``model.pt`` (reloadable with ``weights_only=True``:
:func:`autoprune.checkpoint.load_model`), ``policy.json`` when the model came from a policy, and
``export.json`` with the measured ONNX Runtime latency of ``model.onnx`` next to the budget.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from autoprune.analysis.layers import example_input
from autoprune.atomic import write_json_atomic
from autoprune.budget import MEASURED_TOLERANCE, Budget
from autoprune.checkpoint import save_checkpoint
from autoprune.inputs import Signature, in_channels_of
from autoprune.latency import LatencySettings, measure_onnx_latency
from autoprune.onnx_export import export_onnx
from autoprune.policy import PruningPolicy
from autoprune.pruning.record import PruningRecord
from autoprune.records import ExportRecord

# Independent measurement windows, spread over ~2 s; the smallest is reported. On this shared VM
# interference comes in bursts of a few hundred ms that can cover a whole ~0.1 s window: a model
# measuring 0.28 ms once read 0.356 ms in a single window, and 0.377 / 0.378 / 0.280 in three.
WINDOWS = 5
PAUSE_S = 0.3


def export_folder(model: nn.Module, model_name: str, out: str | Path, input_shape: Signature,
                 num_classes: int | None = None, record: PruningRecord | None = None,
                 policy: PruningPolicy | None = None, meta: dict[str, Any] | None = None,
                 settings: LatencySettings = LatencySettings(), exporter: str = "torchscript",
                 model_args: dict[str, Any] | None = None) -> ExportRecord:
    """Write the export folder and return what ``export.json`` holds (``model_args``: the factory's)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    example = example_input(model, input_shape, random=True)
    onnx_path = export_onnx(model, example, out / "model.onnx", exporter)
    save_checkpoint(out / "model.pt", model, model_name, in_channels_of(input_shape) or 1, num_classes, meta,
                    pruning=record, input_shape=input_shape, model_args=model_args)
    if policy is not None:
        policy.save(out / "policy.json")
    samples = []
    for i in range(WINDOWS):
        time.sleep(PAUSE_S if i else 0.0)
        samples.append(measure_onnx_latency(onnx_path.read_bytes(), input_shape, settings))
    latency = min(samples)
    summary: ExportRecord = {
        "model": model_name, "pruned": record is not None, "params": sum(p.numel() for p in model.parameters()),
        "onnx_bytes": onnx_path.stat().st_size, "latency_ms": round(latency, 4),
        "latency_windows_ms": [round(x, 4) for x in samples],
        "latency_settings": settings.__dict__, **(meta or {}),
    }
    budget = Budget.from_dict(policy.budget, "the policy's budget") if policy and policy.budget else None
    if budget is not None and budget.metric == "latency_ms":
        summary["budget_ms"] = budget.value
        summary["latency_over_budget"] = round(latency / budget.value, 4)
        summary["within_budget_tolerance"] = budget.fits(latency, MEASURED_TOLERANCE)
        dense_ms = summary.get("dense_latency_ms")
        if dense_ms:  # the same check on this machine's clock: robust to a machine busy right now
            summary["share_of_dense"] = round(latency / dense_ms, 4)
            summary["budget_share_of_dense"] = round(budget.value / budget.dense, 4)
    write_json_atomic(out / "export.json", summary)
    return summary


def export_model(*args: Any, **kwargs: Any) -> ExportRecord:
    """Deprecated name of :func:`export_folder` (``autoprune.export_model`` is the Python API's call)."""
    warnings.warn("autoprune.export.export_model is now export_folder", DeprecationWarning, stacklevel=2)
    return export_folder(*args, **kwargs)
