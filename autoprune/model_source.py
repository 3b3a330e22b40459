"""``ModelSource``: which model to prune, as the user named it (a built-in or a factory reference,
its arguments, its weights, one input's shape); the one value that travels from the CLI or the
Python API to every stage. It sits above the checkpoint code it loads models with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from autoprune.checkpoint import load_or_create, read_checkpoint, shipped_weights
from autoprune.errors import ConfigError, UserCodeError
from autoprune.inputs import InputSpec, Signature, check_tensors, signature_from_json, signature_of
from autoprune.limits import MAX_MODEL_ARGS_BYTES, MAX_MODEL_ARGS_DEPTH, check_input_size
from autoprune.models import is_builtin
from autoprune.references import canonical, resolve
from autoprune.yaml_io import load_yaml

MAX_DIMS = 4


@dataclass
class ModelSource:
    """A model by name or reference, with the weights and input shape to use.

    Attributes:
        ref: a built-in name (``resnet20``) or ``path/to/file.py:factory`` / ``package.module:factory``.
        args: keyword arguments of a factory reference (``--model-args``).
        weights: an autoprune checkpoint or a plain ``state_dict`` file (None: shipped or as built).
        input_shape: one input's shape, or several inputs' :class:`~autoprune.inputs.InputSpec`
            (None: from the data, the checkpoint or the model).
    """

    ref: str = "resnet20"
    args: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    input_shape: Signature | None = None

    def __post_init__(self) -> None:
        self.ref = canonical(self.ref)
        if isinstance(self.input_shape, (dict, list)):
            self.input_shape = signature_from_json(self.input_shape, "the input shape")

    @property
    def is_builtin(self) -> bool:
        return is_builtin(self.ref)

    def load(self, require_weights: bool = False, in_channels: int = 1, num_classes: int | None = None,
             same_weights: bool = True) -> nn.Module:
        """The model with its weights (see :func:`autoprune.checkpoint.load_or_create`), in eval mode.

        With ``same_weights`` (for searching and applying; not needed to analyse or profile), a
        factory reference without ``weights`` must return the same (trained) weights every time:
        the model searched is rebuilt to be applied and exported.
        """
        model = load_or_create(self.ref, self.weights, require_weights, self.args or None, in_channels, num_classes)
        if same_weights and not self.is_builtin and self.weights is None:
            again = load_or_create(self.ref, None, False, self.args or None)
            if not _same_weights(model, again):
                raise ConfigError(f"--model {self.ref} returns different weights on every call, so the model "
                                  f"searched would not be the one applied; load your trained weights in the "
                                  f"factory or pass --weights FILE")
        return model.eval()

    def shape(self, data_shape: Signature | None = None, model: nn.Module | None = None) -> Signature:
        """One input's shape (or several inputs' spec): ``input_shape`` if given, else the data's, else the checkpoint's
        (given or shipped weights), else the ``input_shape`` attribute of ``model`` (or of the
        model this source builds)."""
        if self.input_shape:
            return self.input_shape
        if data_shape:
            return data_shape if isinstance(data_shape, InputSpec) else tuple(data_shape)
        weights = self.weights or shipped_weights(self.ref)
        if weights:
            recorded = read_checkpoint(weights).get("input_shape")
            if recorded:
                return signature_from_json(recorded, f"checkpoint {weights}")
        declared = getattr(model if model is not None else self.load(), "input_shape", None)
        if isinstance(declared, (tuple, list)) and declared and all(isinstance(v, int) and v > 0 for v in declared):
            return tuple(declared)
        raise ConfigError(f"the input shape of {self.ref} is not known; pass --input-shape C,H,W "
                          f"(or the shape of one input, e.g. 64 for vectors)")


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def load_example(ref: str) -> Signature:
    """What the inputs ``--example FILE.py:function`` returns look like: the function takes no arguments
    and returns one batch of inputs (a tensor, a tuple of tensors, or a dict of keyword tensors)."""
    fn = resolve(ref, "example-input function", "--example")
    try:
        example = fn()
    except Exception as exc:  # noqa: BLE001 - user code: one line naming it
        raise UserCodeError(f"--example {ref} raised {type(exc).__name__}: {str(exc)[:200]}") from None
    check_tensors(example, f"--example {ref}")
    signature = signature_of(tuple(example) if isinstance(example, list) else example)
    if isinstance(signature, InputSpec):
        for name, shape in zip(signature.names, signature.shapes):
            check_input_size(shape, f"--example {ref}: input {name!r}")
    else:
        check_input_size(signature, f"--example {ref}")
    return signature


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """``"3,32,32"`` -> ``(3, 32, 32)``; one-line errors for anything else."""
    if text is None or text == "":
        return None
    try:
        text = str(text)
        shape = tuple(int(t) for t in text.split("," if "," in text else "x"))
    except ValueError:
        raise ConfigError(f"--input-shape must be comma-separated positive integers like 3,32,32, got {text!r}") from None
    if not 1 <= len(shape) <= MAX_DIMS or any(s < 1 or s > 1 << 16 for s in shape):
        raise ConfigError(f"--input-shape must be 1 to {MAX_DIMS} positive integers (each <= 65536), got {text!r}")
    check_input_size(shape, "--input-shape")
    return shape


def parse_model_args(text: str | None) -> dict[str, Any]:
    """``--model-args`` as JSON or YAML key-values (``'{"width": 2}'`` or ``'width: 2'``) or a file of them."""
    if not text:
        return {}
    path = Path(text)
    if len(text) < 4096 and path.suffix in (".json", ".yaml", ".yml") and path.is_file():
        if path.stat().st_size > MAX_MODEL_ARGS_BYTES:
            raise ConfigError(f"--model-args file {text} is {path.stat().st_size} bytes, over the "
                              f"{MAX_MODEL_ARGS_BYTES // 1024} KiB limit; give the factory's keyword arguments only")
        text = path.read_text()
    if len(text.encode()) > MAX_MODEL_ARGS_BYTES:
        raise ConfigError(f"--model-args is {len(text.encode())} bytes, over the {MAX_MODEL_ARGS_BYTES // 1024} KiB "
                          f"limit; give the factory's keyword arguments only (a factory reads large data itself)")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        try:
            data = load_yaml(text, "--model-args")
        except (yaml.YAMLError, RecursionError):
            data = None
    if isinstance(data, dict) and _depth(data) > MAX_MODEL_ARGS_DEPTH:
        raise ConfigError(f"--model-args is nested more than {MAX_MODEL_ARGS_DEPTH} levels deep; give plain "
                          f"keyword arguments like '{{\"width\": 2}}'")
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigError(f"--model-args must be key-values as JSON or YAML, like '{{\"width\": 2}}', got {text[:60]!r}")
    return data


def _depth(value: Any, level: int = 0) -> int:
    """Nesting depth of lists and dicts (stops counting past the limit)."""
    if level > MAX_MODEL_ARGS_DEPTH:
        return level
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return max((_depth(v, level + 1) for v in children), default=level)
