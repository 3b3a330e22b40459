"""Knowledge distillation from the dense model (Hinton et al. 2015)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from autoprune.inputs import call
from autoprune.outputs import scored_output


def distillation_loss(teacher: nn.Module, alpha: float = 0.5, temperature: float = 4.0
                      ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(logits, y, x) -> loss``: ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE``.

    The teacher runs in eval mode under ``torch.no_grad`` (its parameters are left as they are: the
    teacher is often the very model an analysis traced, and Torch-Pruning traces through gradients);
    ``T^2`` keeps the soft term's gradient scale independent of the temperature.
    """
    if not 0.0 <= alpha <= 1.0 or temperature <= 0:
        raise ValueError(f"need 0 <= alpha <= 1 and temperature > 0, got {alpha} and {temperature}")
    teacher.eval()

    def loss(output: Any, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = scored_output(output)
        with torch.no_grad():
            soft_targets = F.log_softmax(scored_output(call(teacher, x)) / temperature, dim=1)
        soft = F.kl_div(F.log_softmax(logits / temperature, dim=1), soft_targets, reduction="batchmean",
                        log_target=True) * temperature ** 2
        return alpha * soft + (1.0 - alpha) * F.cross_entropy(logits, y)

    return loss
