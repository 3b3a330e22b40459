"""ONNX export of (pruned) models, checked with ``onnx.checker`` and against torch outputs."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from autoprune.analysis.layers import no_fastpath
from autoprune.atomic import write_bytes_atomic
from autoprune.errors import AutopruneError
from autoprune.inputs import ModelInput, call, is_several, named_tensors
from autoprune.outputs import flat_outputs, output_tensors

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


def to_onnx_bytes(model: nn.Module, example_input: ModelInput, exporter: str = "torchscript",
                  opset: int = 17) -> bytes:
    """Serialise ``model`` (eval mode) to ONNX with a dynamic batch axis; several inputs keep their
    names (a dict's keys; ``input_0``... for positional ones).

    The TorchScript exporter is the default: ~10x faster than the dynamo one for small CNNs, which
    matters when hundreds of candidates are measured. Attention runs on its plain path (the fused
    inference kernels have no ONNX form) and a Hugging Face model without its key/value cache (an
    output for generation, not a tensor). A failing export is one line naming the cause.
    """
    if exporter not in EXPORTERS:
        raise AutopruneError(f"unknown ONNX exporter {exporter!r}; use one of {', '.join(EXPORTERS)}")
    was_training = model.training
    model.eval()
    buf = io.BytesIO()
    config = getattr(model, "config", None)
    cache = getattr(config, "use_cache", None)
    try:
        if cache:
            config.use_cache = False
        with warnings.catch_warnings(), torch.no_grad(), no_fastpath(), _quiet_exporter():
            warnings.simplefilter("ignore")
            names = output_names(call(model, example_input))
            inputs = [n for n, _ in named_tensors(example_input)]
            args = () if isinstance(example_input, dict) else tuple(example_input) if is_several(example_input) \
                else (example_input,)
            torch.onnx.export(model, args, buf, kwargs=example_input if isinstance(example_input, dict) else None,
                              input_names=inputs, output_names=names,
                              dynamic_axes={**{n: {0: "batch"} for n in inputs}, **{n: {0: "batch"} for n in names}},
                              opset_version=opset if exporter == "torchscript" else max(opset, 18),
                              dynamo=exporter == "dynamo", verbose=False)
    except AutopruneError:
        raise
    except Exception as exc:  # noqa: BLE001 - an op or output the exporter cannot write: one line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        other = "dynamo" if exporter == "torchscript" else "torchscript"
        raise AutopruneError(f"the ONNX export of {type(model).__name__} failed ({type(exc).__name__}: {first}); "
                             f"try --exporter {other}") from None
    finally:
        if cache:
            config.use_cache = cache
        model.train(was_training)
    return buf.getvalue()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporters' own chatter held back (a failing TorchScript export prints its whole graph;
    the dynamo one logs every op library it does not find): a failure is reported in one line."""
    logger, log = logging.getLogger("torch.onnx"), getattr(torch._C, "_jit_onnx_log", None)
    level = logger.level
    logger.setLevel(logging.ERROR)
    if log is not None:  # torch switches its exporter's log on whatever it is asked
        torch._C._jit_onnx_log = lambda *_: None
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
        if log is not None:
            torch._C._jit_onnx_log = log


def timing_onnx(model: nn.Module, example_input: ModelInput) -> bytes:
    """``model`` as ONNX to be timed: the TorchScript exporter's, or the dynamo one's where the
    TorchScript exporter has no form for an op (GPT-2's ``aten::diff``); the first error when both fail."""
    try:
        return to_onnx_bytes(model, example_input)
    except AutopruneError as first:
        try:
            return to_onnx_bytes(model, example_input, "dynamo")
        except AutopruneError:
            raise first from None


def export_onnx(model: nn.Module, example_input: ModelInput, path: str | Path,
                exporter: str = "torchscript", atol: float = 1e-4) -> Path:
    """Write ``model`` as ONNX to ``path``, validated by ``onnx.checker`` and ONNX Runtime vs torch."""
    data = to_onnx_bytes(model, example_input, exporter)
    onnx.checker.check_model(onnx.load_from_string(data))
    diff = max_output_difference(data, model, example_input)
    if diff > atol:
        raise AutopruneError(f"ONNX outputs differ from torch by {diff:.2e} (> {atol}); "
                             f"try --exporter dynamo")
    return write_bytes_atomic(path, data)


def output_names(out: object) -> list[str]:
    """The ONNX output names: ``output`` for one tensor, else each tensor's path (``logits``,
    ``hidden_1``; ``output_0`` for a tuple's first), in the order the exporter flattens them."""
    if isinstance(out, torch.Tensor):
        return ["output"]
    names = [path.replace(".", "_") for path, _ in output_tensors(out)]
    return [f"output_{n or i}" if not n or n[0].isdigit() else n for i, n in enumerate(names)]


def onnx_feed(session: ort.InferenceSession, example: ModelInput) -> dict[str, np.ndarray]:
    """The session's inputs from ``example`` by name (an input the graph does not use was left out of
    it by the exporter, and is left out of the feed)."""
    wanted = {i.name for i in session.get_inputs()}
    return {n: t.detach().cpu().numpy() for n, t in named_tensors(example) if n in wanted}


def max_output_difference(onnx_bytes: bytes, model: nn.Module, example_input: ModelInput) -> float:
    """Largest absolute difference between ONNX Runtime's and torch's outputs on ``example_input``,
    over every output tensor (infinite when their number or shapes differ)."""
    session = ort_session(onnx_bytes, threads=1)
    got = session.run(None, onnx_feed(session, example_input))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        want = [t.numpy() for t in flat_outputs(call(model, example_input))]
    model.train(was_training)
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want)):
        return float("inf")
    return max(float(np.max(np.abs(g - w))) if g.size else 0.0 for g, w in zip(got, want))
