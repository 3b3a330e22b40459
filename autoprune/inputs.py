"""What a model takes: one tensor, several positional tensors, or named tensors passed as keyword
arguments (``input_ids``, ``attention_mask`` ...), and the few operations every layer needs on them.

``ModelInput`` is one batch of such inputs; :class:`InputSpec` describes several inputs without their
values (names, shapes without the batch axis, dtypes, value ranges of integer inputs), so a policy or
checkpoint can rebuild an example. One tensor keeps being described by its shape alone (a tuple), as
every file written so far records it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from autoprune.errors import ConfigError

ModelInput = torch.Tensor | tuple | list | dict


def call(model: Callable[..., Any], x: ModelInput) -> Any:
    """``model(x)``, ``model(*x)`` or ``model(**x)`` as ``x`` is one tensor, a sequence or a dict."""
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, (tuple, list)):
        return model(*x)
    return model(x)


def to_device(value: Any, device: torch.device | str) -> Any:
    """``value`` (a tensor, or tensors nested in lists, tuples and dicts) on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def named_tensors(x: ModelInput) -> list[tuple[str, torch.Tensor]]:
    """Each input tensor with its name: ``input`` for one tensor, ``input_0``... for positional ones,
    the keys of a dict (the ONNX input names)."""
    if isinstance(x, dict):
        return [(str(k), v) for k, v in x.items()]
    if isinstance(x, (tuple, list)):
        return [(f"input_{i}", v) for i, v in enumerate(x)]
    return [("input", x)]


def batch_len(x: ModelInput) -> int:
    """Samples in ``x`` (the first tensor's leading size)."""
    return len(named_tensors(x)[0][1])


