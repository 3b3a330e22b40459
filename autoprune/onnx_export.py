"""ONNX export of (pruned) models, checked with ``onnx.checker`` and against torch outputs."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from autoprune.atomic import write_bytes_atomic
from autoprune.errors import AutopruneError

EXPORTERS = ("torchscript", "dynamo")


def ort_session(onnx_bytes: bytes, threads: int = 1, provider: str = "CPUExecutionProvider") -> ort.InferenceSession:
    """An ONNX Runtime session on ``provider`` (CPU by default; CPU as fallback for nodes it lacks),
    full graph optimisation and a fixed thread count."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    providers = [provider] + (["CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [])
    return ort.InferenceSession(onnx_bytes, opts, providers=providers)


def to_onnx_bytes(model: nn.Module, example_input: torch.Tensor, exporter: str = "torchscript",
                  opset: int = 17) -> bytes:
    """Serialise ``model`` (eval mode) to ONNX with a dynamic batch axis.

    The TorchScript exporter is the default: ~10x faster than the dynamo one for small CNNs, which
    matters when hundreds of candidates are measured.
    """
    if exporter not in EXPORTERS:
        raise AutopruneError(f"unknown ONNX exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")
    was_training = model.training
    model.eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example_input,), buf, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              opset_version=opset if exporter == "torchscript" else max(opset, 18),
                              dynamo=exporter == "dynamo")
    finally:
        model.train(was_training)
    return buf.getvalue()


def export_onnx(model: nn.Module, example_input: torch.Tensor, path: str | Path,
                exporter: str = "torchscript", atol: float = 1e-4) -> Path:
    """Write ``model`` as ONNX to ``path``, validated by ``onnx.checker`` and ONNX Runtime vs torch."""
    data = to_onnx_bytes(model, example_input, exporter)
    onnx.checker.check_model(onnx.load_from_string(data))
    diff = max_output_difference(data, model, example_input)
    if diff > atol:
        raise AutopruneError(f"ONNX outputs differ from torch by {diff:.2e} (> {atol}); "
                             f"try --exporter dynamo")
    return write_bytes_atomic(path, data)


def max_output_difference(onnx_bytes: bytes, model: nn.Module, example_input: torch.Tensor) -> float:
    """Largest absolute difference between ONNX Runtime's and torch's outputs on ``example_input``."""
    session = ort_session(onnx_bytes, threads=1)
    got = session.run(None, {"input": example_input.numpy()})[0]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        want = model(example_input).numpy()
    model.train(was_training)
    return float(np.max(np.abs(got - want)))
