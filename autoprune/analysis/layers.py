"""Per-layer shape records of the compute layers (Conv/Linear), traced with forward hooks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import nn

from autoprune.analysis.transposed_linear import in_features, is_transposed_linear, out_features
from autoprune.errors import AnalysisError
from autoprune.inputs import InputSpec, ModelInput, Signature, call, describe, is_several
from autoprune.outputs import output_tensors


@dataclass(frozen=True)
class LayerSpec:
    """One Conv/Linear layer as the cost models see it; ``in_group``/``out_group`` link it to groups."""

    name: str
    kind: str  # "conv", "depthwise", "transpose" (a transposed convolution), "linear" or "attention"
    in_channels: int
    out_channels: int
    groups: int
    kernel: tuple[int, int]
    stride: int
    in_hw: tuple[int, int]   # a linear layer's (tokens, 1): the rows it multiplies per sample
    out_hw: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    in_group: str | None = None
    out_group: str | None = None
    # (group, its channels, input features it feeds here): several for concatenated inputs; a
    # width above the group's channels for a Linear after a flatten (features per channel)
    in_slices: tuple[tuple[str, int, int], ...] = ()
    # (group, its channels): an output split over several groups (a concatenation added back to
    # the layer's output); empty when the output is one group's
    out_slices: tuple[tuple[str, int], ...] = ()
    calls: int = 1  # times one forward runs the layer at these shapes (a shared module called in a loop)
    head_dim: int = 0  # "attention": the matmuls of multi-head attention over in_hw[0] tokens, heads of this size
    heads: int = 0  # "attention" of nn.MultiheadAttention: this many heads, whose size shrinks with the channels
    module: str = ""  # the module whose forward does this work, when not ``name`` (nn.MultiheadAttention's parts)

    def macs(self, c_in: int | None = None, c_out: int | None = None) -> int:
        """Multiply-accumulates of every call with ``c_in``/``c_out`` channels (default: the dense widths)."""
        c_in = self.in_channels if c_in is None else c_in
        c_out = self.out_channels if c_out is None else c_out
        if self.kind == "attention":  # queries x keys, then weights x values: tokens^2 x channels each
            return 2 * self.in_hw[0] * self.out_hw[0] * c_out * self.calls
        groups = c_in if self.kind == "depthwise" else self.groups
        # a transposed convolution multiplies every input position by the whole kernel
        hw = self.in_hw if self.kind == "transpose" else self.out_hw
        per_call = c_out * (c_in // max(groups, 1)) * self.kernel[0] * self.kernel[1] * hw[0] * hw[1]
        return per_call * self.calls

    def params(self, c_in: int | None = None, c_out: int | None = None) -> int:
        """Weight count (bias excluded) with ``c_in``/``c_out`` channels."""
        if self.kind == "attention":
            return 0
        c_in = self.in_channels if c_in is None else c_in
        c_out = self.out_channels if c_out is None else c_out
        groups = c_in if self.kind == "depthwise" else self.groups
        return c_out * (c_in // max(groups, 1)) * self.kernel[0] * self.kernel[1]


TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d)
CONVS = (nn.Conv1d, nn.Conv2d, *TRANSPOSED)  # convolutions whose output channels are pruned (1-d as Hx1)
COMPUTE = (*CONVS, nn.Linear)  # the layers groups are rooted at and cost models price
MHA = nn.MultiheadAttention  # its projections and matmuls are priced as parts (see :func:`mha_specs`)
ROOTS = (*COMPUTE, nn.Embedding)  # groups are rooted at these: an embedding's width is a group (a lookup: no MACs)


def out_width(m: nn.Module) -> int | None:
    """The output channels of a layer groups are rooted at (a convolution, a Linear, a ``Conv1D``,
    an embedding's width); None for any other module."""
    if isinstance(m, CONVS):
        return m.out_channels
    if isinstance(m, nn.Linear):
        return m.out_features
    if is_transposed_linear(m):
        return out_features(m)
    if isinstance(m, nn.Embedding):
        return m.embedding_dim
    return None


def is_compute(m: nn.Module) -> bool:
    """A layer groups are rooted at and cost models price: a convolution, a Linear, or a Linear
    stored transposed (Hugging Face's ``Conv1D``)."""
    return isinstance(m, COMPUTE) or is_transposed_linear(m)


def _hw(t: torch.Tensor) -> tuple[int, int]:
    if t.dim() == 3:  # a Conv1d's (batch, channels, length): length x 1
        return (int(t.shape[-1]), 1)
    return (int(t.shape[-2]), int(t.shape[-1])) if t.dim() == 4 else (1, 1)


def _spec(name: str, m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> LayerSpec:
    if isinstance(m, CONVS):
        depthwise = m.groups == m.in_channels == m.out_channels and m.groups > 1 and not isinstance(m, TRANSPOSED)
        pad = tuple(int(p) for p in m.padding) if not isinstance(m.padding, str) else (0,) * len(m.kernel_size)
        kernel = tuple(m.kernel_size) if len(m.kernel_size) == 2 else (int(m.kernel_size[0]), 1)
        kind = "transpose" if isinstance(m, TRANSPOSED) else "depthwise" if depthwise else "conv"
        return LayerSpec(name, kind, m.in_channels, m.out_channels,
                         m.groups, kernel, int(m.stride[0]), _hw(x), _hw(y), pad if len(pad) == 2 else (pad[0], 0))
    tokens = int(x.shape[1:-1].numel()) if x.dim() > 2 else 1  # a Linear on (batch, tokens, features)
    if is_transposed_linear(m):
        return LayerSpec(name, "linear", in_features(m), out_features(m), 1, (1, 1), 1, (tokens, 1), (tokens, 1))
    return LayerSpec(name, "linear", m.in_features, m.out_features, 1, (1, 1), 1, (tokens, 1), (tokens, 1))


def takes_token_ids(model: nn.Module) -> bool:
    """True when the model's input goes straight into an ``nn.Embedding`` (token IDs, not floats):
    found from the module the forward calls first that holds weights."""
    first: list[nn.Module] = []

    def hook(module: nn.Module, *_: object) -> None:
        if not first:
            first.append(module)
        raise _Seen

    hooks = [m.register_forward_pre_hook(hook) for m in model.modules()
             if next(m.parameters(recurse=False), None) is not None]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, dtype=torch.long))
    except Exception:  # noqa: BLE001 - _Seen, or a forward that needs another input: answered below
        pass
    finally:
        for h in hooks:
            h.remove()
    return bool(first) and isinstance(first[0], nn.Embedding)


