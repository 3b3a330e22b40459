"""The fine-tuning loop: cosine-scheduled SGD/AdamW, optional distillation, step hooks, best checkpoint."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from torch import nn

from autoprune.data.batches import Splits
from autoprune.devices import check_torch_device
from autoprune.finetune.distill import distillation_loss
from autoprune.scoring import LossFn, ScoreFn, accuracy
from autoprune.settings import setting
from autoprune.training import TrainConfig, evaluate, train


class StepHook(Protocol):
    """Something that changes the model during training (gradual pruning, sparsity)."""

    def on_step(self, step: int) -> None: ...

    def done(self, step: int) -> bool: ...


@dataclass
class FinetuneConfig(TrainConfig):
    """Fine-tuning hyper-parameters: a smaller learning rate than training, plus distillation."""

    epochs: int = setting(5, "fine-tuning epochs", at_least=1)
    lr: float = setting(0.01, "peak learning rate (cosine decay to 0)", above=0.0)
    seed: int = setting(0, "fine-tuning seed", option="--ft-seed")
    kd_alpha: float = setting(0.5, "weight of the distillation term when a teacher is given", at_least=0.0,
                              at_most=1.0)
    kd_temperature: float = setting(4.0, "distillation temperature", above=0.0)
    val_size: int | None = setting(None, "validation images per epoch (default: all)", option="--ft-val-size",
                                   at_least=1)


@dataclass
class FinetuneResult:
    """The best model (by validation accuracy, once every hook is done) and the per-epoch history."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float = float("nan")


def finetune(model: nn.Module, splits: Splits, cfg: FinetuneConfig, teacher: nn.Module | None = None,
             hooks: Sequence[StepHook] = (), on_best: Callable[[nn.Module, int, float], None] | None = None,
             progress: bool = True, score: ScoreFn = accuracy, loss: LossFn | None = None) -> FinetuneResult:
    """Fine-tune ``model`` in place and return it with its best weights loaded.

    Args:
        teacher: the dense model, for knowledge distillation (``cfg.kd_alpha`` weights its term).
        hooks: step hooks, called with step 0 before training and after every optimiser step.
        on_best: called as ``(model, epoch, val_acc)`` whenever the best checkpoint improves, so
            the caller can write it to disk at once.
        score: validation score picking the best epoch (accuracy by default; higher is better).
        loss: training loss ``(output, target, input)`` (cross-entropy when None and no teacher).

    Epochs before every hook is done (e.g. while gradual pruning still raises ratios) are not
    candidates for the best checkpoint: their model is not the final structure.
    """
    state = {"step": 0, "best": None, "best_val": -1.0, "best_epoch": 0, "epoch": 0}

    def on_step(step: int) -> None:
        state["step"] = step
        for h in hooks:
            h.on_step(step)

    def evaluate_and_keep(m: nn.Module) -> float:
        state["epoch"] += 1
        acc = evaluate(m, splits.val(limit=cfg.val_size), score)
        if all(h.done(state["step"]) for h in hooks) and acc > state["best_val"]:
            state.update(best=copy.deepcopy(m.state_dict()), best_val=acc, best_epoch=state["epoch"])
            if on_best:
                on_best(m, state["epoch"], acc)
        return acc

    on_step(0)
    if teacher is not None:
        teacher.to(check_torch_device(cfg.device))
    loss_fn = distillation_loss(teacher, cfg.kd_alpha, cfg.kd_temperature) if teacher is not None else loss
    history = train(model, lambda e: splits.train(cfg.batch_size, augment=cfg.augment, seed=cfg.seed * 1000 + e),
                    cfg, evaluate_fn=evaluate_and_keep, loss_fn=loss_fn, on_step=on_step, progress=progress,
                    class_labels=loss is None)
    if state["best"] is not None:
        model.load_state_dict(state["best"])
    model.eval()
    return FinetuneResult(model, history, state["best_epoch"], state["best_val"])
