"""Training, evaluation and batch-norm recalibration loops (CPU-friendly, tqdm progress)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from autoprune.data.guard import guarded
from autoprune.devices import check_torch_device
from autoprune.errors import ConfigError, DataError, TrainingError
from autoprune.inputs import ModelInput, batch_len, call, named_tensors, to_device
from autoprune.outputs import scored_output
from autoprune.progress import bar_disabled, plain_lines
from autoprune.scoring import ScoreFn, accuracy, model_device
from autoprune.settings import check_settings, setting

OPTIMIZERS = ("sgd", "adamw")

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def evaluate(model: nn.Module, batches: Batches, score: ScoreFn = accuracy) -> float:
    """``score`` (top-1 accuracy by default) of ``model`` over ``batches``, in eval mode."""
    return score(model, batches)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Batches, max_batches: int = 10) -> None:
    """Re-estimate BN running statistics on a few training batches (EagleEye, Li et al. 2020).

    A pruned candidate's BN statistics no longer match its features; without this step its
    accuracy says little about how it will do after fine-tuning.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches seen
    was_training = model.training
    model.train()
    device = model_device(model)
    for i, (x, _) in enumerate(batches):
        if i >= max_batches:
            break
        call(model, to_device(x, device))
    model.train(was_training)
    for m, mom in zip(bns, saved):
        m.momentum = mom


@dataclass
class TrainConfig:
    """Hyper-parameters of a supervised training or fine-tuning run (``autoprune train``'s options)."""

    epochs: int = setting(10, "training epochs", at_least=1)
    lr: float = setting(0.1, "peak learning rate (cosine decay to 0)", above=0.0)
    momentum: float = setting(0.9, "SGD momentum (Nesterov)", cli=False, at_least=0.0, below=1.0)
    weight_decay: float = setting(5e-4, "weight decay (weights only, not BN or biases)", at_least=0.0)
    optimizer: str = setting("sgd", "optimiser", choices=OPTIMIZERS)
    batch_size: int = setting(128, "images per step", at_least=1)
    # None: the data's default (see autoprune.data); set from --augment / --no-augment
    augment: tuple[str, ...] | bool | None = setting(None, cli=False)
    seed: int = setting(0, "training seed")
    # torch device to train on (None: cuda when available, else cpu); set from --device
    device: str | None = setting(None, cli=False)

    def check(self) -> TrainConfig:
        """One-line errors for impossible values (as the fields declare them), before any training starts."""
        check_settings(self)
        return self


def create_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum or AdamW, weight decay on weights only (not BN/bias)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; use sgd or adamw")


def cosine_lr(step: int, total: int, base: float) -> float:
    """Cosine-annealed learning rate from ``base`` to 0 over ``total`` steps."""
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def train(model: nn.Module, make_batches: Callable[[int], Batches], cfg: TrainConfig,
          evaluate_fn: Callable[[nn.Module], float] | None = None,
          loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          on_step: Callable[[int], None] | None = None, progress: bool = True,
          class_labels: bool | None = None) -> list[dict]:
    """Train ``model`` with a cosine schedule; returns one record per epoch.

    Every batch is checked before it is trained on: finite inputs, labels that index the model's
    outputs (``class_labels``; default: when training with cross-entropy) and a finite scalar loss.
    A failed check stops training with one line (:class:`TrainingError` or :class:`DataError`);
    nothing is saved from the failing epoch, so a caller's checkpoints stay the last good ones.

    Args:
        make_batches: epoch -> iterable of (x, y) batches.
        evaluate_fn: model -> validation accuracy, run after every epoch.
        loss_fn: (logits, y, x) -> loss; cross-entropy when omitted (distillation passes its own).
        on_step: called with the global step after every optimiser step (gradual pruning hooks in).
    """
    class_labels = loss_fn is None if class_labels is None else class_labels
    torch.manual_seed(cfg.seed)
    opt = create_optimizer(model, cfg)
    steps_per_epoch = len(make_batches(0))  # type: ignore[arg-type]
    total, step, history = cfg.epochs * steps_per_epoch, 0, []
    ce = nn.CrossEntropyLoss()
    device = torch.device(check_torch_device(cfg.device))
    model.to(device)
    every = max(1, steps_per_epoch // 4) if plain_lines(progress) else 0  # output piped to a log: a line a quarter
    for epoch in range(cfg.epochs):
        model.train()
        running, seen = 0.0, 0
        where = f"epoch {epoch + 1}"
        bar = tqdm(guarded(make_batches(epoch), f"the training data ({where})"), total=steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=bar_disabled(progress), leave=False)
        for x, y in bar:
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, cfg.lr)
            x, y = to_device(x, device), to_device(y, device)
            check_inputs(x, f"{where}, step {step + 1}")
            out = call(model, x)
            logits = scored_output(out)
            if class_labels:
                check_labels(y, logits, f"{where}, step {step + 1}")
            loss = loss_fn(out, y, x) if loss_fn else ce(logits, y)
            check_loss(loss, f"{where}, step {step + 1}", getattr(loss_fn, "label", "the training loss"))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if on_step:
                on_step(step)
            running += loss.item() * batch_len(x)
            seen += batch_len(x)
            bar.set_postfix(loss=f"{running / seen:.3f}")
            if every and (step - epoch * steps_per_epoch) % every == 0:
                tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: step {step - epoch * steps_per_epoch}/{steps_per_epoch}, "
                           f"loss {running / seen:.3f}")
        record = {"epoch": epoch + 1, "loss": running / max(seen, 1)}
        if evaluate_fn:
            record["val_acc"] = evaluate_fn(model)
        history.append(record)
        if progress:
            tqdm.write(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
    return history


def check_inputs(x: ModelInput, where: str) -> None:
    """Refuse NaN or infinite inputs before they are trained on."""
    if any(t.is_floating_point() and not torch.isfinite(t).all() for _, t in named_tensors(x)):
        raise DataError(f"the training inputs hold NaN or infinite values ({where}); clean the data "
                        f"before training (nothing was trained on them)")


def check_labels(y: Any, logits: torch.Tensor, where: str) -> None:
    """Refuse class labels outside ``[0, outputs)`` (cross-entropy would fail with a device assert)."""
    if not (isinstance(y, torch.Tensor) and not y.is_floating_point() and y.numel() and logits.dim() == 2):
        return
    classes = logits.shape[1]
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise DataError(f"label {bad} is not a class of this model ({classes} outputs: labels 0..{classes - 1}) "
                        f"({where}); fix the labels or build the model with more classes")


def check_loss(loss: Any, where: str, label: str = "the training loss") -> None:
    """A scalar, finite loss; else training stops before the step changes any weight."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = type(loss).__name__ if not isinstance(loss, torch.Tensor) else f"a tensor of shape {tuple(loss.shape)}"
        raise ConfigError(f"{label} must be one number (a scalar tensor), got {got} ({where}); "
                          f"reduce it, e.g. with .mean()")
    if not torch.isfinite(loss.detach()).all():
        raise TrainingError(f"{label} became {loss.item()} ({where}); stopped before that step "
                            f"changed the weights; checkpoints saved before it are kept; lower --lr or check "
                            f"the data and the loss")
