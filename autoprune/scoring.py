"""What a candidate is scored by: top-1 accuracy, or a user's ``score(model, batches) -> float``
(higher is better: mAP, minus a regression loss, minus perplexity) named by reference."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from autoprune.data.guard import guarded
from autoprune.errors import DataError, TrainingError, UserCodeError
from autoprune.inputs import call, named_tensors, to_device
from autoprune.outputs import scored_output
from autoprune.references import resolve

ScoreFn = Callable[[nn.Module, Iterable[tuple[torch.Tensor, Any]]], float]
SCORE_HELP = ("FUNCTION(model, batches) -> float, higher is better, or neg-loss (minus the cross-entropy) "
              "(default: accuracy)")  # what --score takes, in every command


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter or buffer (CPU for a model with neither)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def _summed(model: nn.Module, batches: Iterable[tuple[torch.Tensor, Any]],
            per_batch: Callable[[torch.Tensor, torch.Tensor], float]) -> float:
    """``per_batch(outputs, labels)`` summed over ``batches`` and divided by the samples, in eval mode
    (the model's mode restored)."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    total, n = 0.0, 0
    try:
        for i, (x, y) in enumerate(guarded(batches, "the evaluation data")):
            if any(t.is_floating_point() and not torch.isfinite(t).all() for _, t in named_tensors(x)):
                raise DataError(f"the evaluation data holds NaN or infinite inputs (batch {i + 1}); clean the data "
                                f"(a NaN input would be scored as a wrong answer)")
            y = torch.as_tensor(y).to(device)
            out = scored_output(call(model, to_device(x, device)))
            if isinstance(out, torch.Tensor) and out.is_floating_point() and not torch.isfinite(out).all():
                raise TrainingError(f"the model's outputs are NaN or infinite on evaluation batch {i + 1}; its "
                                    f"weights have diverged: lower --lr or check the loss")
            try:
                total += per_batch(out, y)
            except (RuntimeError, IndexError, ValueError) as exc:  # outputs and labels that do not pair up
                raise DataError(f"the built-in score cannot compare the model's output {list(out.shape)} with the "
                                f"targets {list(y.shape)} ({str(exc).splitlines()[0][:80]}); pass --score "
                                f"FILE.py:function (and --loss) for this task") from None
            n += len(y)
    finally:
        model.train(was_training)
    return total / max(n, 1)


def accuracy(model: nn.Module, batches: Iterable[tuple[torch.Tensor, Any]]) -> float:
    """Top-1 accuracy (0..1) of ``model`` over ``batches``, in eval mode."""
    return _summed(model, batches, lambda out, y: (out.argmax(1) == y).sum().item())


def negative_loss(model: nn.Module, batches: Iterable[tuple[torch.Tensor, Any]]) -> float:
    """Minus the mean cross-entropy over ``batches`` (higher is better), in eval mode: it ranks
    candidates whose accuracies on a validation slice tie, as a supernet's narrow slices do."""
    return -_summed(model, batches, lambda out, y: float(torch.nn.functional.cross_entropy(out, y, reduction="sum")))


BUILTIN_SCORES = {"accuracy": accuracy, "neg-loss": negative_loss}


def load_score(ref: str | None, seed: int = 0) -> tuple[ScoreFn, str]:
    """The score function named ``ref`` and its name (``accuracy`` when ``ref`` is None; ``neg-loss``:
    minus the cross-entropy; ``channel-bench:PATH``: a Channel-Bench-Macro table, its noisy draws
    seeded with ``seed``)."""
    if ref is None:
        return accuracy, "accuracy"
    if ref in BUILTIN_SCORES:
        return BUILTIN_SCORES[ref], ref
    if ref.startswith("channel-bench:"):
        from autoprune.channel_bench import table_score

        return table_score(ref, seed), "channel-bench"
    fn = resolve(ref, "score function", "--score")
    name = getattr(fn, "__name__", "score")

    @torch.no_grad()
    def checked(model: nn.Module, batches: Iterable[tuple[torch.Tensor, Any]]) -> float:
        was_training = model.training
        model.eval()
        try:
            value = fn(model, batches)
        except Exception as exc:  # noqa: BLE001 - user code: one line naming it
            raise UserCodeError(f"--score {ref} raised {type(exc).__name__}: {str(exc)[:200]}") from None
        finally:
            model.train(was_training)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserCodeError(f"--score {ref} returned a {type(value).__name__}; return one float, higher is better")
        if not math.isfinite(value):
            raise UserCodeError(f"--score {ref} returned {value}; return one finite float, higher is better")
        return float(value)

    checked.__name__ = name
    return checked, name


LossFn = Callable[[torch.Tensor, Any, torch.Tensor], torch.Tensor]  # (output, target, input) -> loss


def load_loss(ref: str | None) -> LossFn | None:
    """The training loss named ``ref`` (``loss(output, target) -> tensor``); None: cross-entropy."""
    if ref is None or ref == "cross-entropy":
        return None
    fn = resolve(ref, "loss function", "--loss")

    def checked(output: torch.Tensor, target: Any, x: torch.Tensor) -> torch.Tensor:
        try:
            value = fn(output, target)
        except Exception as exc:  # noqa: BLE001 - user code, one line naming it
            raise UserCodeError(f"--loss {ref} raised {type(exc).__name__}: {str(exc)[:200]}") from None
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            got = type(value).__name__ if not isinstance(value, torch.Tensor) else f"a tensor of shape {tuple(value.shape)}"
            raise UserCodeError(f"--loss {ref} returned {got}; return one scalar tensor (e.g. .mean())")
        return value

    checked.label = f"--loss {ref}"  # how training errors name it
    return checked
