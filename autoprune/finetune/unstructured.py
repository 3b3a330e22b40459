"""Unstructured magnitude pruning through ``torch.nn.utils.prune``, gradual, then stripped.

For users who want a smaller file rather than a faster model: zeroed weights keep dense shapes,
so ONNX Runtime runs no faster, but the weights compress (reported as gzip size, as TF-MOT does).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.utils import prune

from autoprune.errors import ConfigError
from autoprune.finetune.schedule import PolynomialDecay

SCOPES = ("layer", "global")


class MagnitudeSparsity:
    """Step hook: L1-magnitude masks on every Conv2d/Linear weight, following ``schedule``.

    ``scope="layer"`` gives every layer the scheduled sparsity; ``"global"`` ranks all weights
    together (layers with many small weights lose more).
    """

    def __init__(self, model: nn.Module, schedule: PolynomialDecay, scope: str = "layer",
                 exclude: Iterable[str] = ()) -> None:
        if scope not in SCOPES:
            raise ConfigError(f"sparsity scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        skip = set(exclude)
        self.model, self.schedule, self.scope = model, schedule, scope
        self.params = [(m, "weight") for n, m in model.named_modules()
                       if isinstance(m, (nn.Conv2d, nn.Linear)) and n not in skip]
        if not self.params:
            raise ConfigError("no Conv2d/Linear weights to sparsify (all excluded?)")
        self.sparsity = 0.0

    def on_step(self, step: int) -> None:
        """Re-mask to the scheduled sparsity when the schedule says so (zeros stay zero)."""
        if self.schedule.should_update(step):
            self.apply(self.schedule.value(step))

    def apply(self, sparsity: float) -> None:
        """Mask the ``sparsity`` share of smallest-magnitude weights (per layer or globally)."""
        self._remove()  # fold current masks in: zeroed weights have the smallest magnitude
        if self.scope == "global":
            prune.global_unstructured(self.params, pruning_method=prune.L1Unstructured, amount=sparsity)
        else:
            for module, name in self.params:
                prune.l1_unstructured(module, name, amount=sparsity)
        self.sparsity = sparsity

    def done(self, step: int) -> bool:
        return self.schedule.done(step)

    def strip(self) -> nn.Module:
        """Make the zeros permanent and drop the mask buffers (TF-MOT's ``strip_pruning``)."""
        self._remove()
        return self.model

    def _remove(self) -> None:
        for module, name in self.params:
            if prune.is_pruned(module):
                prune.remove(module, name)


def sparsity_report(model: nn.Module) -> dict[str, float | int]:
    """Zero share of Conv2d/Linear weights, parameter counts, and raw vs gzip-compressed sizes."""
    total = zeros = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight.detach()
            total += w.numel()
            zeros += int((w == 0).sum())
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    raw = buf.getvalue()
    return {"weight_sparsity": zeros / max(total, 1), "weights": total, "nonzero_weights": total - zeros,
            "params": sum(p.numel() for p in model.parameters()), "bytes": len(raw),
            "gzip_bytes": len(gzip.compress(raw, compresslevel=9))}
