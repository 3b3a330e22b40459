"""Single-layer ONNX graphs (Conv, ConvTranspose or Gemm, then ReLU; attention's MatMul/Softmax) built
with ``onnx.helper``, for latency profiling.

Building the graph directly takes about a millisecond, against ~30 ms for a torch export.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from autoprune.analysis.layers import LayerSpec

OPSET = 17


def layer_graph(spec: LayerSpec, c_in: int, c_out: int, batch: int = 1, relu: bool = True) -> bytes:
    """An ONNX model computing ``spec`` with ``c_in``/``c_out`` channels (random weights)."""
    rng = np.random.default_rng(0)
    if spec.kind == "attention":
        return _attention_graph(spec, c_out, batch)
    if spec.kind == "linear":
        w = rng.standard_normal((c_out, c_in), dtype=np.float32)
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y0"], transB=1)]
        rows = batch * spec.in_hw[0] * spec.in_hw[1]  # a Linear on tokens: one row per token
        x_shape, y_shape = [rows, c_in], [rows, c_out]
    elif spec.kind == "transpose":  # weights (c_in, c_out / groups, k...); output padding from the traced shapes
        w = rng.standard_normal((c_in, c_out // spec.groups, *spec.kernel), dtype=np.float32)
        extra = [o - ((i - 1) * spec.stride - 2 * p + k)
                 for i, o, p, k in zip(spec.in_hw, spec.out_hw, spec.padding, spec.kernel)]
        pads = [spec.padding[0], spec.padding[1], spec.padding[0], spec.padding[1]]
        nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y0"], group=spec.groups,
                                  kernel_shape=list(spec.kernel), strides=[spec.stride, spec.stride], pads=pads,
                                  output_padding=[max(0, e) for e in extra])]
        x_shape, y_shape = [batch, c_in, *spec.in_hw], [batch, c_out, *spec.out_hw]
    else:
        groups = c_in if spec.kind == "depthwise" else spec.groups
        w = rng.standard_normal((c_out, c_in // groups, *spec.kernel), dtype=np.float32)
        pads = [spec.padding[0], spec.padding[1], spec.padding[0], spec.padding[1]]
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y0"], group=groups, kernel_shape=list(spec.kernel),
                                  strides=[spec.stride, spec.stride], pads=pads)]
        x_shape, y_shape = [batch, c_in, *spec.in_hw], [batch, c_out, *spec.out_hw]
    b = rng.standard_normal(c_out, dtype=np.float32)
    nodes.append(helper.make_node("Relu" if relu else "Identity", ["y0"], ["y"]))
    graph = helper.make_graph(
        nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model.SerializeToString()


def _attention_graph(spec: LayerSpec, channels: int, batch: int) -> bytes:
    """Multi-head attention's matmuls on ``channels / head_dim`` heads (``spec.heads`` heads of
    ``channels / heads`` for nn.MultiheadAttention): the tokens' features split into heads,
    softmax(q k^T / sqrt(d)) v with q = k = v (what the projections would feed it)."""
    tokens = spec.in_hw[0]
    heads, head_dim = (spec.heads, channels // spec.heads) if spec.heads else (channels // spec.head_dim, spec.head_dim)
    shape = numpy_helper.from_array(np.array([batch, tokens, heads, head_dim], dtype=np.int64), "shape")
    scale = numpy_helper.from_array(np.array(1.0 / np.sqrt(head_dim), dtype=np.float32), "scale")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["h"]),
             helper.make_node("Transpose", ["h"], ["q"], perm=[0, 2, 1, 3]),
             helper.make_node("Transpose", ["h"], ["kt"], perm=[0, 2, 3, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s0"]), helper.make_node("Mul", ["s0", "scale"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "q"], ["y"])]
    graph = helper.make_graph(
        nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, tokens, channels])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, heads, tokens, head_dim])],
        initializer=[shape, scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model.SerializeToString()


def layer_input(spec: LayerSpec, c_in: int, batch: int = 1) -> np.ndarray:
    """A random input for :func:`layer_graph`."""
    if spec.kind == "attention":
        return np.random.default_rng(1).standard_normal((batch, spec.in_hw[0], c_in), dtype=np.float32)
    shape = (batch * spec.in_hw[0] * spec.in_hw[1], c_in) if spec.kind == "linear" else (batch, c_in, *spec.in_hw)
    return np.random.default_rng(1).standard_normal(shape, dtype=np.float32)


def check_graph(data: bytes) -> None:
    """Validate a graph with ``onnx.checker`` (used by tests)."""
    onnx.checker.check_model(onnx.load_from_string(data))