class _Seen(Exception):
    pass


def example_input(model: nn.Module, shape: Signature, batch: int = 1, random: bool = False) -> ModelInput:
    """An input of ``shape`` for ``model``: token IDs (``long``, within every embedding's vocabulary)
    for a model that embeds its input, else floats (``random``: normal, else zeros); several inputs
    as their :class:`~autoprune.inputs.InputSpec` describes them."""
    if isinstance(shape, InputSpec):
        return shape.example(batch, random)
    if takes_token_ids(model):
        vocab = min(m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding))
        return torch.randint(0, vocab, (batch, *shape)) if random else torch.zeros(batch, *shape, dtype=torch.long)
    return torch.randn(batch, *shape) if random else torch.zeros(batch, *shape)


def run_example(model: nn.Module, example: ModelInput) -> object:
    """``model(example)`` (``model(**example)`` for named inputs), or an :class:`AnalysisError` saying in
    one line why the model cannot be analysed from this input (a missing input, a wrong shape, a
    failing forward)."""
    try:
        return call(model, example)
    except TypeError as exc:
        if "positional argument" in str(exc) and "forward" in str(exc) and not is_several(example):
            raise AnalysisError(f"{type(model).__name__}.forward takes more than one input ({exc}); pass one "
                                f"example of every input with --example FILE.py:function (a tuple, or a dict of "
                                f"keyword inputs), or data that yields them") from None
        raise AnalysisError(_failed(model, example, exc)) from None
    except Exception as exc:  # noqa: BLE001 - whatever a user model raises
        raise AnalysisError(_failed(model, example, exc)) from None


