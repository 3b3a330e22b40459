"""A model's forward output of any structure: a tensor, tuple, list, dict or dataclass (Hugging Face's
``ModelOutput``), flattened to named tensors; and the one output that is scored and trained."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch

from autoprune.errors import AnalysisError

MAX_OUTPUTS = 1024  # tensors looked at in one output structure
_SCORED: ContextVar[str | None] = ContextVar("autoprune_scored_output", default=None)  # ``--output``


def set_scored_output(key: str | None) -> None:
    """Score and train the output ``key`` (a path as :func:`output_tensors` names it) from now on
    in this context (a search sets it from its settings, in its worker processes too)."""
    _SCORED.set(key)


@contextmanager
def scoring_output(key: str | None) -> Iterator[None]:
    """Within the block, the output ``key`` is scored and trained (None: the default rule)."""
    token = _SCORED.set(key)
    try:
        yield
    finally:
        _SCORED.reset(token)


def output_tensors(out: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in ``out`` with its path (``""`` for a bare tensor, ``logits``, ``0``, ``hidden.1``)."""
    found: list[tuple[str, torch.Tensor]] = []
    _walk(out, prefix, found, 0)
    return found


def _walk(out: Any, path: str, found: list[tuple[str, torch.Tensor]], depth: int) -> None:
    if len(found) >= MAX_OUTPUTS or depth > 8:
        return
    if isinstance(out, torch.Tensor):
        found.append((path, out))
        return
    if isinstance(out, dict) or (hasattr(out, "items") and callable(out.items)):
        items = list(out.items())
    elif isinstance(out, (tuple, list)):
        items = list(enumerate(out))
    elif dataclasses.is_dataclass(out) and not isinstance(out, type):
        items = [(f.name, getattr(out, f.name)) for f in dataclasses.fields(out)]
    else:
        return
    for key, value in items:
        _walk(value, f"{path}.{key}" if path else str(key), found, depth + 1)


def flat_outputs(out: Any) -> list[torch.Tensor]:
    """The output tensors as a list: how Torch-Pruning's tracer is given an output of any structure."""
    return [t for _, t in output_tensors(out)]


def output_shapes(out: Any) -> list[tuple[str, tuple[int, ...]]]:
    """Path and shape of every output tensor (what pruning must never change)."""
    return [(p, tuple(t.shape)) for p, t in output_tensors(out)]


def scored_output(out: Any) -> torch.Tensor:
    """The output that is scored and trained: the one ``--output`` names, else the only tensor, else
    the ``logits`` entry.

    Raises:
        AnalysisError: when that output does not exist or none is chosen, listing the outputs found.
    """
    if isinstance(out, torch.Tensor):
        return out
    tensors = output_tensors(out)
    listed = ", ".join(f"{p or 'output'} {list(t.shape)}" for p, t in tensors[:6]) or "no tensor"
    key = _SCORED.get()
    if key is not None:
        found = dict(tensors).get(key)
        if found is None:
            raise AnalysisError(f"--output {key!r} is not one of the model's outputs ({listed}); name one of those")
        return found
    if len(tensors) == 1:
        return tensors[0][1]
    for path, t in tensors:
        if path == "logits" or path.endswith(".logits"):
            return t
    raise AnalysisError(f"the model returns several outputs ({listed}) and none is called 'logits'; name the one "
                        f"to score and train with --output (e.g. --output {tensors[0][0] if tensors else 0})")
