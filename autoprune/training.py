"""Training, evaluation and batch-norm recalibration loops (CPU-friendly, tqdm progress)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from autoprune.progress import bar_disabled
from autoprune.errors import ConfigError

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches) -> float:
    """Top-1 accuracy (0..1) of ``model`` over ``batches``, in eval mode."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in batches:
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


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
    for i, (x, _) in enumerate(batches):
        if i >= max_batches:
            break
        model(x)
    model.train(was_training)
    for m, mom in zip(bns, saved):
        m.momentum = mom


@dataclass
class TrainConfig:
    """Hyper-parameters of a supervised training or fine-tuning run."""

    epochs: int = 10
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"  # or "adamw"
    batch_size: int = 128
    augment: bool = True
    seed: int = 0


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
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
          on_step: Callable[[int], None] | None = None, progress: bool = True) -> list[dict]:
    """Train ``model`` with a cosine schedule; returns one record per epoch.

    Args:
        make_batches: epoch -> iterable of (x, y) batches.
        evaluate_fn: model -> validation accuracy, run after every epoch.
        loss_fn: (logits, y, x) -> loss; cross-entropy when omitted (distillation passes its own).
        on_step: called with the global step after every optimiser step (gradual pruning hooks in).
    """
    torch.manual_seed(cfg.seed)
    opt = make_optimizer(model, cfg)
    steps_per_epoch = len(make_batches(0))  # type: ignore[arg-type]
    total, step, history = cfg.epochs * steps_per_epoch, 0, []
    ce = nn.CrossEntropyLoss()
    for epoch in range(cfg.epochs):
        model.train()
        running, seen = 0.0, 0
        bar = tqdm(make_batches(epoch), total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=bar_disabled(progress), leave=False)
        for x, y in bar:
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, cfg.lr)
            logits = model(x)
            loss = loss_fn(logits, y, x) if loss_fn else ce(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if on_step:
                on_step(step)
            running += loss.item() * len(y)
            seen += len(y)
            bar.set_postfix(loss=f"{running / seen:.3f}")
        record = {"epoch": epoch + 1, "loss": running / max(seen, 1)}
        if evaluate_fn:
            record["val_acc"] = evaluate_fn(model)
        history.append(record)
        if progress:
            tqdm.write(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
    return history