def rows(x: ModelInput, start: int, stop: int | None = None) -> ModelInput:
    """Samples ``start:stop`` of every input tensor (``rows(x, n)``: the first ``n``)."""
    cut = slice(0, start) if stop is None else slice(start, stop)
    if isinstance(x, dict):
        return {k: v[cut] for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(v[cut] for v in x)
    return x[cut]


def describe(x: ModelInput) -> str:
    """``input_ids (1, 16) int64, attention_mask (1, 16) int64`` (one tensor: its shape)."""
    if isinstance(x, torch.Tensor):
        return f"shape {tuple(x.shape)}"
    return ", ".join(f"{n} {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" for n, t in named_tensors(x))


def is_several(x: object) -> bool:
    """True for inputs of several tensors (a tuple, list or dict), False for one tensor."""
    return isinstance(x, (tuple, list, dict)) and not isinstance(x, torch.Tensor)


def check_tensors(x: object, what: str) -> None:
    """A one-line :class:`ConfigError` unless ``x`` is a tensor, or a non-empty tuple/list/dict of tensors
    that agree on the batch size."""
    if isinstance(x, torch.Tensor):
        return
    items = list(x.items()) if isinstance(x, dict) else list(enumerate(x)) if isinstance(x, (tuple, list)) else None
    if not items:
        raise ConfigError(f"{what} must be a tensor, or a tuple or dict of tensors, got {type(x).__name__}")
    bad = [str(k) for k, v in items if not isinstance(v, torch.Tensor) or v.dim() == 0]
    if bad:
        raise ConfigError(f"{what}: input {bad[0]!r} is not a tensor with a batch axis; every input must be one")
    sizes = {len(v) for _, v in items}
    if len(sizes) > 1:
        raise ConfigError(f"{what}: the inputs differ in batch size ({sorted(sizes)}); give one batch of each")


@dataclass(frozen=True)
class InputSpec:
    """Several inputs of a model without their values: enough to rebuild an example of any batch size.

    ``keyword``: passed as ``model(**inputs)`` (names are the keywords), else positionally. Integer
    inputs (token IDs, masks) are rebuilt within the range of values their example held, ``[low, high)``,
    so a mask of ones stays ones and token IDs stay within the vocabulary.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]  # each without the batch axis
    dtypes: tuple[str, ...]  # "float32", "int64", "bool" ...
    lows: tuple[int, ...]
    highs: tuple[int, ...]
    keyword: bool

    @classmethod
    def of(cls, x: ModelInput) -> InputSpec:
        """The spec of the example ``x`` (several tensors, or one)."""
        check_tensors(x, "the example input")
        pairs = named_tensors(x)
        ints = [(int(t.min()), int(t.max()) + 1) if not t.is_floating_point() and t.numel() else (0, 0)
                for _, t in pairs]
        return cls(tuple(n for n, _ in pairs), tuple(tuple(t.shape[1:]) for _, t in pairs),
                   tuple(str(t.dtype).removeprefix("torch.") for _, t in pairs),
                   tuple(lo for lo, _ in ints), tuple(hi for _, hi in ints), isinstance(x, dict))

    def example(self, batch: int = 1, random: bool = False, seed: int = 0) -> ModelInput:
        """Inputs of this spec for ``batch`` samples: floats normal (``random``) or zero, integers drawn
        from (or, not ``random``, equal to the lowest of) their recorded range."""
        generator = torch.Generator().manual_seed(seed)
        tensors = []
        for shape, dtype, low, high in zip(self.shapes, self.dtypes, self.lows, self.highs):
            kind = getattr(torch, dtype)
            if kind.is_floating_point:
                t = torch.randn(batch, *shape, generator=generator) if random else torch.zeros(batch, *shape)
                tensors.append(t.to(kind))
            elif random and high > low + 1:
                tensors.append(torch.randint(low, high, (batch, *shape), generator=generator).to(kind))
            else:
                tensors.append(torch.full((batch, *shape), low).to(kind))
        if self.keyword:
            return dict(zip(self.names, tensors))
        return tensors[0] if self.names == ("input",) else tuple(tensors)

    def to_json(self) -> dict[str, Any]:
        """The spec as written into policies and checkpoints (under ``input_shape``)."""
        return {"inputs": "keyword" if self.keyword else "positional",
                "tensors": [{"name": n, "shape": list(s), "dtype": d, "low": lo, "high": hi}
                            for n, s, d, lo, hi in zip(self.names, self.shapes, self.dtypes, self.lows, self.highs)]}

    @classmethod
    def from_json(cls, data: object, source: str) -> InputSpec:
        """The spec of :meth:`to_json`'s form, checked (a one-line :class:`ConfigError` naming ``source``)."""
        try:
            assert isinstance(data, dict) and data.get("inputs") in ("keyword", "positional")
            items = data["tensors"]
            assert isinstance(items, list) and 0 < len(items) <= 16
            shapes = []
            for item in items:
                shape = item["shape"]
                assert isinstance(shape, list) and len(shape) <= 4 and all(
                    isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1 << 16 for v in shape)
                assert isinstance(getattr(torch, str(item["dtype"]), None), torch.dtype)
                assert all(isinstance(item[k], int) for k in ("low", "high")) and isinstance(item["name"], str)
                shapes.append(tuple(shape))
        except (AssertionError, KeyError, TypeError) as exc:
            raise ConfigError(f"{source}: the inputs record {str(data)[:120]} is not one autoprune writes "
                              f"(names, shapes, dtypes and value ranges of each input)") from exc
        return cls(tuple(i["name"] for i in items), tuple(shapes), tuple(str(i["dtype"]) for i in items),
                   tuple(i["low"] for i in items), tuple(i["high"] for i in items), data["inputs"] == "keyword")

    def describe(self) -> str:
        """``input_ids (16) int64, attention_mask (16) int64``."""
        return ", ".join(f"{n} {s} {d}" for n, s, d in zip(self.names, self.shapes, self.dtypes))


Signature = tuple[int, ...] | InputSpec  # what a model takes: one tensor's shape, or several inputs


def signature_of(x: ModelInput) -> Signature:
    """One float tensor's shape without the batch axis, else the :class:`InputSpec` of the inputs
    (several, or one of integers such as token IDs, whose range of values matters)."""
    if is_several(x) or not x.is_floating_point():
        return InputSpec.of(x)
    return tuple(x.shape[1:])


def signature_json(signature: Signature | None) -> list[int] | dict | None:
    """How a signature is written into a file (a list of ints for one tensor)."""
    if signature is None:
        return None
    return signature.to_json() if isinstance(signature, InputSpec) else list(signature)


def signature_from_json(data: object, source: str) -> Signature | None:
    """A signature read back from a file: a list is one tensor's shape; a dict, several inputs."""
    if data is None:
        return None
    if isinstance(data, dict):
        return InputSpec.from_json(data, source)
    return tuple(data)  # callers check a shape's values as they always have


def describe_signature(signature: Signature) -> str:
    """``shape [1, 28, 28]`` for one input (floats or integers alike), else each input's name, shape and
    dtype (value ranges left out): equal descriptions are inputs of the same kind."""
    if isinstance(signature, InputSpec):
        return f"shape {list(signature.shapes[0])}" if signature.names == ("input",) else signature.describe()
    return f"shape {list(signature)}"


def in_channels_of(signature: Signature) -> int | None:
    """The channels of a one-tensor input (a built-in model is sized by it); None for several inputs."""
    return None if isinstance(signature, InputSpec) or not signature else signature[0]


def perturbed(example: ModelInput, count: int, seed: int = 0) -> list[ModelInput]:
    """``count`` inputs of ``example``'s shapes and kinds that differ from it: floats of other scale and
    sign; other integers within the example's range (a constant integer input, such as a mask of ones,
    stays as it is)."""
    generator = torch.Generator().manual_seed(seed)

    def vary(t: torch.Tensor, i: int) -> torch.Tensor:
        if not t.is_floating_point():
            if not t.numel():
                return t
            low, high = int(t.min()), int(t.max()) + 1
            if not is_several(example):  # one tensor of token IDs: any IDs up to the largest seen
                low, high = 0, max(high, 2)
            return torch.randint(low, high, t.shape, generator=generator).to(t.dtype) if high > low + 1 else t
        if i == 0:
            return -t
        scale = t.float().std().clamp(min=1e-3) if t.numel() > 1 else torch.tensor(1.0)
        return (torch.randn(t.shape, generator=generator) * scale * i).to(t.dtype)

    out = []
    for i in range(count + 1):
        if isinstance(example, dict):
            out.append({k: vary(v, i) for k, v in example.items()})
        elif isinstance(example, (tuple, list)):
            out.append(type(example)(vary(v, i) for v in example))
        else:
            out.append(vary(example, i))
    return out