def _failed(model: nn.Module, example: ModelInput, exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    way_out = ("pass one example of its inputs with --example FILE.py:function" if is_several(example)
               else "pass the shape of one input with --input-shape (or every input with --example)")
    return f"running {type(model).__name__} on an input of {describe(example)} failed ({type(exc).__name__}: {first}); {way_out}"


@torch.no_grad()
def executed_modules(model: nn.Module, example: ModelInput) -> list[str]:
    """Names of the Conv/Linear modules ``model(example)`` runs, in order."""
    names: list[str] = []
    hooks = [m.register_forward_hook(lambda *_, n=n: names.append(n))
             for n, m in model.named_modules() if is_compute(m)]
    was_training = model.training
    model.eval()
    try:
        with no_fastpath():
            run_example(model, example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return names


@dataclass(frozen=True)
class Trace:
    """What one forward pass shows: the compute layers, and which of them produce model outputs."""

    layers: list[LayerSpec]
    output_layers: list[str]  # layers whose output tensor is one of the model's outputs
    all_direct: bool  # every output tensor is a layer's own output (no functional op after it)


@contextmanager
def no_fastpath() -> Iterator[None]:
    """``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` on their plain path: in inference
    their fused kernels skip the submodules (hooks, masks and counters would see nothing)."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def _query_key(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    query = args[0] if args else kwargs["query"]
    key = args[1] if len(args) > 1 else kwargs.get("key", query)
    return query, key


def mha_specs(name: str, m: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor) -> list[LayerSpec]:
    """``nn.MultiheadAttention``'s work as layers: the query, key and value projections and the output
    projection (``E x E`` over the tokens), and the matmuls over its heads (whose size shrinks as
    the embedding is pruned), all under the module's name for the coverage count."""
    axis = 1 if m.batch_first or query.dim() == 2 else 0
    q_tokens = int(query.shape[axis]) if query.dim() == 3 else int(query.shape[0])
    k_tokens = int(key.shape[axis]) if key.dim() == 3 else int(key.shape[0])
    e = m.embed_dim

    def linear(part: str, tokens: int, c_in: int) -> LayerSpec:
        return LayerSpec(f"{name}.{part}", "linear", c_in, e, 1, (1, 1), 1, (tokens, 1), (tokens, 1), module=name)

    return [linear("q_proj", q_tokens, e), linear("k_proj", k_tokens, m.kdim), linear("v_proj", k_tokens, m.vdim),
            LayerSpec(name, "attention", e, e, 1, (1, 1), 1, (q_tokens, 1), (k_tokens, 1),
                      head_dim=m.head_dim, heads=m.num_heads, module=name),
            linear("out_proj", q_tokens, e)]


@torch.no_grad()
def trace_layers(model: nn.Module, example: ModelInput) -> Trace:
    """Specs of every Conv/Linear in execution order, and the layers producing the model's outputs.

    An output layer is a compute layer whose output tensor is one of the model's outputs (a
    tensor, or an entry of a tuple, dict or dataclass); when the only output passes through a
    functional op, the last compute layer executed stands for it.
    """
    records: list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]] = []
    attention: list[tuple[str, nn.MultiheadAttention, torch.Tensor, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: records.append((n, mod, inp[0], out)))
             for n, m in model.named_modules() if is_compute(m)]
    hooks += [m.register_forward_hook(lambda mod, args, kwargs, out, n=n: attention.append(
        (n, mod, *_query_key(args, kwargs))), with_kwargs=True) for n, m in model.named_modules() if isinstance(m, MHA)]
    was_training = model.training
    model.eval()
    try:
        with no_fastpath():  # the fused kernels skip the submodules' hooks
            output = run_example(model, example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    specs: dict[str, LayerSpec] = {}
    parts = [(name, _spec(name, mod, x, y)) for name, mod, x, y in records]
    parts += [(spec.name, spec) for name, mod, q, k in attention for spec in mha_specs(name, mod, q, k)]
    for name, spec in parts:
        if name not in specs:
            specs[name] = spec
        elif replace(spec, calls=specs[name].calls) == specs[name]:  # called again at the same shapes: priced per call
            specs[name] = replace(specs[name], calls=specs[name].calls + 1)
        # a later call at other shapes stays unpriced: the coverage check names it
    tensors = [t for _, t in output_tensors(output)]
    direct = [n for n, _, _, y in records if any(y is t for t in tensors)]
    outputs = list(dict.fromkeys(direct))
    all_direct = all(any(y is t for _, _, _, y in records) for t in tensors)
    if not outputs and records:
        outputs = [records[-1][0]]
    return Trace(list(specs.values()), outputs, all_direct and len(tensors) > 0)
